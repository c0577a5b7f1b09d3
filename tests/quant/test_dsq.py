"""dsq: forward == fake_quant for every alpha, the soft curve's slopes (DESIGN.md numbers), the
alpha and scale gradients against DESIGN.md's formulas and finite differences, the limits α → 1
(STE) and α → 0, stability on [1e-6, 1 − 1e-6], per-channel == per-tensor per slice, errors,
the gradient spec, and torch autograd of the same soft curve."""

import math

import numpy as np
import pytest
from helpers import const, host, leaf
from hypothesis import given
from hypothesis import strategies as st

from minigrad_q.quant.dsq import DSQ, dsq, dsq_soft
from minigrad_q.quant.fake_quant import fake_quant
from minigrad_q.specs import spec_for
from minigrad_q.testing import HypothesisDraw, check_spec

rng = np.random.default_rng(0)
ALPHAS = [1e-6, 1e-3, 0.05, 0.2, 0.4, 0.5, 0.9, 1 - 1e-3, 1 - 1e-6]


def soft_parts(u, alpha):
    """DESIGN.md in NumPy: soft(u), soft'(u), ∂soft/∂α at clamped codes u (float64)."""
    S, k = 1 / (1 - alpha), math.log(2 / alpha - 1)
    f = np.floor(u)
    r = u - f - 0.5
    th = np.tanh(k * r)
    soft = f + 0.5 + 0.5 * S * th
    slope = 0.5 * S * k * (1 - th**2)
    d_alpha = 0.5 * S * (S * th - 2 * r * (1 - th**2) / (alpha * (2 - alpha)))
    return soft, slope, d_alpha


def slope_at(codes, alpha):
    """dsq's gradient in x at x = codes (s = 1, z = 0, range [-8, 7])."""
    xt = leaf(np.asarray(codes, dtype=float))
    dsq(xt, 1.0, 0, -8, 7, alpha).sum().backward()
    return host(xt.grad)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_equals_fake_quant_for_every_alpha(alpha, dtype):
    x = (rng.standard_normal((4, 50)) * 2).astype(dtype)
    x[0, :9] = np.arange(-4.5, 4.5)  # ties: half to even in both
    np.testing.assert_array_equal(host(dsq(const(x), 0.25, 1, -8, 7, alpha)), host(fake_quant(const(x), 0.25, 1, -8, 7)))
    scales, zeros = const(rng.uniform(0.1, 0.4, 4).astype(dtype)), const(np.array([0, 1, 7, 3]))
    np.testing.assert_array_equal(host(dsq(const(x), scales, zeros, 0, 15, alpha, axis=0)),
                                  host(fake_quant(const(x), scales, zeros, 0, 15, axis=0)))


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.4, 0.7, 0.95])
def test_mean_slope_over_a_bin_is_one(alpha):
    codes = np.linspace(1.0, 2.0, 200001)  # one bin; trapezoid rule on the slope
    slopes = slope_at(codes, alpha)
    mean = (slopes.sum() - 0.5 * (slopes[0] + slopes[-1])) / (len(codes) - 1)
    assert abs(mean - 1) < 1e-8


def test_slopes_at_alpha_0_4_are_1_1552_at_the_mid_point_and_0_7394_at_the_edges():
    mid, left, right = slope_at([2.5, 2.0, 3.0], 0.4)
    assert round(mid, 4) == 1.1552
    assert round(left, 4) == 0.7394 and round(right, 4) == 0.7394


def test_gradient_tends_to_the_ste_as_alpha_tends_to_1():
    x = rng.uniform(-10, 9, 2000)
    g = rng.standard_normal(x.shape)
    xt, xs = leaf(x), leaf(x)
    dsq(xt, 1.0, 0, -8, 7, 1 - 1e-6).backward(const(g))
    fake_quant(xs, 1.0, 0, -8, 7).backward(const(g))
    inside = (x > -8) & (x < 7)  # DSQ's clamp range; the STE's rint-mask reaches ½ further
    np.testing.assert_allclose(host(xt.grad)[inside], host(xs.grad)[inside], atol=1e-5)
    assert (host(xt.grad)[~inside] == 0).all()


def test_gradient_tends_to_zero_off_mid_points_as_alpha_tends_to_0():
    alpha = 1e-6
    edge, off, mid = slope_at([3.0, 3.2, 3.5], alpha)
    assert edge < 2e-5 and off < 0.05  # the edge slope is about k·α
    assert mid == pytest.approx(0.5 * math.log(2 / alpha), rel=1e-5)


def test_gradient_is_zero_outside_the_clamp_range():
    xt = leaf([-9.2, -8.01, -7.99, 6.99, 7.01, 7.4, 30.0])
    dsq(xt, 1.0, 0, -8, 7, 0.3).sum().backward()
    grad = host(xt.grad)
    assert (grad[[0, 1, 4, 5, 6]] == 0).all() and (grad[[2, 3]] > 0).all()


@pytest.mark.parametrize("alpha", [0.1, 0.4, 0.8])
def test_gradients_match_design_formulas(alpha):
    s, z, qmin, qmax = 0.3, 2, -8, 7
    x = rng.uniform((qmin - 3 - z) * s, (qmax + 3 - z) * s, 500)
    g = rng.standard_normal(x.shape)
    xt, st_, at = leaf(x), leaf(s), leaf(alpha)
    dsq(xt, st_, z, qmin, qmax, at).backward(const(g))
    v = x / s + z
    inside = (v >= qmin) & (v <= qmax)
    soft, slope, d_alpha = soft_parts(np.clip(v, qmin, qmax), alpha)
    np.testing.assert_allclose(host(xt.grad), g * slope * inside, rtol=1e-12, atol=1e-12)
    expected_scale = np.sum(g * (soft - z - slope * inside * x / s))
    np.testing.assert_allclose(float(host(st_.grad)), expected_scale, rtol=1e-10)
    np.testing.assert_allclose(float(host(at.grad)), np.sum(g * s * d_alpha * inside), rtol=1e-10)


def test_alpha_derivative_formula_agrees_with_finite_differences():
    u = rng.uniform(-3.9, 3.9, 300)
    for alpha in (0.05, 0.4, 0.9):
        eps = 1e-6
        numerical = (soft_parts(u, alpha + eps)[0] - soft_parts(u, alpha - eps)[0]) / (2 * eps)
        np.testing.assert_allclose(soft_parts(u, alpha)[2], numerical, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("alpha", [1e-6, 1e-4, 0.5, 1 - 1e-4, 1 - 1e-6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_nan_or_inf_for_alpha_in_the_allowed_interval(alpha, dtype):
    x = (rng.uniform(-12, 12, 1000)).astype(dtype)
    xt, st_, at = leaf(x), leaf(np.array(0.7, dtype=dtype)), leaf(np.array([alpha], dtype=dtype))
    dsq(xt, st_, 1, -8, 7, at).sum().backward()
    for grad in (xt.grad, st_.grad, at.grad):
        assert np.isfinite(host(grad)).all()


def test_float32_alpha_gradient_is_accurate_near_alpha_1():
    """The α term's two parts cancel as α → 1: computed in float64 it stays right in float32."""
    x = rng.uniform(-2, 2, 1000)
    grads = []
    for dtype in (np.float32, np.float64):
        at = leaf(np.array([1 - 1e-3], dtype=dtype))
        dsq(const(x.astype(dtype)), 0.5, 0, -8, 7, at).sum().backward()
        grads.append(float(host(at.grad)[0]))
    assert grads[0] == pytest.approx(grads[1], rel=1e-3)


@pytest.mark.parametrize("shape, axis", [((4, 3, 5), 0), ((2, 4, 5), 1), ((2, 3, 4), -1)])
def test_per_channel_equals_per_tensor_applied_per_slice(shape, axis):
    x = rng.standard_normal(shape) * 2
    g = rng.standard_normal(shape)
    channels = shape[axis]
    scales, zeros, alphas = rng.uniform(0.2, 0.5, channels), rng.integers(-2, 3, channels), rng.uniform(0.1, 0.9, channels)
    xt, st_, at = leaf(x), leaf(scales), leaf(alphas)
    y = dsq(xt, st_, const(zeros), -8, 7, at, axis=axis)
    y.backward(const(g))
    for c in range(channels):
        piece, sc, al = leaf(np.take(x, c, axis=axis)), leaf(scales[c]), leaf(alphas[c])
        expected = dsq(piece, sc, int(zeros[c]), -8, 7, al)
        expected.backward(const(np.take(g, c, axis=axis)))
        np.testing.assert_array_equal(np.take(host(y), c, axis=axis), host(expected))
        np.testing.assert_allclose(np.take(host(xt.grad), c, axis=axis), host(piece.grad), rtol=1e-14)
        np.testing.assert_allclose(host(st_.grad)[c], host(sc.grad), rtol=1e-12)
        np.testing.assert_allclose(host(at.grad)[c], host(al.grad), rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_alpha_outside_0_1_raises(alpha):
    with pytest.raises(ValueError, match=r"dsq: alpha must lie in \(0, 1\)"):
        dsq(const([0.5]), 0.1, 0, -8, 7, alpha)
    with pytest.raises(ValueError, match=r"dsq: alpha must lie in \(0, 1\)"):
        dsq(const([0.5]), 0.1, 0, -8, 7, const([alpha]))


def test_bad_arguments_raise_clear_errors():
    x = const(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="dsq: qmin must be less than qmax"):
        dsq(x, 0.1, 0, 3, 3, 0.5)
    with pytest.raises(ValueError, match="dsq: scale must be positive"):
        dsq(x, -0.1, 0, -8, 7, 0.5)
    with pytest.raises(IndexError, match="dsq: dimension 2 is out of range"):
        dsq(x, 0.1, 0, -8, 7, 0.5, axis=2)
    with pytest.raises(ValueError, match=r"dsq: per-channel scale must have shape \(3,\)"):
        dsq(x, const([0.1, 0.2]), 0, -8, 7, 0.5, axis=1)
    with pytest.raises(ValueError, match=r"dsq: per-channel alpha must have shape \(2,\)"):
        dsq(x, 0.1, 0, -8, 7, const([0.5, 0.5, 0.5]), axis=0)


@given(data=st.data())
def test_spec_gradcheck_against_the_soft_curve(data):
    check_spec(spec_for(DSQ), HypothesisDraw(data))


def test_reference_soft_curve_meets_fake_quant_at_integers_and_the_bounds():
    x = np.array([-12.0, -8.0, -3.0, 0.0, 4.0, 7.0, 11.0])
    np.testing.assert_allclose(host(dsq_soft(const(x), 1.0, 0, -8, 7, 0.3)), np.clip(x, -8, 7), atol=1e-12)


def test_matches_torch_autograd_of_the_soft_curve():
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal(3000) * 2).astype(np.float64)
    g = rng.standard_normal(x.shape)
    s0, z, alpha0, qmin, qmax = 0.3, 1, 0.35, -8, 7
    xt, st_, at = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, s0, alpha0))
    u = torch.clamp(xt / st_ + z, qmin, qmax)
    f = u.detach().floor()
    S, k = 1 / (1 - at), torch.log(2 / at - 1)
    soft = (f + 0.5 + 0.5 * S * torch.tanh(k * (u - f - 0.5)) - z) * st_
    soft.backward(torch.tensor(g))
    xm, sm, am = leaf(x), leaf(s0), leaf(alpha0)
    y = dsq(xm, sm, z, qmin, qmax, am)
    y.backward(const(g))
    np.testing.assert_array_equal(host(y), host(fake_quant(const(x), s0, z, qmin, qmax)))
    np.testing.assert_allclose(host(xm.grad), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(host(sm.grad)), float(st_.grad), rtol=1e-9)
    np.testing.assert_allclose(float(host(am.grad)), float(at.grad), rtol=1e-9)
