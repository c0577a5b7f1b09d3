"""Dims and the helpers that reductions (reduce.py) and the softmax family (softmax.py) share.

A ``dim`` argument is checked and mapped to a non-negative axis by ``core.validate.normalize_dim``,
so every op reports a bad dim in the same words. ``axes`` reads torch's reduction ``dim`` (None, an
int or a tuple of ints); the rest move arrays between an input's shape and its reduced ("kept") shape.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..core import Tensor
from ..core.validate import normalize_dim
from ..specs import Draw

UNBIASED_HINT = " (for torch's unbiased=False pass correction=0)"


# ---------------------------------------------------------------- reduction dims and shapes
def axes(op: str, input: Any, dim: Any) -> tuple[int, ...]:
    """torch's dim (None, int or tuple; None and () mean every dim) as sorted non-negative axes."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(input).__name__}")
    ndim = input.data.ndim
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (() if dim is None else (dim,))
    normalized = tuple(normalize_dim(op, d, ndim, bool_hint=UNBIASED_HINT) for d in dims)
    if len(set(normalized)) != len(normalized):
        raise RuntimeError(f"{op}: dim {dims} names the same dimension twice (tensor of shape {input.shape})")
    if not dims or ndim == 0:
        return tuple(range(ndim))
    return tuple(sorted(normalized))


def single_axis(op: str, input: Any, dim: Any) -> tuple[int, ...]:
    """`axes` for ops that reduce along exactly one dim (an int: no None, no tuple)."""
    if isinstance(dim, (tuple, list)) or dim is None:
        raise TypeError(f"{op}: dim must be a single int, got {dim!r}")
    return axes(op, input, dim)


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """`shape` with each reduced axis kept as size 1 (keepdim=True)."""
    return tuple(1 if i in axes else size for i, size in enumerate(shape))


def out_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdim: bool) -> tuple[int, ...]:
    """The shape a reduction over `axes` returns."""
    return kept_shape(shape, axes) if keepdim else tuple(s for i, s in enumerate(shape) if i not in axes)


def lift(x: Any, axes: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
    """A 0-d array as shape (1,) reduced over axis 0, so `out=` arithmetic never meets a NumPy scalar."""
    return (x.reshape(1), (0,)) if x.ndim == 0 else (x, axes)


def unlift(grad: Any, input_shape: tuple[int, ...]) -> Any:
    """Undo `lift`; no reshape otherwise (a view would make the engine copy the gradient)."""
    return grad if grad.shape == input_shape else grad.reshape(input_shape)


# ---------------------------------------------------------------- numerics
def quiet(xp: Any) -> Any:
    """Silence NumPy's divide/invalid warnings where torch's inf/nan result is the intended answer."""
    errstate = getattr(xp, "errstate", None)
    return errstate(divide="ignore", invalid="ignore") if errstate else contextlib.nullcontext()


def shift(xp: Any, x: Any, axes: tuple[int, ...]) -> Any:
    """max over `axes` (kept dims), with non-finite maxima replaced by 0 so that rows of -inf stay -inf."""
    if x.size == 0:
        return xp.zeros(kept_shape(x.shape, axes), dtype=x.dtype)
    peak = x.max(axis=axes, keepdims=True)
    return xp.where(xp.isfinite(peak), peak, 0)


def require_float(op: str, input: Any) -> None:
    """Ops defined only on real numbers (mean, var, softmax, ...) refuse bool and integer tensors, as torch."""
    if isinstance(input, Tensor) and input.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point tensor, got dtype {input.dtype}; convert it with .float()")


# ---------------------------------------------------------------- gradient-spec sampling
def draw_dim(d: Draw, ndim: int, single: bool = False) -> Any:
    """None, one dim (maybe negative) or a tuple of distinct dims; `single`: always one dim."""
    kind = "one" if single else d.choice(["none", "one", "tuple"])
    if kind == "none":
        return None
    if kind == "one" or ndim == 0:
        return d.integers(-max(ndim, 1), max(ndim, 1) - 1)
    picked = [axis for axis in range(ndim) if d.boolean()] or [d.integers(0, ndim - 1)]
    return tuple(axis - ndim if d.boolean() else axis for axis in picked)


def sample_reduction(d: Draw, min_side: int = 1, distinct: bool = False, single: bool = False) -> tuple[Any, Any, bool]:
    """(tensor, dim, keepdim) for a reduction's spec; `single`: an int dim on a tensor of at least one dim."""
    shape = d.shape(min_dims=1 if single else 0, max_dims=3, min_side=min_side, max_side=3)
    return d.tensor(shape, distinct=distinct), draw_dim(d, len(shape), single), d.boolean()
