"""LSQ and LSQ+ (Esser et al. 2019; Bhalgat et al. 2020): a learned step size (and offset).

With step s > 0, offset β (LSQ+; 0 for plain LSQ), integer range [qmin, qmax] and v = (x − β)/s:

    x̂ = s·clamp(rint(v), qmin, qmax) + β                 (rint: round half to even)

Surrogate derivatives (rint treated as the identity, the straight-through estimator), with
"in range" meaning qmin <= rint(v) <= qmax (the rounded, unclamped code: PyTorch's convention in
_fake_quantize_learnable_per_tensor_affine, and fake_quant's):

    ∂x̂/∂x = 1 in range, 0 outside
    ∂x̂/∂s = (rint(v) − v in range, qmin below, qmax above) · grad_scale
    ∂x̂/∂β = (0 in range, 1 outside) · grad_scale

grad_scale defaults to 1/sqrt(N·qmax), N the number of elements sharing one step (x.size per
tensor, x.size/C per channel); qmax is the paper's Qp, so qmax must be positive (a signed 1-bit
range [-1, 0] has Qp = 0: an error). The surrogate is the exact derivative of ``lsq_surrogate``.

LSQ's forward and backward are the plain path; quant/_fused.py sends GPU arrays and large CPU
arrays to the fused kernels of _fused_cpu.py / _fused_gpu.py, which compute the same values.
"""

from __future__ import annotations

import math
from typing import Any

from ..core import Function, Tensor, collective
from ..specs import Draw, register_spec
from ._fused import fused_kernels
from .fake_quant import laid_out
from .qparams import FLOAT32_EPS, check_axis, check_param, check_qrange, expand, qrange, sum_to_channels

__all__ = ["lsq", "lsq_init_step", "lsq_surrogate"]


class LSQ(Function):
    """x̂ = s·clamp(rint(v), qmin, qmax) + β with v = (x − β)/s;  dx = g·m,
    ds = Σ g·(m·(rint(v) − v) + (1 − m)·clamp(rint(v), qmin, qmax))·gs,  dβ = Σ g·(1 − m)·gs,
    with m = 1[qmin <= rint(v) <= qmax], sums per tensor or per channel (`axis`)."""

    def forward(self, x: Any, step: Any, offset: Any, qmin: int, qmax: int, grad_scale: float, axis: int | None) -> Any:
        self.qmin, self.qmax, self.grad_scale, self.axis = qmin, qmax, grad_scale, axis
        self.fused = fused_kernels(self.xp, x)
        if self.fused:
            return self.fused.lsq_forward(self, x, step, offset)
        s, b = (laid_out(self.xp, v, x, axis) for v in (step, 0 if offset is None else offset))
        v = (x - b) / s
        code = self.xp.rint(v)
        if any(self.needs_input_grad):
            self.save_for_backward(v, code, step, offset)
        return self.xp.clip(code, qmin, qmax) * s + b

    def backward(self, grad_output: Any) -> tuple[Any, Any, Any]:
        if self.fused:
            return self.fused.lsq_backward(self, grad_output)
        v, code, step, offset = self.saved
        xp, qmin, qmax, axis = self.xp, self.qmin, self.qmax, self.axis
        inside = (code >= qmin) & (code <= qmax)  # m
        d_step = xp.where(inside, code - v, xp.clip(code, qmin, qmax))
        need_x, need_step, need_offset = self.needs_input_grad[:3]
        return (grad_output * inside if need_x else None,
                sum_to_channels(grad_output * d_step, step, axis) * self.grad_scale if need_step else None,
                sum_to_channels(grad_output * ~inside, offset, axis) * self.grad_scale if need_offset else None)


def _check_lsq_range(op: str, qmin: Any, qmax: Any) -> tuple[int, int]:
    qmin, qmax = check_qrange(op, qmin, qmax)
    if qmax <= 0:
        raise ValueError(f"{op}: qmax (LSQ's Qp) must be positive, got qmin={qmin}, qmax={qmax}; a signed 1-bit range "
                         "[-1, 0] has no positive level (use the unsigned range [0, 1])")
    return qmin, qmax


def _default_grad_scale(op: str, x: Tensor, qmax: int, axis: int | None, grad_scale: Any) -> float:
    if grad_scale is None:
        per_step = x.data.size // (x.shape[axis] or 1) if axis is not None else x.data.size
        return 1 / math.sqrt(max(per_step, 1) * qmax)
    if isinstance(grad_scale, bool) or not isinstance(grad_scale, (int, float)) or not grad_scale > 0:
        raise ValueError(f"{op}: grad_scale must be a positive number or None, got {grad_scale!r}")
    return float(grad_scale)


def _check_input(op: str, x: Any) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {x.dtype}")


def lsq(x: Tensor, step: Any, qmin: int, qmax: int, grad_scale: float | None = None, axis: int | None = None,
        offset: Any = None) -> Tensor:
    """LSQ fake quantization x̂ = s·clamp(rint((x − β)/s), qmin, qmax) + β with a learnable step s (and,
    LSQ+, a learnable offset β). step / offset: numbers or Tensors (one element, or with `axis` one per
    channel); Tensors that require grad get the LSQ gradients (module docstring), scaled by `grad_scale`
    (default 1/sqrt(N·qmax))."""
    _check_input("lsq", x)
    qmin, qmax = _check_lsq_range("lsq", qmin, qmax)
    axis = check_axis("lsq", x, axis)
    step = check_param("lsq", "step", step, x, axis, positive=True)
    if offset is not None:
        offset = check_param("lsq", "offset", offset, x, axis)
    return LSQ.apply(x, step, offset, qmin, qmax, _default_grad_scale("lsq", x, qmax, axis, grad_scale), axis)


def lsq_init_step(x: Tensor, qmax: int, axis: int | None = None, shard: bool = True) -> Tensor:
    """LSQ's initial step s0 = 2·mean|x| / sqrt(qmax) (per channel with `axis`: the mean over each
    channel's slice), a Tensor of x's dtype without grad. Floored at float32 eps, so that an all-zero x
    still gives a valid step. In a data-parallel job x is this process's `shard` of a batch, and the
    mean is over every process's (core.collective); ``shard=False``: x is the same everywhere (a weight)."""
    _check_input("lsq_init_step", x)
    if isinstance(qmax, bool) or not isinstance(qmax, int) or qmax <= 0:
        raise ValueError(f"lsq_init_step: qmax (LSQ's Qp) must be a positive int, got {qmax!r}")
    axis = check_axis("lsq_init_step", x, axis)
    if x.data.size == 0:
        raise ValueError(f"lsq_init_step: x of shape {x.shape} is empty; there is nothing to take the mean of")
    xp = x.xp
    magnitude = xp.abs(x.data)
    dims = None if axis is None else tuple(d for d in range(x.ndim) if d != axis)
    count = x.data.size // (1 if axis is None else x.shape[axis])
    total = magnitude.sum(axis=dims)
    if shard:
        total, count = collective.all_sum(total), collective.all_count(count)
    step = total / count * (2 / math.sqrt(qmax))
    return Tensor(xp.maximum(step, FLOAT32_EPS).astype(x.dtype))


# ---------------------------------------------------------------- reference for gradient checks
class BasePoint:
    """The point a gradient check is taken at: the values the reference's stop-gradient parts keep
    while finite differences move the arguments (Tensors copied, numbers as they are)."""

    def __init__(self, *values: Any):
        self.values = tuple(Tensor(v.data.copy()) if isinstance(v, Tensor) else v for v in values)

    def __repr__(self) -> str:
        return "BasePoint(...)"


def _frozen(value: Any) -> Any:
    return value.detach() if isinstance(value, Tensor) else value


def _gradient_scaled(value: Any, base: Any, factor: float) -> Any:
    """value·factor + stopgrad(base − base·factor): equal to `value` at the base point, derivative `factor`."""
    if not isinstance(value, Tensor):
        return value
    return value * factor + (base - base * factor)


def _channel_view(value: Any, ndim: int, axis: int | None) -> Any:
    if not isinstance(value, Tensor) or axis is None or value.data.size == 1:
        return value.reshape(()) if isinstance(value, Tensor) else value
    shape = [1] * ndim
    shape[axis] = value.data.size
    return value.reshape(tuple(shape))


def lsq_surrogate(x: Tensor, step: Any, qmin: int, qmax: int, grad_scale: float | None = None, axis: int | None = None,
                  offset: Any = None, at: BasePoint | None = None) -> Tensor:
    """LSQ with rounding frozen, from ordinary differentiable ops: its exact derivative is LSQ's surrogate.

        u = clamp((x − β')/s', qmin − ½, qmax + ½)
        x̂ = s'·(stopgrad(clamp(rint(u), qmin, qmax)) + u − stopgrad(u)) + β'

    with s' = s·gs + stopgrad(s − s·gs) (value s, derivative gs) and β' likewise. The stop-gradient
    parts take their values at `at` (a BasePoint of (x, step, offset)), so finite differences of this
    function see them frozen; without `at` they are the arguments detached (then x̂ equals lsq's output
    and autograd through it gives lsq's gradients). Rounding ties and the clip points (half-integers)
    are kinks: keep v = (x − β)/s away from half-integers."""
    axis = check_axis("lsq_surrogate", x, axis)
    grad_scale = _default_grad_scale("lsq_surrogate", x, qmax, axis, grad_scale)
    x0, step0, offset0 = (x, step, offset) if at is None else at.values
    x0, step0, offset0 = _frozen(x0), _channel_view(_frozen(step0), x.ndim, axis), _channel_view(_frozen(offset0), x.ndim, axis)
    s = _gradient_scaled(_channel_view(step, x.ndim, axis), step0, grad_scale)
    b = _gradient_scaled(_channel_view(offset, x.ndim, axis), offset0, grad_scale) if offset is not None else 0.0
    u = ((x - b) / s).clamp(qmin - 0.5, qmax + 0.5)
    u0 = ((x0 - (offset0 if offset0 is not None else 0.0)) / step0).clamp(qmin - 0.5, qmax + 0.5)
    code0 = Tensor(x.xp.clip(x.xp.rint(u0.data), qmin, qmax))
    return s * (code0 + u - u0) + b


def _sample_lsq(d: Draw) -> tuple[Any, ...]:
    bits, signed = d.integers(1, 8), d.boolean()
    qmin, qmax = qrange(bits, signed=signed and bits > 1)
    shape = d.shape(min_dims=0, max_dims=3, max_side=4)
    axis = d.integers(0, len(shape) - 1) if shape and d.boolean() else None
    param_shape = (shape[axis],) if axis is not None else d.choice([(), (1,)])
    step = d.tensor(param_shape, low=0.2, high=1.5) if axis is not None or d.boolean() else d.floats(0.2, 1.5)
    offset = d.tensor(param_shape, low=-1.0, high=1.0) if d.boolean() else None
    half_integers = [k + 0.5 for k in range(qmin - 3, qmax + 3)]
    x = d.tensor(shape, low=qmin - 2.0, high=qmax + 2.0, avoid=half_integers, margin=0.05)  # codes v, then x = v·s + β
    s_values = step.data if isinstance(step, Tensor) else step
    x.data[...] = x.data * expand(s_values, len(shape), axis) + (0 if offset is None else expand(offset.data, len(shape), axis))
    grad_scale = d.choice([None, 1.0, 0.3])
    return x, step, qmin, qmax, grad_scale, axis, offset, BasePoint(x, step, offset)


register_spec(LSQ, sample=_sample_lsq,
              call=lambda x, step, qmin, qmax, gs, axis, offset, at: lsq(x, step, qmin, qmax, gs, axis, offset),
              reference=lsq_surrogate,
              note="x is drawn as codes v = (x − β)/s at least 0.05 from half-integers (rounding ties and clip points); "
                   "the reference's stop-gradient parts stay at the drawn point (BasePoint)")
