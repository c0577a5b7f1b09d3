"""examples/ste_vs_dsq.py, the seed experiment: each claim it prints is asserted here."""

import pathlib
import runpy

import numpy as np
import pytest

import minigrad_q as mq

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "ste_vs_dsq.py"


@pytest.fixture(scope="module")
def demo():
    return runpy.run_path(str(EXAMPLE))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ste_gradient_is_the_same_at_8_and_2_bits(demo, seed):
    g8, g2 = demo["weight_gradient"]("ste", 8, seed=seed), demo["weight_gradient"]("ste", 2, seed=seed)
    np.testing.assert_array_equal(g8, g2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ste_gradient_with_minmax_scale_is_the_float_gradient(demo, seed):
    mq.manual_seed(seed)
    x = mq.randn(1, 1, 4, 4)
    weight = mq.randn(1, 1, 3, 3, requires_grad=True)
    mq.conv2d(x, weight).sum().backward()
    np.testing.assert_array_equal(demo["weight_gradient"]("ste", 2, seed=seed), weight.grad.numpy())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dsq_gradient_differs_between_8_and_2_bits(demo, seed):
    g8, g2 = demo["weight_gradient"]("dsq", 8, seed=seed), demo["weight_gradient"]("dsq", 2, seed=seed)
    assert not np.allclose(g8, g2, rtol=1e-3, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ste_gradient_with_a_fixed_scale_differs_because_the_mask_shrinks(demo, seed):
    fixed = demo["scale_8bit"](seed)
    g8, g2 = demo["weight_gradient"]("ste", 8, fixed, seed=seed), demo["weight_gradient"]("ste", 2, fixed, seed=seed)
    assert not np.array_equal(g8, g2)
    clipped = (g2 == 0) & (g8 != 0)
    assert clipped.any()
    np.testing.assert_array_equal(g2[~clipped], g8[~clipped])  # only the clipped weights changed
