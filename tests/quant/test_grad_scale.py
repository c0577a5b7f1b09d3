"""grad_scale: the value passes unchanged, the gradient is scaled (LSQ's gradient scale); DSQ's learned
scale takes it."""

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import quant


def test_value_unchanged_gradient_scaled():
    x = mq.tensor([0.5, -1.5, 2.0], dtype=mq.float64, requires_grad=True)
    y = quant.grad_scale(x, 0.25)
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy())
    (y * mq.tensor([1.0, 2.0, 3.0], dtype=mq.float64)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.25, 0.5, 0.75])


@pytest.mark.parametrize("g", [0, -1.0, True, "0.5"])
def test_the_factor_must_be_a_positive_number(g):
    with pytest.raises(ValueError, match="grad_scale: g must be a positive number"):
        quant.grad_scale(mq.tensor([1.0]), g)


def test_lsq_gradient_scale_is_one_over_the_root_of_elements_times_qmax():
    assert quant.lsq_gradient_scale(100, 4) == pytest.approx(1 / 20)
    assert quant.lsq_gradient_scale(0, 0) == 1.0


def test_dsq_learned_scale_gets_the_scaled_gradient():
    """The same batch through a DSQ quantizer with a learned scale: its scale's gradient is the plain dsq
    scale gradient times 1/sqrt(elements per channel · qmax)."""
    mq.manual_seed(0)
    x = mq.randn(8, 3, 4, 4, dtype=mq.float64)
    quantizer = quant.DSQQuantizer(4, signed=True, axis=1, learn_scale=True, learn_alpha=False, num_channels=3,
                                   dtype=mq.float64)
    quantizer(x).sum().backward()  # the first training batch initialises the scale, then quantizes
    scale = quantizer.scale.detach().requires_grad_()
    quant.dsq(x, scale, quantizer.zero_point, quantizer.qmin, quantizer.qmax, quantizer.alpha.detach(), 1).sum().backward()
    g = 1 / np.sqrt(8 * 4 * 4 * quantizer.qmax)
    np.testing.assert_allclose(quantizer.scale.grad.numpy(), scale.grad.numpy() * g, rtol=1e-12)
