"""Reductions: sum, mean, var, std, max/min, amax/amin, argmax/argmin (logsumexp and softmax: softmax.py),
and the running sum cumsum.

``dim`` follows torch: None (every dim), an int (negative counts from the end) or a tuple of ints;
``keepdim=True`` keeps each reduced dim with size 1. A backward restores the reduced dims of its
gradient (the "kept" shape) and broadcasts it against the input: no Python loops, and a plain
broadcast view where nothing has to be written (the engine copies views before accumulating).
Reading ``dim`` and moving between shapes is shared with softmax.py, in _dims.py.
"""

from __future__ import annotations

import builtins
import math
from typing import Any, NamedTuple

from .. import backend
from ..core import Function, Tensor
from ..specs import Draw, register_spec
from . import _dims, convert

__all__ = ["sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "all", "any", "cumsum"]


class MaxMin(NamedTuple):
    """What ``max(x, dim)`` / ``min(x, dim)`` return, like torch.return_types.max."""

    values: Tensor
    indices: Tensor


# ---------------------------------------------------------------- shared by the reductions
def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return math.prod(shape[i] for i in axes)


def _broadcast_back(xp: Any, grad_output: Any, input_shape: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    """The gradient of the reduced output, broadcast (a view) over the input's shape."""
    return xp.broadcast_to(grad_output.reshape(_dims.kept_shape(input_shape, axes)), input_shape)


def _require_nonempty(op: str, input: Tensor, axes: tuple[int, ...], full: bool) -> None:
    """max/min/argmax have no value over an empty set (torch raises too)."""
    if full and input.data.size == 0:
        raise RuntimeError(f"{op}: cannot reduce an empty tensor of shape {input.shape} over all its dims; give a dim")
    for axis in axes:
        if input.shape[axis] == 0:
            raise IndexError(f"{op}: cannot reduce dim {axis} of size 0 (tensor of shape {input.shape})")


def _mean(xp: Any, x: Any, axes: tuple[int, ...], keepdims: bool, count: int) -> Any:
    if count == 0:
        with _dims.quiet(xp):
            return x.sum(axis=axes, keepdims=keepdims) / 0  # 0/0: the mean of nothing is nan (torch)
    return x.mean(axis=axes, keepdims=keepdims)


# ---------------------------------------------------------------- sum, mean
class Sum(Function):
    """y = Σ x over the reduced dims;  ∂y/∂x = 1, so dx = grad_output broadcast back.

    Bool and integer tensors sum to int64 (as torch), without gradient."""

    def forward(self, x: Any, axes: tuple[int, ...], keepdim: bool) -> Any:
        self.input_shape, self.axes = x.shape, axes
        dtype = backend.int64 if x.dtype.kind in "biu" else None
        return x.sum(axis=axes, dtype=dtype, keepdims=keepdim)

    def backward(self, grad_output: Any) -> Any:
        return _broadcast_back(self.xp, grad_output, self.input_shape, self.axes)


class Mean(Function):
    """y = (1/N) Σ x over the N reduced elements;  dx = grad_output / N broadcast back. N = 0 gives nan (torch)."""

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
    with _dims.quiet(xp):
        variance = squares.sum(axis=axes, keepdims=True) / dof  # dof 0: inf, or nan for 0/0 (torch)
    return mean, variance, dof


class Var(Function):
    """v = Σ (x - x̄)² / (N - correction) over the reduced dims;  ∂v/∂x = 2 (x - x̄) / (N - correction).

    N - correction <= 0 gives inf/nan, as torch."""

    root = False  # Std: the square root of the same thing

    def forward(self, x: Any, axes: tuple[int, ...], correction: float, keepdim: bool) -> Any:
        self.input_shape = x.shape
        out_shape = _dims.out_shape(x.shape, axes, keepdim)
        x, self.axes = _dims.lift(x, axes)
        mean, spread, self.dof = _variance(self.xp, x, self.axes, correction)
        if self.root:
            spread = self.xp.sqrt(spread)
        if self.needs_input_grad[0]:
            self.save_for_backward(x, mean, spread)
        return spread.reshape(out_shape)

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        x, mean, spread = self.saved
        with _dims.quiet(xp):
            if self.root:
                scale = xp.where(spread == 0, 0, grad_output.reshape(mean.shape) / (spread * self.dof))
            else:
                scale = grad_output.reshape(mean.shape) * 2 / self.dof
        grad = x - mean
        xp.multiply(grad, scale, out=grad)
        return _dims.unlift(grad, self.input_shape)


class Std(Var):
    """s = sqrt(v), v as in Var;  ∂s/∂x = (x - x̄) / ((N - correction) s), and 0 where s = 0 (torch)."""

    root = True


# ---------------------------------------------------------------- max, min
class Amax(Function):
    """y = max of x over the reduced dims;  dx = grad_output / (number of maxima) at each maximum, 0 elsewhere.

    Ties share the gradient evenly: torch's convention for amax/amin and for max()/min() without dim."""

    largest = True

    def forward(self, x: Any, axes: tuple[int, ...], keepdim: bool) -> Any:
        y = x.max(axis=axes, keepdims=keepdim) if self.largest else x.min(axis=axes, keepdims=keepdim)
        if self.needs_input_grad[0]:
            self.axes = axes
            self.save_for_backward(x, self.xp.asarray(y).reshape(_dims.kept_shape(x.shape, axes)))
        return y

    def backward(self, grad_output: Any) -> Any:
        x, y = self.saved
        at_extreme = x == y
        ties = at_extreme.sum(axis=self.axes, keepdims=True, dtype=grad_output.dtype)
        with _dims.quiet(self.xp):
            share = grad_output.reshape(y.shape) / ties
        return self.xp.where(at_extreme, share, 0)


class Amin(Amax):
    """y = min of x over the reduced dims;  dx = grad_output / (number of minima) at each minimum, 0 elsewhere (ties split)."""

    largest = False


class MaxDim(Function):
    """(values, indices) = max of x along one dim;  dx = grad_output at the returned index, 0 elsewhere.

    The index is the first maximum (torch), so a tie sends the whole gradient to its first element."""

    largest = True

    def forward(self, x: Any, axes: tuple[int, ...], keepdim: bool) -> Any:
        xp = self.xp
        self.input_shape = x.shape
        out_shape = _dims.out_shape(x.shape, axes, keepdim)
        x, (axis,) = _dims.lift(x, axes)
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
        return _dims.unlift(grad, self.input_shape)


class MinDim(MaxDim):
    """(values, indices) = min of x along one dim;  dx = grad_output at the returned (first) index, 0 elsewhere."""

    largest = False


# ---------------------------------------------------------------- cumsum
class Cumsum(Function):
    """y_i = Σ_{j ≤ i} x_j along one dim;  ∂y_i/∂x_j = 1 for j ≤ i, so
    dx_j = Σ_{i ≥ j} grad_output_i: the running sum of the gradient taken from the far end (flip, cumsum, flip).

    Bool and integer tensors sum to int64 (as torch), without gradient."""

    def forward(self, x: Any, axes: tuple[int, ...]) -> Any:
        self.input_shape = x.shape
        x, (self.axis,) = _dims.lift(x, axes)
        dtype = backend.int64 if x.dtype.kind in "biu" else None
        return x.cumsum(axis=self.axis, dtype=dtype).reshape(self.input_shape)

    def backward(self, grad_output: Any) -> Any:
        xp, axis = self.xp, self.axis
        grad, _ = _dims.lift(grad_output, (axis,))
        grad = xp.flip(xp.flip(grad, axis).cumsum(axis=axis), axis)
        return _dims.unlift(grad, self.input_shape)


# ---------------------------------------------------------------- public functions (torch names)
def sum(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """torch.sum: the sum over `dim` (default: every dim). Bool/int tensors give int64; empty sums are 0."""
    return Sum.apply(input, _dims.axes("sum", input, dim), keepdim)


def mean(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """torch.mean over `dim` (default: every dim); floating tensors only; the mean of nothing is nan."""
    _dims.require_float("mean", input)
    return Mean.apply(input, _dims.axes("mean", input, dim), keepdim)


def var(input: Tensor, dim: Any = None, *, correction: float = 1, keepdim: bool = False) -> Tensor:
    """torch.var: Σ (x - x̄)² / (N - correction); correction=1 is the unbiased estimate, 0 the population one."""
    _dims.require_float("var", input)
    return Var.apply(input, _dims.axes("var", input, dim), correction, keepdim)


def std(input: Tensor, dim: Any = None, *, correction: float = 1, keepdim: bool = False) -> Tensor:
    """torch.std: sqrt(var(input, dim, correction=correction)); its gradient is 0 where std is 0."""
    _dims.require_float("std", input)
    return Std.apply(input, _dims.axes("std", input, dim), correction, keepdim)


def cumsum(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """torch.cumsum: y[..., i, ...] = input[..., :i+1, ...].sum(dim), the running sum along `dim` (an int);
    bool and integer tensors give int64. `dtype`: cast the input to it first (differentiably)."""
    axes = _dims.single_axis("cumsum", input, dim)
    return Cumsum.apply(input if dtype is None else convert.cast(input, dtype), axes)


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
    axes = _dims.single_axis(op, input, dim)
    _require_nonempty(op, input, axes, full=False)
    return MaxMin(*along.apply(input, axes, keepdim))


def amax(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """torch.amax: the largest value over `dim` (int or tuple; default every dim); ties share the gradient."""
    return _extreme_value("amax", Amax, input, dim, keepdim)


def amin(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """torch.amin: the smallest value over `dim` (int or tuple; default every dim); ties share the gradient."""
    return _extreme_value("amin", Amin, input, dim, keepdim)


def _extreme_value(op: str, function: type[Amax], input: Tensor, dim: Any, keepdim: bool) -> Tensor:
    axes = _dims.axes(op, input, dim)
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
        _require_nonempty(op, input, _dims.axes(op, input, None), full=True)
        index = xp.asarray(getattr(input.data, op)(), dtype=backend.int64)
        return Tensor(index.reshape((1,) * input.ndim if keepdim else ()))
    axes = _dims.single_axis(op, input, dim)
    _require_nonempty(op, input, axes, full=False)
    if input.ndim == 0:
        return Tensor(xp.zeros((), dtype=backend.int64))
    index = getattr(input.data, op)(axis=axes[0]).astype(backend.int64, copy=False)
    return Tensor(xp.expand_dims(index, axes[0]) if keepdim else index)


# ---------------------------------------------------------------- gradient specs
def _sample_var(d: Draw) -> tuple[Any, ...]:
    shape = d.shape(min_dims=1, max_dims=3, min_side=2, max_side=3)  # N - correction > 0
    return d.tensor(shape), _dims.draw_dim(d, len(shape)), d.choice([0, 1]), d.boolean()


register_spec(Sum, sample=lambda d: _dims.sample_reduction(d, min_side=0), call=sum)
register_spec(Mean, sample=_dims.sample_reduction, call=mean)
register_spec(Var, sample=_sample_var, call=lambda x, dim, c, keepdim: var(x, dim, correction=c, keepdim=keepdim))
register_spec(Std, sample=_sample_var, call=lambda x, dim, c, keepdim: std(x, dim, correction=c, keepdim=keepdim))
register_spec(Amax, sample=lambda d: _dims.sample_reduction(d, distinct=True), call=amax)
register_spec(Amin, sample=lambda d: _dims.sample_reduction(d, distinct=True), call=amin)
register_spec(MaxDim, sample=lambda d: _dims.sample_reduction(d, distinct=True, single=True),
              call=lambda x, dim, keepdim: max(x, dim, keepdim).values)
register_spec(MinDim, sample=lambda d: _dims.sample_reduction(d, distinct=True, single=True),
              call=lambda x, dim, keepdim: min(x, dim, keepdim).values)
register_spec(Cumsum, sample=lambda d: _dims.sample_reduction(d, min_side=0, single=True)[:2], call=cumsum)


def all(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """torch.all: a bool tensor, True where every element over `dim` (int or tuple; default every dim)
    is nonzero. Not differentiable (the result never requires grad)."""
    axes = _dims.axes("all", input, dim)
    return Tensor(input.xp.asarray(input.data.all(axis=axes, keepdims=keepdim)))


def any(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """torch.any: a bool tensor, True where some element over `dim` (int or tuple; default every dim)
    is nonzero. Not differentiable (the result never requires grad)."""
    axes = _dims.axes("any", input, dim)
    return Tensor(input.xp.asarray(input.data.any(axis=axes, keepdims=keepdim)))
