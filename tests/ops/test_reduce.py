"""Reductions: forward against NumPy, gradients against hand-written NumPy results, torch's tie
conventions, numerical stability, zero-size inputs and error messages."""

import numpy as np
import pytest
from dim_cases import DIM_CASES, X, grad_of, kept, output_like, rng
from helpers import const, host, leaf

import minigrad_q as mq
from minigrad_q.ops.reduce import MaxMin


# ---------------------------------------------------------------- sum
@pytest.mark.parametrize("dim, axis, keepdim", DIM_CASES)
def test_sum_forward_matches_numpy(device, dim, axis, keepdim):
    y = mq.sum(const(X, device), dim, keepdim)
    reference = X.sum(axis=axis, keepdims=keepdim)
    assert y.shape == reference.shape
    np.testing.assert_allclose(host(y), reference, rtol=1e-12)


@pytest.mark.parametrize("dim, axis, keepdim", DIM_CASES)
def test_sum_gradient_is_output_gradient_broadcast_back(device, dim, axis, keepdim):
    g = output_like(X.sum(axis=axis, keepdims=keepdim))
    expected = np.broadcast_to(g if keepdim else kept(g, axis), X.shape)
    np.testing.assert_allclose(grad_of(lambda x: mq.sum(x, dim, keepdim), X, g, device), expected, rtol=1e-12)


def test_sum_of_bool_and_integer_tensors_is_int64(device):
    flags = const(np.array([[True, False, True], [True, True, False]]), device)
    assert mq.sum(flags).dtype == mq.int64 and mq.sum(flags).item() == 4
    np.testing.assert_array_equal(mq.sum(flags, 0).numpy(), [2, 1, 1])
    small = const(np.array([100, 100, 100], dtype=np.int8), device)
    assert mq.sum(small).dtype == mq.int64 and mq.sum(small).item() == 300
    assert not mq.sum(flags).requires_grad


def test_sum_over_an_empty_dim_is_zero(device):
    x = leaf(np.zeros((3, 0)), device)
    y = mq.sum(x, 1)
    np.testing.assert_array_equal(host(y), [0.0, 0.0, 0.0])
    y.backward(const(np.ones(3), device))
    assert x.grad.shape == (3, 0)


def test_reduction_gradients_accumulate_into_their_own_buffer(device):
    x = leaf(X, device)
    mq.sum(x).backward()
    mq.mean(x, 0).backward(const(np.ones((3, 4)), device))
    np.testing.assert_allclose(x.grad.numpy(), np.full(X.shape, 1.5))
    if device == "cpu":
        assert x.grad.data.flags.writeable and x.grad.data.base is None


def test_gradient_keeps_float32(device):
    x = mq.tensor(X.astype(np.float32), device=device, requires_grad=True)
    for op in (lambda t: mq.logsumexp(t, 1), lambda t: mq.std(t, 0), lambda t: mq.amax(t, -1), mq.mean):
        x.grad = None
        mq.sum(op(x)).backward()
        assert x.grad.dtype == mq.float32


# ---------------------------------------------------------------- mean
@pytest.mark.parametrize("dim, axis, keepdim", DIM_CASES)
def test_mean_forward_and_gradient(device, dim, axis, keepdim):
    reference = X.mean(axis=axis, keepdims=keepdim)
    np.testing.assert_allclose(host(mq.mean(const(X, device), dim, keepdim)), reference, rtol=1e-12)
    g = output_like(reference)
    count = X.size // np.size(reference)
    expected = np.broadcast_to((g if keepdim else kept(g, axis)) / count, X.shape)
    np.testing.assert_allclose(grad_of(lambda x: mq.mean(x, dim, keepdim), X, g, device), expected, rtol=1e-12)


def test_mean_of_nothing_is_nan(device):
    y = mq.mean(const(np.zeros((2, 0)), device), 1)
    assert y.shape == (2,) and np.isnan(y.numpy()).all()
    assert np.isnan(mq.mean(const(np.zeros(0), device)).item())


def test_mean_of_integers_is_refused(device):
    with pytest.raises(RuntimeError, match="mean: expected a floating point tensor, got dtype int64"):
        mq.mean(const(np.arange(3), device))


# ---------------------------------------------------------------- var, std
@pytest.mark.filterwarnings("ignore:Degrees of freedom")  # NumPy's reference, for dim 0 of size 2 and correction 2
@pytest.mark.parametrize("correction", [0, 1, 2])
@pytest.mark.parametrize("dim, axis, keepdim", DIM_CASES)
def test_var_and_std_forward_match_numpy(device, dim, axis, keepdim, correction):
    x = const(X, device)
    with np.errstate(divide="ignore"):  # N - correction = 0 gives inf, in NumPy as in torch
        expected_var = X.var(axis=axis, ddof=correction, keepdims=keepdim)
        expected_std = X.std(axis=axis, ddof=correction, keepdims=keepdim)
    np.testing.assert_allclose(host(mq.var(x, dim, correction=correction, keepdim=keepdim)), expected_var, rtol=1e-12)
    np.testing.assert_allclose(host(x.std(dim, correction=correction, keepdim=keepdim)), expected_std, rtol=1e-12)


@pytest.mark.parametrize("correction", [0, 1])
@pytest.mark.parametrize("dim, axis, keepdim", [(None, None, False), (1, 1, True), ((0, -1), (0, 2), False)])
def test_var_and_std_gradients(device, dim, axis, keepdim, correction):
    n = X.size // np.size(X.mean(axis=axis))
    centered = X - X.mean(axis=axis, keepdims=True)
    deviation = X.std(axis=axis, ddof=correction, keepdims=True)
    g = output_like(X.var(axis=axis, keepdims=keepdim))
    g_kept = g if keepdim else kept(g, axis)
    np.testing.assert_allclose(grad_of(lambda x: mq.var(x, dim, correction=correction, keepdim=keepdim), X, g, device),
                               2 * centered / (n - correction) * g_kept, rtol=1e-10)
    np.testing.assert_allclose(grad_of(lambda x: mq.std(x, dim, correction=correction, keepdim=keepdim), X, g, device),
                               centered / ((n - correction) * deviation) * g_kept, rtol=1e-10)


def test_std_gradient_is_zero_where_all_values_are_equal(device):
    """torch masks the 0/0 of a constant row to 0."""
    data = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    grad = grad_of(lambda x: mq.std(x, 1), data, np.ones(2), device)
    np.testing.assert_array_equal(grad[0], [0.0, 0.0, 0.0])
    assert np.isfinite(grad[1]).all() and np.abs(grad[1]).sum() > 0


def test_var_without_degrees_of_freedom_is_nan_as_in_torch(device):
    x = leaf(np.array([[3.0], [4.0]]), device)
    y = mq.var(x, 1)
    assert np.isnan(host(y)).all()
    np.testing.assert_array_equal(host(mq.var(x, 1, correction=0)), [0.0, 0.0])


def test_var_refuses_unbiased_flag_with_a_hint(device):
    with pytest.raises(TypeError, match=r"var: dim must be an int, got bool False.*correction=0"):
        mq.var(const(X, device), False)


# ---------------------------------------------------------------- max, min, amax, amin
def test_full_max_and_min_split_the_gradient_among_ties(device):
    data = np.array([[1.0, 5.0, 2.0], [5.0, -3.0, -3.0]])
    np.testing.assert_array_equal(grad_of(mq.max, data, 6.0, device), [[0, 3, 0], [3, 0, 0]])
    np.testing.assert_array_equal(grad_of(mq.min, data, 6.0, device), [[0, 0, 0], [0, 3, 3]])
    assert mq.max(const(data, device)).item() == 5.0 and mq.min(const(data, device)).item() == -3.0


@pytest.mark.parametrize("op, npop", [(mq.max, np.max), (mq.min, np.min)])
@pytest.mark.parametrize("dim, axis", [(0, 0), (1, 1), (-1, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_along_a_dim_return_values_and_indices(device, op, npop, dim, axis, keepdim):
    argop = np.argmax if op is mq.max else np.argmin
    result = op(const(X, device), dim, keepdim)
    assert isinstance(result, MaxMin)
    values, indices = result
    np.testing.assert_array_equal(values.numpy(), npop(X, axis=axis, keepdims=keepdim))
    expected_indices = argop(X, axis=axis)
    np.testing.assert_array_equal(indices.numpy(), np.expand_dims(expected_indices, axis) if keepdim else expected_indices)
    assert indices.dtype == mq.int64 and not indices.requires_grad
    assert result.values is values and result.indices is indices


def test_max_along_a_dim_sends_the_gradient_to_the_first_maximum_only(device):
    data = np.array([[4.0, 1.0, 4.0, 4.0], [0.0, 2.0, 2.0, -1.0]])
    np.testing.assert_array_equal(grad_of(lambda x: mq.max(x, 1).values, data, [10.0, 20.0], device),
                                  [[10, 0, 0, 0], [0, 20, 0, 0]])
    np.testing.assert_array_equal(mq.max(const(data, device), 1).indices.numpy(), [0, 1])
    np.testing.assert_array_equal(grad_of(lambda x: mq.min(x, 0, True).values, data, [[1.0, 2.0, 3.0, 4.0]], device),
                                  [[0, 2, 0, 0], [1, 0, 3, 4]])


@pytest.mark.parametrize("op, npop", [(mq.amax, np.max), (mq.amin, np.min)])
@pytest.mark.parametrize("dim, axis, keepdim", DIM_CASES)
def test_amax_amin_forward_match_numpy(device, op, npop, dim, axis, keepdim):
    np.testing.assert_array_equal(host(op(const(X, device), dim, keepdim)), npop(X, axis=axis, keepdims=keepdim))


def test_amax_and_amin_split_the_gradient_among_ties(device):
    data = np.array([[3.0, 3.0, 1.0], [2.0, 0.0, 2.0]])
    np.testing.assert_array_equal(grad_of(lambda x: mq.amax(x, 1), data, [4.0, 8.0], device),
                                  [[2, 2, 0], [4, 0, 4]])
    np.testing.assert_array_equal(grad_of(lambda x: mq.amin(x, (0, 1)), data, 3.0, device),
                                  [[0, 0, 0], [0, 3, 0]])
    np.testing.assert_array_equal(grad_of(lambda x: mq.amax(x, 0, True), data, [[6.0, 6.0, 6.0]], device),
                                  [[6, 6, 0], [0, 0, 6]])


def test_amax_gradient_without_ties_matches_argmax(device):
    g = output_like(X.max(axis=(0, 2)))
    expected = np.where(X == X.max(axis=(0, 2), keepdims=True), g[None, :, None], 0.0)
    np.testing.assert_array_equal(grad_of(lambda x: mq.amax(x, (0, -1)), X, g, device), expected)


def test_max_of_an_empty_tensor_is_an_error(device):
    empty = const(np.zeros((2, 0)), device)
    with pytest.raises(IndexError, match=r"max: cannot reduce dim 1 of size 0 \(tensor of shape \(2, 0\)\)"):
        mq.max(empty, 1)
    with pytest.raises(IndexError, match=r"amax: cannot reduce dim 1 of size 0"):
        mq.amax(empty, (0, 1))
    with pytest.raises(RuntimeError, match=r"min: cannot reduce an empty tensor of shape \(2, 0\)"):
        mq.min(empty)
    np.testing.assert_array_equal(mq.amax(empty, 0).numpy(), np.zeros((0,)))


def test_max_along_a_dim_needs_a_single_int(device):
    with pytest.raises(TypeError, match=r"max: dim must be a single int, got \(0, 1\)"):
        mq.max(const(X, device), (0, 1))


# ---------------------------------------------------------------- argmax, argmin
@pytest.mark.parametrize("op, npop", [(mq.argmax, np.argmax), (mq.argmin, np.argmin)])
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_argmin_match_numpy(device, op, npop, dim, keepdim):
    y = op(const(X, device), dim, keepdim)
    assert y.dtype == mq.int64 and not y.requires_grad
    if dim is None:
        expected = np.reshape(npop(X), (1, 1, 1) if keepdim else ())
    else:
        expected = npop(X, axis=dim, keepdims=keepdim)
    np.testing.assert_array_equal(y.numpy(), expected)


def test_argmax_picks_the_first_of_ties(device):
    data = const(np.array([[1.0, 7.0, 7.0], [0.0, 0.0, -2.0]]), device)
    np.testing.assert_array_equal(mq.argmax(data, 1).numpy(), [1, 0])
    np.testing.assert_array_equal(mq.argmin(data, 0).numpy(), [1, 1, 1])
    assert mq.argmax(data).item() == 1


# ---------------------------------------------------------------- 0-d, views, dims
def test_zero_dimensional_tensors_accept_dim_0_and_minus_1(device):
    x = leaf(np.array(2.5), device)
    assert mq.sum(x, 0).item() == 2.5 and mq.sum(x, -1, True).shape == ()
    assert mq.softmax(x, 0).item() == 1.0 and mq.log_softmax(x, -1).item() == 0.0
    assert mq.logsumexp(x, 0).item() == 2.5
    values, indices = mq.max(x, 0)
    assert values.item() == 2.5 and indices.item() == 0 and values.shape == ()
    assert mq.argmin(x, 0).item() == 0 and mq.argmax(x).item() == 0
    values.backward()
    assert x.grad.shape == () and x.grad.item() == 1.0
    with pytest.raises(IndexError, match=r"sum: dimension 1 is out of range for a tensor of 0 dims"):
        mq.sum(x, 1)


def test_tensor_methods_delegate_to_the_reductions(device):
    x = const(X, device)
    np.testing.assert_allclose(host(x.sum(1)), X.sum(1), rtol=1e-12)
    np.testing.assert_allclose(host(x.mean((0, 1), keepdim=True)), X.mean((0, 1), keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(host(x.amax(-1)), X.max(-1))
    assert x.max().item() == X.max() and x.min(0).indices.shape == (3, 4)
    np.testing.assert_array_equal(x.argmax(1).numpy(), X.argmax(1))


@pytest.mark.parametrize("op", [mq.sum, mq.mean, mq.amax, mq.logsumexp])
def test_out_of_range_dims_name_the_op_the_dim_and_ndim(device, op):
    name = op.__name__
    with pytest.raises(IndexError, match=rf"{name}: dimension 3 is out of range for a tensor of 3 dims "
                                         r"\(expected -3\.\.2\)"):
        op(const(X, device), 3)
    with pytest.raises(IndexError, match=rf"{name}: dimension -4 is out of range"):
        op(const(X, device), (0, -4))
    with pytest.raises(RuntimeError, match=rf"{name}: dim \(0, -3\) names the same dimension twice"):
        op(const(X, device), (0, -3))
    with pytest.raises(TypeError, match=rf"{name}: dim must be an int, got float 1.5"):
        op(const(X, device), 1.5)


def test_single_dim_ops_check_range(device):
    for op in (mq.softmax, mq.log_softmax, mq.argmax, lambda x, d: mq.min(x, d)):
        with pytest.raises(IndexError, match=r"dimension -4 is out of range for a tensor of 3 dims"):
            op(const(X, device), -4)


def test_reductions_refuse_non_tensors():
    with pytest.raises(TypeError, match="sum: expected a Tensor, got list"):
        mq.sum([1.0, 2.0])


@pytest.mark.parametrize("dim, keepdim", [(None, False), (0, False), (1, True), ((0, 1), False), (-1, False)])
def test_all_and_any_match_numpy_and_record_no_graph(dim, keepdim):
    data = np.array([[1.0, 0.0, 2.0], [3.0, 4.0, -1.0]])
    x = mq.tensor(data, requires_grad=True)
    axis = dim if dim is not None else None
    for name in ("all", "any"):
        result = getattr(x, name)(dim=dim, keepdim=keepdim)
        expected = getattr(data, name)(axis=axis, keepdims=keepdim)
        assert result.dtype == mq.bool_ and not result.requires_grad
        np.testing.assert_array_equal(result.numpy(), expected)
        np.testing.assert_array_equal(getattr(mq, name)(x, dim, keepdim).numpy(), expected)


def test_all_and_any_reject_a_bad_dim():
    with pytest.raises(IndexError, match="all: dimension 2 is out of range"):
        mq.tensor([[1.0]]).all(dim=2)
    with pytest.raises(IndexError, match="any: dimension -3 is out of range"):
        mq.tensor([[1.0]]).any(dim=-3)


# ---------------------------------------------------------------- cumsum
def running_sum_matrix(n):
    """L with L[i, j] = 1 for j <= i: cumsum along an axis is L @ x there, so its gradient is L.T @ g."""
    return np.tril(np.ones((n, n)))


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_cumsum_forward_and_gradient_are_the_running_sum_and_its_transpose(device, dim):
    axis = dim % X.ndim
    lower = running_sum_matrix(X.shape[axis])
    expected = np.moveaxis(np.tensordot(lower, np.moveaxis(X, axis, 0), axes=1), 0, axis)
    y = mq.cumsum(const(X, device), dim)
    assert y.shape == X.shape and y.dtype == mq.float64
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-14)
    g = output_like(X)
    grad = np.moveaxis(np.tensordot(lower.T, np.moveaxis(g, axis, 0), axes=1), 0, axis)  # Σ_{i >= j} g_i
    np.testing.assert_allclose(grad_of(lambda x: mq.cumsum(x, dim), X, g, device), grad, rtol=1e-12, atol=1e-14)


def test_cumsum_gradient_of_ones_counts_the_outputs_each_input_reaches(device):
    x = leaf(np.zeros((2, 4)), device)
    x.cumsum(1).backward(const(np.ones((2, 4)), device))
    np.testing.assert_array_equal(x.grad.numpy(), [[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]])


@pytest.mark.parametrize("shape, dim", [((5,), 0), ((3, 4), 0), ((3, 4), -1), ((), 0), ((), -1), ((0, 3), 0),
                                        ((2, 0), 1), ((1, 1, 6), 2)])
def test_cumsum_matches_torch(shape, dim):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    ours = leaf(x)
    y = ours.cumsum(dim)
    y.backward(const(g))
    theirs = torch.tensor(x, requires_grad=True)
    y_torch = torch.cumsum(theirs, dim)
    y_torch.backward(torch.tensor(g))
    assert y.shape == tuple(y_torch.shape)
    np.testing.assert_allclose(host(y), y_torch.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_cumsum_of_bool_and_integers_is_int64_without_gradient(device):
    flags = const(np.array([True, False, True, True]), device)
    assert mq.cumsum(flags, 0).dtype == mq.int64 and not mq.cumsum(flags, 0).requires_grad
    np.testing.assert_array_equal(mq.cumsum(flags, 0).numpy(), [1, 1, 2, 3])
    small = const(np.array([100, 100, 100], dtype=np.int8), device)
    np.testing.assert_array_equal(small.cumsum(0).numpy(), [100, 200, 300])
    assert small.cumsum(0).dtype == mq.int64


def test_cumsum_dtype_casts_first_and_keeps_the_gradient(device):
    x = mq.tensor(np.array([0.5, 0.25, 0.125], np.float32), device=device, requires_grad=True)
    y = mq.cumsum(x, 0, dtype=mq.float64)
    assert y.dtype == mq.float64
    np.testing.assert_array_equal(host(y), [0.5, 0.75, 0.875])
    y.backward(const(np.ones(3), device))
    assert x.grad.dtype == mq.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 2.0, 1.0])
    np.testing.assert_array_equal(const([1, 2, 3], device).cumsum(0, dtype=mq.float32).numpy(), [1.0, 3.0, 6.0])


def test_cumsum_errors_name_the_op():
    x = mq.zeros(2, 3)
    with pytest.raises(IndexError, match=r"cumsum: dimension 2 is out of range for a tensor of 2 dims"):
        mq.cumsum(x, 2)
    with pytest.raises(TypeError, match=r"cumsum: dim must be a single int, got None"):
        x.cumsum(None)
    with pytest.raises(TypeError, match=r"cumsum: dim must be a single int, got \(0, 1\)"):
        mq.cumsum(x, (0, 1))
