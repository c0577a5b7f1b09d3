"""Unary math and activations: forward against NumPy, gradients against the derivative written out in
NumPy, PyTorch's kink conventions, integer inputs, 0-d and zero-size inputs, numerical range."""

import warnings

import numpy as np
import pytest
from helpers import const, host, leaf

import minigrad_q as mq

rng = np.random.default_rng(0)


def gradient(op, x, device, grad_output=None):
    """x.grad after op(x).backward(grad_output)."""
    t = leaf(x, device)
    grad_output = np.ones(np.shape(x)) if grad_output is None else grad_output
    op(t).backward(const(grad_output, device, dtype=t.dtype))
    return t.grad.numpy()


def sigmoid_reference(x):
    return np.exp(-np.logaddexp(0, -x))  # 1 / (1 + exp(-x)) without overflow


# op, NumPy forward, NumPy derivative, input range (low, high)
UNARY = {
    "exp": (mq.exp, np.exp, np.exp, (-3, 3)),
    "log": (mq.log, np.log, lambda x: 1 / x, (0.1, 4)),
    "sqrt": (mq.sqrt, np.sqrt, lambda x: 0.5 / np.sqrt(x), (0.1, 4)),
    "abs": (mq.abs, np.abs, np.sign, (-3, 3)),
    "sign": (mq.sign, np.sign, np.zeros_like, (-3, 3)),
    "sin": (mq.sin, np.sin, np.cos, (-4, 4)),
    "cos": (mq.cos, np.cos, lambda x: -np.sin(x), (-4, 4)),
    "tanh": (mq.tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2, (-4, 4)),
    "sigmoid": (mq.sigmoid, sigmoid_reference, lambda x: sigmoid_reference(x) * (1 - sigmoid_reference(x)), (-6, 6)),
    "relu": (mq.relu, lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0, (-3, 3)),
    "leaky_relu": (mq.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), lambda x: np.where(x > 0, 1, 0.01), (-3, 3)),
}


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", [(2, 3), (), (0, 4)])
def test_forward_and_gradient_match_numpy(device, name, shape):
    op, forward, derivative, (low, high) = UNARY[name]
    x = rng.uniform(low, high, shape)
    grad_output = rng.standard_normal(shape)
    y = op(const(x, device))
    assert y.shape == shape and y.dtype == mq.float64
    np.testing.assert_allclose(host(y), forward(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gradient(op, x, device, grad_output), grad_output * derivative(x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", UNARY)
def test_float32_stays_float32(device, name):
    op, forward, derivative, (low, high) = UNARY[name]
    x = rng.uniform(low, high, (5,)).astype(np.float32)
    t = leaf(x, device)
    y = op(t)
    assert y.dtype == mq.float32
    np.testing.assert_allclose(host(y), forward(x.astype(np.float64)), rtol=2e-6, atol=1e-7)
    y.backward(const(np.ones(5, np.float32), device))
    assert t.grad.dtype == mq.float32


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "leaky_relu"])
def test_float_math_of_integers_gives_the_default_dtype(device, name):
    op, forward, _, _ = UNARY[name]
    y = op(const([1, 2, 3], device))
    assert y.dtype == mq.float32
    np.testing.assert_allclose(host(y), forward(np.array([1.0, 2.0, 3.0])), rtol=1e-6)


def test_integer_abs_relu_and_sign_keep_their_dtype(device):
    t = const([-2, 0, 3], device)
    assert mq.abs(t).dtype == mq.int64 and mq.relu(t).dtype == mq.int64 and mq.sign(t).dtype == mq.int64
    np.testing.assert_array_equal(mq.abs(t).numpy(), [2, 0, 3])
    np.testing.assert_array_equal(mq.relu(t).numpy(), [0, 0, 3])
    np.testing.assert_array_equal(mq.sign(t).numpy(), [-1, 0, 1])
    np.testing.assert_array_equal(mq.sign(const([True, False], device)).numpy(), [True, False])


# ---------------------------------------------------------------- kinks (PyTorch's conventions)
def test_relu_gradient_at_zero_is_zero(device):
    np.testing.assert_array_equal(gradient(mq.relu, [-1.0, 0.0, 2.0], device), [0.0, 0.0, 1.0])


def test_abs_gradient_at_zero_is_zero(device):
    np.testing.assert_array_equal(gradient(mq.abs, [-1.0, 0.0, 2.0], device), [-1.0, 0.0, 1.0])


def test_sign_gradient_is_zero_everywhere(device):
    np.testing.assert_array_equal(gradient(mq.sign, [-1.0, 0.0, 2.0], device), [0.0, 0.0, 0.0])


@pytest.mark.parametrize("slope", [0.01, 0.2, -0.5, 1.5])
def test_leaky_relu_gradient_at_zero_is_the_negative_slope(device, slope):
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(host(mq.leaky_relu(const(x, device), slope)), [-slope, 0.0, 2.0])
    np.testing.assert_allclose(gradient(lambda t: mq.leaky_relu(t, slope), x, device), [slope, slope, 1.0])


def test_sqrt_gradient_at_zero_is_inf(device):
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(gradient(mq.sqrt, [0.0, 4.0], device), [np.inf, 0.25])


# ---------------------------------------------------------------- numerical range
def test_sigmoid_saturates_without_overflow_warnings(device):
    x = np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = mq.sigmoid(leaf(x, device))
        y.backward(const(np.ones(5, np.float32), device))
    expected = sigmoid_reference(x.astype(np.float64)).astype(np.float32)
    if device == "cpu":
        assert 0.0 < expected[1] < 1e-43  # a float32 subnormal, as torch gives
    else:  # CuPy compiles its kernels with -ftz=true: float32 subnormal results are flushed to zero (cupy#8382)
        expected[np.abs(expected) < np.finfo(np.float32).tiny] = 0.0
    np.testing.assert_array_equal(host(y), expected)
    assert host(y)[0] == 0.0 and host(y)[-1] == 1.0


def test_sigmoid_matches_the_reference_to_float_precision(device):
    x = np.linspace(-30, 30, 601)
    np.testing.assert_allclose(host(mq.sigmoid(const(x, device))), sigmoid_reference(x), rtol=4e-15)
    x32 = x.astype(np.float32)  # relative precision holds far into the tail (sigmoid(-30) ~ 1e-13)
    np.testing.assert_allclose(host(mq.sigmoid(const(x32, device))), sigmoid_reference(x32.astype(np.float64)), rtol=3e-7)


def test_log_of_zero_and_negative(device):
    with np.errstate(divide="ignore", invalid="ignore"):
        y = host(mq.log(const([0.0, -1.0], device)))
    assert y[0] == -np.inf and np.isnan(y[1])


# ---------------------------------------------------------------- chains
def test_chain_of_activations_on_zero_dim_tensors(device):
    t = leaf(0.3, device)
    y = mq.sigmoid(mq.tanh(mq.cos(mq.sqrt(mq.exp(t)))))
    y.backward()
    s = np.sqrt(np.exp(0.3))
    inner = np.tanh(np.cos(s))
    expected = sigmoid_reference(inner) * (1 - sigmoid_reference(inner)) * (1 - inner**2) * -np.sin(s) * s / 2
    np.testing.assert_allclose(t.grad.numpy(), expected, rtol=1e-12)


def test_backward_leaves_the_output_gradient_untouched(device):
    for name in UNARY:
        op, _, _, (low, high) = UNARY[name]
        t = leaf(rng.uniform(low, high, (4,)), device)
        grad_output = const(rng.standard_normal(4), device)
        before = grad_output.numpy().copy()
        op(t).backward(grad_output)
        np.testing.assert_array_equal(grad_output.numpy(), before)


def test_activations_match_torch():
    torch = pytest.importorskip("torch")
    x = np.concatenate([rng.uniform(-5, 5, 20), [0.0]])
    for name in ("exp", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "sign", "leaky_relu"):
        ours = leaf(x, "cpu")
        theirs = torch.tensor(x, requires_grad=True)
        op = torch.nn.functional.leaky_relu if name == "leaky_relu" else getattr(torch, name)
        np.testing.assert_allclose(host(getattr(mq, name)(ours)), op(theirs).detach().numpy(), rtol=1e-12)
        getattr(mq, name)(ours).backward(const(np.ones(21), "cpu"))
        op(theirs).backward(torch.ones(21, dtype=torch.float64))
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-15, err_msg=name)
