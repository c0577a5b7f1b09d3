"""linear: y = x Wᵀ + b for inputs with any leading dims against einsum references, the three gradients
(dX = g W, dW = gᵀ x over the folded rows, db = Σ g), the skipped dX for inputs that need no gradient,
errors, and a cross-check against torch."""

import numpy as np
import pytest
from helpers import const, host, leaf

import minigrad_q as mq
from minigrad_q.ops.linalg import Linear

rng = np.random.default_rng(0)


@pytest.mark.parametrize("lead", [(5,), (2, 3), (), (0,), (2, 0, 3)], ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_forward_and_gradients(device, lead, with_bias):
    x_data, w_data, b_data = rng.standard_normal(lead + (4,)), rng.standard_normal((3, 4)), rng.standard_normal(3)
    g = rng.standard_normal(lead + (3,))
    x, w = leaf(x_data, device), leaf(w_data, device)
    b = leaf(b_data, device) if with_bias else None
    y = mq.linear(x, w, b)
    y.backward(const(g, device))
    expected = np.einsum("...i,oi->...o", x_data, w_data) + (b_data if with_bias else 0)
    assert y.shape == lead + (3,)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), np.einsum("...o,oi->...i", g, w_data), rtol=1e-12, atol=1e-12)
    expected_w = np.einsum("ro,ri->oi", g.reshape(-1, 3), x_data.reshape(-1, 4))
    np.testing.assert_allclose(w.grad.numpy(), expected_w, rtol=1e-12, atol=1e-12)
    if with_bias:
        np.testing.assert_allclose(b.grad.numpy(), g.reshape(-1, 3).sum(axis=0), rtol=1e-12, atol=1e-12)


def test_linear_skips_the_input_gradient_when_the_input_needs_none(device):
    x, w = const(rng.standard_normal((6, 4)), device), leaf(rng.standard_normal((3, 4)), device)
    y = mq.linear(x, w)
    assert isinstance(y.creator, Linear)
    assert y.creator.saved[1] is None  # the weight is kept only to compute dX
    y.sum().backward()
    assert x.grad is None
    np.testing.assert_allclose(w.grad.numpy(), np.ones((6, 3)).T @ x.numpy(), rtol=1e-12)


def test_linear_of_a_non_contiguous_input(device):
    base = rng.standard_normal((4, 5, 2))
    x = mq.Tensor(const(base, device).data.transpose(0, 2, 1), requires_grad=True)  # (4, 2, 5), a view
    w_data = rng.standard_normal((3, 5))
    y = mq.linear(x, leaf(w_data, device))
    g = rng.standard_normal((4, 2, 3))
    y.backward(const(g, device))
    np.testing.assert_allclose(host(y), base.transpose(0, 2, 1) @ w_data.T, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), g @ w_data, rtol=1e-12)


def test_linear_float32_stays_float32(device):
    x = mq.randn(8, 5, device=device, requires_grad=True)
    w, b = mq.randn(2, 5, device=device, requires_grad=True), mq.randn(2, device=device, requires_grad=True)
    y = mq.linear(x, w, b)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == w.grad.dtype == b.grad.dtype == mq.float32


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x, w, b: mq.linear(x[:, :3], w, b), RuntimeError,
         r"linear: input of shape \(2, 3\) has 3 features, but weight of shape \(5, 4\) expects 4 \(in_features\)"),
        (lambda x, w, b: mq.linear(x, w[0], b), RuntimeError, r"linear: expected input \(..., in_features\) and a 2-D weight"),
        (lambda x, w, b: mq.linear(x[0, 0], w, b), RuntimeError, r"got shapes \(\) and \(5, 4\)"),
        (lambda x, w, b: mq.linear(x, w, b[:2]), RuntimeError, r"linear: bias has shape \(2,\), expected \(5,\)"),
        (lambda x, w, b: mq.linear(x, w.float(), b), RuntimeError,
         r"linear: expected input, weight and bias of one floating dtype, got float64, float32, float64"),
        (lambda x, w, b: mq.linear(x.long(), w.long()), RuntimeError, r"one floating dtype, got int64, int64"),
        (lambda x, w, b: mq.linear(x.numpy(), w), TypeError, r"linear: input must be a Tensor, got ndarray"),
        (lambda x, w, b: mq.linear(x, w, 1.0), TypeError, r"linear: bias must be a Tensor or None, got float"),
    ],
)
def test_linear_errors(call, error, match):
    x, w, b = mq.tensor(np.ones((2, 4))), mq.tensor(np.ones((5, 4))), mq.tensor(np.ones(5))
    with pytest.raises(error, match=match):
        call(x, w, b)


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(128, 400), (120, 400), (120,)]]
    g = rng.standard_normal((128, 120)).astype(np.float32)
    mine = [mq.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, yt = mq.linear(*mine), torch.nn.functional.linear(*theirs)
    y.backward(mq.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(host(y), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-3)
