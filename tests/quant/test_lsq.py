"""LSQ / LSQ+: forward values, the step gradient as the issue states it, offset gradient, default gradient
scale, per-channel == per-tensor per slice, the round-frozen reference (finite differences and autograd),
the init helper, a step that learns, errors, and a cross-check against torch's learnable fake quant."""

import math

import numpy as np
import pytest
from helpers import const, host, leaf
from hypothesis import given
from hypothesis import strategies as st

import minigrad_q as mq
from minigrad_q.quant.lsq import LSQ, lsq, lsq_init_step, lsq_surrogate
from minigrad_q.quant.qparams import FLOAT32_EPS, qrange
from minigrad_q.specs import spec_for
from minigrad_q.testing import HypothesisDraw, check_spec

rng = np.random.default_rng(11)


def lsq_numpy(x, s, qmin, qmax, b=0.0):
    return s * np.clip(np.rint((x - b) / s), qmin, qmax) + b


@given(st.data())
def test_gradient_matches_finite_differences_of_the_round_frozen_surrogate(data):
    check_spec(spec_for(LSQ), HypothesisDraw(data))  # per-tensor and per-channel, with and without offset


def test_forward_matches_the_numpy_formula(device):
    x = rng.standard_normal((5, 7)) * 3
    y = lsq(const(x, device), 0.37, -8, 7)
    np.testing.assert_array_equal(host(y), lsq_numpy(x, 0.37, -8, 7))


def test_forward_with_offset_matches_the_numpy_formula(device):
    x = rng.standard_normal((5, 7)) * 3
    y = lsq(const(x, device), const([0.37], device), 0, 15, offset=const([-1.25], device))
    if device == "cpu":
        np.testing.assert_array_equal(host(y), lsq_numpy(x, 0.37, 0, 15, -1.25))
    else:  # the CUDA compiler may fuse the multiply and the add of code·s + β into one FMA: one rounding fewer
        np.testing.assert_array_max_ulp(host(y), lsq_numpy(x, 0.37, 0, 15, -1.25), maxulp=1)


def test_outputs_lie_on_the_grid_with_at_most_qmax_minus_qmin_plus_one_levels():
    x = np.linspace(-10, 10, 5001)
    y = host(lsq(const(x), 0.25, *qrange(3)))
    levels = np.unique(y)
    assert len(levels) == 8
    np.testing.assert_allclose(levels / 0.25, np.rint(levels / 0.25), atol=1e-12)


def test_step_gradient_as_stated_round_minus_v_in_range_qmin_qmax_at_the_clips_times_grad_scale():
    # s = 0.5, [qmin, qmax] = [-4, 3]: v = x/s = 0.6, -1.4, 2.2, 10, -6, 3.48 (rounds to 3: in range)
    x = leaf([0.3, -0.7, 1.1, 5.0, -3.0, 1.74])
    step = leaf([0.5])
    g = np.array([1.0, 2.0, -1.0, 0.5, 1.5, 1.0])
    lsq(x, step, -4, 3).backward(const(g))
    per_element = np.array([1 - 0.6, -1 + 1.4, 2 - 2.2, 3, -4, 3 - 3.48])
    grad_scale = 1 / math.sqrt(6 * 3)  # 1/sqrt(N·Qp)
    np.testing.assert_allclose(step.grad.numpy(), [np.sum(g * per_element) * grad_scale], rtol=1e-12)
    np.testing.assert_array_equal(x.grad.numpy(), g * [1, 1, 1, 0, 0, 1])  # the in-range mask


def test_step_gradient_with_an_explicit_grad_scale_and_per_channel_default_scale():
    x = rng.standard_normal((3, 8)) * 2
    step = leaf([0.3, 0.5, 0.7])
    lsq(x_t := leaf(x), step, -4, 3, axis=0).sum().backward()
    s = np.array([0.3, 0.5, 0.7])[:, None]
    v = x / s
    code = np.rint(v)
    per_element = np.where(code < -4, -4, np.where(code > 3, 3, code - v))
    np.testing.assert_allclose(step.grad.numpy(), per_element.sum(axis=1) / math.sqrt(8 * 3), rtol=1e-12)
    np.testing.assert_array_equal(x_t.grad.numpy(), ((code >= -4) & (code <= 3)).astype(float))
    step2 = leaf([0.3, 0.5, 0.7])
    lsq(const(x), step2, -4, 3, grad_scale=1.0, axis=0).sum().backward()
    np.testing.assert_allclose(step2.grad.numpy(), per_element.sum(axis=1), rtol=1e-12)


def test_offset_gradient_is_the_out_of_range_upstream_times_grad_scale():
    x = np.array([0.3, -0.7, 1.1, 5.0, -3.0, 9.0])
    offset = leaf([0.5])
    g = np.array([1.0, 2.0, -1.0, 0.5, 1.5, -2.0])
    lsq(const(x), 0.5, 0, 7, grad_scale=0.25, offset=offset).backward(const(g))
    code = np.rint((x - 0.5) / 0.5)  # -0.4 → -0, -2.4 → -2, 1.2 → 1, 9, -7, 17
    outside = (code < 0) | (code > 7)
    np.testing.assert_allclose(offset.grad.numpy(), [np.sum(g[outside]) * 0.25], rtol=1e-12)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_channel_equals_per_tensor_applied_per_slice(axis):
    x = rng.standard_normal((4, 5, 3)) * 2
    steps = rng.uniform(0.2, 0.6, x.shape[axis])
    offsets = rng.uniform(-0.3, 0.3, x.shape[axis])
    g = rng.standard_normal(x.shape)
    x_t, s_t, b_t = leaf(x), leaf(steps), leaf(offsets)
    y = lsq(x_t, s_t, -8, 7, grad_scale=0.5, axis=axis, offset=b_t)
    y.backward(const(g))
    for c in range(x.shape[axis]):
        xc, sc, bc = leaf(np.take(x, c, axis)), leaf([steps[c]]), leaf([offsets[c]])
        yc = lsq(xc, sc, -8, 7, grad_scale=0.5, offset=bc)
        yc.backward(const(np.take(g, c, axis)))
        np.testing.assert_array_equal(np.take(host(y), c, axis), host(yc))
        np.testing.assert_array_equal(np.take(x_t.grad.numpy(), c, axis), xc.grad.numpy())
        np.testing.assert_allclose(s_t.grad.numpy()[c], sc.grad.numpy()[0], rtol=1e-12)
        np.testing.assert_allclose(b_t.grad.numpy()[c], bc.grad.numpy()[0], rtol=1e-12, atol=1e-15)


def test_autograd_through_the_surrogate_equals_lsq():
    x = rng.standard_normal((3, 6)) * 2
    steps, offsets = rng.uniform(0.2, 0.6, 3), rng.uniform(-0.3, 0.3, 3)
    g = rng.standard_normal(x.shape)
    results = []
    for fn in (lsq, lsq_surrogate):
        x_t, s_t, b_t = leaf(x), leaf(steps), leaf(offsets)
        y = fn(x_t, s_t, -4, 3, None, 0, b_t)
        y.backward(const(g))
        results.append([host(y), x_t.grad.numpy(), s_t.grad.numpy(), b_t.grad.numpy()])
    for ours, reference in zip(*results):
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)


def test_float32_input_keeps_its_dtype_and_non_contiguous_input_works():
    x = rng.standard_normal((6, 4)).astype(np.float32)
    x_t = mq.tensor(x.T, requires_grad=True)  # a transposed view
    step = mq.tensor([0.3], dtype=mq.float32, requires_grad=True)
    y = lsq(x_t, step, -8, 7)
    y.sum().backward()
    assert y.dtype == mq.float32 and step.grad.dtype == mq.float32
    np.testing.assert_array_equal(host(y), lsq_numpy(x.T, np.float32(0.3), -8, 7))


def test_the_step_learns_to_reduce_the_quantization_error():
    x = const(rng.standard_normal(2000))
    step = mq.nn.Parameter(mq.tensor([0.02]))
    optimizer = mq.optim.SGD([step], lr=1.0)  # the gradient is scaled by 1/sqrt(N·Qp) ≈ 0.008
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = ((lsq(x, step, -8, 7) - x) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
    assert float(step.data[0]) > 0.2 and losses[-1] < 0.05 * losses[0]


def test_init_step_is_two_mean_abs_over_sqrt_qmax():
    x = rng.standard_normal((4, 9))
    np.testing.assert_allclose(host(lsq_init_step(const(x), 7)), 2 * np.abs(x).mean() / math.sqrt(7), rtol=1e-12)
    per_channel = lsq_init_step(const(x), 127, axis=0)
    assert per_channel.shape == (4,) and not per_channel.requires_grad
    np.testing.assert_allclose(host(per_channel), 2 * np.abs(x).mean(axis=1) / math.sqrt(127), rtol=1e-12)
    assert float(host(lsq_init_step(const(np.zeros(3)), 7))) == FLOAT32_EPS  # floored: a valid step


def test_signed_one_bit_is_an_error():
    qmin, qmax = qrange(1, signed=True)
    with pytest.raises(ValueError, match=r"lsq: qmax \(LSQ's Qp\) must be positive, got qmin=-1, qmax=0"):
        lsq(const([0.5]), 1.0, qmin, qmax)
    with pytest.raises(ValueError, match=r"lsq_init_step: qmax \(LSQ's Qp\) must be a positive int, got 0"):
        lsq_init_step(const([0.5]), 0)


def test_bad_input_errors():
    x = const(rng.standard_normal((3, 4)))
    with pytest.raises(ValueError, match=r"lsq: step must be positive and finite, got 0"):
        lsq(x, 0.0, -8, 7)
    with pytest.raises(ValueError, match=r"lsq: step must be positive and finite, got \[0.5, -0.5, 0.1\]"):
        lsq(x, const([0.5, -0.5, 0.1]), -8, 7, axis=0)
    with pytest.raises(ValueError, match=r"lsq: per-channel step must have shape \(3,\) .* got \(4,\)"):
        lsq(x, const([0.5] * 4), -8, 7, axis=0)
    with pytest.raises(ValueError, match=r"lsq: per-tensor step must have one element, got shape \(3,\)"):
        lsq(x, const([0.5] * 3), -8, 7)
    with pytest.raises(ValueError, match=r"lsq: qmin must be less than qmax, got qmin=7, qmax=7"):
        lsq(x, 0.5, 7, 7)
    with pytest.raises(IndexError, match=r"lsq"):
        lsq(x, const([0.5] * 3), -8, 7, axis=2)
    with pytest.raises(ValueError, match=r"lsq: grad_scale must be a positive number or None, got -1"):
        lsq(x, 0.5, -8, 7, grad_scale=-1)
    with pytest.raises(TypeError, match=r"lsq: expected a floating point tensor, got dtype int64"):
        lsq(mq.tensor([1, 2]), 0.5, -8, 7)


def test_matches_torch_learnable_fake_quant():
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((4, 50)) * 2).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    steps = np.array([0.2, 0.3, 0.25, 0.4], dtype=np.float32)
    x_t, s_t = leaf(x), leaf(steps)
    y = lsq(x_t, s_t, -8, 7, grad_scale=1.0, axis=0)
    y.backward(const(g))
    tx, ts = torch.tensor(x, requires_grad=True), torch.tensor(steps, requires_grad=True)
    ty = torch._fake_quantize_learnable_per_channel_affine(tx, ts, torch.zeros(4), 0, -8, 7, 1.0)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(host(y), ty.detach().numpy())
    np.testing.assert_array_equal(x_t.grad.numpy(), tx.grad.numpy())
    np.testing.assert_allclose(s_t.grad.numpy(), ts.grad.numpy(), rtol=1e-5)
