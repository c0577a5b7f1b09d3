"""ops/_blas.py: the BLAS GEMM that conv2d's shifted path calls directly, against numpy.matmul."""

import numpy as np
import pytest

from minigrad_q.ops import _blas

rng = np.random.default_rng(0)


def gemm_or_skip(dtype):
    gemm = _blas.gemm(dtype)
    if gemm is None:
        pytest.skip("NumPy's BLAS has no GEMM that ops/_blas.py calls (not scipy-openblas64)")
    return gemm


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_gemm_adds_the_product_of_strided_and_transposed_views(dtype, transpose_a, transpose_b, beta):
    gemm = gemm_or_skip(dtype)
    m, n, k = 5, 7, 3
    a_store = rng.standard_normal((k, m + 4) if transpose_a else (m, k + 4)).astype(dtype)  # rows longer than used
    b_store = rng.standard_normal((n, k + 2) if transpose_b else (k, n + 2)).astype(dtype)
    a = a_store[:, :m].T if transpose_a else a_store[:, :k]
    b = b_store[:, :k].T if transpose_b else b_store[:, :n]
    c_store = rng.standard_normal((m, n + 3)).astype(dtype)
    expected = a @ b + beta * c_store[:, :n]
    untouched = c_store[:, n:].copy()
    gemm(m, n, k, gemm.matrix(a), gemm.matrix(b), (c_store.ctypes.data, n + 3), beta)
    tolerance = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(c_store[:, :n], expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(c_store[:, n:], untouched)  # the leading dimension was respected


def test_gemm_is_found_only_for_float32_and_float64():
    assert _blas.gemm(np.float16) is None
    assert _blas.gemm(np.int32) is None


def test_a_matrix_needs_unit_stride_along_one_axis():
    gemm = gemm_or_skip(np.float64)
    with pytest.raises(ValueError, match="unit stride"):
        gemm.matrix(np.zeros((4, 6))[::2, ::2])
