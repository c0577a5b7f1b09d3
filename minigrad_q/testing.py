"""Test your own Functions the way minigrad_q tests its ops.

- Draw drivers for gradient specs (minigrad_q.specs): ``RandomDraw(seed)``
  (a seeded generator; what ``minigrad-q gradcheck`` uses) and
  ``HypothesisDraw(data)`` (hypothesis ``st.data()``: failures shrink).
- hypothesis strategies: ``shapes``, ``broadcastable_shapes``, ``tensors``,
  ``away_from``.
- ``check_spec(spec, draw)``: draw a case and gradcheck it;
  ``all_function_subclasses()``: every Function defined in the package.

hypothesis is optional: it is imported only by the parts that need it.

    from hypothesis import given, strategies as st
    from minigrad_q.testing import HypothesisDraw, check_spec

    @given(st.data())
    def test_my_op(data):
        check_spec(spec_for(MyOp), HypothesisDraw(data))
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable, Sequence
from typing import Any

from . import backend
from .core import Function, Tensor
from .gradcheck import GradcheckError, GradcheckReport, gradcheck_report
from .specs import GradSpec

__all__ = [
    "RandomDraw", "HypothesisDraw", "shapes", "broadcastable_shapes", "tensors", "away_from",
    "check_spec", "describe_args", "all_function_subclasses", "allowed_intervals",
]

_cpu = backend.array_module("cpu")
_MAX_SEED = 2**32 - 1


# ---------------------------------------------------------------- value sets
def allowed_intervals(low: float, high: float, avoid: Sequence[float] = (), margin: float = 0.1) -> list[tuple[float, float]]:
    """[low, high] without the open intervals (p - margin, p + margin) around each avoided point p."""
    if high < low:
        raise ValueError(f"empty range: low {low} > high {high}")
    holes = sorted((p - margin, p + margin) for p in avoid) if margin > 0 else []
    intervals = []
    start = low
    for hole_start, hole_end in holes:
        if hole_end <= start:
            continue
        if hole_start >= high:
            break
        if hole_start > start:
            intervals.append((start, hole_start))
        start = max(start, hole_end)
    if start <= high:
        intervals.append((start, high))
    return intervals


def _length(intervals: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in intervals)


def _map_into(positions: Any, intervals: list[tuple[float, float]]) -> Any:
    """Map positions in [0, total length] onto the intervals, keeping order and never shrinking distances."""
    starts = _cpu.array([a for a, _ in intervals], dtype=float)
    ends = _cpu.array([b for _, b in intervals], dtype=float)
    offsets = _cpu.concatenate([[0.0], _cpu.cumsum(ends - starts)])
    which = _cpu.clip(_cpu.searchsorted(offsets[1:], positions, side="right"), 0, len(intervals) - 1)
    return _cpu.clip(starts[which] + (positions - offsets[which]), starts[which], ends[which])


def _values(rng: Any, size: int, low: float, high: float, avoid: Sequence[float], margin: float,
            distinct: bool) -> Any:
    """`size` float64 values in [low, high] (high widened if needed), `margin` from `avoid`, maybe distinct."""
    intervals = allowed_intervals(low, high, avoid, margin)
    if distinct or not intervals:
        needed = size * margin if distinct else margin
        while _length(intervals) < needed:
            high += needed - _length(intervals) + 1e-9
            intervals = allowed_intervals(low, high, avoid, margin)
    total = _length(intervals)
    if not distinct:
        return _map_into(rng.uniform(0.0, total, size), intervals)
    # A shuffled grid with jitter: neighbours on the grid stay >= margin apart.
    spacing = total / size if size else 0.0
    jitter = rng.uniform(-0.5, 0.5, size) * max(spacing - margin, 0.0)
    positions = _cpu.clip((_cpu.arange(size) + 0.5) * spacing + jitter, 0.0, total)
    return _map_into(rng.permutation(positions), intervals)


# ---------------------------------------------------------------- drivers
class _Driver:
    """The Draw protocol on top of five primitives a driver provides."""

    device: str

    def integers(self, low: int, high: int) -> int:
        raise NotImplementedError

    def floats(self, low: float, high: float) -> float:
        raise NotImplementedError

    def boolean(self) -> bool:
        raise NotImplementedError

    def choice(self, options: Sequence[Any]) -> Any:
        raise NotImplementedError

    def _value_seed(self) -> int:
        raise NotImplementedError

    def shape(self, min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> tuple[int, ...]:
        ndim = self.integers(min_dims, max_dims)
        return tuple(self.integers(min_side, max_side) for _ in range(ndim))

    def broadcastable_shape(self, shape: tuple[int, ...], min_side: int = 1) -> tuple[int, ...]:
        """A shape that broadcasts with `shape`, sometimes smaller (dims dropped or set to 1),
        sometimes larger (a new leading dim, or a size > 1 where `shape` has a 1)."""
        dropped = self.integers(0, len(shape)) if shape and self.boolean() else 0
        sides = []
        for side in shape[dropped:]:
            if side == 1 and self.boolean():
                sides.append(self.integers(max(min_side, 2), 3) if min_side > 0 or self.boolean() else 0)
            elif side != 1 and self.boolean():
                sides.append(1)
            else:
                sides.append(side)
        if dropped == 0 and self.integers(0, 2) == 2:
            sides.insert(0, self.integers(min_side, 3))
        return tuple(sides)

    def tensor(
        self,
        shape: tuple[int, ...],
        low: float = -2.0,
        high: float = 2.0,
        avoid: Sequence[float] = (),
        margin: float = 0.1,
        distinct: bool = False,
        requires_grad: bool = True,
        dtype: Any = None,
    ) -> Tensor:
        shape = tuple(shape)
        dtype = backend.float64 if dtype is None else backend.as_dtype(dtype)
        size = math.prod(shape)
        rng = _cpu.random.default_rng(self._value_seed())
        values = _values(rng, size, low, high, avoid, margin, distinct)
        if dtype.kind in "iu":
            values = _cpu.floor(values)
        elif dtype.kind == "b":
            values = values > (low + high) / 2
        array = backend.asarray(values.reshape(shape), dtype=dtype, device=self.device)
        if len(shape) >= 2 and size > 1:
            layout = self.integers(0, 5)  # 0-3 contiguous; 4 transposed, 5 strided: ~1/3 non-contiguous
            if layout == 4:
                array = array.T.copy().T
            elif layout == 5:
                array = _strided_view(array)
        return Tensor(array, requires_grad=requires_grad and dtype.kind == "f")


def _strided_view(array: Any) -> Any:
    """The same values, as every other element of the last axis of a larger array (gaps hold NaN or 0)."""
    xp = backend.get_array_module(array)
    big_shape = (*array.shape[:-1], 2 * array.shape[-1])
    fill = math.nan if array.dtype.kind == "f" else 0
    big = xp.full(big_shape, fill, dtype=array.dtype)
    view = big[..., ::2]
    view[...] = array
    return view


class RandomDraw(_Driver):
    """Draws from a seeded generator: the same seed gives the same cases (``minigrad-q gradcheck``)."""

    def __init__(self, seed: int, device: str = "cpu"):
        self.seed = seed
        self.device = backend.parse_device(device)
        self.rng = _cpu.random.default_rng(seed)

    def integers(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high + 1))

    def floats(self, low: float, high: float) -> float:
        return float(self.rng.uniform(low, high))

    def boolean(self) -> bool:
        return bool(self.rng.integers(0, 2))

    def choice(self, options: Sequence[Any]) -> Any:
        options = list(options)
        return options[int(self.rng.integers(0, len(options)))]

    def _value_seed(self) -> int:
        return int(self.rng.integers(0, _MAX_SEED))

    def __repr__(self) -> str:
        return f"RandomDraw(seed={self.seed}, device={self.device!r})"


class HypothesisDraw(_Driver):
    """Draws through hypothesis (``st.data()``, or the ``draw`` of an ``st.composite``), so failures shrink.

    Integers, choices and shapes are hypothesis draws; element values come from
    a generator seeded by one drawn integer (shrinking it gives other values).
    """

    def __init__(self, data: Any, device: str = "cpu"):
        self._draw: Callable[..., Any] = data.draw if hasattr(data, "draw") else data
        self.device = backend.parse_device(device)

    def integers(self, low: int, high: int) -> int:
        from hypothesis import strategies as st

        return int(self._draw(st.integers(low, high)))

    def floats(self, low: float, high: float) -> float:
        from hypothesis import strategies as st

        return float(self._draw(st.floats(low, high, allow_nan=False, allow_infinity=False)))

    def boolean(self) -> bool:
        from hypothesis import strategies as st

        return bool(self._draw(st.booleans()))

    def choice(self, options: Sequence[Any]) -> Any:
        from hypothesis import strategies as st

        return self._draw(st.sampled_from(list(options)))

    def _value_seed(self) -> int:
        from hypothesis import strategies as st

        return int(self._draw(st.integers(0, _MAX_SEED)))


# ---------------------------------------------------------------- strategies
def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> Any:
    """Strategy of shapes (tuples of ints)."""
    from hypothesis import strategies as st

    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def broadcastable_shapes(shape: tuple[int, ...], min_side: int = 1) -> Any:
    """Strategy of shapes that broadcast with `shape` (in either direction)."""
    from hypothesis import strategies as st

    return st.composite(lambda draw: HypothesisDraw(draw).broadcastable_shape(tuple(shape), min_side))()


def away_from(points: Sequence[float], margin: float = 0.1, low: float = -2.0, high: float = 2.0) -> Any:
    """Strategy of floats in [low, high] at least `margin` from each of `points` (keep inputs off kinks)."""
    from hypothesis import strategies as st

    intervals = allowed_intervals(low, high, points, margin)
    if not intervals:
        raise ValueError(f"away_from: nothing in [{low}, {high}] is {margin} away from {list(points)}")
    total = _length(intervals)
    return st.floats(0.0, total, allow_nan=False).map(lambda t: float(_map_into(_cpu.array([t]), intervals)[0]))


def tensors(
    shape: Any = None,
    dtype: Any = backend.float64,
    elements: Any = None,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Any:
    """Strategy of Tensors: `shape` a tuple or a strategy of shapes (default ``shapes()``);
    `elements` a strategy of floats (say ``away_from(...)``), default values in [-2, 2]."""
    from hypothesis import strategies as st

    shape_strategy = shapes() if shape is None else (st.just(tuple(shape)) if isinstance(shape, (tuple, list)) else shape)

    @st.composite
    def build(draw: Any) -> Tensor:
        drawn = tuple(draw(shape_strategy))
        driver = HypothesisDraw(draw, device)
        if elements is None:
            return driver.tensor(drawn, requires_grad=requires_grad, dtype=dtype)
        size = math.prod(drawn)
        values = draw(st.lists(elements, min_size=size, max_size=size))
        array = backend.asarray(_cpu.array(values, dtype=float).reshape(drawn), dtype=dtype, device=driver.device)
        return Tensor(array, requires_grad=requires_grad)

    return build()


# ---------------------------------------------------------------- specs
def check_spec(spec: GradSpec, draw: Any, **gradcheck_options: Any) -> GradcheckReport:
    """Draw arguments with ``spec.sample(draw)`` and gradcheck ``spec.call`` at them.

    Also requires that the graph of the output holds ``spec.function`` (a spec
    must test its own op). On a GPU ``nondet_tol`` defaults to 1e-12. Raises ``GradcheckError`` on failure unless
    ``raise_exception=False``; returns the report.
    """
    raise_exception = gradcheck_options.pop("raise_exception", True)
    # On a GPU, atomic adds (scatter-add) may sum in any order: allow last-bit differences between passes.
    nondet_tol = 0.0 if draw.device == "cpu" else 1e-12
    options = {"eps": spec.eps if spec.eps is not None else 1e-6, "nondet_tol": nondet_tol, **gradcheck_options}
    name = spec.function.__name__
    args = spec.sample(draw)
    if not isinstance(args, tuple):
        raise TypeError(f"the spec of {name}: sample() must return a tuple of arguments, got {type(args).__name__}")
    described = describe_args(args)
    report = gradcheck_report(spec.call, args, reference=spec.reference, **options)
    if spec.function not in report.functions:
        ran = ", ".join(sorted(f.__name__ for f in report.functions)) or "no recorded op"
        raise GradcheckError(f"the spec of {name} does not test it: call{described} ran {ran}, not {name}")
    if not report.passed:
        report.message = f"spec of {name}, arguments {described}:\n{report.message}"
        if raise_exception:
            raise GradcheckError(report.message)
    return report


def describe_args(args: Sequence[Any]) -> str:
    """A short description of spec arguments: tensor shapes, dtypes and layouts, plain values as written."""
    return "(" + ", ".join(_describe(arg) for arg in args) + ")"


def _describe(arg: Any) -> str:
    if isinstance(arg, Tensor):
        layout = "" if arg.data.flags.c_contiguous else ", non-contiguous"
        grad = ", requires_grad" if arg.requires_grad else ""
        return f"Tensor{tuple(arg.shape)}({arg.dtype}{layout}{grad}, {arg.device})"
    if isinstance(arg, list):
        return "[" + ", ".join(_describe(a) for a in arg) + "]"
    if isinstance(arg, tuple):
        return describe_args(arg)
    return repr(arg)


def all_function_subclasses() -> list[type]:
    """Every Function subclass the package defines (all its modules imported), sorted by name.

    Classes that do not write a ``forward`` (shared bases) are left out.
    """
    package = importlib.import_module("minigrad_q")
    for module in pkgutil.walk_packages(package.__path__, "minigrad_q."):
        importlib.import_module(module.name)
    found: dict[type, None] = {}
    todo = list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("minigrad_q.") and cls.forward is not Function.forward:
            found[cls] = None
    return sorted(found, key=lambda c: (c.__name__, c.__module__))
