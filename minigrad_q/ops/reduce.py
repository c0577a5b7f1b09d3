"""Reductions: sum, mean, var, std, max/min, amax/amin, argmax/argmin, logsumexp, softmax, log_softmax.

``dim`` follows torch: None (every dim), an int (negative counts from the end) or a tuple of ints;
``keepdim=True`` keeps each reduced dim with size 1. A backward restores the reduced dims of its
gradient (the "kept" shape) and broadcasts it against the input: no Python loops, and a plain
broadcast view where nothing has to be written (the engine copies views before accumulating).
"""

from __future__ import annotations

import builtins
import contextlib
import math
import operator
from typing import Any, NamedTuple

from .. import backend
from ..core import Function, Tensor
from ..specs import Draw, register_spec

__all__ = [
    "sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin",
    "logsumexp", "softmax", "log_softmax",
]


class MaxMin(NamedTuple):
    """What ``max(x, dim)`` / ``min(x, dim)`` return, like torch.return_types.max."""

    values: Tensor
    indices: Tensor


# ---------------------------------------------------------------- dims and shapes
def _axes(op: str, input: Any, dim: Any) -> tuple[int, ...]:
    """torch's dim (None, int or tuple; None and () mean every dim) as sorted non-negative axes."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(input).__name__}")
    ndim = input.data.ndim
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (() if dim is None else (dim,))
    axes = tuple(_axis(op, d, ndim) for d in dims)
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"{op}: dim {dims} names the same dimension twice (tensor of shape {input.shape})")
    if not dims or ndim == 0:
        return tuple(range(ndim))
    return tuple(sorted(axes))


def _axis(op: str, dim: Any, ndim: int) -> int:
    try:
        if isinstance(dim, bool):
            raise TypeError
        index = operator.index(dim)
    except TypeError:
        hint = " (for torch's unbiased=False pass correction=0)" if isinstance(dim, bool) else ""
        raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}{hint}") from None
    bound = builtins.max(ndim, 1)  # a 0-d tensor accepts dim 0 and -1, as in torch
    if not -bound <= index < bound:
        raise IndexError(
            f"{op}: dim {index} is out of range for a tensor with {ndim} dimensions "
            f"(expected a dim in [{-bound}, {bound - 1}])"
        )
    return index % bound


def _single_axis(op: str, input: Any, dim: Any) -> tuple[int, ...]:
    if isinstance(dim, (tuple, list)) or dim is None:
        raise TypeError(f"{op}: dim must be a single int, got {dim!r}")
    return _axes(op, input, dim)


def _kept(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else size for i, size in enumerate(shape))


def _out_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdim: bool) -> tuple[int, ...]:
    return _kept(shape, axes) if keepdim else tuple(s for i, s in enumerate(shape) if i not in axes)


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return math.prod(shape[i] for i in axes)


def _lift(x: Any, axes: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
    """A 0-d array as shape (1,) reduced over axis 0, so `out=` arithmetic never meets a NumPy scalar."""
    return (x.reshape(1), (0,)) if x.ndim == 0 else (x, axes)


def _unlift(grad: Any, input_shape: tuple[int, ...]) -> Any:
    """Undo `_lift`; no reshape otherwise (a view would make the engine copy the gradient)."""
    return grad if grad.shape == input_shape else grad.reshape(input_shape)


def _broadcast_back(xp: Any, grad_output: Any, input_shape: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    """The gradient of the reduced output, broadcast (a view) over the input's shape."""
    return xp.broadcast_to(grad_output.reshape(_kept(input_shape, axes)), input_shape)


def _quiet(xp: Any) -> Any:
    """Silence NumPy's divide/invalid warnings where torch's inf/nan result is the intended answer."""
    errstate = getattr(xp, "errstate", None)
    return errstate(divide="ignore", invalid="ignore") if errstate else contextlib.nullcontext()


def _require_float(op: str, input: Any) -> None:
    if isinstance(input, Tensor) and input.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point tensor, got dtype {input.dtype}; convert it with .float()")


def _require_nonempty(op: str, input: Tensor, axes: tuple[int, ...], full: bool) -> None:
    """max/min/argmax have no value over an empty set (torch raises too)."""
    if full and input.data.size == 0:
        raise RuntimeError(f"{op}: cannot reduce an empty tensor of shape {input.shape} over all its dims; give a dim")
    for axis in axes:
        if input.shape[axis] == 0:
            raise IndexError(f"{op}: cannot reduce dim {axis} of size 0 (tensor of shape {input.shape})")


def _mean(xp: Any, x: Any, axes: tuple[int, ...], keepdims: bool, count: int) -> Any:
    if count == 0:
        with _quiet(xp):
            return x.sum(axis=axes, keepdims=keepdims) / 0  # 0/0: the mean of nothing is nan (torch)
    return x.mean(axis=axes, keepdims=keepdims)


def _shift(xp: Any, x: Any, axes: tuple[int, ...]) -> Any:
    """max over `axes` (kept dims), with non-finite maxima replaced by 0 so that rows of -inf stay -inf."""
    if x.size == 0:
        return xp.zeros(_kept(x.shape, axes), dtype=x.dtype)
    peak = x.max(axis=axes, keepdims=True)
    return xp.where(xp.isfinite(peak), peak, 0)


# ---------------------------------------------------------------- sum, mean
class Sum(Function):
    """y = Σ x over the reduced dims;  ∂y/∂x = 1, so dx = gy broadcast back.

    Bool and integer tensors sum to int64 (as torch), without gradient."""

    def forward(self, x: Any, axes: tuple[int, ...], keepdim: bool) -> Any:
        self.input_shape, self.axes = x.shape, axes
        dtype = backend.int64 if x.dtype.kind in "biu" else None
        return x.sum(axis=axes, dtype=dtype, keepdims=keepdim)

    def backward(self, grad_output: Any) -> Any:
        return _broadcast_back(self.xp, grad_output, self.input_shape, self.axes)


class Mean(Function):
    """y = (1/N) Σ x over the N reduced elements;  dx = gy / N broadcast back. N = 0 gives nan (torch)."""

    def forward(self, x: Any, axes: tuple[int, ...], keepdim: bool) -> Any:
        self.input_shape, self.axes = x.shape, axes
        self.count = _count(x.shape, axes)
        return _mean(self.xp, x, axes, keepdim, self.count)

    def backward(self, grad_output: Any) -> Any:
        share = grad_output * (1 / builtins.max(self.count, 1))
        return _broadcast_back(self.xp, share, self.input_shape, self.axes)


# ---------------------------------------------------------------- var, std
def _variance(xp: Any, x: Any, axes: tuple[int, ...], correction: float) -> tuple[Any, Any, float]:
    """(mean with kept dims, variance with kept dims, degrees of freedom max(0, N - correction))."""
    count = _count(x.shape, axes)
    dof = builtins.max(0, count - correction)
    mean = _mean(xp, x, axes, True, count)
    squares = x - mean
    xp.multiply(squares, squares, out=squares)
    with _quiet(xp):
        variance = squares.sum(axis=axes, keepdims=True) / dof  # dof 0: inf, or nan for 0/0 (torch)
    return mean, variance, dof


class Var(Function):
    """v = Σ (x - x̄)² / (N - correction) over the reduced dims;  ∂v/∂x = 2 (x - x̄) / (N - correction).

    N - correction <= 0 gives inf/nan, as torch."""

    root = False  # Std: the square root of the same thing

    def forward(self, x: Any, axes: tuple[int, ...], correction: float, keepdim: bool) -> Any:
        self.input_shape = x.shape
        out_shape = _out_shape(x.shape, axes, keepdim)
        x, self.axes = _lift(x, axes)
        mean, spread, self.dof = _variance(self.xp, x, self.axes, correction)
        if self.root:
            spread = self.xp.sqrt(spread)
        if self.needs_input_grad[0]:
            self.save_for_backward(x, mean, spread)
        return spread.reshape(out_shape)

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        x, mean, spread = self.saved
        with _quiet(xp):
            if self.root:
                scale = xp.where(spread == 0, 0, grad_output.reshape(mean.shape) / (spread * self.dof))
            else:
                scale = grad_output.reshape(mean.shape) * 2 / self.dof
        grad = x - mean
        xp.multiply(grad, scale, out=grad)
        return _unlift(grad, self.input_shape)


class Std(Var):
    """s = sqrt(v), v as in Var;  ∂s/∂x = (x - x̄) / ((N - correction) s), and 0 where s = 0 (torch)."""

    root = True


# ---------------------------------------------------------------- max, min
class Amax(Function):
    """y = max of x over the reduced dims;  dx = gy / (number of maxima) at each maximum, 0 elsewhere.

    Ties share the gradient evenly: torch's convention for amax/amin and for max()/min() without dim."""

    largest = True

    def forward(self, x: Any, axes: tuple[int, ...], keepdim: bool) -> Any:
        y = x.max(axis=axes, keepdims=keepdim) if self.largest else x.min(axis=axes, keepdims=keepdim)
        if self.needs_input_grad[0]:
            self.axes = axes
            self.save_for_backward(x, self.xp.asarray(y).reshape(_kept(x.shape, axes)))
        return y

    def backward(self, grad_output: Any) -> Any:
        x, y = self.saved
        at_extreme = x == y
        ties = at_extreme.sum(axis=self.axes, keepdims=True, dtype=grad_output.dtype)
        with _quiet(self.xp):
            share = grad_output.reshape(y.shape) / ties
        return self.xp.where(at_extreme, share, 0)


class Amin(Amax):
    """y = min of x over the reduced dims;  dx = gy / (number of minima) at each minimum, 0 elsewhere (ties split)."""

    largest = False


class MaxDim(Function):
    """(values, indices) = max of x along one dim;  dx = gy at the returned index, 0 elsewhere.

    The index is the first maximum (torch), so a tie sends the whole gradient to its first element."""

    largest = True

    def forward(self, x: Any, axes: tuple[int, ...], keepdim: bool) -> Any:
        xp = self.xp
        self.input_shape = x.shape
        out_shape = _out_shape(x.shape, axes, keepdim)
        x, (axis,) = _lift(x, axes)
        index = x.argmax(axis=axis) if self.largest else x.argmin(axis=axis)
        index = xp.expand_dims(index.astype(backend.int64, copy=False), axis)
        values = xp.take_along_axis(x, index, axis)
        if self.needs_input_grad[0]:
            self.axis, self.lifted_shape = axis, x.shape
            self.save_for_backward(index)
        return values.reshape(out_shape), index.reshape(out_shape)

    def backward(self, grad_output: Any, grad_indices: Any) -> Any:
        (index,) = self.saved
        grad = self.xp.zeros(self.lifted_shape, dtype=grad_output.dtype)
        self.xp.put_along_axis(grad, index, grad_output.reshape(index.shape), self.axis)
        return _unlift(grad, self.input_shape)


class MinDim(MaxDim):
    """(values, indices) = min of x along one dim;  dx = gy at the returned (first) index, 0 elsewhere."""

    largest = False


# ---------------------------------------------------------------- logsumexp, softmax
class LogSumExp(Function):
    """y = log Σ exp(x) = m + log Σ exp(x - m), m = max x (stable);  ∂y/∂x = exp(x - y), the softmax.

    Over an empty dim y = log 0 = -inf (torch)."""

    def forward(self, x: Any, axes: tuple[int, ...], keepdim: bool) -> Any:
        xp = self.xp
        self.input_shape = x.shape
        out_shape = _out_shape(x.shape, axes, keepdim)
        x, self.axes = _lift(x, axes)
        shift = _shift(xp, x, self.axes)
        exps = x - shift
        xp.exp(exps, out=exps)
        with _quiet(xp):
            out = xp.log(exps.sum(axis=self.axes, keepdims=True))
        out += shift
        if self.needs_input_grad[0]:
            self.save_for_backward(x, out)
        return out.reshape(out_shape)

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        x, y = self.saved
        grad = x - y
        xp.exp(grad, out=grad)
        xp.multiply(grad, grad_output.reshape(y.shape), out=grad)
        return _unlift(grad, self.input_shape)


class Softmax(Function):
    """y = exp(x - m) / Σ exp(x - m) along dim, m = max x (stable);  dx = y ⊙ (gy - Σ gy ⊙ y)."""

    def forward(self, x: Any, axes: tuple[int, ...]) -> Any:
        xp = self.xp
        self.input_shape = x.shape
        x, self.axes = _lift(x, axes)
        y = x - _shift(xp, x, self.axes)
        xp.exp(y, out=y)
        with _quiet(xp):
            y /= y.sum(axis=self.axes, keepdims=True)
        self.save_for_backward(y)
        return y.reshape(self.input_shape)

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        (y,) = self.saved
        grad_output = grad_output.reshape(y.shape)
        grad = grad_output * y
        dot = grad.sum(axis=self.axes, keepdims=True)
        xp.subtract(grad_output, dot, out=grad)
        xp.multiply(grad, y, out=grad)
        return _unlift(grad, self.input_shape)


class LogSoftmax(Function):
    """y = x - m - log Σ exp(x - m) along dim, m = max x (stable);  dx = gy - exp(y) Σ gy."""

    def forward(self, x: Any, axes: tuple[int, ...]) -> Any:
        xp = self.xp
        self.input_shape = x.shape
        x, self.axes = _lift(x, axes)
        y = x - _shift(xp, x, self.axes)
        with _quiet(xp):
            y -= xp.log(xp.exp(y).sum(axis=self.axes, keepdims=True))
        self.save_for_backward(y)
        return y.reshape(self.input_shape)

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        (y,) = self.saved
        grad_output = grad_output.reshape(y.shape)
        grad = xp.exp(y)
        grad *= grad_output.sum(axis=self.axes, keepdims=True)
        xp.subtract(grad_output, grad, out=grad)
        return _unlift(grad, self.input_shape)


# ---------------------------------------------------------------- public functions (torch names)
def sum(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """torch.sum: the sum over `dim` (default: every dim). Bool/int tensors give int64; empty sums are 0."""
    return Sum.apply(input, _axes("sum", input, dim), keepdim)


def mean(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """torch.mean over `dim` (default: every dim); floating tensors only; the mean of nothing is nan."""
    _require_float("mean", input)
    return Mean.apply(input, _axes("mean", input, dim), keepdim)


def var(input: Tensor, dim: Any = None, *, correction: float = 1, keepdim: bool = False) -> Tensor:
    """torch.var: Σ (x - x̄)² / (N - correction); correction=1 is the unbiased estimate, 0 the population one."""
    _require_float("var", input)
    return Var.apply(input, _axes("var", input, dim), correction, keepdim)


def std(input: Tensor, dim: Any = None, *, correction: float = 1, keepdim: bool = False) -> Tensor:
    """torch.std: sqrt(var(input, dim, correction=correction)); its gradient is 0 where std is 0."""
    _require_float("std", input)
    return Std.apply(input, _axes("std", input, dim), correction, keepdim)


def max(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    """torch.max. Without dim: the largest value (ties share the gradient evenly).

    With an int dim: ``MaxMin(values, indices)``; indices are the first maximum, which alone gets the gradient."""
    return _extremum("max", Amax, MaxDim, input, dim, keepdim)


def min(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    """torch.min: as `max`, for the smallest value."""
    return _extremum("min", Amin, MinDim, input, dim, keepdim)


def _extremum(op: str, full: type[Amax], along: type[MaxDim], input: Tensor, dim: Any, keepdim: bool) -> Any:
    if dim is None:
        return _extreme_value(op, full, input, None, keepdim)
    axes = _single_axis(op, input, dim)
    _require_nonempty(op, input, axes, full=False)
    return MaxMin(*along.apply(input, axes, keepdim))


def amax(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """torch.amax: the largest value over `dim` (int or tuple; default every dim); ties share the gradient."""
    return _extreme_value("amax", Amax, input, dim, keepdim)


def amin(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """torch.amin: the smallest value over `dim` (int or tuple; default every dim); ties share the gradient."""
    return _extreme_value("amin", Amin, input, dim, keepdim)


def _extreme_value(op: str, function: type[Amax], input: Tensor, dim: Any, keepdim: bool) -> Tensor:
    axes = _axes(op, input, dim)
    _require_nonempty(op, input, axes, full=dim is None)
    return function.apply(input, axes, keepdim)


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """torch.argmax: int64 index of the first maximum along `dim` (of the flattened tensor when dim is None)."""
    return _arg_extremum("argmax", input, dim, keepdim)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """torch.argmin: int64 index of the first minimum along `dim` (of the flattened tensor when dim is None)."""
    return _arg_extremum("argmin", input, dim, keepdim)


def _arg_extremum(op: str, input: Tensor, dim: int | None, keepdim: bool) -> Tensor:
    xp = input.xp
    if dim is None:
        _require_nonempty(op, input, _axes(op, input, None), full=True)
        index = xp.asarray(getattr(input.data, op)(), dtype=backend.int64)
        return Tensor(index.reshape((1,) * input.ndim if keepdim else ()))
    axes = _single_axis(op, input, dim)
    _require_nonempty(op, input, axes, full=False)
    if input.ndim == 0:
        return Tensor(xp.zeros((), dtype=backend.int64))
    index = getattr(input.data, op)(axis=axes[0]).astype(backend.int64, copy=False)
    return Tensor(xp.expand_dims(index, axes[0]) if keepdim else index)


def logsumexp(input: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    """torch.logsumexp: log Σ exp(x) over `dim` (int or tuple), computed stably; -inf over an empty dim."""
    _require_float("logsumexp", input)
    return LogSumExp.apply(input, _axes("logsumexp", input, dim), keepdim)


def softmax(input: Tensor, dim: int) -> Tensor:
    """torch.softmax along `dim` (an int, required): exp(x) / Σ exp(x), computed stably."""
    _require_float("softmax", input)
    return Softmax.apply(input, _single_axis("softmax", input, dim))


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """torch.log_softmax along `dim` (an int, required): x - logsumexp(x, dim), computed stably."""
    _require_float("log_softmax", input)
    return LogSoftmax.apply(input, _single_axis("log_softmax", input, dim))


# ---------------------------------------------------------------- gradient specs
def _draw_dim(d: Draw, ndim: int, single: bool = False) -> Any:
    """None, one dim (maybe negative) or a tuple of distinct dims; `single`: always one dim."""
    kind = "one" if single else d.choice(["none", "one", "tuple"])
    if kind == "none":
        return None
    if kind == "one" or ndim == 0:
        return d.integers(-builtins.max(ndim, 1), builtins.max(ndim, 1) - 1)
    picked = [axis for axis in range(ndim) if d.boolean()] or [d.integers(0, ndim - 1)]
    return tuple(axis - ndim if d.boolean() else axis for axis in picked)


def _sample(d: Draw, min_side: int = 1, distinct: bool = False, single: bool = False) -> tuple[Any, Any, bool]:
    shape = d.shape(min_dims=1 if single else 0, max_dims=3, min_side=min_side, max_side=3)
    return d.tensor(shape, distinct=distinct), _draw_dim(d, len(shape), single), d.boolean()


def _sample_var(d: Draw) -> tuple[Any, ...]:
    shape = d.shape(min_dims=1, max_dims=3, min_side=2, max_side=3)  # N - correction > 0
    return d.tensor(shape), _draw_dim(d, len(shape)), d.choice([0, 1]), d.boolean()


register_spec(Sum, sample=lambda d: _sample(d, min_side=0), call=sum)
register_spec(Mean, sample=_sample, call=mean)
register_spec(Var, sample=_sample_var, call=lambda x, dim, c, keepdim: var(x, dim, correction=c, keepdim=keepdim))
register_spec(Std, sample=_sample_var, call=lambda x, dim, c, keepdim: std(x, dim, correction=c, keepdim=keepdim))
register_spec(Amax, sample=lambda d: _sample(d, distinct=True), call=amax)
register_spec(Amin, sample=lambda d: _sample(d, distinct=True), call=amin)
register_spec(MaxDim, sample=lambda d: _sample(d, distinct=True, single=True),
              call=lambda x, dim, keepdim: max(x, dim, keepdim).values)
register_spec(MinDim, sample=lambda d: _sample(d, distinct=True, single=True),
              call=lambda x, dim, keepdim: min(x, dim, keepdim).values)
register_spec(LogSumExp, sample=_sample, call=logsumexp)
register_spec(Softmax, sample=lambda d: _sample(d, single=True)[:2], call=softmax)
register_spec(LogSoftmax, sample=lambda d: _sample(d, single=True)[:2], call=log_softmax)
