"""matmul: every rank combination against NumPy, gradients against the analytic formulas
(dA = gC Bᵀ, dB = Aᵀ gC written as einsums), broadcast batch dims, zero sizes, errors."""

import numpy as np
import pytest
from helpers import const, leaf, sum_to

import minigrad_q as mq

rng = np.random.default_rng(0)


# (shape of A, shape of B, einsum subscripts of A, B and C = A @ B). For the bilinear C, the
# gradients are dA = einsum(C, B -> A) and dB = einsum(A, C -> B), whatever the ranks are.
CASES = [
    ((3,), (3,), "k", "k", ""),
    ((2, 3), (3, 4), "nk", "km", "nm"),
    ((3,), (3, 4), "k", "km", "m"),
    ((2, 3), (3,), "nk", "k", "n"),
    ((5, 2, 3), (3, 4), "bnk", "km", "bnm"),
    ((5, 2, 3), (3,), "bnk", "k", "bn"),
    ((2, 3), (5, 3, 4), "nk", "bkm", "bnm"),
    ((3,), (5, 3, 4), "k", "bkm", "bm"),
    ((5, 2, 3), (5, 3, 4), "bnk", "bkm", "bnm"),
    ((6, 5, 2, 3), (3, 4), "abnk", "km", "abnm"),
    ((6, 5, 2, 3), (3,), "abnk", "k", "abn"),
    ((6, 5, 2, 3), (6, 5, 3, 4), "abnk", "abkm", "abnm"),
    ((2, 3), (6, 5, 3, 4), "nk", "abkm", "abnm"),
]


@pytest.mark.parametrize("a_shape, b_shape, sa, sb, sc", CASES, ids=lambda v: str(v).replace(" ", ""))
def test_matmul_forward_and_gradients_for_every_rank(device, a_shape, b_shape, sa, sb, sc):
    a_data, b_data = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    a, b = leaf(a_data, device), leaf(b_data, device)
    c = mq.matmul(a, b)
    expected = np.einsum(f"{sa},{sb}->{sc}", a_data, b_data)
    assert c.shape == expected.shape == np.matmul(a_data, b_data).shape
    np.testing.assert_allclose(c.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(expected.shape)
    c.backward(const(g, device))
    assert a.grad.shape == a_shape and b.grad.shape == b_shape
    np.testing.assert_allclose(a.grad.numpy(), np.einsum(f"{sc},{sb}->{sa}", g, b_data), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), np.einsum(f"{sa},{sc}->{sb}", a_data, g), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("a_shape, b_shape", [((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 2)), ((3, 1, 2, 4), (1, 4, 4, 3))])
def test_matmul_broadcast_batch_dims_sum_the_gradients(device, a_shape, b_shape):
    a_data, b_data = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    a, b = leaf(a_data, device), leaf(b_data, device)
    c = a @ b
    batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    a_full = np.broadcast_to(a_data, batch + a_shape[-2:])
    b_full = np.broadcast_to(b_data, batch + b_shape[-2:])
    np.testing.assert_allclose(c.detach().numpy(), np.einsum("...nk,...km->...nm", a_full, b_full), rtol=1e-12)
    g = rng.standard_normal(c.shape)
    c.backward(const(g, device))
    grad_a_full = np.einsum("...nm,...km->...nk", g, b_full)
    grad_b_full = np.einsum("...nk,...nm->...km", a_full, g)
    np.testing.assert_allclose(a.grad.numpy(), sum_to(grad_a_full, a_shape), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), sum_to(grad_b_full, b_shape), rtol=1e-12)


def test_matmul_of_non_contiguous_operands(device):
    a_data, b_data = rng.standard_normal((4, 3, 5)), rng.standard_normal((6, 3))
    a = mq.Tensor(const(a_data.swapaxes(1, 2).copy(), device).data.swapaxes(1, 2), requires_grad=True)
    b = mq.Tensor(const(b_data.T.copy(), device).data.T, requires_grad=True)
    c = mq.matmul(b, a)
    np.testing.assert_allclose(c.detach().numpy(), b_data @ a_data, rtol=1e-12)
    g = rng.standard_normal((4, 6, 5))
    c.backward(const(g, device))
    np.testing.assert_allclose(a.grad.numpy(), np.einsum("mk,bmn->bkn", b_data, g), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), np.einsum("bmn,bkn->mk", g, a_data), rtol=1e-12)


def test_matmul_with_zero_sizes(device):
    a, b = leaf(np.zeros((2, 0)), device), leaf(np.zeros((0, 3)), device)
    c = a @ b
    np.testing.assert_array_equal(c.detach().numpy(), np.zeros((2, 3)))
    c.backward(const(np.ones((2, 3)), device))
    assert a.grad.shape == (2, 0) and b.grad.shape == (0, 3)
    rows, weights = leaf(np.zeros((4, 0, 3)), device), leaf(rng.standard_normal((3, 2)), device)
    out = rows @ weights
    assert out.shape == (4, 0, 2)
    out.backward(const(np.zeros((4, 0, 2)), device))
    np.testing.assert_array_equal(weights.grad.numpy(), np.zeros((3, 2)))


def test_matmul_computes_and_keeps_only_the_gradients_it_needs(device):
    a_data, b_data = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    a, b = leaf(a_data, device), const(b_data, device)
    c = a @ b
    a_saved, b_saved = c.creator.saved
    assert a_saved is None and b_saved is b.data  # dA = g Bᵀ needs B only
    c.backward(const(np.ones((2, 4)), device))
    np.testing.assert_allclose(a.grad.numpy(), np.ones((2, 4)) @ b_data.T, rtol=1e-12)
    assert b.grad is None
    x, w = const(a_data, device), leaf(b_data, device)
    y = x @ w
    assert y.creator.saved[1] is None and y.creator.saved[0] is x.data


def test_matmul_keeps_float32_and_multiplies_integers(device):
    a = mq.tensor(rng.standard_normal((2, 3, 4)).astype(np.float32), device=device, requires_grad=True)
    w = mq.tensor(rng.standard_normal((4, 5)).astype(np.float32), device=device, requires_grad=True)
    y = a @ w
    assert y.dtype == mq.float32
    y.backward(mq.ones(2, 3, 5, device=device))
    assert a.grad.dtype == mq.float32 and w.grad.dtype == mq.float32
    ints = const(np.arange(6).reshape(2, 3), device) @ const(np.arange(3), device)
    assert ints.dtype == mq.int64 and not ints.requires_grad
    np.testing.assert_array_equal(ints.numpy(), [5, 14])


def test_matmul_accepts_arrays_and_lists_next_to_a_tensor():
    a = leaf(rng.standard_normal((2, 3)), "cpu")
    b_data = rng.standard_normal((3, 2))
    np.testing.assert_allclose((a @ b_data).detach().numpy(), a.data @ b_data, rtol=1e-12)
    np.testing.assert_allclose((b_data @ a).detach().numpy(), b_data @ a.data, rtol=1e-12)
    np.testing.assert_allclose(mq.matmul([1.0, 2.0], mq.eye(2, dtype=mq.float32)).numpy(), [1.0, 2.0])
    with pytest.raises(TypeError, match="matmul: expected Tensors, got list and list"):
        mq.matmul([1.0], [2.0])


@pytest.mark.parametrize("a_shape, b_shape, message", [
    ((2, 3), (4, 5), r"matmul: cannot multiply shapes \(2, 3\) and \(4, 5\): inner dimensions 3 and 4 differ"),
    ((3,), (4,), r"matmul: cannot multiply shapes \(3,\) and \(4,\): inner dimensions 3 and 4 differ"),
    ((2, 3), (2,), r"inner dimensions 3 and 2 differ"),
    ((5, 2, 3), (3, 4, 6), r"inner dimensions 3 and 4 differ"),
    ((2, 2, 3), (3, 3, 4), r"matmul: cannot multiply shapes \(2, 2, 3\) and \(3, 3, 4\): batch dimensions \(2,\) "
                           r"and \(3,\) do not broadcast"),
    ((), (3,), r"matmul: both arguments need at least 1 dimension, got shapes \(\) and \(3,\)"),
    ((3, 3), (), r"got shapes \(3, 3\) and \(\)"),
])
def test_matmul_shape_errors(device, a_shape, b_shape, message):
    with pytest.raises(RuntimeError, match=message):
        mq.matmul(const(np.ones(a_shape), device), const(np.ones(b_shape), device))


def test_matmul_refuses_mixed_dtypes(device):
    a = const(np.ones((2, 3), dtype=np.float32), device)
    with pytest.raises(RuntimeError, match="matmul: expected both operands to have the same dtype, got float32 and float64"):
        a @ const(np.ones((3, 2)), device)


def test_matmul_method_matches_operator(device):
    a, b = const(rng.standard_normal((3, 2)), device), const(rng.standard_normal((2,)), device)
    np.testing.assert_array_equal(a.matmul(b).numpy(), (a @ b).numpy())
