"""The softmax family (logsumexp, softmax, log_softmax): forward against NumPy, gradients against
Jacobians written out by hand, numerical stability for large and infinite inputs, views and errors.

The dim handling they share with the reductions is tested in test_reduce.py (0-d tensors, out-of-range dims)."""

import numpy as np
import pytest
from dim_cases import DIM_CASES, X, grad_of, kept, output_like, rng
from helpers import const, host, leaf

import minigrad_q as mq


def softmax_reference(array, axis):
    e = np.exp(array - array.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("dim, axis, keepdim", DIM_CASES)
def test_logsumexp_forward_and_gradient(device, dim, axis, keepdim):
    reference = np.log(np.exp(X).sum(axis=axis, keepdims=keepdim))
    np.testing.assert_allclose(host(mq.logsumexp(const(X, device), dim, keepdim)), reference, rtol=1e-12)
    g = output_like(reference)
    expected = np.exp(X - np.log(np.exp(X).sum(axis=axis, keepdims=True))) * (g if keepdim else kept(g, axis))
    np.testing.assert_allclose(grad_of(lambda x: mq.logsumexp(x, dim, keepdim), X, g, device), expected, rtol=1e-12)


def test_logsumexp_is_stable_for_large_and_infinite_inputs(device):
    data = np.array([[1000.0, 1000.0], [-1000.0, -1000.0], [-np.inf, -np.inf], [5.0, -np.inf]])
    y = mq.logsumexp(const(data, device), 1)
    np.testing.assert_allclose(y.numpy(), [1000 + np.log(2), -1000 + np.log(2), -np.inf, 5.0], rtol=1e-12)
    grad = grad_of(lambda x: mq.logsumexp(x, 1), data[:2], [1.0, 1.0], device)
    np.testing.assert_allclose(grad, np.full((2, 2), 0.5), rtol=1e-12)


def test_logsumexp_of_an_empty_dim_is_minus_infinity(device):
    np.testing.assert_array_equal(mq.logsumexp(const(np.zeros((2, 0)), device), 1).numpy(), [-np.inf, -np.inf])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax_forward(device, dim):
    expected = softmax_reference(X, dim)
    np.testing.assert_allclose(host(mq.softmax(const(X, device), dim)), expected, rtol=1e-12)
    np.testing.assert_allclose(host(const(X, device).log_softmax(dim)), np.log(expected), rtol=1e-12)


def test_softmax_and_log_softmax_are_stable_for_large_inputs(device):
    data = np.array([[1000.0, 1001.0, 1002.0], [-3000.0, -3001.0, -3002.0], [4000.0, 0.0, -4000.0]])
    small = np.array([[0.0, 1.0, 2.0], [0.0, -1.0, -2.0]])
    y = mq.softmax(const(data, device), 1).numpy()
    log_y = mq.log_softmax(const(data, device), 1).numpy()
    assert np.isfinite(y).all() and np.isfinite(log_y).all()
    np.testing.assert_allclose(y[:2], softmax_reference(small, 1), rtol=1e-12)
    np.testing.assert_allclose(log_y[:2], np.log(softmax_reference(small, 1)), rtol=1e-12)
    np.testing.assert_allclose(y[2], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(log_y[2], [0.0, -4000.0, -8000.0])


@pytest.mark.parametrize("dim", [0, -1])
def test_softmax_gradient_is_the_jacobian_transpose_times_g(device, dim):
    data = rng.standard_normal((3, 4)) * 3 + 500  # large offset: the gradient must be stable too
    g = rng.standard_normal((3, 4))
    y = softmax_reference(data, dim)
    lines = np.moveaxis(y, dim, 0).T  # one softmax vector per row
    g_lines = np.moveaxis(g, dim, 0).T
    jacobians = np.stack([np.diag(v) - np.outer(v, v) for v in lines])  # dy_i/dx_j
    expected = np.moveaxis(np.einsum("rij,ri->rj", jacobians, g_lines).T, 0, dim)
    np.testing.assert_allclose(grad_of(lambda x: mq.softmax(x, dim), data, g, device), expected, atol=1e-12)


@pytest.mark.parametrize("dim", [0, -1])
def test_log_softmax_gradient_is_the_jacobian_transpose_times_g(device, dim):
    data = rng.standard_normal((3, 4)) * 3 - 700
    g = rng.standard_normal((3, 4))
    y = softmax_reference(data, dim)
    lines, g_lines = np.moveaxis(y, dim, 0).T, np.moveaxis(g, dim, 0).T
    jacobians = np.stack([np.eye(len(v)) - v[None, :] for v in lines])  # d log y_i/dx_j = δij - y_j
    expected = np.moveaxis(np.einsum("rij,ri->rj", jacobians, g_lines).T, 0, dim)
    np.testing.assert_allclose(grad_of(lambda x: mq.log_softmax(x, dim), data, g, device), expected, atol=1e-12)


def test_softmax_needs_an_int_dim(device):
    with pytest.raises(TypeError, match="softmax: dim must be a single int, got None"):
        mq.softmax(const(X, device), None)
    with pytest.raises(RuntimeError, match="log_softmax: expected a floating point tensor, got dtype int64"):
        mq.log_softmax(const(np.arange(3), device), 0)


def test_reductions_of_non_contiguous_views(device):
    """softmax and logsumexp (and var, from reduce.py) on a transposed view give the contiguous results."""
    data = np.ascontiguousarray(X.transpose(2, 0, 1)).transpose(1, 2, 0)  # same values, other strides
    x = leaf(data, device)
    np.testing.assert_allclose(host(mq.softmax(x, 1)), softmax_reference(X, 1), rtol=1e-12)
    np.testing.assert_allclose(host(mq.var(x, (0, 2))), X.var(axis=(0, 2), ddof=1), rtol=1e-12)
    mq.logsumexp(x, 2).backward(const(np.ones((2, 3)), device))
    np.testing.assert_allclose(x.grad.numpy(), softmax_reference(X, 2), rtol=1e-12)
