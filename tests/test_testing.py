"""The drivers and strategies of minigrad_q.testing do what specs rely on."""

import inspect
import itertools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad_q as mq
import minigrad_q.testing as testing
from minigrad_q import Function, Tensor
from minigrad_q.gradcheck import GradcheckError
from minigrad_q.specs import GradSpec
from minigrad_q.testing import (
    HypothesisDraw,
    RandomDraw,
    all_function_subclasses,
    allowed_intervals,
    away_from,
    broadcastable_shapes,
    check_spec,
    shapes,
    tensors,
)


def values_of(t):
    return np.asarray(mq.backend.asnumpy(t.data), dtype=np.float64).reshape(-1)


def min_pairwise_gap(values):
    ordered = np.sort(values)
    return np.diff(ordered).min() if ordered.size > 1 else np.inf


# ---------------------------------------------------------------- value sets
def test_allowed_intervals():
    assert allowed_intervals(-2, 2) == [(-2, 2)]
    assert allowed_intervals(-2, 2, [0.0], 0.5) == [(-2, -0.5), (0.5, 2)]
    assert allowed_intervals(-2, 2, [0.0, 0.6], 0.5) == [(-2, -0.5), (1.1, 2)]  # overlapping holes merge
    assert allowed_intervals(0, 1, [5.0], 0.1) == [(0, 1)]
    assert allowed_intervals(0, 1, [0.0], 0.1) == [(0.1, 1)]
    assert allowed_intervals(0, 1, [0.5], 1.0) == []


# ---------------------------------------------------------------- RandomDraw
def test_random_draw_is_reproducible():
    first, second = RandomDraw(7), RandomDraw(7)
    assert first.shape() == second.shape()
    assert np.array_equal(values_of(first.tensor((3, 4))), values_of(second.tensor((3, 4))))


def test_random_draw_primitives_stay_in_bounds():
    draw = RandomDraw(0)
    for _ in range(100):
        assert 2 <= draw.integers(2, 5) <= 5
        assert -1.0 <= draw.floats(-1.0, 1.0) <= 1.0
        assert draw.choice(["a", "b"]) in ("a", "b")
        assert draw.boolean() in (True, False)
        shape = draw.shape(min_dims=1, max_dims=2, min_side=0, max_side=3)
        assert 1 <= len(shape) <= 2 and all(0 <= s <= 3 for s in shape)
    seen = {RandomDraw(seed).integers(0, 3) for seed in range(40)}
    assert seen == {0, 1, 2, 3}


@pytest.mark.parametrize("seed", range(20))
def test_tensor_honours_range_avoid_and_margin(seed):
    draw = RandomDraw(seed)
    t = draw.tensor((4, 5), low=-1.0, high=3.0, avoid=(0.0, 1.0, 2.0), margin=0.2)
    values = values_of(t)
    assert values.min() >= -1.0 and values.max() <= 3.0
    for point in (0.0, 1.0, 2.0):
        assert np.abs(values - point).min() >= 0.2 - 1e-12


@pytest.mark.parametrize("seed", range(20))
def test_tensor_distinct_values_are_margin_apart(seed):
    draw = RandomDraw(seed)
    values = values_of(draw.tensor((5, 6), low=-1.0, high=1.0, distinct=True, margin=0.05))
    assert min_pairwise_gap(values) >= 0.05 - 1e-12
    assert values.min() >= -1.0 and values.max() <= 1.0


def test_distinct_widens_a_range_too_small_for_the_margin():
    values = values_of(RandomDraw(0).tensor((30,), low=0.0, high=1.0, distinct=True, margin=0.1))
    assert min_pairwise_gap(values) >= 0.1 - 1e-12
    assert values.min() >= 0.0  # widened upwards only: a domain's lower bound (log, sqrt) is kept


def test_distinct_and_avoid_together():
    for seed in range(10):
        values = values_of(RandomDraw(seed).tensor((20,), avoid=(0.0,), margin=0.1, distinct=True))
        assert min_pairwise_gap(values) >= 0.1 - 1e-12
        assert np.abs(values).min() >= 0.1 - 1e-12


def test_tensor_dtype_requires_grad_and_device():
    draw = RandomDraw(0)
    t = draw.tensor((2, 3))
    assert t.dtype == mq.float64 and t.requires_grad and t.device == "cpu" and t.shape == (2, 3)
    assert not draw.tensor((2,), requires_grad=False).requires_grad
    t32 = draw.tensor((2,), dtype=mq.float32)
    assert t32.dtype == mq.float32
    ints = draw.tensor((5,), low=0, high=4, dtype=mq.int64)
    assert ints.dtype == mq.int64 and not ints.requires_grad and values_of(ints).min() >= 0
    assert draw.tensor(()).shape == ()
    assert draw.tensor((0, 3)).shape == (0, 3)


def test_tensor_on_device(device):
    t = RandomDraw(0, device=device).tensor((3, 4))
    assert t.device.startswith(device)


def test_non_contiguous_tensors_appear_with_the_same_kind_of_values():
    layouts = set()
    for seed in range(60):
        t = RandomDraw(seed).tensor((3, 4), low=0.5, high=1.5)
        values = values_of(t)
        assert np.isfinite(values).all() and values.min() >= 0.5 and values.max() <= 1.5
        if t.data.flags.c_contiguous:
            layouts.add("contiguous")
        elif t.data.flags.f_contiguous:
            layouts.add("transposed")
        else:
            layouts.add("strided")
    assert layouts == {"contiguous", "transposed", "strided"}


def test_non_contiguous_only_for_two_or_more_dims():
    for seed in range(30):
        assert RandomDraw(seed).tensor((6,)).data.flags.c_contiguous


def broadcast_direction(shape, other):
    full = np.broadcast_shapes(shape, other)  # raises if they do not broadcast
    return "other is smaller" if full == tuple(shape) and other != tuple(shape) else (
        "other is larger" if full != tuple(shape) else "same")


@pytest.mark.parametrize("shape", [(2, 3), (1, 3), (2, 1, 4), (3,), ()])
def test_broadcastable_shape_broadcasts_in_both_directions(shape):
    directions = {broadcast_direction(shape, RandomDraw(seed).broadcastable_shape(shape)) for seed in range(80)}
    expected = {"same", "other is larger"} | ({"other is smaller"} if shape else set())
    assert directions == expected


def test_broadcastable_shape_with_zero_size_sides():
    for seed in range(40):
        other = RandomDraw(seed).broadcastable_shape((2, 0), min_side=0)
        np.broadcast_shapes((2, 0), other)


@given(st.data())
def test_hypothesis_draw_tensor(data):
    draw = HypothesisDraw(data)
    shape = draw.shape(max_dims=3, max_side=4)
    avoid = (0.0,)
    t = draw.tensor(shape, avoid=avoid, margin=0.1, distinct=draw.boolean())
    values = values_of(t)
    assert t.shape == shape and t.dtype == mq.float64 and t.requires_grad
    if values.size:
        assert np.abs(values).min() >= 0.1 - 1e-12
    other = draw.broadcastable_shape(shape)
    np.broadcast_shapes(shape, other)


@given(st.data())
def test_hypothesis_draw_primitives(data):
    draw = HypothesisDraw(data)
    assert 1 <= draw.integers(1, 3) <= 3
    assert 0.0 <= draw.floats(0.0, 1.0) <= 1.0
    assert draw.choice((4, 5)) in (4, 5)


# ---------------------------------------------------------------- strategies
@given(shapes(min_dims=1, max_dims=2, min_side=0, max_side=3))
def test_shapes_strategy(shape):
    assert isinstance(shape, tuple) and 1 <= len(shape) <= 2 and all(0 <= s <= 3 for s in shape)


@given(broadcastable_shapes((2, 1, 3)))
def test_broadcastable_shapes_strategy(other):
    np.broadcast_shapes((2, 1, 3), other)


@given(away_from([0.0, 1.0], margin=0.25, low=-1.0, high=2.0))
def test_away_from_strategy(value):
    assert -1.0 <= value <= 2.0
    assert abs(value) >= 0.25 and abs(value - 1.0) >= 0.25


def test_away_from_refuses_an_empty_set():
    with pytest.raises(ValueError, match="away_from"):
        away_from([0.0], margin=5.0)


@given(tensors(shape=(2, 3), elements=away_from([0.0]), requires_grad=True))
def test_tensors_strategy_with_elements(t):
    assert isinstance(t, Tensor) and t.shape == (2, 3) and t.dtype == mq.float64 and t.requires_grad
    assert np.abs(values_of(t)).min() >= 0.1


@given(tensors())
def test_tensors_strategy_default(t):
    assert isinstance(t, Tensor) and t.dtype == mq.float64 and not t.requires_grad
    assert len(t.shape) <= 3
    values = values_of(t)
    assert values.size == 0 or (values.min() >= -2.0 and values.max() <= 2.0)


# ---------------------------------------------------------------- check_spec
class Square(Function):
    """y = x²; dy/dx = 2x."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, grad_output):
        (x,) = self.saved
        return 2 * x * grad_output


class HalfSquare(Square):
    """A wrong backward: x instead of 2x."""

    def backward(self, grad_output):
        (x,) = self.saved
        return x * grad_output


class Floor(Function):
    """Forward floor; backward straight-through (identity). Reference: the identity."""

    def forward(self, x):
        return self.xp.floor(x)

    def backward(self, grad_output):
        return grad_output


def sample_one(draw):
    return (draw.tensor(draw.shape()),)


def test_check_spec_passes_a_correct_op():
    report = check_spec(GradSpec(Square, sample_one, Square.apply), RandomDraw(0))
    assert report.passed and Square in report.functions


def test_check_spec_fails_a_wrong_backward_with_the_arguments():
    spec = GradSpec(HalfSquare, lambda d: (d.tensor((2, 2), low=0.5, high=1.5),), HalfSquare.apply)
    with pytest.raises(GradcheckError, match=r"spec of HalfSquare, arguments \(Tensor\(2, 2\)"):
        check_spec(spec, RandomDraw(0))
    assert not check_spec(spec, RandomDraw(0), raise_exception=False).passed


def test_check_spec_requires_the_op_in_the_graph():
    spec = GradSpec(HalfSquare, sample_one, Square.apply)
    with pytest.raises(GradcheckError, match="does not test it: .* ran Square, not HalfSquare"):
        check_spec(spec, RandomDraw(0))


def test_check_spec_uses_the_reference_and_eps():
    sample = lambda d: (d.tensor((5,), avoid=(-1.0, 0.0, 1.0, 2.0), margin=0.05),)
    assert check_spec(GradSpec(Floor, sample, Floor.apply, reference=lambda x: x), RandomDraw(0)).passed
    with pytest.raises(GradcheckError):
        check_spec(GradSpec(Floor, sample, Floor.apply), RandomDraw(0))
    spec = GradSpec(Square, sample_one, Square.apply, eps=1e-4)
    assert check_spec(spec, RandomDraw(1), fast_mode=True).passed


@given(st.data())
def test_check_spec_with_hypothesis(data):
    check_spec(GradSpec(Square, sample_one, Square.apply), HypothesisDraw(data))


# ---------------------------------------------------------------- package-wide
def test_all_function_subclasses():
    found = all_function_subclasses()
    assert Function not in found
    assert all(issubclass(cls, Function) and cls.__module__.startswith("minigrad_q.") for cls in found)
    assert Square not in found  # defined in a test, not in the package
    assert len(found) == len(set(found))


def test_testing_imports_without_hypothesis_and_without_numpy():
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import minigrad_q.testing as t\n"
        "x = t.RandomDraw(0).tensor((2, 3))\n"
        "assert x.shape == (2, 3)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    source = inspect.getsource(testing)
    assert not any(line.strip().startswith(("import numpy", "from numpy")) for line in source.splitlines())


def test_same_kind_of_values_in_every_layout():
    # A strided view's gaps hold NaN: an op reading outside the view would produce NaN and fail its check.
    for seed in itertools.count():
        t = RandomDraw(seed).tensor((2, 3))
        if not t.data.flags.c_contiguous and not t.data.flags.f_contiguous:
            assert np.isnan(t.data.base).any() and np.isfinite(t.data).all()
            break


def test_describe_args():
    x = Tensor(np.zeros((2, 3)).T, requires_grad=True)
    text = testing.describe_args((x, [x], (1, 2), "mean"))
    assert text == (
        "(Tensor(3, 2)(float64, non-contiguous, requires_grad, cpu), "
        "[Tensor(3, 2)(float64, non-contiguous, requires_grad, cpu)], (1, 2), 'mean')"
    )
