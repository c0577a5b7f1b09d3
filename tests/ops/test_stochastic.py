"""dropout: the kept fraction is 1 - p, kept values are scaled by 1/(1 - p), the gradient uses the same
mask, draws are reproducible with mq.manual_seed, eval / p = 0 is the identity, p = 1 zeros, errors."""

import numpy as np
import pytest
from helpers import const, host, leaf

import minigrad_q as mq

rng = np.random.default_rng(2024)  # not 0: mq.manual_seed(0) would draw masks from the same stream as x


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_a_fraction_one_minus_p_scaled_by_its_inverse(device, p):
    x_data = rng.random((200, 500)) + 1.0  # never 0, so a zero output means dropped
    y = host(mq.dropout(const(x_data, device), p))
    kept = y != 0
    n = kept.size
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)  # within 5 standard deviations
    np.testing.assert_allclose(y[kept], x_data[kept] / (1 - p), rtol=1e-12)
    assert abs(y.mean() - x_data.mean()) < 0.02  # the expectation is unchanged


def test_dropout_gradient_uses_the_forward_mask(device):
    x_data = rng.random((50, 40)) + 1.0
    x = leaf(x_data, device)
    y = mq.dropout(x, 0.3)
    g = rng.standard_normal(x_data.shape)
    y.backward(const(g, device))
    mask = host(y) / x_data  # 0 or 1/(1 - p)
    assert set(np.round(np.unique(mask), 12)) == {0.0, round(1 / 0.7, 12)}
    np.testing.assert_allclose(x.grad.numpy(), g * mask, rtol=1e-12)


def test_dropout_is_reproducible_with_manual_seed(device):
    x = const(rng.random((30, 30)) + 1.0, device)
    mq.manual_seed(123)
    first, second = host(mq.dropout(x, 0.5)), host(mq.dropout(x, 0.5))
    mq.manual_seed(123)
    again = host(mq.dropout(x, 0.5))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)  # successive draws differ


def test_dropout_in_eval_mode_or_with_p_zero_is_the_identity(device):
    x = leaf(rng.standard_normal((3, 4)), device)
    assert mq.dropout(x, 0.5, training=False) is x
    assert mq.dropout(x, 0.0) is x


def test_dropout_with_p_one_gives_zeros_and_zero_gradients(device):
    x = leaf(rng.standard_normal((3, 4)), device)
    y = mq.dropout(x, 1.0)
    np.testing.assert_array_equal(host(y), np.zeros((3, 4)))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 4)))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_dropout_keeps_the_dtype(device, dtype):
    x = mq.ones(64, 64, dtype=dtype, device=device, requires_grad=True)
    y = mq.dropout(x, 0.5)
    y.sum().backward()
    assert y.dtype == x.dtype and x.grad.dtype == x.dtype
    assert set(np.unique(host(y)).tolist()) == {0.0, 2.0}


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True, None])
def test_dropout_refuses_a_probability_outside_zero_one(p):
    with pytest.raises(ValueError, match=r"dropout: probability p must be a number between 0 and 1, got"):
        mq.dropout(mq.ones(3), p)


def test_dropout_refuses_integer_input():
    with pytest.raises(RuntimeError, match=r"dropout: expected a floating point input, got dtype int64"):
        mq.dropout(mq.tensor([1, 2, 3]), 0.5)
