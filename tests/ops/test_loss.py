"""Losses: cross_entropy against -log softmax[target] (and torch's label-smoothing formula), nll_loss,
mse_loss; their gradients written out ((softmax - target distribution) / N ...), every reduction, class
scores with extra dims and unbatched, class weights, ignore_index (the mean over the weights of the
targets kept; nan when every target is ignored), class-probability targets, stability for huge logits,
cross_entropy's GPU path masking ignored rows (its kernels compiled for the host), errors, and
cross-checks against torch."""

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


def cross_entropy_reference(x, target, reduction, smoothing, g, weight=None, ignore_index=-100):
    """Per-target losses -Σ_c w_c q_c log p_c with q = (1 - ε) onehot + ε/C (0 for an ignored target), reduced
    (the mean over Σ w[t] of the targets kept); gradient (p Σ_c a_c - a) · dL/dloss_m with a = w ⊙ q."""
    rows, targets = as_rows(x, target)
    count, classes = rows.shape
    kept = targets != ignore_index
    safe = np.where(kept, targets, 0)
    w = np.ones(classes) if weight is None else weight
    log_p = log_softmax_rows(rows)
    q = np.full(rows.shape, smoothing / classes)
    q[np.arange(count), safe] += 1 - smoothing
    a = w * q * kept[:, None]
    losses = -(a * log_p).sum(axis=1)
    total = (w[safe] * kept).sum()
    weights = per_target_weights(g, reduction, count, total)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"mean": losses.sum() / total, "sum": losses.sum(), "none": losses.reshape(np.shape(target))}[reduction]
    grad = (np.exp(log_p) * a.sum(axis=1, keepdims=True) - a) * weights[:, None]
    return out, from_rows(grad, x.shape)


def per_target_weights(g, reduction, count, total=None):
    """dL/d(loss_m): g / total for the mean (total: M unless given; 0 gives 0), g for the sum, g's own entries for "none"."""
    if reduction == "none":
        return np.reshape(g, -1)
    total = count if total is None else total
    return np.full(count, (g / total if total else 0.0) if reduction == "mean" else g)


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
         r"cross_entropy: expected integer class targets, or class probabilities of the input's shape \(4, 3\), "
         r"got float64 of shape \(4,\)$"),
        (lambda x, t: mq.cross_entropy(x, t.bool()), RuntimeError,
         r"cross_entropy: expected integer class targets, or class probabilities .* got bool of shape \(4,\)$"),
        (lambda x, t: mq.cross_entropy(x, x.float()), RuntimeError,
         r"cross_entropy: class probabilities \(a target of the input's shape \(4, 3\)\) must have the input's "
         r"dtype float64, got float32"),
        (lambda x, t: mq.cross_entropy(x, x.long()), RuntimeError, r"class probabilities .* got int64"),
        (lambda x, t: mq.cross_entropy(x, x.softmax(1), ignore_index=0), ValueError,
         r"cross_entropy: ignore_index \(0\) is not supported with class probabilities"),
        (lambda x, t: mq.cross_entropy(x, t, mq.ones(2, dtype=mq.float64)), RuntimeError,
         r"cross_entropy: weight must hold one value per class, shape \(3,\), got shape \(2,\)"),
        (lambda x, t: mq.nll_loss(x, t, mq.ones(3)), RuntimeError,
         r"nll_loss: weight must have the input's dtype and device \(float64, cpu\), got float32 on cpu"),
        (lambda x, t: mq.cross_entropy(x, t, mq.ones(3, dtype=mq.float64, requires_grad=True)), RuntimeError,
         r"cross_entropy: weight requires grad, but class weights get no gradient .* pass weight.detach\(\)"),
        (lambda x, t: mq.nll_loss(x, t, "none"), TypeError,
         r"nll_loss: weight must be a Tensor of shape \(3,\) or None, got str 'none' \(reduction and the other "
         r"options are keyword arguments\)"),
        (lambda x, t: mq.cross_entropy(x, t, ignore_index=1.0), TypeError,
         r"cross_entropy: ignore_index must be an int, got float 1.0"),
        (lambda x, t: mq.cross_entropy(x, t - 100, ignore_index=-99), IndexError,
         r"in \[0, 3\), got values from -100 to -98 \(targets equal to ignore_index=-99 aside\)"),
        (lambda x, t: mq.cross_entropy(x, t[:3]), RuntimeError,
         r"cross_entropy: input of shape \(4, 3\) needs a target of shape \(4,\) \(one class index per sample\), got \(3,\)"),
        (lambda x, t: mq.cross_entropy(x, t.reshape(4, 1)), RuntimeError, r"needs a target of shape \(4,\).* got \(4, 1\)"),
        (lambda x, t: mq.cross_entropy(x, t + 1), IndexError,
         r"cross_entropy: target values must be class indices in \[0, 3\), got values from 1 to 3"),
        (lambda x, t: mq.nll_loss(x, t - 101), IndexError,
         r"nll_loss: target values must be class indices in \[0, 3\), got values from -101 to -99 .*ignore_index=-100"),
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


# ---------------------------------------------------------------- class weights, ignore_index
WEIGHT_CASES = {  # (weight or None, ignore_index, targets to set to ignore_index: a mask drawn with this probability)
    "weight": ("weight", -100, 0.0),
    "ignore -100": (None, -100, 0.4),
    "ignore a class (1)": (None, 1, 0.0),
    "ignore out of range (7)": (None, 7, 0.4),
    "weight and ignore -1": ("weight", -1, 0.4),
}


def _weighted_case(shape, target_shape, name):
    classes = shape[1] if len(shape) > 1 else shape[0]
    weight_kind, ignore_index, fraction = WEIGHT_CASES[name]
    x_data = rng.standard_normal(shape) * 3
    target_data = rng.integers(0, classes, target_shape)
    target_data = np.where(rng.random(target_shape) < fraction, ignore_index, target_data)
    weight = rng.uniform(0.2, 2.0, classes) if weight_kind else None
    return x_data, target_data, weight, ignore_index


@pytest.mark.parametrize("name", WEIGHT_CASES)
@pytest.mark.parametrize("shape, target_shape", LAYOUTS, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_with_weights_and_ignore_index(device, shape, target_shape, reduction, smoothing, name):
    x_data, target_data, weight, ignore_index = _weighted_case(shape, target_shape, name)
    g = rng.standard_normal(target_shape if reduction == "none" else ())
    expected, expected_grad = cross_entropy_reference(x_data, target_data, reduction, smoothing, g, weight, ignore_index)
    x = leaf(x_data, device)
    w = None if weight is None else const(weight, device)
    loss = mq.cross_entropy(x, const(target_data, device), w, ignore_index=ignore_index, reduction=reduction,
                            label_smoothing=smoothing)
    loss.backward(const(g, device))
    np.testing.assert_allclose(host(loss), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x.grad.numpy(), expected_grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", WEIGHT_CASES)
@pytest.mark.parametrize("shape, target_shape", LAYOUTS, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_with_weights_and_ignore_index(device, shape, target_shape, reduction, name):
    """loss_m = -w[t_m] x[m, t_m], 0 when ignored; the mean divides by Σ w[t_m] over the targets kept."""
    x_data, target_data, weight, ignore_index = _weighted_case(shape, target_shape, name)
    g = rng.standard_normal(target_shape if reduction == "none" else ())
    rows, targets = as_rows(x_data, target_data)
    kept = targets != ignore_index
    safe = np.where(kept, targets, 0)
    row_weight = (np.ones(rows.shape[1]) if weight is None else weight)[safe] * kept
    losses = -rows[np.arange(len(targets)), safe] * row_weight
    total = row_weight.sum()
    with np.errstate(invalid="ignore"):  # every target ignored: 0/0
        expected = {"mean": losses.sum() / total, "sum": losses.sum(), "none": losses.reshape(target_shape)}[reduction]
    grad_rows = np.zeros(rows.shape)
    grad_rows[np.arange(len(targets)), safe] = -per_target_weights(g, reduction, len(targets), total) * row_weight
    x = leaf(x_data, device)
    w = None if weight is None else const(weight, device)
    loss = mq.nll_loss(x, const(target_data, device), w, ignore_index=ignore_index, reduction=reduction)
    loss.backward(const(g, device))
    np.testing.assert_allclose(host(loss), expected, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), from_rows(grad_rows, shape), rtol=1e-12)


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_target_ignored_gives_nan_for_the_mean_and_zero_gradients(device, op, weighted):
    """torch: the mean of no target is 0/0 = nan, the sum 0, and the input's gradient is 0."""
    x = leaf(rng.standard_normal((3, 4)), device)
    target = const(np.array([-100, -100, -100]), device)
    weight = const(rng.uniform(0.5, 1.5, 4), device) if weighted else None
    loss = getattr(mq, op)(x, target, weight)
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 4)))
    assert getattr(mq, op)(x, target, weight, reduction="sum").item() == 0.0
    np.testing.assert_array_equal(host(getattr(mq, op)(x, target, weight, reduction="none")), np.zeros(3))


def test_ignore_index_equal_to_a_class_ignores_that_class(device):
    x_data, target = rng.standard_normal((6, 3)), np.array([0, 1, 2, 1, 1, 0])
    loss = mq.cross_entropy(const(x_data, device), const(target, device), ignore_index=1)
    kept = target != 1
    expected = -log_softmax_rows(x_data)[np.arange(6), target][kept].mean()
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)


def test_class_weights_scale_each_target_and_normalise_the_mean(device):
    """With weight w: Σ_m w[t_m]·nll_m / Σ_m w[t_m]; equal weights change nothing."""
    x_data, target = rng.standard_normal((5, 3)), np.array([0, 2, 2, 1, 0])
    weight = np.array([0.5, 2.0, 1.5])
    nll = -log_softmax_rows(x_data)[np.arange(5), target]
    loss = mq.cross_entropy(const(x_data, device), const(target, device), const(weight, device))
    np.testing.assert_allclose(loss.item(), (weight[target] * nll).sum() / weight[target].sum(), rtol=1e-12)
    same = mq.cross_entropy(const(x_data, device), const(target, device), const(np.full(3, 3.0), device))
    np.testing.assert_allclose(same.item(), nll.mean(), rtol=1e-12)


# ---------------------------------------------------------------- class-probability targets
def probability_reference(x, target, reduction, smoothing, g, weight=None):
    """-Σ_c w_c t'_c log p_c per row with t' = (1 - ε) t + ε/C, the mean over rows; gradients for x and t."""
    rows, probs = (x[None], target[None]) if x.ndim == 1 else (np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]),
                                                              np.moveaxis(target, 1, -1).reshape(-1, x.shape[1]))
    count, classes = rows.shape
    w = np.ones(classes) if weight is None else weight
    log_p = log_softmax_rows(rows)
    a = w * ((1 - smoothing) * probs + smoothing / classes)
    losses = -(a * log_p).sum(axis=1)
    out_shape = () if x.ndim == 1 else x.shape[:1] + x.shape[2:]
    out = {"mean": losses.mean() if count else np.nan, "sum": losses.sum(), "none": losses.reshape(out_shape)}[reduction]
    weights = per_target_weights(g, reduction, count)[:, None]
    grad_x = (np.exp(log_p) * a.sum(axis=1, keepdims=True) - a) * weights
    grad_t = -(1 - smoothing) * w * log_p * weights
    return out, from_rows(grad_x, x.shape), from_rows(grad_t, x.shape)


@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 2, 3), (4,), (2, 3, 5)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_with_class_probabilities(device, shape, reduction, smoothing, weighted):
    classes = shape[1] if len(shape) > 1 else shape[0]
    x_data = rng.standard_normal(shape) * 3
    t_data = rng.random(shape)
    t_data /= t_data.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)
    weight = rng.uniform(0.2, 2.0, classes) if weighted else None
    out_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    g = rng.standard_normal(out_shape if reduction == "none" else ())
    expected, grad_x, grad_t = probability_reference(x_data, t_data, reduction, smoothing, g, weight)
    x, t = leaf(x_data, device), leaf(t_data, device)
    loss = mq.cross_entropy(x, t, None if weight is None else const(weight, device), reduction=reduction,
                            label_smoothing=smoothing)
    assert loss.shape == (out_shape if reduction == "none" else ())
    loss.backward(const(g, device))
    np.testing.assert_allclose(host(loss), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x.grad.numpy(), grad_x, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(t.grad.numpy(), grad_t, rtol=1e-12, atol=1e-14)


def test_one_hot_probabilities_equal_class_indices(device):
    x_data, target = rng.standard_normal((5, 4)), np.array([3, 0, 1, 1, 2])
    for smoothing in (0.0, 0.3):
        by_index = mq.cross_entropy(const(x_data, device), const(target, device), label_smoothing=smoothing)
        by_probs = mq.cross_entropy(const(x_data, device), const(np.eye(4)[target], device), label_smoothing=smoothing)
        np.testing.assert_allclose(by_probs.item(), by_index.item(), rtol=1e-12)


def test_class_probabilities_of_an_empty_batch(device):
    empty = mq.zeros(0, 3, dtype=mq.float64, device=device)
    assert np.isnan(mq.cross_entropy(empty, empty).item())
    assert mq.cross_entropy(empty, empty, reduction="sum").item() == 0.0
    assert mq.cross_entropy(empty, empty, reduction="none").shape == (0,)


# ---------------------------------------------------------------- against torch (float64)
def _torch_case(torch, x_data, target_data, weight, requires_grad_target=False):
    x, xt = mq.tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
    t, tt = mq.tensor(target_data, requires_grad=requires_grad_target), torch.tensor(target_data)
    if requires_grad_target:
        tt.requires_grad_(True)
    w, wt = (None, None) if weight is None else (mq.tensor(weight), torch.tensor(weight))
    return (x, t, w), (xt, tt, wt)


def _assert_matches_torch(torch, ours, theirs, inputs, torch_inputs):
    g = np.random.default_rng(1).standard_normal(tuple(theirs.shape))
    ours.backward(mq.tensor(g))
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
    for mine, their in zip(inputs, torch_inputs):
        if their is not None and their.requires_grad:
            np.testing.assert_allclose(mine.grad.numpy(), their.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", WEIGHT_CASES)
@pytest.mark.parametrize("shape, target_shape", LAYOUTS, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_and_nll_loss_with_weights_and_ignore_index_match_torch(shape, target_shape, reduction, smoothing,
                                                                              name):
    torch = pytest.importorskip("torch")
    x_data, target_data, weight, ignore_index = _weighted_case(shape, target_shape, name)
    (x, t, w), (xt, tt, wt) = _torch_case(torch, x_data, target_data, weight)
    options = dict(ignore_index=ignore_index, reduction=reduction)
    _assert_matches_torch(torch, mq.cross_entropy(x, t, w, label_smoothing=smoothing, **options),
                          torch.nn.functional.cross_entropy(xt, tt, wt, label_smoothing=smoothing, **options),
                          [x], [xt])
    (x, t, w), (xt, tt, wt) = _torch_case(torch, x_data, target_data, weight)
    _assert_matches_torch(torch, mq.nll_loss(x, t, w, **options), torch.nn.functional.nll_loss(xt, tt, wt, **options),
                          [x], [xt])


@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 2, 3), (4,)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_with_class_probabilities_matches_torch(shape, reduction, smoothing, weighted):
    """Values and gradients for the scores and the (unnormalised) probabilities."""
    torch = pytest.importorskip("torch")
    classes = shape[1] if len(shape) > 1 else shape[0]
    x_data, t_data = rng.standard_normal(shape) * 2, rng.random(shape)
    weight = rng.uniform(0.2, 2.0, classes) if weighted else None
    (x, t, w), (xt, tt, wt) = _torch_case(torch, x_data, t_data, weight, requires_grad_target=True)
    options = dict(reduction=reduction, label_smoothing=smoothing)
    _assert_matches_torch(torch, mq.cross_entropy(x, t, w, **options), torch.nn.functional.cross_entropy(xt, tt, wt, **options),
                          [x, t], [xt, tt])


def test_every_target_ignored_matches_torch():
    torch = pytest.importorskip("torch")
    x_data, target = rng.standard_normal((3, 4)), np.array([-100, -100, -100])
    for smoothing in (0.0, 0.1):
        (x, t, _), (xt, tt, _) = _torch_case(torch, x_data, target, None)
        ours = mq.cross_entropy(x, t, label_smoothing=smoothing)
        theirs = torch.nn.functional.cross_entropy(xt, tt, label_smoothing=smoothing)
        ours.backward()
        theirs.backward()
        assert np.isnan(ours.item()) and np.isnan(theirs.item())
        np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


# ---------------------------------------------------------------- the GPU path with ignored targets
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("targets", [[0, -100, 2, -100, 1], [-100] * 5, [3, 0, 2, 1, 1]], ids=["some ignored", "all", "none"])
def test_cross_entropy_gpu_path_ignores_default_ignore_index_targets_as_the_plain_path(host_kernels, reduction, targets):
    """The kernels skip the ignored rows themselves (any ignore_index); class weights take the plain path."""
    x_data, target = rng.standard_normal((5, 4)), np.array(targets)
    g = rng.standard_normal(5 if reduction == "none" else ())
    results = []
    for fused in (True, False):
        x = leaf(x_data)
        with mq.backend.use_fused(fused):
            loss = mq.cross_entropy(x, const(target), reduction=reduction, label_smoothing=0.1)
            loss.backward(const(g))
        results.append((host(loss), x.grad.numpy()))
    assert "minigrad_q_cross_entropy_backward" in host_kernels
    for gpu, plain in zip(*results):
        np.testing.assert_allclose(gpu, plain, rtol=1e-12, atol=1e-15)
    other = const(np.where(target < 0, 3, target))
    host_kernels.clear()
    with mq.backend.use_fused(True):
        kernel = mq.cross_entropy(const(x_data), other, ignore_index=3, reduction=reduction)
    assert host_kernels == ["minigrad_q_cross_entropy_forward"]
    with mq.backend.use_fused(False):
        plain = mq.cross_entropy(const(x_data), other, ignore_index=3, reduction=reduction)
    np.testing.assert_allclose(host(kernel), host(plain), rtol=1e-12)
    host_kernels.clear()
    with mq.backend.use_fused(True):
        mq.cross_entropy(const(x_data), const(np.abs(target) % 4), const(np.ones(4)))
    assert not host_kernels
