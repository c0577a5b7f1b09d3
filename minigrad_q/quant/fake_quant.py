"""Fake quantization with the straight-through estimator (DESIGN.md, Quantization).

x̂ = (clamp(rint(x·(1/s)) + z, qmin, qmax) − z)·s, rounding half to even, per tensor or per channel
(``axis``). x is multiplied by 1/s (computed in x's dtype) rather than divided by s, as torch does, so
that scales and zero points taken from torch give its codes, ties included. The backward is PyTorch's
(torch.fake_quantize_per_tensor_affine): the upstream gradient where the rounded, unclamped code
rint(x·(1/s)) + z lies in [qmin, qmax], 0 elsewhere; scale and zero point get no gradient. An integer
zero point makes the clamp clamp(rint(x·(1/s)), qmin − z, qmax − z), with no rounding error.

Per channel, a zero point held in a float Tensor is a float zero point, as in torch's per-channel op:
x̂ = (clamp(rint(x·(1/s) + z), qmin, qmax) − z)·s, the last product in float64 and rounded once to x's
dtype, and the mask is qmin <= rint(x·(1/s) + z) <= qmax. It takes the plain path only.

FakeQuant's forward and backward are the plain path; quant/_fused.py sends GPU arrays and large CPU
arrays to the fused kernels of _fused_cpu.py / _fused_gpu.py, which compute the same values.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..ops.selection import clamp
from ..specs import Draw, register_spec
from ._fused import fused_kernels
from .qparams import check_axis, check_param, check_qrange, expand, qrange

__all__ = ["fake_quant", "round_ste"]

_numpy = backend.array_module("cpu")


class FakeQuant(Function):
    """y = (clamp(rint(x·(1/s)), qmin − z, qmax − z))·s  (= (clamp(rint(x·(1/s)) + z, qmin, qmax) − z)·s);
    dy/dx = 1[qmin <= rint(x·(1/s)) + z <= qmax] (straight through the rounding, PyTorch's mask).
    A per-channel float zero point z rounds x·(1/s) + z instead (the module docstring).

    Reference for gradient checks: x ↦ (clamp(x/s + z, qmin − ½, qmax + ½) − z)·s, rounding
    frozen: its derivative is that mask (away from the ties where rint(x/s) + z changes)."""

    def forward(self, x: Any, scale: Any, zero_point: Any, qmin: int, qmax: int, axis: int | None) -> Any:
        xp = self.xp
        float_zero = axis is not None and getattr(zero_point, "dtype", None) is not None and zero_point.dtype.kind == "f"
        self.fused = None if float_zero else fused_kernels(xp, x)
        if self.fused:
            return self.fused.fake_quant_forward(self, x, scale, zero_point, qmin, qmax, axis)
        if float_zero:
            s, z = laid_out(xp, scale, x, axis), laid_out(xp, zero_point, x, axis)
            code = xp.rint(x * xp.reciprocal(s) + z)
            clamped = xp.clip(code, qmin, qmax)
            y = ((clamped.astype(backend.float64) - z) * s).astype(x.dtype)
        else:
            s, lo, hi = (laid_out(xp, v, x, axis) for v in (scale, qmin - zero_point, qmax - zero_point))
            code = xp.rint(x * xp.reciprocal(s))
            clamped = xp.clip(code, lo, hi)
            y = clamped * s
        if self.needs_input_grad[0]:
            self.save_for_backward(clamped == code)  # the mask; NaN compares false: no gradient
        return y

    def backward(self, grad_output: Any) -> tuple[Any, None, None]:
        if self.fused:
            return self.fused.fake_quant_backward(self, grad_output)
        (mask,) = self.saved
        return grad_output * mask, None, None


def laid_out(xp: Any, value: Any, x: Any, axis: int | None) -> Any:
    """A scale / zero point (a number, or an array of 1 or C elements) as an array of x's dtype that
    broadcasts against x: per-channel values along `axis`."""
    return expand(xp.asarray(value, dtype=x.dtype), x.ndim, axis)


class RoundSTE(Function):
    """y = rint(x) (half to even);  dy/dx = 1 (straight through).

    Reference for gradient checks: the identity function."""

    def forward(self, x: Any) -> Any:
        return self.xp.rint(x)

    def backward(self, grad_output: Any) -> Any:
        return grad_output


# ---------------------------------------------------------------- public functions
def check_quant_args(op: str, x: Any, scale: Any, zero_point: Any, qmin: Any, qmax: Any,
                     axis: Any, float_zero_point: bool = False) -> tuple[int, int, int | None]:
    """The checks every affine quantizer makes: x a float Tensor, qmin < qmax, a finite scale > 0, an
    integer zero point in [qmin, qmax] (torch's rule; with `float_zero_point`, a per-channel float Tensor
    may hold any values in that range), per-channel shapes matching x along axis. Values held in GPU
    tensors are not read (that would stall the device). Returns (qmin, qmax, axis)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point input, got dtype {x.dtype}")
    qmin, qmax = check_qrange(op, qmin, qmax)
    axis = check_axis(op, x, axis)
    check_param(op, "scale", scale, x, axis, positive=True)
    check_param(op, "zero_point", zero_point, x, axis)
    if isinstance(zero_point, Tensor):
        values = zero_point.data
        integers_only = not (float_zero_point and axis is not None) and zero_point.device == "cpu"
        if integers_only and values.dtype.kind == "f" and not bool((values == _numpy.rint(values)).all()):
            where = " (a float zero point is accepted per channel, with axis=)" if float_zero_point else ""
            raise ValueError(f"{op}: zero_point must hold integers{where}, got {values.tolist()}")
        outside = zero_point.device == "cpu" and values.size and not bool(((values >= qmin) & (values <= qmax)).all())
    elif not (math.isfinite(zero_point) and float(zero_point).is_integer()):
        raise ValueError(f"{op}: zero_point must be an integer, got {zero_point!r}")
    else:
        outside = not qmin <= zero_point <= qmax
    if outside:
        shown = zero_point.data.tolist() if isinstance(zero_point, Tensor) else zero_point
        raise ValueError(f"{op}: zero_point must lie between quant_min and quant_max [{qmin}, {qmax}], got {shown}")
    return qmin, qmax, axis


def fake_quant(x: Tensor, scale: Any, zero_point: Any, qmin: int, qmax: int, axis: int | None = None) -> Tensor:
    """Fake quantization, PyTorch's fake_quantize_per_tensor_affine / _per_channel_affine, with torch's
    arithmetic: x̂ = (clamp(rint(x·(1/s)) + z, qmin, qmax) − z)·s, rounding half to even, 1/s in x's dtype.

    scale (> 0) and zero_point (integers) are numbers or Tensors of one element, or, with `axis`,
    of one element per channel of x along axis; per channel, a float zero_point Tensor may hold
    non-integers: then x̂ = (clamp(rint(x·(1/s) + z), qmin, qmax) − z)·s, as torch's per-channel op
    computes it. Backward: the upstream gradient where the unclamped code lies in [qmin, qmax], else 0;
    scale and zero_point get no gradient. A float16 x is computed in float32 and rounded to float16
    once at the end, as torch computes it (in float16 the scale itself and x·(1/s) would be rounded to
    11 bits first)."""
    qmin, qmax, axis = check_quant_args("fake_quant", x, scale, zero_point, qmin, qmax, axis, float_zero_point=True)
    if x.dtype == backend.float16:
        half = backend.float16
        widened = [v.to(backend.float32) if isinstance(v, Tensor) and v.dtype == half else v for v in (scale, zero_point)]
        return FakeQuant.apply(x.to(backend.float32), *widened, qmin, qmax, axis).to(half)
    return FakeQuant.apply(x, scale, zero_point, qmin, qmax, axis)


def round_ste(x: Tensor) -> Tensor:
    """rint(x) (half to even) with the straight-through gradient: dx = upstream gradient."""
    if not isinstance(x, Tensor):
        raise TypeError(f"round_ste: expected a Tensor input, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"round_ste: expected a floating point input, got dtype {x.dtype}")
    return RoundSTE.apply(x)


# ---------------------------------------------------------------- gradient specs
def broadcast_param(value: Any, x: Tensor, axis: int | None) -> Any:
    """A scale / zero point (number or Tensor) shaped to broadcast against x in a reference function."""
    if not isinstance(value, Tensor) or axis is None or value.data.size == 1:
        return value if not isinstance(value, Tensor) else value.reshape(())
    shape = [1] * x.ndim
    shape[axis] = value.data.size
    return value.reshape(tuple(shape))


def fake_quant_reference(x: Tensor, scale: Any, zero_point: Any, qmin: int, qmax: int, axis: int | None = None) -> Tensor:
    """(clamp(x/s + z, qmin − ½, qmax + ½) − z)·s: the rounding frozen out (it equals x inside the
    range); its derivative in x is fake_quant's mask, away from the ties at half-integer codes."""
    s, z = broadcast_param(scale, x, axis), broadcast_param(zero_point, x, axis)
    return (clamp(x / s + z, qmin - 0.5, qmax + 0.5) - z) * s


def sample_quant_args(d: Draw, learnable_scale: bool = False) -> tuple[Any, ...]:
    """(x, scale, zero_point, qmin, qmax, axis) for a quantizer spec, with x/s + z at least 0.05 from
    every integer and half-integer code near the range (rounding ties, clamp kinks, DSQ's floor)."""
    shape = d.shape(min_dims=0, max_dims=3, min_side=0)
    bits = d.integers(1, 4)
    signed = d.boolean()
    qmin, qmax = qrange(bits, signed)
    axis = d.integers(-len(shape), len(shape) - 1) if shape and d.boolean() else None
    channels = 1 if axis is None else shape[axis]
    if axis is None and not d.boolean():
        scales, zeros = [d.floats(0.2, 0.5)], [d.integers(qmin, qmax)]
        scale: Any = scales[0]
        zero_point: Any = zeros[0]
    else:
        scale = d.tensor((channels,) if axis is not None else (), low=0.2, high=0.5, requires_grad=learnable_scale)
        zero_point = d.tensor((channels,) if axis is not None else (), low=qmin, high=qmax + 0.99,
                              requires_grad=False, dtype="int64")
        if d.boolean():  # float zero points holding integers are accepted too
            zero_point = Tensor(zero_point.data.astype(backend.float64))
        scales = backend.asnumpy(scale.data).reshape(-1).tolist()
        zeros = _numpy.floor(backend.asnumpy(zero_point.data)).reshape(-1).tolist()
    avoid = [(k / 2 - z) * s for s, z in zip(scales, zeros) for k in range(2 * qmin - 5, 2 * qmax + 6)]
    low = min((qmin - 2.5 - z) * s for s, z in zip(scales, zeros)) if scales else -1.0
    high = max((qmax + 2.5 - z) * s for s, z in zip(scales, zeros)) if scales else 1.0
    x = d.tensor(shape, low=low, high=high, avoid=avoid, margin=0.05 * min(scales, default=1.0))
    return x, scale, zero_point, qmin, qmax, axis


register_spec(FakeQuant, sample=sample_quant_args, call=fake_quant, reference=fake_quant_reference,
              note="straight-through: checked against the clamp with the rounding frozen (fake_quant_reference)")
register_spec(RoundSTE, sample=lambda d: (d.tensor(d.shape(min_side=0), avoid=[k / 2 for k in range(-5, 6)], margin=0.05),),
              call=round_ste, reference=lambda x: x * 1.0, note="straight-through: the reference is the identity")
