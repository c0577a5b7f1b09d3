"""Differentiable Soft Quantization (Gong et al. 2019), DESIGN.md's integer-domain form.

With v = x/s + z, u = clamp(v, qmin, qmax), f = floor(u), r = u − f − ½, S = 1/(1 − α),
k = log(2/α − 1):  soft(u) = f + ½ + ½·S·tanh(k·r). The forward is ordinary fake quantization,
x̂ = (rint(u) − z)·s (= fake_quant, except that DSQ divides by s where fake_quant multiplies by 1/s,
as torch does: the two differ only where x/s lies within an ulp of a rounding tie); the backward is
the exact derivative of the soft curve ŝ(x) = (soft(u) − z)·s:
  ∂ŝ/∂x = soft'(u)·1[qmin <= v <= qmax],  soft'(u) = ½·S·k·(1 − tanh²(k·r))
  ∂ŝ/∂s = soft(u) − z − soft'(u)·1[qmin <= v <= qmax]·x/s
  ∂ŝ/∂α = s·½·S·[S·tanh(k·r) − 2r·(1 − tanh²(k·r))/(α(2 − α))]   (0 outside the range)
The zero point gets no gradient. α ∈ (0, 1): k = log1p(2(1 − α)/α) stays finite and accurate at
both ends. The zero point is an integer, so u − z = clamp(x/s, qmin − z, qmax − z) has the same f − z
and r as u, with no rounding error. DSQ's backward works in float64 (the α term's two parts cancel
as α → 1).

DSQ's forward and backward are the plain path; quant/_fused.py sends GPU arrays and large CPU
arrays to the fused kernels of _fused_cpu.py / _fused_gpu.py, which work out the derivatives in the
forward's pass (tests/quant/test_fused.py states how closely they agree with these).
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..ops.selection import clamp
from ..specs import Draw, register_spec
from ._fused import fused_kernels
from .fake_quant import broadcast_param, check_quant_args, laid_out, sample_quant_args
from .qparams import NonFiniteGrid, check_param, expand, sum_to_channels

__all__ = ["dsq", "dsq_soft"]


def soft_constants(xp: Any, alpha: Any) -> tuple[Any, Any]:
    """(S, k) = (1/(1 − α), log(2/α − 1)) in float64, numbers or arrays of alpha's shape."""
    alpha = xp.asarray(alpha, dtype=backend.float64)
    return 1 / (1 - alpha), xp.log1p(2 * (1 - alpha) / alpha)


class DSQ(Function):
    """Forward: x̂ = (rint(clamp(x/s + z, qmin, qmax)) − z)·s (= fake_quant but at ties); backward: the exact
    derivative of (soft(u) − z)·s w.r.t. x, s and α (module docstring).

    Reference for gradient checks: dsq_soft, the soft curve written with ordinary ops."""

    def forward(self, x: Any, scale: Any, zero_point: Any, alpha: Any, qmin: int, qmax: int, axis: int | None) -> Any:
        xp = self.xp
        S, k = soft_constants(xp, alpha)
        self.fused = fused_kernels(xp, x)
        if self.fused:
            return self.fused.dsq_forward(self, x, scale, zero_point, alpha, S, k, qmin, qmax, axis)
        s, lo, hi = (laid_out(xp, v, x, axis) for v in (scale, qmin - zero_point, qmax - zero_point))
        t = x / s                      # v − z
        u = xp.clip(t, lo, hi)         # u − z
        self.axis, self.S, self.k = axis, S, k
        self.save_for_backward(t, u, scale, alpha)
        return xp.rint(u) * s

    def backward(self, grad_output: Any) -> tuple[Any, Any, None, Any]:
        if self.fused:
            return self.fused.dsq_backward(self, grad_output)
        t, u, scale, alpha = self.saved
        xp, axis, float64 = self.xp, self.axis, backend.float64
        s, S, k, alpha64 = (expand(xp.asarray(v, dtype=float64), t.ndim, axis) for v in (scale, self.S, self.k, alpha))
        f = xp.floor(u).astype(float64)                # f − z
        r = u - f - 0.5
        tanh = xp.tanh(k * r)
        slope = 0.5 * S * k * (1 - tanh**2) * (u == t)  # soft'(u)·1[qmin <= v <= qmax] (NaN: outside)
        soft = f + 0.5 + 0.5 * S * tanh                # soft(u) − z
        d_alpha = s * 0.5 * S * (S * tanh - 2 * r * (1 - tanh**2) / (alpha64 * (2 - alpha64))) * (u == t)
        need_x, need_scale, need_alpha = self.needs_input_grad[0], self.needs_input_grad[1], self.needs_input_grad[3]
        return (grad_output * slope if need_x else None,
                sum_to_channels(grad_output * (soft - slope * t), scale, axis) if need_scale else None,
                None,
                sum_to_channels(grad_output * d_alpha, alpha, axis) if need_alpha else None)


# ---------------------------------------------------------------- public functions
def _check_alpha(op: str, alpha: Any, x: Tensor, axis: int | None) -> None:
    check_param(op, "alpha", alpha, x, axis)
    if isinstance(alpha, Tensor):
        if alpha.dtype.kind != "f":
            raise TypeError(f"{op}: alpha must be a floating point Tensor, got dtype {alpha.dtype}")
        if alpha.device == "cpu" and not bool(((alpha.data > 0) & (alpha.data < 1)).all()):
            message = f"{op}: alpha must lie in (0, 1), got {alpha.data.tolist()}"
            if bool((alpha.data != alpha.data).any()):  # a learned alpha that went NaN: training diverged
                raise NonFiniteGrid(message + " (a learned alpha became NaN; has training diverged?)")
            raise ValueError(message)
    elif not 0 < alpha < 1:
        raise ValueError(f"{op}: alpha must lie in (0, 1) (0 and 1 divide by zero, (1, 2) inverts the curve), got {alpha!r}")


def dsq(x: Tensor, scale: Any, zero_point: Any, qmin: int, qmax: int, alpha: Any, axis: int | None = None) -> Tensor:
    """DSQ: forward = fake_quant(x, scale, zero_point, qmin, qmax, axis) exactly; backward = the exact
    derivative of the soft curve (soft(clamp(x/s + z, qmin, qmax)) − z)·s w.r.t. x (0 outside the
    clamp range), scale and alpha when they are Tensors that require grad (module docstring).

    alpha ∈ (0, 1): → 1 the gradient tends to the STE's 1, → 0 it peaks at bin mid-points. scale,
    zero_point and alpha are numbers or Tensors of one element, or one per channel with `axis`."""
    qmin, qmax, axis = check_quant_args("dsq", x, scale, zero_point, qmin, qmax, axis)
    _check_alpha("dsq", alpha, x, axis)
    return DSQ.apply(x, scale, zero_point, alpha, qmin, qmax, axis)


def dsq_soft(x: Tensor, scale: Any, zero_point: Any, qmin: int, qmax: int, alpha: Any, axis: int | None = None) -> Tensor:
    """The soft curve (soft(u) − z)·s with u = clamp(x/s + z, qmin, qmax), written with ordinary
    differentiable ops (f = floor(u) is a constant of the point): dsq's reference function."""
    s, z, a = (broadcast_param(p, x, axis) for p in (scale, zero_point, alpha))
    u = clamp(x / s + z, qmin, qmax)
    floor = Tensor(backend.get_array_module(u.data).floor(u.data))
    S = 1 / (1 - a)
    k = (2 / a - 1).log() if isinstance(a, Tensor) else math.log(2 / a - 1)
    soft = floor + 0.5 + 0.5 * S * (k * (u - floor - 0.5)).tanh()
    return (soft - z) * s


# ---------------------------------------------------------------- gradient spec
def _sample_dsq(d: Draw) -> tuple[Any, ...]:
    x, scale, zero_point, qmin, qmax, axis = sample_quant_args(d, learnable_scale=True)
    if isinstance(scale, Tensor) and not d.boolean():
        scale.requires_grad_(False)
    channels = 1 if axis is None else x.shape[axis]
    choice = d.integers(0, 2)
    if choice == 0:
        alpha: Any = d.floats(0.05, 0.95)
    else:
        alpha = d.tensor((channels,) if choice == 2 and axis is not None else (1,), low=0.05, high=0.95)
    return x, scale, zero_point, qmin, qmax, alpha, axis


register_spec(DSQ, sample=_sample_dsq, call=dsq, reference=dsq_soft,
              note="surrogate gradient: checked against the soft curve dsq_soft (x, learnable scale and alpha)")
