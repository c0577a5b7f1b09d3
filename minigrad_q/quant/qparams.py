"""Quantization parameters, shared by every quantizer: integer ranges, the checks of bits, ranges,
scales and axes, the per-channel layout of scale / zero point, and min/max -> (scale, zero point).

Conventions (DESIGN.md, Quantization): scale s > 0, zero point z, integer range [qmin, qmax].
``qrange(b)`` is the signed range [-2^(b-1), 2^(b-1) - 1]; ``signed=False`` gives [0, 2^b - 1];
``narrow=True`` drops the lowest code (signed 8-bit: [-127, 127], the symmetric range).
Per-channel parameters are 1-d with one entry per slice of x along ``axis``; inside a Function
``expand`` lays them out to broadcast against x, and ``sum_to_channels`` reduces a gradient back.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from .. import backend
from ..core import Tensor
from ..core.validate import normalize_dim

_numpy = backend.array_module("cpu")


class NonFiniteGrid(ValueError):
    """A scale (or other grid parameter) that is NaN: it was observed from NaN or inf values."""


FLOAT32_EPS = 2.0**-23  # torch.finfo(torch.float32).eps: the smallest scale an observer gives
MAX_BITS = 16


def check_bits(op: str, bits: Any, high: int = MAX_BITS) -> int:
    """`bits` as an int in [1, high], else a clear error."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"{op}: bits must be an int, got {type(bits).__name__} {bits!r}")
    if not 1 <= bits <= high:
        raise ValueError(f"{op}: bits must be between 1 and {high}, got {bits}")
    return bits


def qrange(bits: int, signed: bool = True, narrow: bool = False) -> tuple[int, int]:
    """(qmin, qmax) of a b-bit integer: signed [-2^(b-1), 2^(b-1) - 1] or unsigned [0, 2^b - 1];
    narrow drops the lowest code. Signed 1-bit is [-1, 0]; signed narrow 1-bit has one code: an error."""
    check_bits("qrange", bits)
    qmin, qmax = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    qmin += int(narrow)
    if qmin >= qmax:
        raise ValueError(f"qrange: a {'signed' if signed else 'unsigned'} narrow {bits}-bit range has a single code")
    return qmin, qmax


def check_qrange(op: str, qmin: Any, qmax: Any) -> tuple[int, int]:
    """(qmin, qmax) as ints with qmin < qmax and at most 2^16 codes, else a clear error."""
    for name, value in (("qmin", qmin), ("qmax", qmax)):
        if isinstance(value, bool):
            raise TypeError(f"{op}: {name} must be an int, got bool {value!r}")
        try:
            operator.index(value)
        except TypeError:
            raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__} {value!r}") from None
    qmin, qmax = operator.index(qmin), operator.index(qmax)
    if qmin >= qmax:
        raise ValueError(f"{op}: qmin must be less than qmax, got qmin={qmin}, qmax={qmax}")
    if qmax - qmin >= 1 << MAX_BITS:
        raise ValueError(f"{op}: [qmin, qmax] = [{qmin}, {qmax}] has more than 2^{MAX_BITS} codes (at most {MAX_BITS} bits)")
    return qmin, qmax


def check_axis(op: str, x: Tensor, axis: Any) -> int | None:
    """axis (None: per-tensor) as a non-negative dim of x."""
    if axis is None:
        return None
    if x.ndim == 0:
        raise ValueError(f"{op}: per-channel quantization (axis={axis}) needs a tensor with dims, got a 0-d tensor")
    return normalize_dim(op, axis, x.ndim)


def check_param(op: str, name: str, value: Any, x: Tensor, axis: int | None, positive: bool = False) -> Any:
    """A scale / zero point / alpha: a Python number (per-tensor), or a Tensor with one element
    (per-tensor) or, with `axis`, one entry per channel of x. `positive` requires every value > 0;
    it is checked for numbers and CPU tensors (on a GPU that check would stall the device)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Tensor)):
        raise TypeError(f"{op}: {name} must be a number or a Tensor, got {type(value).__name__}")
    if isinstance(value, Tensor):
        if value.device != x.device:
            raise RuntimeError(f"{op}: {name} is on {value.device} but the input is on {x.device}")
        if axis is None and value.data.size != 1:
            raise ValueError(f"{op}: per-tensor {name} must have one element, got shape {value.shape}"
                             " (pass axis= for per-channel quantization)")
        if axis is not None and value.shape not in ((x.shape[axis],), (1,), ()):
            raise ValueError(f"{op}: per-channel {name} must have shape ({x.shape[axis]},) for input "
                             f"{x.shape} along axis {axis}, got {value.shape}")
        if positive and value.device == "cpu" and not bool(((value.data > 0) & (value.data < _numpy.inf)).all()):
            message = f"{op}: {name} must be positive and finite, got {value.data.tolist()}"
            if not bool(_numpy.isfinite(value.data).all()):
                raise NonFiniteGrid(message + " (the tensor it was observed from held NaN or inf; "
                                              "has training diverged?)")
            raise ValueError(message)
    elif positive and not 0 < value < math.inf:
        raise ValueError(f"{op}: {name} must be positive and finite, got {value!r}")
    return value


def expand(value: Any, ndim: int, axis: int | None) -> Any:
    """A parameter as given to a Function (a number, or an array of one or C elements) laid out to
    broadcast against an ndim-dim x: per-channel values go along `axis`."""
    if not hasattr(value, "shape"):
        return value
    if axis is None or value.size == 1:
        return value.reshape(())
    shape = [1] * ndim
    shape[axis] = value.size
    return value.reshape(shape)


def sum_to_channels(grad: Any, param: Any, axis: int | None) -> Any:
    """The gradient of a broadcast parameter, summed back to the parameter's own shape."""
    if axis is None or param.size == 1:
        return grad.sum().reshape(param.shape)
    others = tuple(d for d in range(grad.ndim) if d != axis)
    return grad.sum(axis=others).reshape(param.shape)


def minmax_qparams(xp: Any, min_val: Any, max_val: Any, qmin: int, qmax: int, symmetric: bool = False,
                   eps: float = FLOAT32_EPS) -> tuple[Any, Any]:
    """(scale, zero_point) arrays from observed min/max arrays, as torch's observers compute them.

    The range always includes 0: lo = min(min_val, 0), hi = max(max_val, 0). Affine:
    s = (hi - lo) / (qmax - qmin), z = clamp(qmin - round(lo / s), qmin, qmax). Symmetric:
    s = max(-lo, hi) / ((qmax - qmin) / 2), z = 0 for a signed range, (qmin + qmax + 1) // 2 otherwise.
    s is floored at `eps`. Rounding is half-to-even. NaN or inf in NumPy min/max is an error
    (NonFiniteGrid), except min = +inf with max = -inf, an observer's "nothing observed yet"; CuPy
    arrays are not read (that would stall the GPU)."""
    if xp is _numpy:
        unobserved = _numpy.isposinf(min_val) & _numpy.isneginf(max_val)
        if not (unobserved | (_numpy.isfinite(min_val) & _numpy.isfinite(max_val))).all():
            raise NonFiniteGrid(f"minmax_qparams: min and max must be finite, got min {_numpy.asarray(min_val).tolist()} "
                                f"and max {_numpy.asarray(max_val).tolist()} (observed from NaN or inf?)")
    lo = xp.minimum(min_val, 0)
    hi = xp.maximum(max_val, 0)
    if symmetric:
        scale = xp.maximum(xp.maximum(-lo, hi) / ((qmax - qmin) / 2), eps)
        zero = 0 if qmin < 0 else (qmin + qmax + 1) // 2
        zero_point = xp.full(scale.shape, zero, dtype=xp.int64)
    else:
        scale = xp.maximum((hi - lo) / (qmax - qmin), eps)
        zero_point = xp.clip(qmin - xp.rint(lo / scale), qmin, qmax).astype(xp.int64)
    return scale, zero_point


def tensor_qparams(x: Tensor, qmin: int, qmax: int, axis: int | None = None, symmetric: bool = False) -> tuple[Tensor, Tensor]:
    """(scale, zero_point) Tensors from the min/max of x itself (per-tensor, or per slice along `axis`),
    as `minmax_qparams` computes them: a one-shot MinMaxObserver. Nothing is recorded for autograd."""
    qmin, qmax = check_qrange("tensor_qparams", qmin, qmax)
    data = x.data
    axis = check_axis("tensor_qparams", x, axis)
    if axis is None:
        low, high = (data.min(), data.max()) if data.size else (data.dtype.type(0), data.dtype.type(0))
    else:
        others = tuple(d for d in range(data.ndim) if d != axis)
        low, high = data.min(axis=others), data.max(axis=others)
    xp = x.xp
    scale, zero_point = minmax_qparams(xp, xp.asarray(low), xp.asarray(high), qmin, qmax, symmetric)
    return Tensor(scale.astype(data.dtype, copy=False)), Tensor(zero_point)
