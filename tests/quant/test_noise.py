"""Quant-Noise: p = 0 is the identity, p = 1 and eval mode equal fake_quant, the noised fraction ≈ p,
masks constant within blocks (Linear and Conv layouts), the parameter is never modified, noised
out-of-range weights equal q(w), the bits given are the bits used, identity backward, seeded draws,
the gradient spec, errors."""

import numpy as np
import pytest
from helpers import const, host
from hypothesis import given
from hypothesis import strategies as st

import minigrad_q as mq
from minigrad_q.quant.fake_quant import fake_quant
from minigrad_q.quant.noise import QuantNoise, quant_noise, quant_noise_mask
from minigrad_q.quant.qparams import minmax_qparams, qrange
from minigrad_q.specs import spec_for
from minigrad_q.testing import HypothesisDraw, check_spec

rng = np.random.default_rng(2025)  # not 0: mq.manual_seed(0) draws the masks


def weight(shape, device="cpu", dtype=np.float32):
    return mq.tensor(rng.standard_normal(shape).astype(dtype), device=device, requires_grad=True)


def q_numpy(w, bits, signed=False):
    """fake_quant with the min/max qparams of w (range including 0), written out in NumPy in w's dtype."""
    qmin, qmax = qrange(bits, signed)
    lo, hi = min(w.min(), 0), max(w.max(), 0)
    scale = max((hi - lo) / w.dtype.type(qmax - qmin), w.dtype.type(2.0**-23))
    zero_point = int(np.clip(qmin - np.rint(lo / scale), qmin, qmax))
    return (np.clip(np.rint(w / scale) + zero_point, qmin, qmax) - zero_point) * scale


def same_bits(a, b):
    """Equal bit for bit (same dtype and shape; -0.0 and 0.0 differ)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    return a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def same_values(a, b):
    """Exactly equal values (same dtype and shape; -0.0 == 0.0)."""
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    return a.shape == b.shape and np.array_equal(a, b)


@given(st.data())
def test_gradient_spec_identity_backward(data):
    check_spec(spec_for(QuantNoise), HypothesisDraw(data))


def test_p_zero_is_the_identity(device):
    w = weight((16, 8), device)
    y = quant_noise(w, 0.0, 4)
    assert same_bits(host(y), host(w))
    mask = mq.zeros(16, 8, dtype=mq.bool_, device=device)
    assert same_bits(host(quant_noise(w, 0.3, 4, mask=mask)), host(w))  # an all-false mask too


@pytest.mark.parametrize("bits, signed", [(8, False), (4, True), (2, False), (1, True)])
def test_p_one_equals_fake_quant(device, bits, signed):
    w = weight((32, 12, 3, 3), device)
    y = quant_noise(w, 1.0, bits, signed=signed)
    qmin, qmax = qrange(bits, signed)
    scale, zero_point = minmax_qparams(np, host(w).min(), host(w).max(), qmin, qmax)
    expected = fake_quant(w, const(scale, device), const(zero_point, device), qmin, qmax)
    assert same_bits(host(y), host(expected))
    assert same_values(host(y), q_numpy(host(w), bits, signed))
    all_noised = mq.ones(32, 12, dtype=mq.bool_, device=device)  # the select path, not the eval path
    assert same_bits(host(quant_noise(w, 0.3, bits, mask=all_noised, signed=signed)), host(expected))


def test_eval_mode_quantizes_every_element(device):
    w = weight((20, 30), device)
    for p in (0.0, 0.5):
        assert same_values(host(quant_noise(w, p, 4, training=False)), q_numpy(host(w), 4))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_the_noised_fraction_is_p_within_five_sigma(p):
    w = weight((400, 500))
    noised = host(quant_noise(w, p, 8)) != host(w)  # at 8 bits q(w) != w for almost every element
    changed_by_q = q_numpy(host(w), 8) != host(w)
    n = changed_by_q.sum()
    assert n > 0.99 * w.numel()
    fraction = noised[changed_by_q].mean()
    assert abs(fraction - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_mask_grid_fraction_is_p_within_five_sigma():
    mask = host(quant_noise_mask((300, 400), 0.3, 1))
    assert mask.dtype == np.bool_ and mask.shape == (300, 400)
    assert abs(mask.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / mask.size)
    everything = host(quant_noise_mask((30, 40, 3, 3), 1.0, 4))
    assert everything.shape == (30, 10) and everything.all()
    assert not host(quant_noise_mask((7,), 0.0)).any()


@pytest.mark.parametrize("shape, block_size, block_shape", [
    ((12, 16), 4, (1, 4)),            # Linear (O, I): runs of 4 in-features
    ((8, 6, 3, 3), 2, (1, 2, 3, 3)),  # Conv (O, I, kh, kw): 2 in-channels with their whole kernels
    ((8, 6, 3, 3), 1, (1, 1, 3, 3)),  # Conv, block_size 1: one whole kernel
])
def test_masks_are_constant_within_blocks(shape, block_size, block_shape):
    w = weight(shape)
    mask = quant_noise_mask(shape, 0.5, block_size)
    assert mask.shape == (shape[0], shape[1] // block_size)
    y = host(quant_noise(w, 0.5, 4, block_size, mask=mask))
    expected_mask = np.kron(host(mask).reshape(mask.shape + (1,) * (len(shape) - 2)), np.ones(block_shape)).astype(bool)
    assert expected_mask.shape == shape
    q = q_numpy(host(w), 4)
    assert same_values(y, np.where(expected_mask, q, host(w)))
    # and from a random draw: within each block, all elements noised or none (where q(w) != w)
    drawn = host(quant_noise(w, 0.5, 4, block_size)) != host(w)
    blocks = drawn.reshape(shape[0], shape[1] // block_size, -1)
    assert np.all(blocks.all(axis=2) | ~blocks.any(axis=2) | (q == host(w)).reshape(blocks.shape).any(axis=2))


def test_the_parameter_is_unchanged_after_a_training_forward(device):
    w = mq.nn.Parameter(weight((24, 16), device))
    buffer, before = w.data, host(w).copy()
    y = quant_noise(w, 0.5, 2, block_size=4)
    y.sum().backward()
    assert w.data is buffer and same_bits(host(w), before)
    assert not same_bits(host(y), before)  # something was noised


def test_noised_out_of_range_elements_equal_q_of_w_exactly(device):
    w_data = np.linspace(-3, 3, 601).astype(np.float32)
    w = const(w_data, device)
    scale, zero_point = 0.05, 8  # 4-bit unsigned: the clip range is [-0.4, 0.35]
    y = host(quant_noise(w, 1.0, 4, scale=scale, zero_point=zero_point))
    outside = (w_data < -0.4) | (w_data > 0.35)
    assert outside.sum() > 500
    expected = (np.clip(np.rint(w_data / np.float32(scale)) + zero_point, 0, 15) - zero_point) * np.float32(scale)
    assert same_values(y, expected)
    assert set(np.unique(y[outside]).tolist()) == {np.float32(-0.4), np.float32(0.35)}  # clipped, not mirrored
    mask = const(rng.random(601) < 0.5, device)
    partial = host(quant_noise(w, 0.5, 4, mask=mask, scale=const([scale], device), zero_point=zero_point))
    assert same_values(partial, np.where(host(mask), expected, w_data))


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_the_bits_given_are_the_bits_used(bits):
    dense = const(np.linspace(-1, 2, 20_000).astype(np.float32))
    assert len(np.unique(host(quant_noise(dense, 1.0, bits)))) == 2**bits
    sparse = weight((64, 64))
    assert len(np.unique(host(quant_noise(sparse, 1.0, bits, signed=True)))) <= 2**bits


def test_backward_is_the_identity(device):
    w = weight((10, 12), device, np.float64)
    g = rng.standard_normal((10, 12))
    quant_noise(w, 0.5, 3, block_size=3).backward(const(g, device))
    np.testing.assert_array_equal(w.grad.numpy(), g)
    w.grad = None
    quant_noise(w, 0.5, 3, training=False).backward(const(g, device))
    np.testing.assert_array_equal(w.grad.numpy(), g)


def test_draws_are_reproducible_with_manual_seed(device):
    w = weight((50, 40), device)
    mq.manual_seed(7)
    first, second = host(quant_noise(w, 0.5, 4)), host(quant_noise(w, 0.5, 4))
    mq.manual_seed(7)
    again = host(quant_noise(w, 0.5, 4))
    assert same_bits(first, again) and not same_bits(first, second)
    mq.manual_seed(7)
    mask = host(quant_noise_mask((50, 40), 0.5, 1, device))
    assert same_values(first, np.where(mask, q_numpy(host(w), 4), host(w)))


def test_large_weight_matches_the_numpy_expression():
    w = weight((512, 1100))  # several chunks, two threads
    mask = quant_noise_mask((512, 1100), 0.3, 4)
    y = host(quant_noise(w, 0.3, 6, 4, mask=mask))
    expanded = np.repeat(host(mask), 4, axis=1)
    assert same_values(y, np.where(expanded, q_numpy(host(w), 6), host(w)))


def test_non_contiguous_weight_and_vectors():
    w = weight((8, 6))
    y = quant_noise(w.T, 1.0, 4)
    assert same_values(host(y), q_numpy(host(w).T, 4))
    v = weight((10,))
    assert same_values(host(quant_noise(v, 1.0, 3)), q_numpy(host(v), 3))


def test_bad_input_errors():
    w = weight((6, 8))
    for p in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match=r"quant_noise: noise probability p must be a number between 0 and 1"):
            quant_noise(w, p, 4)
    with pytest.raises(ValueError, match=r"quant_noise: block_size 3 does not divide dim 1 .* of size 8 of the weight \(6, 8\)"):
        quant_noise(w, 0.5, 4, block_size=3)
    with pytest.raises(ValueError, match=r"quant_noise: a weight of shape \(10,\) .* block_size must be 1, got 2"):
        quant_noise(weight((10,)), 0.5, 4, block_size=2)
    with pytest.raises(ValueError, match=r"quant_noise: block_size must be positive, got 0"):
        quant_noise(w, 0.5, 4, block_size=0)
    for bits in (0, 17):
        with pytest.raises(ValueError, match=rf"quant_noise: bits must be between 1 and 16, got {bits}"):
            quant_noise(w, 0.5, bits)
    with pytest.raises(ValueError, match=r"quant_noise: mask must have the block-grid shape \(6, 4\) .* got \(6, 8\)"):
        quant_noise(w, 0.5, 4, block_size=2, mask=mq.ones(6, 8, dtype=mq.bool_))
    with pytest.raises(TypeError, match=r"quant_noise: mask must be a bool Tensor .* got a float32 Tensor"):
        quant_noise(w, 0.5, 4, mask=mq.ones(6, 8))
    with pytest.raises(ValueError, match=r"quant_noise: scale must be positive and finite, got -0.1"):
        quant_noise(w, 0.5, 4, scale=-0.1)
    with pytest.raises(ValueError, match=r"quant_noise: zero_point=3 was given without a scale"):
        quant_noise(w, 0.5, 4, zero_point=3)
    with pytest.raises(ValueError, match=r"quant_noise_mask: block_size 5 does not divide dim 1"):
        quant_noise_mask((6, 8), 0.5, 5)
    with pytest.raises(ValueError, match=r"quant_noise_mask: noise probability p must be a number between 0 and 1, got 2"):
        quant_noise_mask((6, 8), 2, 1)
