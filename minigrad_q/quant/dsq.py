"""Differentiable Soft Quantization (Gong et al. 2019), DESIGN.md's integer-domain form.

With v = x/s + z, u = clamp(v, qmin, qmax), f = floor(u), r = u − f − ½, S = 1/(1 − α),
k = log(2/α − 1):  soft(u) = f + ½ + ½·S·tanh(k·r). The forward is ordinary fake quantization,
x̂ = (rint(u) − z)·s (= fake_quant exactly); the backward is the exact derivative of the soft curve
ŝ(x) = (soft(u) − z)·s:
  ∂ŝ/∂x = soft'(u)·1[qmin <= v <= qmax],  soft'(u) = ½·S·k·(1 − tanh²(k·r))
  ∂ŝ/∂s = soft(u) − z − soft'(u)·1[qmin <= v <= qmax]·x/s
  ∂ŝ/∂α = s·½·S·[S·tanh(k·r) − 2r·(1 − tanh²(k·r))/(α(2 − α))]   (0 outside the range)
The zero point gets no gradient. α ∈ (0, 1): k = log1p(2(1 − α)/α) stays finite and accurate at
both ends, and the α term is computed in float64 (its two parts cancel as α → 1).

Through the rounding n = rint(u) and a = u − n: |r| = ½ − |a|, so with T = tanh(k(½ − |a|))
soft'(u) = ½·S·k·(1 − T²), soft(u) = n + sign(a)·½·(1 − S·T) and tanh(k·r) = −sign(a)·T; at the
clamp bounds a = 0, which makes the soft value the bound and the α term 0 with no extra mask.
CPU: one chunked forward pass (quant/_chunks.py) writes x̂ and the derivatives the backward needs
(soft'(u) masked; ∂ŝ/∂s and ∂ŝ/∂α per element when scale / alpha want gradients), so each
backward is one pass. GPU: one fused CuPy kernel.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..ops.selection import clamp
from ..specs import Draw, register_spec
from . import _chunks
from .fake_quant import broadcast_param, check_quant_args, sample_quant_args
from .qparams import check_param, expand, sum_to_channels

__all__ = ["dsq", "dsq_soft"]

_numpy = backend.array_module("cpu")


def _alpha_constants(xp: Any, alpha: Any) -> dict[str, Any]:
    """float64 S = 1/(1 − α), k = log(2/α − 1), ½·S·k and 1/(α(2 − α)) (numbers or arrays)."""
    a = xp.asarray(alpha, dtype=backend.float64)
    one_minus = 1.0 - a
    slope_scale = 1.0 / one_minus
    k = xp.log1p(2.0 * one_minus / a)
    return {"S": slope_scale, "k": k, "c": 0.5 * slope_scale * k, "w": 1.0 / (a * (2.0 - a))}


class DSQ(Function):
    """Forward: x̂ = (rint(clamp(x/s + z, qmin, qmax)) − z)·s (= fake_quant); backward: the exact
    derivative of (soft(u) − z)·s w.r.t. x, s and α (module docstring).

    Reference for gradient checks: dsq_soft, the soft curve written with ordinary ops."""

    def forward(self, x: Any, scale: Any, zero_point: Any, alpha: Any, qmin: int, qmax: int, axis: int | None) -> Any:
        xp = self.xp
        need_x, need_scale, need_alpha = self.needs_input_grad[0], self.needs_input_grad[1], self.needs_input_grad[3]
        need_slope = need_x or need_scale or need_alpha
        self.axis, self.scale_shape, self.alpha_shape = axis, getattr(scale, "shape", None), getattr(alpha, "shape", None)
        constants = _alpha_constants(xp, alpha)
        if xp is _numpy:
            y, slope, d_scale, d_alpha = _forward_cpu(x, scale, zero_point, constants, qmin, qmax, axis,
                                                      need_slope, need_scale, need_alpha)
        else:
            y, slope, d_scale, d_alpha = _forward_gpu(xp, x, scale, zero_point, constants, qmin, qmax, axis,
                                                      need_slope, need_scale, need_alpha)
        if need_slope:
            self.save_for_backward(slope if need_x else None, d_scale, d_alpha)
        return y

    def backward(self, grad_output: Any) -> tuple[Any, Any, None, Any]:
        slope, d_scale, d_alpha = self.saved
        grad_x = _times(self.xp, grad_output, slope) if slope is not None else None
        grad_scale = self._param_grad(grad_output, d_scale, self.scale_shape)
        grad_alpha = self._param_grad(grad_output, d_alpha, self.alpha_shape)
        return grad_x, grad_scale, None, grad_alpha

    def _param_grad(self, grad_output: Any, derivative: Any, shape: Any) -> Any:
        """Σ grad_output·derivative over the elements of each scale / alpha value."""
        if derivative is None:
            return None
        xp = self.xp
        if xp is not _numpy:
            return sum_to_channels(grad_output * derivative, xp.empty(shape), self.axis)
        channels = _chunks.Channels(derivative.shape, None if _size(shape) == 1 else self.axis)

        def kernel(rows: slice, g: Any, d: Any, product: Any) -> Any:
            xp.multiply(g, d, out=product)
            return channels.partial_sum(product)

        partials = _chunks.elementwise(kernel, [_chunks.contiguous(grad_output), derivative], channels.row_size, scratch=1)
        return channels.total(partials).reshape(shape)


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for side in shape:
        size *= side
    return size


def _times(xp: Any, grad_output: Any, slope: Any) -> Any:
    """grad_output·slope in one chunked pass."""
    if xp is not _numpy:
        return grad_output * slope
    grad_output = _chunks.contiguous(grad_output)
    grad_input = backend.empty(grad_output.shape, grad_output.dtype)
    _chunks.elementwise(lambda rows, g, d, dx: xp.multiply(g, d, out=dx), [grad_output, slope, grad_input])
    return grad_input


def _forward_cpu(x: Any, scale: Any, zero_point: Any, constants: dict[str, Any], qmin: int, qmax: int, axis: int | None,
                 need_slope: bool, need_scale: bool, need_alpha: bool) -> tuple[Any, Any, Any, Any]:
    xp = _numpy
    x = _chunks.contiguous(x)
    dtype = x.dtype
    channels = _chunks.Channels(x.shape, axis)
    s = channels.prepare(scale, dtype)
    lo, hi = channels.prepare(qmin - zero_point, dtype), channels.prepare(qmax - zero_point, dtype)
    neg_k = channels.prepare(-constants["k"], dtype)
    half_k = channels.prepare(0.5 * constants["k"], dtype)
    c = channels.prepare(constants["c"], dtype)
    neg_half_S = channels.prepare(-0.5 * constants["S"], dtype)
    if need_alpha:
        k64 = channels.prepare(constants["k"], backend.float64)
        w64 = channels.prepare(constants["w"], backend.float64)
        S64 = channels.prepare(constants["S"], backend.float64)
        minus_half_S_s = channels.prepare(-0.5 * constants["S"] * xp.asarray(scale, dtype=backend.float64), backend.float64)
    y = backend.empty(x.shape, dtype)
    slope = backend.empty(x.shape, dtype) if need_slope else None
    d_scale = backend.empty(x.shape, dtype) if need_scale else None
    d_alpha = backend.empty(x.shape, dtype) if need_alpha else None
    outputs = [a for a in (slope, d_scale, d_alpha) if a is not None]

    def kernel(rows: slice, x: Any, y: Any, *rest: Any) -> None:
        at = channels.at
        si = at(s, rows)
        if not need_slope:
            xp.divide(x, si, out=y)
            xp.clip(y, at(lo, rows), at(hi, rows), out=y)
            xp.rint(y, out=y)
            xp.multiply(y, si, out=y)
            return
        outs, (t, a, b, inside) = list(rest[:len(outputs)]), rest[len(outputs):]
        slope_out = outs.pop(0)
        scale_out = outs.pop(0) if need_scale else None
        alpha_out = outs.pop(0) if need_alpha else None
        xp.divide(x, si, out=t)                          # t = v − z
        xp.clip(t, at(lo, rows), at(hi, rows), out=a)    # u − z
        xp.equal(a, t, out=inside)                       # qmin <= v <= qmax (NaN: outside)
        xp.rint(a, out=y)                                # n − z
        xp.subtract(a, y, out=a)                         # a = u − rint(u)
        xp.abs(a, out=b)
        xp.multiply(b, at(neg_k, rows), out=b)
        xp.add(b, at(half_k, rows), out=b)               # k·(½ − |a|) = k·|r|
        ci = at(c, rows)
        if not (need_scale or need_alpha):
            xp.cosh(b, out=b)
            xp.square(b, out=b)
            xp.divide(ci, b, out=slope_out)              # ½·S·k·sech²(k·r)
        else:
            xp.tanh(b, out=b)                            # T
            xp.square(b, out=slope_out)
            xp.subtract(1, slope_out, out=slope_out)
            xp.multiply(slope_out, ci, out=slope_out)    # ½·S·k·(1 − T²)
        xp.multiply(slope_out, inside.view(xp.uint8), out=slope_out)
        if alpha_out is not None:                        # before b (T) is overwritten
            _alpha_derivative(a, at(k64, rows), at(w64, rows), at(S64, rows), at(minus_half_S_s, rows), alpha_out)
        if scale_out is not None:                        # n − z + sign(a)·½(1 − S·T) − soft'·t
            xp.multiply(b, at(neg_half_S, rows), out=b)
            xp.add(b, 0.5, out=b)
            xp.copysign(b, a, out=b)
            xp.add(b, y, out=scale_out)
            xp.multiply(slope_out, t, out=t)
            xp.subtract(scale_out, t, out=scale_out)
        xp.multiply(y, si, out=y)

    scratch = [dtype, dtype, dtype, backend.bool_] if need_slope else 0
    _chunks.elementwise(kernel, [x, y, *outputs], channels.row_size, scratch=scratch)
    return y, slope, d_scale, d_alpha


def _alpha_derivative(a: Any, k: Any, w: Any, S: Any, minus_half_S_s: Any, out: Any) -> None:
    """out = ∂ŝ/∂α = −sign(a)·½·S·s·[S·T − 2ρ(1 − T²)·w], ρ = ½ − |a|, T = tanh(k·ρ), in float64."""
    xp = _numpy
    rho = xp.abs(a, dtype=backend.float64)
    xp.subtract(0.5, rho, out=rho)
    tanh = xp.multiply(rho, k)
    xp.tanh(tanh, out=tanh)
    sech2 = xp.square(tanh)
    xp.subtract(1, sech2, out=sech2)
    xp.multiply(sech2, rho, out=sech2)
    xp.multiply(sech2, 2 * w, out=sech2)
    xp.multiply(tanh, S, out=tanh)
    xp.subtract(tanh, sech2, out=tanh)
    xp.multiply(tanh, minus_half_S_s, out=tanh)
    xp.multiply(tanh, xp.sign(a), out=out, casting="same_kind")


_FORWARD_GPU = """
T t = x / s;
T u = t < lo ? lo : (t > hi ? hi : t);
T n = rint(u);
y = n * s;
"""
_SLOPE_GPU = """
T a = u - n;
T rho = (T)0.5 - fabs(a);
T th = tanh(k * rho);
T d = (u == t) ? c * ((T)1 - th * th) : (T)0;
"""


def _forward_gpu(xp: Any, x: Any, scale: Any, zero_point: Any, constants: dict[str, Any], qmin: int, qmax: int,
                 axis: int | None, need_slope: bool, need_scale: bool, need_alpha: bool) -> tuple[Any, Any, Any, Any]:
    def arr(value: Any, dtype: Any = x.dtype) -> Any:
        return expand(xp.asarray(value, dtype=dtype), x.ndim, axis)

    args = [x, arr(scale), arr(qmin - zero_point), arr(qmax - zero_point)]
    params, outs, body = ["T x", "T s", "T lo", "T hi"], ["T y"], _FORWARD_GPU
    if need_slope:
        args += [arr(constants["k"]), arr(constants["c"])]
        params += ["T k", "T c"]
        outs.append("T slope")
        body += _SLOPE_GPU + "slope = d;\n"
    if need_scale:
        args.append(arr(constants["S"]))
        params.append("T S")
        outs.append("T d_scale")
        body += "d_scale = n + copysign((T)0.5 * ((T)1 - S * th), a) - d * t;\n"
    if need_alpha:
        args += [arr(constants[name], backend.float64) for name in ("k", "w", "S")]
        args.append(arr(constants["S"] * xp.asarray(scale, dtype=backend.float64) * -0.5, backend.float64))
        params += ["float64 k64", "float64 w64", "float64 S64", "float64 minus_half_S_s"]
        outs.append("T d_alpha")
        body += """
double rho64 = 0.5 - fabs((double)a);
double th64 = tanh(k64 * rho64);
double term = (S64 * th64 - 2.0 * rho64 * (1.0 - th64 * th64) * w64) * minus_half_S_s;
d_alpha = (T)(a > 0 ? term : (a < 0 ? -term : 0.0));
"""
    name = "minigrad_q_dsq" + "".join(f"_{flag}" for flag, on in (("slope", need_slope), ("scale", need_scale),
                                                                   ("alpha", need_alpha)) if on)
    kernel = backend.elementwise_kernel(", ".join(params), ", ".join(outs), body, name)
    results = kernel(*args)
    results = results if isinstance(results, tuple) else (results,)
    y, rest = results[0], list(results[1:])
    slope = rest.pop(0) if need_slope else None
    d_scale = rest.pop(0) if need_scale else None
    d_alpha = rest.pop(0) if need_alpha else None
    return y, slope, d_scale, d_alpha


# ---------------------------------------------------------------- public functions
def _check_alpha(op: str, alpha: Any, x: Tensor, axis: int | None) -> None:
    check_param(op, "alpha", alpha, x, axis)
    if isinstance(alpha, Tensor):
        if alpha.dtype.kind != "f":
            raise TypeError(f"{op}: alpha must be a floating point Tensor, got dtype {alpha.dtype}")
        if alpha.device == "cpu" and not bool(((alpha.data > 0) & (alpha.data < 1)).all()):
            raise ValueError(f"{op}: alpha must lie in (0, 1), got {alpha.data.tolist()}")
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
    slope_scale = 1 / (1 - a)
    k = (2 / a - 1).log() if isinstance(a, Tensor) else math.log(2 / a - 1)
    soft = floor + 0.5 + 0.5 * slope_scale * (k * (u - floor - 0.5)).tanh()
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
