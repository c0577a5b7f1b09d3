"""The quantizers' fused GPU kernels: every CUDA source of the quant package, as CuPy ElementwiseKernels.

Each quantizer's class holds its plain path (DESIGN.md, "plain first, fused second"); quant/_fused.py
sends CuPy arrays here. Each direction of each quantizer is one kernel, computing what the class's
plain forward / backward computes in one pass over memory; tests/quant/test_fused.py checks that
they agree (on a GPU), and tests/quant/test_fused_gpu.py compiles every source in KERNELS with
NVRTC where NVRTC is installed.

A kernel is (in_params, out_params, operation, name), the arguments of backend.elementwise_kernel;
``T`` is the input's float type. Importing this module needs no CuPy.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from .qparams import expand, sum_to_channels

_CLAMPED_CODE = "T code = rint(x * ((T)1 / s)); T clamped = code < lo ? lo : (code > hi ? hi : code);"

FAKE_QUANT = ("T x, T s, T lo, T hi", "T y", _CLAMPED_CODE + " y = clamped * s;", "minigrad_q_fake_quant")
FAKE_QUANT_MASK = ("T x, T s, T lo, T hi", "T y, bool mask",
                   _CLAMPED_CODE + " y = clamped * s; mask = clamped == code;",  # NaN compares false: no gradient
                   "minigrad_q_fake_quant_mask")
MASKED_GRAD = ("T g, bool mask", "T dx", "dx = mask ? g : (T)0", "minigrad_q_masked_grad")

QUANT_NOISE = ("T x, T s, T lo, T hi, bool m", "T y", "if (m) { " + _CLAMPED_CODE + " y = clamped * s; } else { y = x; }",
               "minigrad_q_quant_noise")
QUANT_NOISE_ALL = ("T x, T s, T lo, T hi", "T y", _CLAMPED_CODE + " y = clamped * s;", "minigrad_q_quant_noise_eval")

LSQ_FORWARD = ("T x, T s, T b, T qmin, T qmax", "T y",
               "T c = rint((x - b) / s); y = (c < qmin ? qmin : (c > qmax ? qmax : c)) * s + b;", "minigrad_q_lsq_forward")
LSQ_BACKWARD = ("T g, T x, T s, T b, T qmin, T qmax", "T dx, T ds, T db",
                "T v = (x - b) / s; T r = rint(v); bool inside = r >= qmin && r <= qmax;"
                "dx = inside ? g : (T)0; ds = g * (inside ? r - v : (r < qmin ? qmin : qmax));"
                "db = inside ? (T)0 : g;", "minigrad_q_lsq_backward")

PACT_FORWARD = ("T x, T a, T s", "T y", "y = rint((x < (T)0 ? (T)0 : (x > a ? a : x)) / s) * s;", "minigrad_q_pact_forward")
PACT_BACKWARD = ("T g, T x, T a", "T dx, T da", "dx = (x >= (T)0 && x < a) ? g : (T)0; da = x >= a ? g : (T)0;",
                 "minigrad_q_pact_backward")

# DSQ: one kernel per set of wanted derivatives, from these parts (see _fused_cpu's DSQ notes:
# n = rint(u), a = u − n, ρ = ½ − |a| = |r|, T = tanh(k·ρ)).
_DSQ_FORWARD = "T t = x / s; T u = t < lo ? lo : (t > hi ? hi : t); T n = rint(u); y = n * s;"
_DSQ_SLOPE = ("T a = u - n; T rho = (T)0.5 - fabs(a); T th = tanh(k * rho);"
              " T d = (u == t) ? half_S_k * ((T)1 - th * th) : (T)0; slope = d;")
_DSQ_SCALE = " d_scale = n + copysign((T)0.5 * ((T)1 - S * th), a) - d * t;"
_DSQ_ALPHA = (" double rho64 = 0.5 - fabs((double)a); double th64 = tanh(k64 * rho64);"
              " double term = (S64 * th64 - rho64 * (1.0 - th64 * th64) * two_over_alpha_2_minus_alpha) * minus_half_S_s;"
              " d_alpha = (T)(a > 0 ? term : (a < 0 ? -term : 0.0));")


def dsq_kernel(need_slope: bool, need_scale: bool, need_alpha: bool) -> tuple[str, str, str, str]:
    """DSQ's forward kernel writing y and the derivatives asked for (scale / alpha need the slope)."""
    params, outs, body = ["T x", "T s", "T lo", "T hi"], ["T y"], _DSQ_FORWARD
    if need_slope:
        params += ["T k", "T half_S_k"]
        outs.append("T slope")
        body += " " + _DSQ_SLOPE
    if need_scale:
        params.append("T S")
        outs.append("T d_scale")
        body += _DSQ_SCALE
    if need_alpha:
        params += ["float64 k64", "float64 S64", "float64 two_over_alpha_2_minus_alpha", "float64 minus_half_S_s"]
        outs.append("T d_alpha")
        body += _DSQ_ALPHA
    name = "minigrad_q_dsq" + "".join(f"_{flag}" for flag, on in (("slope", need_slope), ("scale", need_scale),
                                                                   ("alpha", need_alpha)) if on)
    return ", ".join(params), ", ".join(outs), body, name


DSQ_KERNELS = [dsq_kernel(slope, scale, alpha) for slope, scale, alpha in
               [(False, False, False), (True, False, False), (True, True, False), (True, False, True), (True, True, True)]]
KERNELS = [FAKE_QUANT, FAKE_QUANT_MASK, MASKED_GRAD, QUANT_NOISE, QUANT_NOISE_ALL, LSQ_FORWARD, LSQ_BACKWARD,
           PACT_FORWARD, PACT_BACKWARD, *DSQ_KERNELS]  # every source, for the NVRTC compile test


def _kernel(source: tuple[str, str, str, str]) -> Any:
    return backend.elementwise_kernel(*source)


def _on_device(xp: Any, value: Any, x: Any, axis: int | None, dtype: Any = None) -> Any:
    """A scale / zero point / constant that broadcasts against x: a Python number as it is (the kernel
    takes it as an argument of its type: no copy to the device), an array as one of x's dtype (or `dtype`)."""
    if isinstance(value, (int, float)):
        return value
    return expand(xp.asarray(value, dtype=x.dtype if dtype is None else dtype), x.ndim, axis)


# ---------------------------------------------------------------- fake_quant
def fake_quant_forward(fn: Any, x: Any, scale: Any, zero_point: Any, qmin: int, qmax: int, axis: int | None) -> Any:
    xp = fn.xp
    s, lo, hi = (_on_device(xp, v, x, axis) for v in (scale, qmin - zero_point, qmax - zero_point))
    if not fn.needs_input_grad[0]:
        return _kernel(FAKE_QUANT)(x, s, lo, hi)
    y, mask = _kernel(FAKE_QUANT_MASK)(x, s, lo, hi)
    fn.save_for_backward(mask)
    return y


def fake_quant_backward(fn: Any, grad_output: Any) -> tuple[Any, None, None]:
    (mask,) = fn.saved
    return _kernel(MASKED_GRAD)(grad_output, mask), None, None


# ---------------------------------------------------------------- DSQ
def dsq_forward(fn: Any, x: Any, scale: Any, zero_point: Any, alpha: Any, S: Any, k: Any, qmin: int, qmax: int,
                axis: int | None) -> Any:
    xp = fn.xp
    need_x, need_scale, need_alpha = fn.needs_input_grad[0], fn.needs_input_grad[1], fn.needs_input_grad[3]
    need_slope = need_x or need_scale or need_alpha
    args = [x] + [_on_device(xp, v, x, axis) for v in (scale, qmin - zero_point, qmax - zero_point)]
    if need_slope:
        args += [_on_device(xp, k, x, axis), _on_device(xp, 0.5 * S * k, x, axis)]
    if need_scale:
        args.append(_on_device(xp, S, x, axis))
    if need_alpha:
        alpha64 = xp.asarray(alpha, dtype=backend.float64)
        scale64 = xp.asarray(scale, dtype=backend.float64)
        args += [_on_device(xp, v, x, axis, backend.float64)
                 for v in (k, S, 2 / (alpha64 * (2 - alpha64)), -0.5 * S * scale64)]
    results = _kernel(dsq_kernel(need_slope, need_scale, need_alpha))(*args)
    y, *derivatives = results if isinstance(results, tuple) else (results,)
    slope = derivatives.pop(0) if need_slope else None
    d_scale = derivatives.pop(0) if need_scale else None
    d_alpha = derivatives.pop(0) if need_alpha else None
    fn.axis, fn.scale_param, fn.alpha_param = axis, scale, alpha
    if need_slope:
        fn.save_for_backward(slope if need_x else None, d_scale, d_alpha)
    return y


def dsq_backward(fn: Any, grad_output: Any) -> tuple[Any, Any, None, Any]:
    slope, d_scale, d_alpha = fn.saved
    grad_x = grad_output * slope if slope is not None else None
    grad_scale = sum_to_channels(grad_output * d_scale, fn.scale_param, fn.axis) if d_scale is not None else None
    grad_alpha = sum_to_channels(grad_output * d_alpha, fn.alpha_param, fn.axis) if d_alpha is not None else None
    return grad_x, grad_scale, None, grad_alpha


# ---------------------------------------------------------------- LSQ
def _lsq_args(fn: Any, x: Any, step: Any, offset: Any) -> list[Any]:
    xp = fn.xp
    return [_on_device(xp, step, x, fn.axis), _on_device(xp, 0 if offset is None else offset, x, fn.axis),
            fn.qmin, fn.qmax]


def lsq_forward(fn: Any, x: Any, step: Any, offset: Any) -> Any:
    if any(fn.needs_input_grad):
        fn.save_for_backward(x, step, offset)
    return _kernel(LSQ_FORWARD)(x, *_lsq_args(fn, x, step, offset))


def lsq_backward(fn: Any, grad_output: Any) -> tuple[Any, Any, Any]:
    x, step, offset = fn.saved
    need_x, need_step, need_offset = fn.needs_input_grad[:3]
    dx, ds, db = _kernel(LSQ_BACKWARD)(grad_output, x, *_lsq_args(fn, x, step, offset))
    return (dx if need_x else None,
            sum_to_channels(ds, step, fn.axis) * fn.grad_scale if need_step else None,
            sum_to_channels(db, offset, fn.axis) * fn.grad_scale if need_offset else None)


# ---------------------------------------------------------------- PACT
def pact_forward(fn: Any, x: Any, a: Any, s: Any) -> Any:
    if any(fn.needs_input_grad):
        fn.save_for_backward(x, a)
    return _kernel(PACT_FORWARD)(x, a, s)


def pact_backward(fn: Any, grad_output: Any) -> tuple[Any, Any]:
    x, a = fn.saved
    need_x, need_alpha = fn.needs_input_grad[:2]
    dx, da = _kernel(PACT_BACKWARD)(grad_output, x, a)
    return dx if need_x else None, da.sum().reshape(fn.alpha_shape) if need_alpha else None


# ---------------------------------------------------------------- QuantNoise
def quant_noise_forward(fn: Any, w: Any, s: Any, lo: Any, hi: Any, mask: Any) -> Any:
    if mask is None:
        return _kernel(QUANT_NOISE_ALL)(w, s, lo, hi)
    rows = mask.size
    return _kernel(QUANT_NOISE)(w.reshape(rows, -1), s, lo, hi, mask.reshape(rows, 1)).reshape(w.shape)


def min_max(w: Any) -> tuple[Any, Any]:
    return w.min(), w.max()
