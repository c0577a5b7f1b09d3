"""mq.nn.init: gains and fans against hand-computed numbers, bounds and moments of the random fills,
in-place writes, reproducibility with mq.manual_seed, and errors."""

import math

import numpy as np
import pytest

import minigrad_q as mq
import minigrad_q.nn as nn
from minigrad_q.nn import init


def values(tensor):
    return tensor.detach().numpy().astype(np.float64)


# ---------------------------------------------------------------- gains and fans
@pytest.mark.parametrize(
    "nonlinearity, param, expected",
    [
        ("linear", None, 1.0),
        ("conv2d", None, 1.0),
        ("sigmoid", None, 1.0),
        ("tanh", None, 5 / 3),
        ("relu", None, math.sqrt(2)),
        ("leaky_relu", None, math.sqrt(2 / (1 + 0.01**2))),
        ("leaky_relu", math.sqrt(5), math.sqrt(1 / 3)),
        ("leaky_relu", 0, math.sqrt(2)),
        ("selu", None, 0.75),
    ],
)
def test_calculate_gain(nonlinearity, param, expected):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-15)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity gelu"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="negative_slope slope not a valid number"):
        init.calculate_gain("leaky_relu", "slope")


@pytest.mark.parametrize(
    "shape, fans",
    [
        ((120, 400), (400, 120)),  # Linear(400, 120): fan_in = in_features
        ((6, 1, 5, 5), (25, 150)),  # Conv2d(1, 6, 5): fan_in = 1·5·5, fan_out = 6·5·5
        ((16, 3, 3, 2), (18, 96)),  # grouped Conv2d(6, 16, (3, 2), groups=2): in/groups = 3
        ((4, 7, 2), (14, 8)),
    ],
)
def test_fan_in_and_fan_out(shape, fans):
    assert init._calculate_fan_in_and_fan_out(mq.empty(*shape)) == fans


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(mq.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported, please use one of fan_in, fan_out"):
        init.kaiming_uniform_(mq.empty(3, 3), mode="fan_avg")


# ---------------------------------------------------------------- random fills: bounds and moments
def assert_uniform(array, low, high):
    """Inside [low, high), reaching close to both ends, with the mean and variance of U(low, high)."""
    width = high - low
    assert array.min() >= low and array.max() < high
    assert array.min() < low + 0.01 * width and array.max() > high - 0.01 * width
    standard_error = width / math.sqrt(12 * array.size)
    assert abs(array.mean() - (low + high) / 2) < 5 * standard_error
    assert array.var() == pytest.approx(width**2 / 12, rel=0.05)


def assert_normal(array, mean, std):
    assert abs(array.mean() - mean) < 5 * std / math.sqrt(array.size)
    assert array.std() == pytest.approx(std, rel=0.05)
    assert abs(array - mean).max() > 3 * std  # really unbounded, not a uniform of the same variance


def test_uniform_and_normal():
    assert_uniform(values(init.uniform_(mq.empty(200, 100), -0.5, 2.0)), -0.5, 2.0)
    assert_uniform(values(init.uniform_(mq.empty(20000))), 0.0, 1.0)
    assert_normal(values(init.normal_(mq.empty(200, 100), 3.0, 0.5)), 3.0, 0.5)


def test_kaiming_uniform_bound_is_gain_times_sqrt_3_over_fan():
    weight = mq.empty(200, 50)
    init.kaiming_uniform_(weight, nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / 50)
    assert_uniform(values(weight), -bound, bound)
    init.kaiming_uniform_(weight, mode="fan_out", nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / 200)
    assert_uniform(values(weight), -bound, bound)


def test_kaiming_uniform_with_torch_default_a_gives_one_over_sqrt_fan_in():
    weight = mq.empty(64, 16, 3, 3)  # fan_in = 144
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    assert_uniform(values(weight), -1 / 12, 1 / 12)


def test_kaiming_normal_std():
    weight = mq.empty(300, 60)
    init.kaiming_normal_(weight, nonlinearity="relu")
    assert_normal(values(weight), 0.0, math.sqrt(2) / math.sqrt(60))


def test_xavier_uniform_and_normal():
    weight = mq.empty(100, 60, 2)  # fan_in 120, fan_out 200
    init.xavier_uniform_(weight, gain=2.0)
    bound = 2.0 * math.sqrt(6 / 320)
    assert_uniform(values(weight), -bound, bound)
    init.xavier_normal_(weight)
    assert_normal(values(weight), 0.0, math.sqrt(2 / 320))


def test_trunc_normal_stays_in_its_bounds():
    weight = init.trunc_normal_(mq.empty(100, 100), mean=1.0, std=2.0, a=0.0, b=2.5)
    array = values(weight)
    assert array.min() >= 0.0 and array.max() <= 2.5
    assert array.min() < 0.01 and array.max() > 2.49
    with pytest.raises(ValueError, match="expected a < b"):
        init.trunc_normal_(mq.empty(3), a=1.0, b=1.0)


def test_float64_and_float16_tensors_are_filled_in_their_dtype():
    weight = init.uniform_(mq.empty(50, 50, dtype=mq.float64), -1, 1)
    assert weight.dtype == mq.float64
    assert len(np.unique(values(weight))) == 2500
    half = init.normal_(mq.empty(10, dtype=mq.float16))
    assert half.dtype == mq.float16 and np.all(np.isfinite(values(half)))


# ---------------------------------------------------------------- deterministic fills
def test_constant_zeros_ones_eye():
    tensor = mq.empty(2, 3)
    np.testing.assert_array_equal(values(init.constant_(tensor, 0.25)), np.full((2, 3), 0.25))
    np.testing.assert_array_equal(values(init.zeros_(tensor)), np.zeros((2, 3)))
    np.testing.assert_array_equal(values(init.ones_(tensor)), np.ones((2, 3)))
    np.testing.assert_array_equal(values(init.eye_(tensor)), np.eye(2, 3))
    with pytest.raises(ValueError, match="only tensors with 2 dimensions"):
        init.eye_(mq.empty(2, 2, 2))


# ---------------------------------------------------------------- in place, no_grad, seeding
def test_fills_are_in_place_on_parameters_that_require_grad():
    param = nn.Parameter(mq.zeros(4, 5))
    array = param.data
    assert mq.is_grad_enabled()
    assert init.kaiming_uniform_(param) is param
    assert param.data is array and param.is_leaf and param.requires_grad and param.grad_fn is None
    assert np.any(values(param) != 0)


def test_manual_seed_makes_fills_reproducible_and_generator_overrides_it():
    mq.manual_seed(123)
    first = values(init.normal_(mq.empty(10)))
    mq.manual_seed(123)
    second = values(init.normal_(mq.empty(10)))
    third = values(init.normal_(mq.empty(10)))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(second, third)
    own = values(init.uniform_(mq.empty(5), generator=np.random.default_rng(7)))
    expected = np.random.default_rng(7).random(5, dtype=np.float32)
    np.testing.assert_array_equal(own, expected.astype(np.float64))


def test_errors_and_zero_element_tensors():
    with pytest.raises(TypeError, match="nn.init.uniform_: expected a floating point tensor, got dtype int64"):
        init.uniform_(mq.tensor([1, 2]))
    with pytest.raises(TypeError, match="nn.init.normal_: expected a Tensor, got list"):
        init.normal_([1.0])
    empty = mq.empty(0, 3)
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        assert init.kaiming_uniform_(empty) is empty


def test_matches_torch_formulas_when_torch_is_installed():
    torch = pytest.importorskip("torch")
    for shape in [(120, 400), (6, 1, 5, 5), (16, 3, 3, 2)]:
        assert init._calculate_fan_in_and_fan_out(mq.empty(*shape)) == torch.nn.init._calculate_fan_in_and_fan_out(
            torch.empty(*shape)
        )
    for name, param in [("tanh", None), ("relu", None), ("leaky_relu", 0.2), ("selu", None), ("conv2d", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))
