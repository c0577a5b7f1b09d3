"""PACT: forward values (== fake_quant on the grid α/n), the x and alpha gradients as stated (with the
boundary points), the round-frozen reference, alpha really trains (both directions), errors."""

import numpy as np
import pytest
from helpers import const, host, leaf
from hypothesis import given
from hypothesis import strategies as st

import minigrad_q as mq
from minigrad_q.quant.fake_quant import fake_quant
from minigrad_q.quant.pact import PACT, pact, pact_surrogate
from minigrad_q.specs import spec_for
from minigrad_q.testing import HypothesisDraw, check_spec

rng = np.random.default_rng(5)


@given(st.data())
def test_gradient_matches_finite_differences_of_the_clip_with_rounding_frozen(data):
    check_spec(spec_for(PACT), HypothesisDraw(data))


def test_forward_matches_the_numpy_formula(device):
    x = rng.uniform(-1, 4, (6, 7))
    alpha, n = 2.5, 2**3 - 1
    step = alpha / n
    np.testing.assert_array_equal(host(pact(const(x, device), alpha, 3)), np.rint(np.clip(x, 0, alpha) / step) * step)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_forward_equals_fake_quant_with_scale_alpha_over_n(bits):
    x = rng.uniform(-1, 4, 1000).astype(np.float32)
    alpha = mq.tensor([2.3], dtype=mq.float32)
    n = 2**bits - 1
    expected = fake_quant(const(x), alpha / n, 0, 0, n)
    np.testing.assert_array_equal(host(pact(const(x), alpha, bits)), host(expected))


@pytest.mark.parametrize("bits", [1, 2, 3, 5])
def test_outputs_take_at_most_two_to_the_bits_levels(bits):
    y = host(pact(const(np.linspace(-1, 5, 4001)), 3.0, bits))
    assert len(np.unique(y)) == 2**bits
    assert y.min() == 0 and y.max() == 3.0


def test_x_gradient_is_upstream_where_zero_le_x_lt_alpha(device):
    x = leaf([-0.5, 0.0, 0.7, 1.999, 2.0, 3.5], device)
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    pact(x, 2.0, 4).backward(const(g, device))
    np.testing.assert_array_equal(x.grad.numpy(), g * [0, 1, 1, 1, 0, 0])  # x = 0 passes, x = α goes to α


def test_alpha_gradient_is_the_sum_of_upstream_where_x_ge_alpha(device):
    x = const([-0.5, 0.0, 0.7, 1.999, 2.0, 3.5, 9.0], device)
    alpha = leaf([2.0], device)
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -0.25])
    pact(x, alpha, 4).backward(const(g, device))
    np.testing.assert_array_equal(alpha.grad.numpy(), [5.0 + 6.0 - 0.25])
    assert alpha.grad.shape == (1,)


def test_alpha_gradient_on_a_large_input_sums_in_chunks():
    x = rng.uniform(-1, 3, 300_000).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    alpha = mq.tensor(1.5, dtype=mq.float32, requires_grad=True)
    pact(const(x), alpha, 4).backward(const(g))
    assert alpha.grad.shape == ()
    np.testing.assert_allclose(float(alpha.grad.numpy()), g[x >= np.float32(1.5)].astype(np.float64).sum(), rtol=1e-5)


def test_autograd_through_the_surrogate_equals_pact():
    x = rng.uniform(-1, 4, (5, 5))
    g = rng.standard_normal(x.shape)
    results = []
    for fn in (pact, pact_surrogate):
        x_t, alpha = leaf(x), leaf([2.2])
        y = fn(x_t, alpha, 3)
        y.backward(const(g))
        results.append([host(y), x_t.grad.numpy(), alpha.grad.numpy()])
    for ours, reference in zip(*results):
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("start, target_clip, moves", [(1.0, None, "up"), (3.0, 2.0, "down")])
def test_alpha_really_trains(start, target_clip, moves):
    """SGD on ‖pact(x, α) − target‖²: α moves towards the clip the target needs (MQBench's never moves)."""
    x = const(rng.uniform(0, 4, 4000))
    target = x if target_clip is None else x.clamp(0.0, target_clip)
    alpha = mq.nn.Parameter(mq.tensor([start]))
    optimizer = mq.optim.SGD([alpha], lr=0.5)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = ((pact(x, alpha, 4) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
    final = float(alpha.data[0])
    if moves == "up":
        assert final > 3.0
    else:
        assert abs(final - 2.0) < 0.2
    assert losses[-1] < 0.2 * losses[0]


def test_alpha_as_a_number_gets_no_gradient_and_x_still_does():
    x = leaf([0.5, 3.0])
    pact(x, 2.0, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0])


def test_bad_input_errors():
    x = const([0.5, 1.0])
    with pytest.raises(ValueError, match=r"pact: alpha must be positive and finite, got 0"):
        pact(x, 0.0, 4)
    with pytest.raises(ValueError, match=r"pact: alpha must be positive and finite, got \[-1.0\]"):
        pact(x, const([-1.0]), 4)
    with pytest.raises(ValueError, match=r"pact: per-tensor alpha must have one element, got shape \(2,\)"):
        pact(x, const([1.0, 2.0]), 4)
    for bits in (0, 17):
        with pytest.raises(ValueError, match=rf"pact: bits must be between 1 and 16, got {bits}"):
            pact(x, 1.0, bits)
    with pytest.raises(TypeError, match=r"pact: expected a floating point tensor, got dtype int64"):
        pact(mq.tensor([1, 2]), 1.0, 4)
