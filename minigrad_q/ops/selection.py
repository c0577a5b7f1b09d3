"""Elementwise selection: maximum, minimum, clamp, where.

Each output element is one of the inputs' elements, so the gradient goes to the
input that was picked. Ties and bounds follow PyTorch: maximum/minimum split the
gradient in half on ties; clamp passes it to x where min <= x <= max (bounds
included) and, with min > max, gives max everywhere. Masked gradients are
`grad_output * mask`, so a non-finite grad_output gives NaN where PyTorch gives 0.
Dtypes promote as described in `minigrad_q.ops.elementwise`.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..specs import register_spec
from ._promotion import _error, _number, _operands, _promote, _result_dtype

__all__ = ["maximum", "minimum", "clamp", "clip", "where"]

_is_array = backend.is_array
_NUMBER_BOUNDS = (float, int, type(None))


def _weight_of_larger(first: Any, second: Any, dtype: Any) -> Any:
    """1 where first > second, 1/2 on ties, 0 where first < second (in the broadcast shape)."""
    weight = (first > second).astype(dtype)
    weight += first >= second
    weight *= 0.5
    return weight


def _selection_grads(needs: tuple[bool, ...], grad_output: Any, first: Any, second: Any) -> tuple[Any, Any]:
    """Gradients of max(a, b) (first = a, second = b) or of min(a, b) (first = b, second = a)."""
    ga = gb = None
    if needs[0]:
        ga = _weight_of_larger(first, second, grad_output.dtype)
        ga *= grad_output
    if needs[1]:
        if ga is not None:
            gb = grad_output - ga
        else:
            gb = _weight_of_larger(second, first, grad_output.dtype)
            gb *= grad_output
    return ga, gb


class Maximum(Function):
    """y = max(a, b);  dy/da = 1 where a > b, 0 where a < b, 1/2 on ties (PyTorch); dy/db likewise."""

    def forward(self, a: Any, b: Any) -> Any:
        if type(a) is not type(b) or a.dtype != b.dtype:
            a, b = _operands("maximum", a, b)
        self.save_for_backward(a, b)
        try:
            return self.xp.maximum(a, b)
        except ValueError as error:
            raise _error("maximum", error, a, b) from None

    def backward(self, grad_output: Any) -> Any:
        a, b = self.saved
        return _selection_grads(self.needs_input_grad, grad_output, a, b)


class Minimum(Function):
    """y = min(a, b);  dy/da = 1 where a < b, 0 where a > b, 1/2 on ties (PyTorch); dy/db likewise."""

    def forward(self, a: Any, b: Any) -> Any:
        if type(a) is not type(b) or a.dtype != b.dtype:
            a, b = _operands("minimum", a, b)
        self.save_for_backward(a, b)
        try:
            return self.xp.minimum(a, b)
        except ValueError as error:
            raise _error("minimum", error, a, b) from None

    def backward(self, grad_output: Any) -> Any:
        a, b = self.saved
        return _selection_grads(self.needs_input_grad, grad_output, b, a)


class Clamp(Function):
    """y = min(max(x, min), max), so y = max where min > max (PyTorch); either bound may be None.

    dy/dx = 1 where min <= x <= max (bounds included, PyTorch), else 0. Tensor bounds get gradients
    too: dy/dmin = 1 where x < min < max, dy/dmax = 1 where x > max or max < min (PyTorch).
    """

    def forward(self, x: Any, low: Any, high: Any) -> Any:
        if x.dtype.kind != "f" or type(low) not in _NUMBER_BOUNDS or type(high) not in _NUMBER_BOUNDS:
            x, low, high = _promote("clamp", x, low, high)
        xp = self.xp
        self.number_bounds = not (_is_array(low) or _is_array(high))
        if self.number_bounds:
            self.empty_range = low is not None and high is not None and low > high
            if self.empty_range:
                low = high
            if x.dtype.kind == "f":  # both bounds given take NumPy's fast clip loop
                y = x.clip(-math.inf if low is None else low, math.inf if high is None else high)
            else:
                y = xp.maximum(x, low) if high is None else xp.minimum(x, high) if low is None else xp.clip(x, low, high)
            self.save_for_backward(x, y)
            return y
        try:
            y = x if low is None else xp.maximum(x, low)
            y = y if high is None else xp.minimum(y, high)
        except ValueError as error:
            raise _error("clamp", error, x, low, high) from None
        self.save_for_backward(x, low, high)
        return y

    def backward(self, grad_output: Any) -> Any:
        if self.number_bounds:  # y == x exactly where min <= x <= max
            x, y = self.saved
            if self.empty_range:
                return self.xp.zeros_like(grad_output)
            gx = (y == x).astype(grad_output.dtype)
            gx *= grad_output
            return gx
        x, low, high = self.saved
        multiply, needs = self.xp.multiply, self.needs_input_grad
        gx = g_low = g_high = None
        if needs[0]:
            inside = x <= high if low is None else x >= low if high is None else (x >= low) & (x <= high)
            gx = multiply(grad_output, inside)
        if needs[1]:
            g_low = multiply(grad_output, (x < low) if high is None else (x < low) & (low < high))
        if needs[2]:
            g_high = multiply(grad_output, (x > high) if low is None else (x > high) | (high < low))
        return gx, g_low, g_high


class Where(Function):
    """y = input where condition, else other;  dy/dinput = condition, dy/dother = not condition."""

    def forward(self, condition: Any, a: Any, b: Any) -> Any:
        if type(a) is not type(b) or a.dtype != b.dtype:
            a, b = _operands("where", a, b)
        self.save_for_backward(condition)
        try:
            return self.xp.where(condition, a, b)
        except ValueError as error:
            raise _error("where", error, condition, a, b) from None

    def backward(self, grad_output: Any) -> Any:
        (condition,) = self.saved
        needs = self.needs_input_grad
        ga = self.xp.multiply(grad_output, condition) if needs[1] else None
        gb = self.xp.multiply(grad_output, ~condition) if needs[2] else None
        return None, ga, gb


def _sample_distinct(d: Any, *shapes: tuple[int, ...]) -> list[Tensor]:
    """Leaf tensors of the given shapes whose values all differ (no ties between any of them)."""
    sizes = [math.prod(s) for s in shapes]
    bound = max(2.0, 0.15 * sum(sizes))
    flat = d.tensor((sum(sizes),), low=-bound, high=bound, distinct=True, requires_grad=False).data
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [Tensor(flat[s:s + n].reshape(shape).copy(), requires_grad=True) for s, n, shape in zip(starts, sizes, shapes)]


def _sub_shape(d: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to `shape`: some leading dims dropped, some dims set to 1."""
    kept = shape[d.integers(0, len(shape)):]
    return tuple(1 if d.boolean() else n for n in kept)


def _sample_maximum(d: Any) -> tuple[Any, Any]:
    shape = d.shape(max_side=3)
    if d.boolean():
        a, b = _sample_distinct(d, shape, _sub_shape(d, shape))
        return (a, b) if d.boolean() else (b, a)
    other = d.choice([-0.5, 0.0, 1.0])
    return d.tensor(shape, avoid=(other,)), other


def _sample_clamp(d: Any) -> tuple[Any, Any, Any]:
    shape = d.shape(max_side=3)
    kind = d.integers(0, 2)
    if kind == 0:  # number bounds, including min > max
        low, high = d.choice([None, -1.0, 0.0, 0.5]), d.choice([None, 1.0, 0.25, -0.5])
        low = 0.0 if low is None and high is None else low
        return d.tensor(shape, avoid=tuple(v for v in (low, high) if v is not None)), low, high
    x_shape = shape if d.boolean() else _sub_shape(d, shape)
    if kind == 1:  # tensor bounds on both sides, min > max in places
        x, low, high = _sample_distinct(d, x_shape, _sub_shape(d, shape), shape)
        return x, low, high
    x, bound = _sample_distinct(d, x_shape, shape)
    return (x, bound, None) if d.boolean() else (x, None, bound)


def _sample_where(d: Any) -> tuple[Any, Any, Any]:
    shape = d.shape(min_side=0)
    condition = d.tensor(_sub_shape(d, shape), requires_grad=False) > 0
    kind = d.integers(0, 2)
    if kind == 0:
        a_shape, b_shape = (shape, _sub_shape(d, shape)) if d.boolean() else (_sub_shape(d, shape), shape)
        return condition, d.tensor(a_shape), d.tensor(b_shape)
    return (condition, d.tensor(shape), 1.5) if kind == 1 else (condition, -0.5, d.tensor(shape))


register_spec(Maximum, sample=_sample_maximum, call=lambda a, b: maximum(a, b), note="no ties: distinct values")
register_spec(Minimum, sample=_sample_maximum, call=lambda a, b: minimum(a, b), note="no ties: distinct values")
register_spec(Clamp, sample=_sample_clamp, call=lambda x, low, high: clamp(x, low, high),
              note="x and tensor bounds all distinct, x away from number bounds")
register_spec(Where, sample=_sample_where, call=lambda c, a, b: where(c, a, b))


def maximum(input: Any, other: Any) -> Tensor:
    """Elementwise max, broadcast; ties split the gradient in half (PyTorch)."""
    return Maximum.apply(input, other)


def minimum(input: Any, other: Any) -> Tensor:
    """Elementwise min, broadcast; ties split the gradient in half (PyTorch)."""
    return Minimum.apply(input, other)


def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """min(max(input, min), max) with number or Tensor bounds (a bound may be None, not both)."""
    if min is None and max is None:
        shape = getattr(input, "shape", "?")
        raise RuntimeError(f"clamp: At least one of 'min' or 'max' must not be None (input of shape {shape})")
    return Clamp.apply(input, min, max)


clip = clamp


def where(condition: Tensor, input: Any, other: Any) -> Tensor:
    """input where condition is True, else other (broadcast; input/other may be Python numbers)."""
    if not isinstance(condition, Tensor) or condition.dtype != backend.bool_:
        given = f"a {condition.dtype} tensor" if isinstance(condition, Tensor) else type(condition).__name__
        raise TypeError(f"where: expected condition to be a bool Tensor, got {given} (compare first, e.g. x > 0)")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = _number("where", input)
        dtype = _result_dtype([input, _number("where", other)])
        input = Tensor(backend.asarray(input, dtype=dtype, device=condition.device))
    return Where.apply(condition, input, other)
