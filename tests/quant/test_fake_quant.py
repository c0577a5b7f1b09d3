"""fake_quant and round_ste: values against the formula written here in NumPy, the grid and STE
properties of issue 4's list, per-channel == per-tensor per slice, the chunked CPU path, errors,
the gradient specs, and torch's fake_quantize_per_tensor_affine / _per_channel_affine."""

import numpy as np
import pytest
from helpers import const, host, leaf
from hypothesis import given
from hypothesis import strategies as st

import minigrad_q as mq
from minigrad_q.quant.fake_quant import FakeQuant, RoundSTE, fake_quant, round_ste
from minigrad_q.quant.qparams import minmax_qparams, qrange
from minigrad_q.specs import spec_for
from minigrad_q.testing import HypothesisDraw, check_spec

rng = np.random.default_rng(0)


def reciprocal(s, dtype):
    """1/s computed in `dtype`, as torch's kernels compute inv_scale = 1.0f / scale."""
    return np.asarray(1, dtype) / np.asarray(s, dtype)


def reference(x, s, z, qmin, qmax):
    """(x̂, mask) by the formula: (clamp(rint(x·(1/s)) + z, qmin, qmax) − z)·s, mask = code in range."""
    code = np.rint(x * reciprocal(s, x.dtype)) + z
    return (np.clip(code, qmin, qmax) - z) * s, ((code >= qmin) & (code <= qmax)).astype(x.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_gradient_match_the_formula(device, dtype):
    x = (rng.standard_normal((3, 5, 7)) * 2).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    xt = leaf(x, device)
    y = fake_quant(xt, 0.1, 3, -8, 7)
    y.backward(const(g, device))
    expected, mask = reference(x, dtype(0.1), 3, -8, 7)
    assert y.dtype == xt.dtype
    np.testing.assert_array_equal(host(y), expected)
    np.testing.assert_array_equal(host(xt.grad), g * mask)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_outputs_lie_on_a_grid_of_at_most_2_to_the_bits_levels(bits, signed):
    qmin, qmax = qrange(bits, signed)
    s, z = 0.37, (qmin + qmax) // 2
    x = rng.uniform((qmin - 3 - z) * s, (qmax + 3 - z) * s, 5000)
    y = host(fake_quant(const(x), s, z, qmin, qmax))
    codes = y / s + z
    np.testing.assert_allclose(codes, np.rint(codes), atol=1e-9)
    assert codes.min() >= qmin - 1e-9 and codes.max() <= qmax + 1e-9
    assert len(np.unique(y)) <= 2**bits


def test_fake_quant_is_idempotent():
    x = const(rng.standard_normal(1000) * 3)
    once = fake_quant(x, 0.25, -2, -8, 7)
    np.testing.assert_array_equal(host(fake_quant(once, 0.25, -2, -8, 7)), host(once))


def test_error_is_at_most_half_a_step_inside_the_range():
    s, z, qmin, qmax = 0.3, 2, -8, 7
    x = rng.uniform((qmin - z) * s, (qmax - z) * s, 5000)
    y = host(fake_quant(const(x), s, z, qmin, qmax))
    assert np.abs(y - x).max() <= s / 2 + 1e-12


def test_ste_gradient_is_upstream_times_mask():
    s, z, qmin, qmax = 0.5, 1, -4, 3
    x = np.array([-3.3, -2.76, -2.74, -1.0, 0.2, 1.24, 1.26, 1.8, 2.5])
    g = rng.standard_normal(x.shape)
    xt = leaf(x)
    fake_quant(xt, s, z, qmin, qmax).backward(const(g))
    # codes rint(x/s) + 1: -6 (clipped), -5 (x/s = -5.52: out), -4 (-5.48 rounds to -5, +1: in) ...
    mask = np.array([0, 0, 1, 1, 1, 1, 0, 0, 0], dtype=float)
    np.testing.assert_array_equal(host(xt.grad), g * mask)


def test_mask_uses_the_rounded_unclamped_code_like_torch():
    """x/s + z in (qmax, qmax + 0.5) rounds to qmax: inside, gradient 1 (not the clamp of x/s + z)."""
    xt = leaf([3.2, 3.6, -4.4, -4.6])
    fake_quant(xt, 1.0, 0, -4, 3).sum().backward()
    np.testing.assert_array_equal(host(xt.grad), [1, 0, 1, 0])


def _conv_weight_grad(weight, x, bits, scale=None):
    qmin, qmax = qrange(bits)
    w = leaf(weight)
    if scale is None:
        scale, zero = minmax_qparams(np, weight.min(), weight.max(), qmin, qmax)
        scale, zero = float(scale), int(zero)
    else:
        zero = 0
    mq.conv2d(const(x), fake_quant(w, scale, zero, qmin, qmax)).sum().backward()
    return host(w.grad)


def test_ste_weight_gradient_is_identical_across_bits_when_the_mask_is_all_ones():
    weight, x = rng.standard_normal((1, 1, 3, 3)), rng.standard_normal((1, 1, 4, 4))
    np.testing.assert_array_equal(_conv_weight_grad(weight, x, 8), _conv_weight_grad(weight, x, 2))


def test_ste_weight_gradient_differs_across_bits_when_the_mask_is_not_all_ones():
    weight, x = rng.standard_normal((1, 1, 3, 3)), rng.standard_normal((1, 1, 4, 4))
    scale = float(np.abs(weight).max()) / 127  # the 8-bit scale, kept at 2 bits: codes beyond [-2, 1] clip
    grad8, grad2 = _conv_weight_grad(weight, x, 8, scale), _conv_weight_grad(weight, x, 2, scale)
    assert not np.array_equal(grad8, grad2)
    assert (grad2 == 0).any() and not (grad8 == 0).any()


@pytest.mark.parametrize("shape, axis", [((4, 3, 5), 0), ((2, 4, 5), 1), ((2, 3, 4), 2), ((2, 3, 4), -1)])
def test_per_channel_equals_per_tensor_applied_per_slice(shape, axis):
    x = rng.standard_normal(shape) * 2
    g = rng.standard_normal(shape)
    channels = shape[axis]
    scales = rng.uniform(0.1, 0.5, channels)
    zeros = rng.integers(-3, 4, channels)
    xt = leaf(x)
    y = fake_quant(xt, const(scales), const(zeros), -8, 7, axis=axis)
    y.backward(const(g))
    for c in range(channels):
        piece = leaf(np.take(x, c, axis=axis))
        expected = fake_quant(piece, float(scales[c]), int(zeros[c]), -8, 7)
        expected.backward(const(np.take(g, c, axis=axis)))
        np.testing.assert_array_equal(np.take(host(y), c, axis=axis), host(expected))
        np.testing.assert_array_equal(np.take(host(xt.grad), c, axis=axis), host(piece.grad))


def test_tensor_parameters_of_one_element_and_non_contiguous_input():
    x = rng.standard_normal((6, 8))[:, ::2].T  # non-contiguous view
    expected, _ = reference(x, 0.2, 1, -8, 7)
    for scale, zero in [(const([0.2]), const([1])), (const(0.2), const(1.0))]:
        np.testing.assert_array_equal(host(fake_quant(const(x), scale, zero, -8, 7)), expected)


def test_nan_input_gives_nan_output_and_zero_gradient():
    xt = leaf([np.nan, 0.3])
    y = fake_quant(xt, 0.1, 0, -8, 7)
    y.sum().backward()
    assert np.isnan(host(y)[0])
    np.testing.assert_array_equal(host(xt.grad), [0.0, 1.0])


def test_round_ste_rounds_half_to_even_with_identity_gradient(device):
    xt = leaf([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.7], device)
    y = round_ste(xt)
    y.backward(const([1.0, 2, 3, 4, 5, 6, 7], device))
    np.testing.assert_array_equal(host(y), [-2, -2, -0, 0, 2, 2, 1])
    np.testing.assert_array_equal(host(xt.grad), [1, 2, 3, 4, 5, 6, 7])


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("args, kwargs, error, match", [
    ((0.1, 0, 7, 7), {}, ValueError, "fake_quant: qmin must be less than qmax, got qmin=7, qmax=7"),
    ((0.1, 0, 8, -8), {}, ValueError, "qmin must be less than qmax"),
    ((0.0, 0, -8, 7), {}, ValueError, "fake_quant: scale must be positive and finite, got 0.0"),
    ((-0.5, 0, -8, 7), {}, ValueError, "scale must be positive"),
    ((0.1, 0.5, -8, 7), {}, ValueError, "fake_quant: zero_point must be an integer, got 0.5"),
    ((0.1, 0, -8.0, 7), {}, TypeError, "fake_quant: qmin must be an int"),
    ((0.1, 0, -8, 7), {"axis": 3}, IndexError, r"fake_quant: dimension 3 is out of range for a tensor of 3 dims"),
    ((0.1, 0, -8, 7), {"axis": -4}, IndexError, r"fake_quant: dimension -4 is out of range"),
])
def test_bad_arguments_raise_clear_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fake_quant(const(np.zeros((2, 3, 4))), *args, **kwargs)


def test_bad_tensor_parameters_raise_clear_errors():
    x = const(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"per-channel scale must have shape \(3,\) .* got \(4,\)"):
        fake_quant(x, const(np.ones(4)), 0, -8, 7, axis=1)
    with pytest.raises(ValueError, match="per-tensor scale must have one element"):
        fake_quant(x, const(np.ones(3)), 0, -8, 7)
    with pytest.raises(ValueError, match="scale must be positive"):
        fake_quant(x, const([0.1, 0.0, 0.2]), 0, -8, 7, axis=1)
    with pytest.raises(ValueError, match=r"zero_point must hold integers \(a float zero point is accepted per channel"):
        fake_quant(x, 0.1, const([0.5]), -8, 7)
    with pytest.raises(ValueError, match="zero_point must lie between quant_min and quant_max"):
        fake_quant(x, 0.1, const([0.0, 7.5, 1.0]), -8, 7, axis=1)
    with pytest.raises(TypeError, match="fake_quant: expected a floating point input"):
        fake_quant(const(np.zeros(3, dtype=np.int64)), 0.1, 0, -8, 7)
    with pytest.raises(TypeError, match="fake_quant: expected a Tensor"):
        fake_quant(np.zeros(3), 0.1, 0, -8, 7)
    with pytest.raises(TypeError, match="round_ste: expected a floating point input"):
        round_ste(const(np.zeros(3, dtype=np.int64)))


@pytest.mark.parametrize("bits", [0, 17])
def test_bits_out_of_range_raise(bits):
    with pytest.raises(ValueError, match=f"bits must be between 1 and 16, got {bits}"):
        qrange(bits)


# ---------------------------------------------------------------- gradient specs (float64 gradcheck)
@pytest.mark.parametrize("function", [FakeQuant, RoundSTE])
@given(data=st.data())
def test_spec_gradcheck_against_the_reference(function, data):
    check_spec(spec_for(function), HypothesisDraw(data))


# ---------------------------------------------------------------- torch
def test_matches_torch_fake_quantize_per_tensor_affine():
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal(4000) * 3).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    for scale, zero, qmin, qmax in [(0.05, 3, -128, 127), (0.3, 0, 0, 15), (0.7, -1, -2, 1)]:
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.fake_quantize_per_tensor_affine(xt, scale, zero, qmin, qmax)
        yt.backward(torch.tensor(g))
        xm = leaf(x)
        ym = fake_quant(xm, scale, zero, qmin, qmax)
        ym.backward(const(g))
        np.testing.assert_allclose(host(ym), yt.detach().numpy(), rtol=0, atol=1e-6 * scale)
        np.testing.assert_array_equal(host(xm.grad), xt.grad.numpy())


def test_matches_torch_fake_quantize_per_channel_affine():
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((3, 4, 5, 6)) * 2).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    for axis in (0, 1, 3):
        channels = x.shape[axis]
        scales = rng.uniform(0.05, 0.4, channels).astype(np.float32)
        zeros = rng.integers(-4, 4, channels).astype(np.int32)
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.fake_quantize_per_channel_affine(xt, torch.tensor(scales), torch.tensor(zeros), axis, -8, 7)
        yt.backward(torch.tensor(g))
        xm = leaf(x)
        ym = fake_quant(xm, const(scales), const(zeros), -8, 7, axis=axis)
        ym.backward(const(g))
        np.testing.assert_allclose(host(ym), yt.detach().numpy(), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(host(xm.grad), xt.grad.numpy())


@pytest.mark.parametrize("axis", [None, 0])
def test_float16_is_computed_in_float32_and_rounded_once_as_torch_does(axis):
    x = (rng.standard_normal((4, 300)) * 3).astype(np.float16)
    x[0, :6] = [0.05, 0.15, 0.25, -0.35, 12.75, -12.85]  # ties of x/s for s = 0.1 in float32
    scale = 0.1 if axis is None else mq.tensor(np.array([0.1, 0.07, 0.2, 0.05], np.float16))
    zero = 3 if axis is None else mq.tensor(np.array([3, 0, -2, 5]))
    xt = mq.tensor(x, requires_grad=True)
    y = fake_quant(xt, scale, zero, -128, 127, axis)
    y.sum().backward()
    wide_scale = scale if axis is None else mq.tensor(scale.numpy().astype(np.float32))
    expected = fake_quant(mq.tensor(x.astype(np.float32)), wide_scale, zero, -128, 127, axis).numpy().astype(np.float16)
    assert y.dtype == mq.float16 and xt.grad.dtype == mq.float16
    np.testing.assert_array_equal(y.detach().numpy(), expected)
    torch = pytest.importorskip("torch")
    if axis is None:
        theirs = torch.fake_quantize_per_tensor_affine(torch.tensor(x), 0.1, 3, -128, 127)
    else:
        theirs = torch.fake_quantize_per_channel_affine(torch.tensor(x), torch.tensor(scale.numpy().astype(np.float32)),
                                                        torch.tensor(zero.numpy(), dtype=torch.int32), 0, -128, 127)
    np.testing.assert_array_equal(y.detach().numpy(), theirs.numpy())


# ---------------------------------------------------------------- torch's arithmetic (issue 17, items 10 and 11)
def ties(dtype, scale, count=64):
    """Values of `dtype` where rint(x·(1/s)) and rint(x/s) differ: x/s within an ulp of a half-integer."""
    near_ties = (np.arange(-400, 400) + 0.5) * np.float64(scale)
    candidates = np.concatenate([np.nextafter(near_ties.astype(dtype), np.inf * sign).astype(dtype)
                                 for sign in (-1, 1)] + [near_ties.astype(dtype)])
    s = np.asarray(scale, dtype)
    differ = np.rint(candidates * reciprocal(s, dtype)) != np.rint(candidates / s)
    assert differ.sum() >= 4, "the search found too few ties to test"
    return candidates[differ][:count]


def test_the_code_is_x_times_one_over_s_as_in_torch_not_x_over_s():
    """The issue's example: 16.549999237 / 0.1 rounds to 165, 16.549999237 · (1/0.1) to 166 in float32."""
    x = mq.tensor(np.array([16.549999237], np.float32))
    assert fake_quant(x, 0.1, 0, -1000, 1000).numpy()[0] == np.float32(166) * np.float32(0.1)
    for scale in (0.1, 0.3, 0.07):
        x = ties(np.float32, scale)
        expected, _ = reference(x, np.float32(scale), 0, -1000, 1000)
        assert not np.array_equal(expected, (np.clip(np.rint(x / np.float32(scale)), -1000, 1000)) * np.float32(scale))
        np.testing.assert_array_equal(fake_quant(mq.tensor(x), scale, 0, -1000, 1000).numpy(), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("axis", [None, 0])
def test_ties_give_torch_s_codes_per_tensor_and_per_channel(dtype, axis):
    torch = pytest.importorskip("torch")
    scales = np.array([0.1, 0.3, 0.07], np.float32)
    x = np.stack([ties(np.float32, s, count=32)[:32] for s in scales]).astype(dtype)
    x = np.concatenate([x, (rng.standard_normal((3, 200)) * 20).astype(dtype)], axis=1)
    g = rng.standard_normal(x.shape).astype(dtype)
    xm = mq.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    if axis is None:
        ym = fake_quant(xm, 0.1, 2, -128, 127)
        yt = torch.fake_quantize_per_tensor_affine(xt, 0.1, 2, -128, 127)
    else:
        ym = fake_quant(xm, mq.tensor(scales), mq.tensor(np.array([2, -1, 0])), -128, 127, axis=0)
        yt = torch.fake_quantize_per_channel_affine(xt, torch.tensor(scales), torch.tensor([2, -1, 0], dtype=torch.int32),
                                                    0, -128, 127)
    ym.backward(mq.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(ym.detach().numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(xm.grad.numpy(), xt.grad.numpy())


def float_zero_reference(x, s, z, qmin, qmax):
    """Per-channel float zero points (rows of x): code = rint(x·(1/s) + z), x̂ = (clamp(code) − z)·s with
    the last product in float64, rounded once; the mask: code within [qmin, qmax]."""
    code = np.rint(x * reciprocal(s, x.dtype)[:, None] + z.astype(x.dtype)[:, None])
    clamped = np.clip(code, qmin, qmax)
    y = ((clamped.astype(np.float64) - z[:, None]) * s.astype(x.dtype)[:, None]).astype(x.dtype)
    return y, ((code >= qmin) & (code <= qmax)).astype(x.dtype)


def test_per_channel_float_zero_points_follow_the_formula_and_torch():
    x = (rng.standard_normal((4, 500)) * 2).astype(np.float32)
    x[0, :8] = [0.15, 0.25, -0.35, 0.45, 1.05, -1.15, 0.7, -0.8]  # x·(1/s) + z near ties for s = 0.1, z = 0.3
    g = rng.standard_normal(x.shape).astype(np.float32)
    scales = np.array([0.1, 0.2177256, 0.37, 0.05], np.float32)
    zeros = np.array([0.3, -1.7, 2.5, 0.0], np.float32)
    xm = mq.tensor(x, requires_grad=True)
    ym = fake_quant(xm, mq.tensor(scales), mq.tensor(zeros), -8, 7, axis=0)
    ym.backward(mq.tensor(g))
    expected, mask = float_zero_reference(x, scales, zeros, -8, 7)
    np.testing.assert_array_equal(ym.detach().numpy(), expected)
    np.testing.assert_array_equal(xm.grad.numpy(), g * mask)
    assert not np.array_equal(expected, reference(x, scales[:, None], np.rint(zeros)[:, None], -8, 7)[0])
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.fake_quantize_per_channel_affine(xt, torch.tensor(scales), torch.tensor(zeros), 0, -8, 7)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(ym.detach().numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(xm.grad.numpy(), xt.grad.numpy())
