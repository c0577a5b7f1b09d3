"""batch_norm: training forward against the formula, gradients against the step-by-step (unfused) chain
rule, the in-place running-stat update (unbiased variance, momentum), eval mode as an affine map, errors,
and a cross-check against torch."""

import numpy as np
import pytest
from helpers import const, host, leaf

import minigrad_q as mq

rng = np.random.default_rng(0)
EPS = 1e-5


def channel_axes(ndim):
    return (0,) + tuple(range(2, ndim))


def as_channel(vector, ndim):
    """A (C,) vector shaped to broadcast over dim 1 of an ndim-dim input."""
    return vector.reshape((1, -1) + (1,) * (ndim - 2))


def train_reference(x, weight, bias, g):
    """Forward and gradients by the textbook chain rule through mean and variance (not the fused formula)."""
    axes, ndim = channel_axes(x.ndim), x.ndim
    count = x.size // x.shape[1]
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(var + EPS)
    xhat = (x - mean) * inv_std
    y = xhat * as_channel(weight, ndim) + as_channel(bias, ndim)
    dxhat = g * as_channel(weight, ndim)
    dvar = (dxhat * (x - mean) * -0.5 * inv_std**3).sum(axis=axes, keepdims=True)
    dmean = (-dxhat * inv_std).sum(axis=axes, keepdims=True) + dvar * (-2 * (x - mean)).mean(axis=axes, keepdims=True)
    dx = dxhat * inv_std + dvar * 2 * (x - mean) / count + dmean / count
    return y, dx, (g * xhat).sum(axis=axes), g.sum(axis=axes)


SHAPES = [(8, 3), (4, 3, 5), (2, 3, 4, 5), (3, 2, 2, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_batch_norm_training_forward_and_gradients(device, shape):
    channels = shape[1]
    x_data = rng.standard_normal(shape) * 3 + 2
    w_data, b_data = rng.standard_normal(channels), rng.standard_normal(channels)
    g = rng.standard_normal(shape)
    expected, dx, dw, db = train_reference(x_data, w_data, b_data, g)
    x, w, b = leaf(x_data, device), leaf(w_data, device), leaf(b_data, device)
    y = mq.batch_norm(x, None, None, w, b, training=True)
    y.backward(const(g, device))
    np.testing.assert_allclose(host(y), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), dw, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), db, rtol=1e-10, atol=1e-12)


def test_batch_norm_training_without_affine_normalises_each_channel(device):
    x_data = rng.standard_normal((16, 3, 4, 4)) * np.array([1.0, 5.0, 0.1])[None, :, None, None] + 7
    y = host(mq.batch_norm(const(x_data, device), None, None, training=True))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    var = x_data.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), var / (var + EPS), rtol=1e-10)
    g = rng.standard_normal(x_data.shape)
    x = leaf(x_data, device)
    mq.batch_norm(x, None, None, training=True).backward(const(g, device))
    np.testing.assert_allclose(x.grad.numpy(), train_reference(x_data, np.ones(3), np.zeros(3), g)[1], rtol=1e-9, atol=1e-12)


def test_batch_norm_with_only_a_bias_or_only_a_weight(device):
    x_data, g = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 3))
    b_data, w_data = rng.standard_normal(2), rng.standard_normal(2)
    x, b = leaf(x_data, device), leaf(b_data, device)
    y = mq.batch_norm(x, None, None, bias=b, training=True)
    y.backward(const(g, device))
    expected, dx, _, db = train_reference(x_data, np.ones(2), b_data, g)
    np.testing.assert_allclose(host(y), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), db, rtol=1e-12)
    x, w = leaf(x_data, device), leaf(w_data, device)
    y = mq.batch_norm(x, None, None, weight=w, training=True)
    np.testing.assert_allclose(host(y), train_reference(x_data, w_data, np.zeros(2), g)[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0])
def test_batch_norm_updates_the_running_stats_in_place_with_the_unbiased_variance(device, momentum):
    x_data = rng.standard_normal((6, 3, 2, 2)) * 2 + 1
    mean0, var0 = rng.standard_normal(3), rng.random(3) + 0.5
    running_mean, running_var = const(mean0, device), const(var0, device)
    mean_array, var_array = running_mean.data, running_var.data
    mq.batch_norm(const(x_data, device), running_mean, running_var, training=True, momentum=momentum)
    count = 6 * 2 * 2
    batch_mean = x_data.mean(axis=(0, 2, 3))
    unbiased = x_data.var(axis=(0, 2, 3)) * count / (count - 1)
    assert running_mean.data is mean_array and running_var.data is var_array  # the same arrays, changed in place
    np.testing.assert_allclose(running_mean.numpy(), (1 - momentum) * mean0 + momentum * batch_mean, rtol=1e-12)
    np.testing.assert_allclose(running_var.numpy(), (1 - momentum) * var0 + momentum * unbiased, rtol=1e-12)


def test_batch_norm_training_output_ignores_the_running_stats(device):
    x = const(rng.standard_normal((4, 2, 3)), device)
    with_stats = mq.batch_norm(x, const(np.full(2, 100.0), device), const(np.full(2, 9.0), device), training=True)
    np.testing.assert_allclose(host(with_stats), host(mq.batch_norm(x, None, None, training=True)), rtol=1e-14)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_batch_norm_eval_uses_the_running_stats(device, shape):
    channels, ndim = shape[1], len(shape)
    x_data, g = rng.standard_normal(shape), rng.standard_normal(shape)
    mean_data, var_data = rng.standard_normal(channels), rng.random(channels) + 0.5
    w_data, b_data = rng.standard_normal(channels), rng.standard_normal(channels)
    x, w, b = leaf(x_data, device), leaf(w_data, device), leaf(b_data, device)
    running_mean, running_var = const(mean_data, device), const(var_data, device)
    y = mq.batch_norm(x, running_mean, running_var, w, b, training=False)
    y.backward(const(g, device))
    scale = as_channel(w_data / np.sqrt(var_data + EPS), ndim)
    xhat = (x_data - as_channel(mean_data, ndim)) / np.sqrt(as_channel(var_data, ndim) + EPS)
    axes = channel_axes(ndim)
    np.testing.assert_allclose(host(y), xhat * as_channel(w_data, ndim) + as_channel(b_data, ndim), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), g * scale, rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), (g * xhat).sum(axis=axes), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), g.sum(axis=axes), rtol=1e-12)
    np.testing.assert_array_equal(running_mean.numpy(), mean_data)  # eval never updates the stats
    np.testing.assert_array_equal(running_var.numpy(), var_data)


def test_batch_norm_eval_without_affine_and_a_single_sample(device):
    x_data = rng.standard_normal((1, 4))
    mean_data, var_data = rng.standard_normal(4), rng.random(4) + 0.5
    y = mq.batch_norm(const(x_data, device), const(mean_data, device), const(var_data, device))
    np.testing.assert_allclose(host(y), (x_data - mean_data) / np.sqrt(var_data + EPS), rtol=1e-12)


def test_batch_norm_float32_stays_float32(device):
    x = mq.tensor(rng.standard_normal((8, 3, 4, 4)).astype(np.float32), device=device, requires_grad=True)
    w = mq.ones(3, device=device, requires_grad=True)
    running_mean, running_var = mq.zeros(3, device=device), mq.ones(3, device=device)
    y = mq.batch_norm(x, running_mean, running_var, w, None, training=True)
    y.sum().backward()
    assert y.dtype == mq.float32 and x.grad.dtype == mq.float32 and w.grad.dtype == mq.float32
    assert running_mean.dtype == mq.float32 and running_var.dtype == mq.float32


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x, s: mq.batch_norm(x[:1, :, :1], None, None, training=True), ValueError,
         r"batch_norm: expected more than 1 value per channel when training, got input of shape \(1, 3, 1\)"),
        (lambda x, s: mq.batch_norm(x, None, None), RuntimeError,
         r"batch_norm: running_mean and running_var must be given in eval mode"),
        (lambda x, s: mq.batch_norm(x, s(4), s(3), training=True), RuntimeError,
         r"batch_norm: running_mean has shape \(4,\), expected \(3,\) for input of shape \(4, 3, 2\)"),
        (lambda x, s: mq.batch_norm(x, None, None, s(2), training=True), RuntimeError, r"batch_norm: weight has shape \(2,\)"),
        (lambda x, s: mq.batch_norm(x, None, None, None, s(3).float(), training=True), RuntimeError,
         r"batch_norm: bias is float32 on cpu, the input float64 on cpu"),
        (lambda x, s: mq.batch_norm(x[0, 0], None, None, training=True), RuntimeError,
         r"batch_norm: expected an input of at least 2 dims"),
        (lambda x, s: mq.batch_norm(x.long(), None, None, training=True), RuntimeError,
         r"batch_norm: expected a floating point input"),
        (lambda x, s: mq.batch_norm(x, None, None, np.ones(3), training=True), TypeError,
         r"batch_norm: weight must be a Tensor or None"),
    ],
)
def test_batch_norm_errors(call, error, match):
    x = mq.tensor(rng.standard_normal((4, 3, 2)))
    with pytest.raises(error, match=match):
        call(x, lambda n: mq.tensor(np.ones(n)))


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(training):
    torch = pytest.importorskip("torch")
    x_data = rng.standard_normal((16, 8, 6, 6)).astype(np.float32) * 2 + 1
    w_data, b_data = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    mean0, var0 = rng.standard_normal(8).astype(np.float32), (rng.random(8) + 0.5).astype(np.float32)
    g = rng.standard_normal(x_data.shape).astype(np.float32)
    x, w, b = (mq.tensor(a, requires_grad=True) for a in (x_data, w_data, b_data))
    rm, rv = mq.tensor(mean0), mq.tensor(var0)
    y = mq.batch_norm(x, rm, rv, w, b, training=training, momentum=0.2)
    y.backward(mq.tensor(g))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x_data, w_data, b_data))
    rmt, rvt = torch.tensor(mean0), torch.tensor(var0)
    yt = torch.nn.functional.batch_norm(xt, rmt, rvt, wt, bt, training=training, momentum=0.2)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(host(y), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    for mine, theirs in ((x, xt), (w, wt), (b, bt)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rm.numpy(), rmt.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv.numpy(), rvt.numpy(), rtol=1e-5, atol=1e-6)
