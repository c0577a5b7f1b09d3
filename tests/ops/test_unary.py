"""Unary math and activations: forward against NumPy, gradients against the derivative written out in
NumPy, PyTorch's kink conventions, integer inputs, 0-d and zero-size inputs, numerical range."""

import math
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


_erfc = np.frompyfunc(math.erfc, 1, 1)


def normal_cdf_reference(x):
    """Φ(x) = ½·erfc(-x/√2) through math.erfc (relative precision also in the far left tail)."""
    return np.asarray(0.5 * _erfc(-np.asarray(x, dtype=np.float64) / math.sqrt(2)), dtype=np.float64)


def gelu_reference(x):
    return x * normal_cdf_reference(x)


def gelu_derivative(x):
    return normal_cdf_reference(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def gelu_tanh_reference(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def gelu_tanh_derivative(x):
    t = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x**2)


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
    "gelu": (mq.gelu, gelu_reference, gelu_derivative, (-6, 6)),
    "gelu_tanh": (lambda t: mq.gelu(t, approximate="tanh"), gelu_tanh_reference, gelu_tanh_derivative, (-6, 6)),
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


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "leaky_relu", "gelu", "gelu_tanh"])
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


# ---------------------------------------------------------------- gelu
# |x/√2| = 0.46875 and 4 are where the erfc approximation changes formula
_GELU_EDGES = [0.0, -0.0, 0.46875 * math.sqrt(2), -0.46875 * math.sqrt(2), 4 * math.sqrt(2), -4 * math.sqrt(2),
               1e-300, -1e-8, 10.0, -10.0, 40.0, -40.0]


def test_gelu_follows_the_normal_cdf_to_float64_precision(device):
    """y = x·Φ(x) and dy/dx = Φ(x) + x·φ(x) against math.erfc, in relative terms, tails included
    (down to x = -37, where y is still a normal float64, ~1e-298; the rounding of exp(-x²/2) there
    costs ~x²/2 ulps, 2.4e-13)."""
    x = np.concatenate([np.linspace(-37, 37, 1481), _GELU_EDGES, np.nextafter(_GELU_EDGES[2:6], 0)])
    t = leaf(x, device)
    y = mq.gelu(t)
    y.backward(const(np.ones_like(x), device))
    np.testing.assert_allclose(host(y), gelu_reference(x), rtol=4e-13, atol=0)
    np.testing.assert_allclose(t.grad.numpy(), gelu_derivative(x), rtol=4e-13, atol=1e-300)
    middle = np.abs(x) < 3  # a few ulps where most activations live
    np.testing.assert_allclose(host(y)[middle], gelu_reference(x[middle]), rtol=5e-15, atol=1e-300)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(2, 3), (), (0, 4), (3, 1, 5)])
def test_gelu_matches_torch(approximate, shape):
    torch = pytest.importorskip("torch")
    x = rng.uniform(-7, 7, shape)
    if x.size >= len(_GELU_EDGES):
        x.reshape(-1)[:len(_GELU_EDGES)] = _GELU_EDGES
    grad_output = rng.standard_normal(shape)
    ours = leaf(x, "cpu")
    mq.gelu(ours, approximate).backward(const(grad_output, "cpu"))
    theirs = torch.tensor(x, requires_grad=True)
    out = torch.nn.functional.gelu(theirs, approximate=approximate)
    out.backward(torch.tensor(grad_output))
    np.testing.assert_allclose(host(mq.gelu(const(x, "cpu"), approximate)), out.detach().numpy(), rtol=1e-13, atol=1e-15)
    # atol: torch's 1 + erf(x/√2) (and, with tanh, our 1 + tanh and 1 - tanh² too) cancel in the left tail
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-13, atol=2e-14)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_at_zero_and_far_out(device, approximate):
    x = np.array([0.0, -40.0, 40.0])
    np.testing.assert_array_equal(host(mq.gelu(const(x, device), approximate)), [0.0, -0.0, 40.0])
    np.testing.assert_array_equal(gradient(lambda t: mq.gelu(t, approximate), x, device), [0.5, 0.0, 1.0])


def test_gelu_exact_and_tanh_forms_differ_little_but_do_differ(device):
    x = const(np.linspace(-4, 4, 81), device)
    difference = np.abs(host(mq.gelu(x)) - host(mq.gelu(x, approximate="tanh")))
    assert 1e-4 < difference.max() < 1e-3  # the tanh form is an approximation (max gap about 4.7e-4)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_in_half_precision_is_computed_in_float32(device, approximate):
    x = np.linspace(-6, 6, 49)
    t = leaf(x.astype(np.float16), device)
    y = mq.gelu(t, approximate)
    y.backward(const(np.ones(49, np.float16), device))
    assert y.dtype == mq.float16 and t.grad.dtype == mq.float16
    forward, derivative = (gelu_reference, gelu_derivative) if approximate == "none" else (
        gelu_tanh_reference, gelu_tanh_derivative)
    x16 = x.astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(host(y).astype(np.float64), forward(x16), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(t.grad.numpy().astype(np.float64), derivative(x16), rtol=1e-3, atol=1e-3)


def test_gelu_refuses_an_unknown_approximation():
    with pytest.raises(RuntimeError, match=r"gelu: approximate argument must be either 'none' or 'tanh', got 'erf'"):
        mq.gelu(mq.zeros(2), approximate="erf")
