"""Elementwise functions of one tensor: exp, log, sqrt, abs, sign, sin, cos, and the activations
tanh, sigmoid, relu, leaky_relu, gelu.

Float-only math turns integer input into the default dtype, like PyTorch.
Non-differentiable points follow PyTorch: relu'(0) = 0, abs'(0) = 0, sign' = 0,
leaky_relu'(0) = negative_slope, sqrt'(0) = inf. Backward keeps the output
where the derivative is a function of it (exp, sqrt, tanh, sigmoid, relu) and
works in place on one fresh buffer.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..specs import register_spec
from . import _chunked, _gpu
from ._promotion import _floating, _reuse

__all__ = ["exp", "log", "sqrt", "abs", "sign", "sin", "cos", "tanh", "sigmoid", "relu", "leaky_relu", "gelu"]


class Exp(Function):
    """y = exp(x);  dy/dx = y."""

    def forward(self, x: Any) -> Any:
        y = self.xp.exp(_floating(x))
        self.save_for_backward(y)
        return y

    def backward(self, grad_output: Any) -> Any:
        return self.xp.multiply(grad_output, self.saved[0])


class Log(Function):
    """y = log(x) (NaN below 0, -inf at 0);  dy/dx = 1/x."""

    def forward(self, x: Any) -> Any:
        x = _floating(x)
        self.save_for_backward(x)
        return self.xp.log(x)

    def backward(self, grad_output: Any) -> Any:
        return self.xp.divide(grad_output, self.saved[0])


class Sqrt(Function):
    """y = sqrt(x);  dy/dx = 1/(2y), inf at x = 0 (PyTorch)."""

    def forward(self, x: Any) -> Any:
        y = self.xp.sqrt(_floating(x))
        self.save_for_backward(y)
        return y

    def backward(self, grad_output: Any) -> Any:
        gx = self.xp.divide(grad_output, self.saved[0])
        gx *= 0.5
        return gx


class Abs(Function):
    """y = |x|;  dy/dx = sign(x), 0 at x = 0 (PyTorch)."""

    def forward(self, x: Any) -> Any:
        self.save_for_backward(x)
        return self.xp.abs(x)

    def backward(self, grad_output: Any) -> Any:
        gx = self.xp.sign(self.saved[0])
        gx *= grad_output
        return gx


class Sign(Function):
    """y = sign(x) in {-1, 0, 1};  dy/dx = 0 everywhere (PyTorch)."""

    def forward(self, x: Any) -> Any:
        return x.copy() if x.dtype.kind == "b" else self.xp.sign(x)

    def backward(self, grad_output: Any) -> Any:
        return self.xp.zeros_like(grad_output)


class Sin(Function):
    """y = sin(x);  dy/dx = cos(x)."""

    def forward(self, x: Any) -> Any:
        x = _floating(x)
        self.save_for_backward(x)
        return self.xp.sin(x)

    def backward(self, grad_output: Any) -> Any:
        gx = self.xp.cos(self.saved[0])
        gx *= grad_output
        return gx


class Cos(Function):
    """y = cos(x);  dy/dx = -sin(x)."""

    def forward(self, x: Any) -> Any:
        x = _floating(x)
        self.save_for_backward(x)
        return self.xp.cos(x)

    def backward(self, grad_output: Any) -> Any:
        gx = self.xp.sin(self.saved[0])
        gx *= grad_output
        return self.xp.negative(gx, out=_reuse(gx))


class Tanh(Function):
    """y = tanh(x);  dy/dx = 1 - y². On a GPU the backward is one kernel (ops/_gpu.py); on large CPU arrays
    it runs in cache-sized chunks (ops/_chunked.py)."""

    def forward(self, x: Any) -> Any:
        y = self.xp.tanh(_floating(x))
        self.save_for_backward(y)
        return y

    def backward(self, grad_output: Any) -> Any:
        (y,) = self.saved
        if _gpu.takes(grad_output):
            return _gpu.elementwise(self, "minigrad_q_tanh_backward", grad_output, y)
        if _chunked.takes(grad_output, y):
            return _chunked.tanh_backward(grad_output, y)
        gx = y * y
        gx = self.xp.subtract(1, gx, out=_reuse(gx))
        gx *= grad_output
        return gx


class Sigmoid(Function):
    """y = 1/(1 + exp(-x)) = e/(1 + e) with e = exp(x);  dy/dx = y(1 - y).

    e/(1 + e) keeps full relative precision for very negative x; x is capped at 40 (11 in float16),
    where y already rounds to 1, so exp never overflows. On a GPU each direction is one kernel (ops/_gpu.py);
    on large CPU arrays each runs in cache-sized chunks (ops/_chunked.py).
    """

    def forward(self, x: Any) -> Any:
        x = _floating(x)
        if _gpu.takes(x):
            y = _gpu.elementwise(self, "minigrad_q_sigmoid_forward", x)
            self.save_for_backward(y)
            return y
        cap = 11.0 if x.dtype.itemsize == 2 else 40.0
        if _chunked.takes(x):
            y = _chunked.sigmoid(x, cap)
            self.save_for_backward(y)
            return y
        e = x.clip(-math.inf, cap)
        e = self.xp.exp(e, out=_reuse(e))
        y = e + 1
        y = self.xp.divide(e, y, out=_reuse(y))
        self.save_for_backward(y)
        return y

    def backward(self, grad_output: Any) -> Any:
        (y,) = self.saved
        if _gpu.takes(grad_output):
            return _gpu.elementwise(self, "minigrad_q_sigmoid_backward", grad_output, y)
        if _chunked.takes(grad_output, y):
            return _chunked.sigmoid_backward(grad_output, y)
        gx = self.xp.subtract(1, y)
        gx *= y
        gx *= grad_output
        return gx


class Relu(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0 (relu'(0) = 0, PyTorch). On a GPU the backward is
    one kernel (ops/_gpu.py); on large CPU arrays both directions are split among the worker threads
    (ops/_chunked.py)."""

    def forward(self, x: Any) -> Any:
        if _chunked.takes_split(x):
            y = _chunked.relu(x)
        else:  # clip with two bounds runs NumPy's SIMD loop: 3x faster than maximum(x, 0) on large arrays
            y = x.clip(0.0, math.inf) if x.dtype.kind == "f" else self.xp.maximum(x, 0)
        self.save_for_backward(y)
        return y

    def backward(self, grad_output: Any) -> Any:
        if _gpu.takes(grad_output):
            return _gpu.elementwise(self, "minigrad_q_relu_backward", grad_output, self.saved[0])
        if _chunked.takes_split(grad_output, self.saved[0]):
            return _chunked.relu_backward(grad_output, self.saved[0])
        gx = (self.saved[0] > 0).astype(grad_output.dtype)
        gx *= grad_output
        return gx


class LeakyRelu(Function):
    """y = x where x > 0, else negative_slope·x;
    dy/dx = 1 where x > 0, else negative_slope (leaky_relu'(0) = negative_slope, PyTorch)."""

    def forward(self, x: Any, negative_slope: float) -> Any:
        x = _floating(x)
        self.save_for_backward(x)
        self.negative_slope = negative_slope
        y = self.xp.multiply(x, negative_slope)
        # x is the larger of (x, slope·x) exactly where x > 0 when slope <= 1, the smaller when slope > 1
        select = self.xp.maximum if negative_slope <= 1 else self.xp.minimum
        return select(x, y, out=_reuse(y))

    def backward(self, grad_output: Any) -> Any:
        slope = self.negative_slope
        gx = (self.saved[0] > 0).astype(grad_output.dtype)
        gx *= 1 - slope
        gx += slope
        gx *= grad_output
        return gx


class Gelu(Function):
    """approximate="none":  y = x·Φ(x), Φ(x) = ½·erfc(-x/√2) the standard normal CDF;
    dy/dx = Φ(x) + x·φ(x), φ(x) = exp(-x²/2)/√(2π).

    approximate="tanh":  y = ½·x·(1 + t), t = tanh(u), u = √(2/π)·(x + 0.044715·x³);
    dy/dx = ½·(1 + t) + ½·x·(1 - t²)·√(2/π)·(1 + 3·0.044715·x²).

    Φ comes from `_normal_cdf` (W. J. Cody's erfc, float64 to ~2e-16 absolute). float16 is computed in
    float32 and rounded back (the erfc polynomials overflow float16)."""

    def forward(self, x: Any, approximate: str) -> Any:
        x = _floating(x)
        self.approximate, self.dtype = approximate, x.dtype
        if x.dtype.itemsize == 2:
            x = x.astype(backend.float32)
        if approximate == "tanh":
            u = x * x
            u *= _TANH_CUBIC
            u += 1
            u *= x
            u *= _SQRT_2_OVER_PI
            t = self.xp.tanh(u, out=_reuse(u))
            self.save_for_backward(x, t)
            y = t + 1
            y *= 0.5
        else:
            cdf = _normal_cdf(self.xp, x)
            self.save_for_backward(x, cdf)
            y = cdf.copy()
        y *= x
        return y.astype(self.dtype, copy=False)

    def backward(self, grad_output: Any) -> Any:
        x, saved = self.saved
        if self.approximate == "tanh":
            t = saved
            slope = x * x
            slope *= 3 * _TANH_CUBIC
            slope += 1
            slope *= _SQRT_2_OVER_PI
            slope *= x
            slope *= 1 - t * t  # x·(1 - t²)·du/dx
            slope += 1
            slope += t
            slope *= 0.5
        else:
            slope = x * x
            slope *= -0.5
            slope = self.xp.exp(slope, out=_reuse(slope))
            slope *= x
            slope *= _INV_SQRT_2PI  # x·φ(x)
            slope += saved
        slope = slope.astype(self.dtype, copy=False)
        slope *= grad_output
        return slope


_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_INV_SQRT_PI = 1 / math.sqrt(math.pi)
_TANH_CUBIC = 0.044715

# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969) 631-638,
# as in his SPECFUN routine CALERF (Netlib): numerator and denominator coefficients, highest power first.
_ERF_NEAR = ((1.85777706184603153e-1, 3.16112374387056560e0, 1.13864154151050156e2, 3.77485237685302021e2,
              3.20937758913846947e3),
             (1.0, 2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3, 2.84423683343917062e3))
_ERFC_MIDDLE = ((2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e0, 6.61191906371416295e1,
                 2.98635138197400131e2, 8.81952221241769090e2, 1.71204761263407058e3, 2.05107837782607147e3,
                 1.23033935479799725e3),
                (1.0, 1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2, 1.62138957456669019e3,
                 3.29079923573345963e3, 4.36261909014324716e3, 3.43936767414372164e3, 1.23033935480374942e3))
_ERFC_TAIL = ((1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
               1.60837851487422766e-2, 6.58749161529837803e-4),
              (1.0, 2.56852019228982242e0, 1.87295284992346725e0, 5.27905102951428412e-1, 6.05183413124413191e-2,
               2.33520497626869185e-3))


def _rational(t: Any, coefficients: tuple[tuple[float, ...], tuple[float, ...]]) -> Any:
    """P(t)/Q(t) by Horner's rule (one pass per coefficient over the array, not over its elements)."""
    numerator, denominator = (_horner(t, c) for c in coefficients)
    numerator /= denominator
    return numerator


def _horner(t: Any, coefficients: tuple[float, ...]) -> Any:
    value = t * coefficients[0]
    for c in coefficients[1:-1]:
        value += c
        value *= t
    value += coefficients[-1]
    return value


def _normal_cdf(xp: Any, x: Any) -> Any:
    """Φ(x) = ½·erfc(-x/√2) elementwise, with h = ½·erfc(|z|), z = x/√2: Φ = h where z < 0, else 1 - h.

    erfc(a), a ≥ 0, in Cody's three regions (his rational Chebyshev approximations, max relative error
    ~1e-17 in exact arithmetic; measured against math.erfc in float64: 2.2e-16 absolute, and relative
    error growing like a²·ulp in the tail from the rounding of exp(-a²), 2.4e-13 at a = 26):
    a ≤ 0.46875: 1 - a·R₁(a²);  a ≤ 4: exp(-a²)·R₂(a);  a > 4: exp(-a²)/a·(1/√π - R₃(1/a²)/a²).
    Each region is computed only on its own elements (boolean masks)."""
    z = x * _SQRT_HALF
    a = xp.abs(z)
    half = xp.empty_like(a)
    near, tail = a <= 0.46875, a > 4.0
    middle = ~(near | tail)
    t = a[near]
    half[near] = 1 - t * _rational(t * t, _ERF_NEAR)
    t = a[middle]
    half[middle] = xp.exp(-t * t) * _rational(t, _ERFC_MIDDLE)
    t = a[tail]
    w = 1 / (t * t)
    half[tail] = xp.exp(-t * t) / t * (_INV_SQRT_PI - w * _rational(w, _ERFC_TAIL))
    half *= 0.5
    return xp.where(z < 0, half, 1 - half)


def _sample(low: float = -2.0, high: float = 2.0, avoid: tuple[float, ...] = ()) -> Any:
    return lambda d: (d.tensor(d.shape(min_side=0), low, high, avoid=avoid),)


register_spec(Exp, sample=_sample(), call=lambda x: exp(x))
register_spec(Log, sample=_sample(0.2, 3.0), call=lambda x: log(x), note="domain x > 0")
register_spec(Sqrt, sample=_sample(0.2, 3.0), call=lambda x: sqrt(x), note="domain x > 0")
register_spec(Abs, sample=_sample(avoid=(0.0,)), call=lambda x: abs(x), note="kink at 0")
register_spec(Sign, sample=_sample(avoid=(0.0,)), call=lambda x: sign(x), note="jump at 0")
register_spec(Sin, sample=_sample(-4.0, 4.0), call=lambda x: sin(x))
register_spec(Cos, sample=_sample(-4.0, 4.0), call=lambda x: cos(x))
register_spec(Tanh, sample=_sample(-3.0, 3.0), call=lambda x: tanh(x))
register_spec(Sigmoid, sample=_sample(-4.0, 4.0), call=lambda x: sigmoid(x))
register_spec(Relu, sample=_sample(avoid=(0.0,)), call=lambda x: relu(x), note="kink at 0")
register_spec(
    LeakyRelu,
    sample=lambda d: (d.tensor(d.shape(min_side=0), avoid=(0.0,)), d.choice([0.01, 0.2, -0.5, 1.5])),
    call=lambda x, slope: leaky_relu(x, slope),
    note="kink at 0; slopes above 1 and below 0 included",
)
register_spec(
    Gelu,
    sample=lambda d: (d.tensor(d.shape(min_side=0), *d.choice([(-3.0, 3.0), (-8.0, 8.0)])), d.choice(["none", "tanh"])),
    call=lambda x, approximate: gelu(x, approximate),
    note="x up to ±8 reaches all three regions of the erfc approximation",
)


def exp(input: Tensor) -> Tensor:
    return Exp.apply(input)


def log(input: Tensor) -> Tensor:
    return Log.apply(input)


def sqrt(input: Tensor) -> Tensor:
    return Sqrt.apply(input)


def abs(input: Tensor) -> Tensor:
    return Abs.apply(input)


def sign(input: Tensor) -> Tensor:
    return Sign.apply(input)


def sin(input: Tensor) -> Tensor:
    return Sin.apply(input)


def cos(input: Tensor) -> Tensor:
    return Cos.apply(input)


def tanh(input: Tensor) -> Tensor:
    return Tanh.apply(input)


def sigmoid(input: Tensor) -> Tensor:
    return Sigmoid.apply(input)


def relu(input: Tensor) -> Tensor:
    return Relu.apply(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    return LeakyRelu.apply(input, negative_slope)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """torch.nn.functional.gelu: x·Φ(x) (approximate="none", exact, through erf) or its tanh approximation
    ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (approximate="tanh")."""
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"gelu: approximate argument must be either 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(input, approximate)
