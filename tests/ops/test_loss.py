"""Losses: cross_entropy against -log softmax[target] (and torch's label-smoothing formula), nll_loss,
mse_loss; their gradients written out ((softmax - target distribution) / N ...), every reduction, class
scores with extra dims and unbatched, stability for huge logits, errors, and a cross-check against torch."""

import warnings

import numpy as np
import pytest
from helpers import const, host, leaf

import minigrad_q as mq

rng = np.random.default_rng(0)


def log_softmax_rows(x):
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def as_rows(x, target):
    """(M, C) scores and (M,) targets for any accepted layout."""
    if x.ndim == 1:
        return x[None], np.asarray(target).reshape(1)
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]), target.reshape(-1)


def from_rows(grad_rows, shape):
    if len(shape) == 1:
        return grad_rows[0]
    moved = grad_rows.reshape((shape[0],) + shape[2:] + (shape[1],))
    return np.moveaxis(moved, -1, 1)


def cross_entropy_reference(x, target, reduction, smoothing, g):
    """Per-target losses -Σ_c q_c log p_c with q = (1 - ε) onehot + ε/C, reduced; gradient (p - q) · weight."""
    rows, targets = as_rows(x, target)
    count, classes = rows.shape
    log_p = log_softmax_rows(rows)
    q = np.full(rows.shape, smoothing / classes)
    q[np.arange(count), targets] += 1 - smoothing
    losses = -(q * log_p).sum(axis=1)
    weights = per_target_weights(g, reduction, count)
    out = {"mean": losses.mean() if count else np.nan, "sum": losses.sum(), "none": losses.reshape(np.shape(target))}[reduction]
    return out, from_rows((np.exp(log_p) - q) * weights[:, None], x.shape)


def per_target_weights(g, reduction, count):
    """dL/d(loss_m): g / M for the mean, g for the sum, g's own entries for "none"."""
    if reduction == "none":
        return np.reshape(g, -1)
    return np.full(count, g / max(count, 1) if reduction == "mean" else g)


LAYOUTS = [((6, 5), (6,)), ((3, 4, 2, 3), (3, 2, 3)), ((4,), ()), ((2, 3, 5), (2, 5))]


@pytest.mark.parametrize("shape, target_shape", LAYOUTS, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_forward_and_gradient(device, shape, target_shape, reduction, smoothing):
    classes = shape[1] if len(shape) > 1 else shape[0]
    x_data = rng.standard_normal(shape) * 3
    target_data = rng.integers(0, classes, target_shape)
    g = rng.standard_normal(target_shape if reduction == "none" else ())
    expected, expected_grad = cross_entropy_reference(x_data, target_data, reduction, smoothing, g)
    x = leaf(x_data, device)
    loss = mq.cross_entropy(x, const(target_data, device), reduction=reduction, label_smoothing=smoothing)
    loss.backward(const(g, device))
    np.testing.assert_allclose(host(loss), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x.grad.numpy(), expected_grad, rtol=1e-12, atol=1e-14)


def test_cross_entropy_without_smoothing_is_minus_log_softmax_at_the_target(device):
    x_data, target = rng.standard_normal((5, 3)), np.array([0, 2, 1, 1, 0])
    loss = mq.cross_entropy(const(x_data, device), const(target, device), reduction="none")
    np.testing.assert_allclose(host(loss), -log_softmax_rows(x_data)[np.arange(5), target], rtol=1e-12)
    x = leaf(x_data, device)
    mq.cross_entropy(x, const(target, device)).backward()
    onehot = np.eye(3)[target]
    np.testing.assert_allclose(x.grad.numpy(), (np.exp(log_softmax_rows(x_data)) - onehot) / 5, rtol=1e-12, atol=1e-15)


def test_cross_entropy_label_smoothing_matches_torchs_formula(device):
    """torch: (1 - ε)·nll + ε·(-Σ_c log p_c)/C, each averaged over the batch."""
    x_data, target, eps = rng.standard_normal((4, 6)), np.array([5, 0, 3, 3]), 0.3
    log_p = log_softmax_rows(x_data)
    expected = (1 - eps) * -log_p[np.arange(4), target].mean() + eps * (-log_p.sum(axis=1) / 6).mean()
    loss = mq.cross_entropy(const(x_data, device), const(target, device), label_smoothing=eps)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)


def test_cross_entropy_is_stable_for_huge_logits(device):
    x = leaf(np.array([[1000.0, 0.0, -1000.0], [-5000.0, 5000.0, 0.0]]), device)
    loss = mq.cross_entropy(x, const(np.array([0, 0]), device), reduction="none")
    np.testing.assert_allclose(host(loss), [0.0, 10000.0])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.0, 0.0, 0.0], [-1.0, 1.0, 0.0]], atol=1e-300)


def test_cross_entropy_float32_and_an_empty_batch(device):
    x = mq.tensor(rng.standard_normal((8, 10)).astype(np.float32), device=device, requires_grad=True)
    loss = mq.cross_entropy(x, mq.tensor(rng.integers(0, 10, 8), device=device))
    loss.backward()
    assert loss.dtype == mq.float32 and x.grad.dtype == mq.float32
    empty = mq.zeros(0, 3, device=device)
    target = mq.zeros(0, dtype=mq.int64, device=device)
    assert np.isnan(mq.cross_entropy(empty, target).item())
    assert mq.cross_entropy(empty, target, reduction="sum").item() == 0.0
    assert mq.cross_entropy(empty, target, reduction="none").shape == (0,)


@pytest.mark.parametrize("shape, target_shape", LAYOUTS, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_forward_and_gradient(device, shape, target_shape, reduction):
    classes = shape[1] if len(shape) > 1 else shape[0]
    x_data = rng.standard_normal(shape)
    target_data = rng.integers(0, classes, target_shape)
    g = rng.standard_normal(target_shape if reduction == "none" else ())
    rows, targets = as_rows(x_data, target_data)
    losses = -rows[np.arange(len(targets)), targets]
    expected = {"mean": losses.mean(), "sum": losses.sum(), "none": losses.reshape(target_shape)}[reduction]
    weights = per_target_weights(g, reduction, len(targets))
    grad_rows = np.zeros(rows.shape)
    grad_rows[np.arange(len(targets)), targets] = -weights
    x = leaf(x_data, device)
    loss = mq.nll_loss(x, const(target_data, device), reduction=reduction)
    loss.backward(const(g, device))
    np.testing.assert_allclose(host(loss), expected, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), from_rows(grad_rows, shape), rtol=1e-12)


def test_nll_of_log_softmax_equals_cross_entropy(device):
    x_data, target = rng.standard_normal((7, 4)), rng.integers(0, 4, 7)
    a, b = leaf(x_data, device), leaf(x_data, device)
    fused = mq.cross_entropy(a, const(target, device))
    composed = mq.nll_loss(mq.log_softmax(b, 1), const(target, device))
    fused.backward()
    composed.backward()
    np.testing.assert_allclose(fused.item(), composed.item(), rtol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_forward_and_gradients(device, reduction):
    a_data, b_data = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    g = rng.standard_normal((3, 4) if reduction == "none" else ())
    squares = (a_data - b_data) ** 2
    expected = {"mean": squares.mean(), "sum": squares.sum(), "none": squares}[reduction]
    weight = g / 12 if reduction == "mean" else g
    a, b = leaf(a_data, device), leaf(b_data, device)
    loss = mq.mse_loss(a, b, reduction=reduction)
    loss.backward(const(g, device))
    np.testing.assert_allclose(host(loss), expected, rtol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), 2 * (a_data - b_data) * weight, rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), -2 * (a_data - b_data) * weight, rtol=1e-12)


def test_mse_loss_broadcasts_with_torchs_warning(device):
    a_data, b_data = rng.standard_normal((3, 1)), rng.standard_normal(4)
    a = leaf(a_data, device)
    with pytest.warns(UserWarning, match=r"mse_loss: target size \(4,\) differs from input size \(3, 1\)"):
        loss = mq.mse_loss(a, const(b_data, device))
    loss.backward()
    np.testing.assert_allclose(loss.item(), ((a_data - b_data) ** 2).mean(), rtol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), (2 * (a_data - b_data) / 12).sum(axis=1, keepdims=True), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mq.mse_loss(a, a.detach())  # same shapes: no warning


def test_mse_loss_of_empty_tensors(device):
    empty = mq.zeros(0, device=device)
    assert np.isnan(mq.mse_loss(empty, empty).item())
    assert mq.mse_loss(empty, empty, reduction="sum").item() == 0.0


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x, t: mq.cross_entropy(x, t.double()), RuntimeError,
         r"cross_entropy: expected integer class targets, got float64 \(for class probabilities use"),
        (lambda x, t: mq.cross_entropy(x, t.bool()), RuntimeError, r"cross_entropy: expected integer class targets, got bool$"),
        (lambda x, t: mq.cross_entropy(x, t[:3]), RuntimeError,
         r"cross_entropy: input of shape \(4, 3\) needs a target of shape \(4,\) \(one class index per sample\), got \(3,\)"),
        (lambda x, t: mq.cross_entropy(x, t.reshape(4, 1)), RuntimeError, r"needs a target of shape \(4,\).* got \(4, 1\)"),
        (lambda x, t: mq.cross_entropy(x, t + 1), IndexError,
         r"cross_entropy: target values must be class indices in \[0, 3\), got values from 1 to 3"),
        (lambda x, t: mq.nll_loss(x, t - 100), IndexError,
         r"nll_loss: target values must be class indices in \[0, 3\).*ignore_index"),
        (lambda x, t: mq.cross_entropy(x, t, reduction="avg"), ValueError,
         r"cross_entropy: reduction must be 'mean', 'sum' or 'none', got 'avg'"),
        (lambda x, t: mq.cross_entropy(x, t, label_smoothing=1.5), ValueError,
         r"cross_entropy: label_smoothing must be between 0.0 and 1.0"),
        (lambda x, t: mq.cross_entropy(x.long(), t), RuntimeError,
         r"cross_entropy: expected floating point class scores, got dtype int64"),
        (lambda x, t: mq.cross_entropy(x[:, :0], t), RuntimeError,
         r"cross_entropy: expected input .* C >= 1 classes, got shape \(4, 0\)"),
        (lambda x, t: mq.cross_entropy(x.numpy(), t), TypeError, r"cross_entropy: expected Tensors input and target"),
        (lambda x, t: mq.nll_loss(x, t.float()), RuntimeError, r"nll_loss: expected integer class targets, got float32"),
        (lambda x, t: mq.mse_loss(x, x.float()), RuntimeError,
         r"mse_loss: expected input and target of one floating dtype, got float64 and float32"),
        (lambda x, t: mq.mse_loss(x, x[:, :2]), RuntimeError,
         r"mse_loss: input of shape \(4, 3\) and target of shape \(4, 2\) do not broadcast"),
        (lambda x, t: mq.mse_loss(x, x, reduction="batchmean"), ValueError, r"mse_loss: reduction must be"),
    ],
)
def test_loss_errors(call, error, match):
    x = mq.tensor(rng.standard_normal((4, 3)))
    target = mq.tensor(np.array([0, 2, 1, 0]))
    with pytest.raises(error, match=match):
        call(x, target)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_losses_match_torch(smoothing):
    torch = pytest.importorskip("torch")
    x_data = (rng.standard_normal((128, 10)) * 4).astype(np.float32)
    target = rng.integers(0, 10, 128)
    other = rng.standard_normal((128, 10)).astype(np.float32)
    cases = [
        (lambda f, x, t: f.cross_entropy(x, t, label_smoothing=smoothing), True),
        (lambda f, x, t: f.nll_loss(f.log_softmax(x, 1), t), True),
        (lambda f, x, t: f.mse_loss(x, t), False),
    ]
    for loss_of, class_targets in cases:
        x, xt = mq.tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
        t, tt = (mq.tensor(target), torch.tensor(target)) if class_targets else (mq.tensor(other), torch.tensor(other))
        loss, loss_t = loss_of(mq.ops, x, t), loss_of(torch.nn.functional, xt, tt)
        loss.backward()
        loss_t.backward()
        np.testing.assert_allclose(loss.item(), loss_t.item(), rtol=1e-5)
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-7)
