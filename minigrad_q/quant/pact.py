"""PACT (Choi et al. 2018): a learned clipping level α for unsigned activations.

With n = 2^b − 1 levels above zero and step s = α/n:

    y = clamp(x, 0, α),   ŷ = rint(y/s)·s                 (rint: round half to even)

ŷ lies on the grid of fake_quant with scale α/n, zero point 0 and range [0, n], and equals it.
Surrogate derivatives (rounding straight-through, the paper's):

    ∂ŷ/∂x = 1[0 <= x < α],   ∂ŷ/∂α = 1[x >= α]

(at x = α the gradient goes to α, at x = 0 to x). α is a number, or a one-element Tensor that
learns when it requires grad. The surrogate is the exact derivative of ``pact_surrogate``.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..specs import Draw, register_spec
from ._chunks import contiguous, elementwise
from .lsq import BasePoint
from .qparams import check_bits, check_param

__all__ = ["pact", "pact_surrogate"]

_cpu = backend.array_module("cpu")

_CUDA_FORWARD = ("T x, T a, T s", "T y", "y = rint((x < (T)0 ? (T)0 : (x > a ? a : x)) / s) * s;", "minigrad_q_pact_forward")
_CUDA_BACKWARD = ("T g, T x, T a", "T dx, T da", "dx = (x >= (T)0 && x < a) ? g : (T)0; da = x >= a ? g : (T)0;",
                  "minigrad_q_pact_backward")


class PACT(Function):
    """ŷ = rint(clamp(x, 0, α)/s)·s with s = α/n;  dx = g·1[0 <= x < α],  dα = Σ g·1[x >= α]."""

    def forward(self, x: Any, alpha: Any, levels: int) -> Any:
        xp = self.xp
        a = xp.asarray(alpha, dtype=x.dtype).reshape(())
        s = a / levels
        if any(self.needs_input_grad):
            self.save_for_backward(x, a)
            self.alpha_shape = getattr(alpha, "shape", ())
        if xp is not _cpu:
            return backend.elementwise_kernel(*_CUDA_FORWARD)(x, a, s)
        x = contiguous(x)
        a, s = a[()], s[()]  # NumPy scalars of x's dtype
        y = backend.empty(x.shape, x.dtype)

        def kernel(rows: slice, x: Any, y: Any) -> None:
            _cpu.clip(x, 0, a, out=y)
            y /= s
            _cpu.rint(y, out=y)
            y *= s

        elementwise(kernel, [x, y])
        return y

    def backward(self, grad_output: Any) -> Any:
        x, a = self.saved
        need_x, need_alpha = self.needs_input_grad[:2]
        if self.xp is not _cpu:
            dx, da = backend.elementwise_kernel(*_CUDA_BACKWARD)(grad_output, x, a)
            return dx if need_x else None, da.sum().reshape(self.alpha_shape) if need_alpha else None
        x = contiguous(x)
        a = a[()]
        dx = backend.empty(x.shape, x.dtype) if need_x else None
        sum_dtype = backend.float32 if x.dtype.itemsize < 4 else x.dtype  # chunk sums; fsum adds them up

        def kernel(rows: slice, g: Any, x: Any, *views: Any) -> Any:
            *dx_rows, clipped, work = views
            _cpu.greater_equal(x, a, out=clipped)  # 1.0 where x >= α
            part = None
            if need_alpha:
                _cpu.multiply(clipped, g, out=work)
                part = work.sum(dtype=sum_dtype)
            if dx_rows:
                _cpu.greater_equal(x, 0, out=work)
                work -= clipped  # 1.0 where 0 <= x < α (α > 0)
                _cpu.multiply(g, work, out=dx_rows[0])
            return part

        arrays = [contiguous(grad_output), x] + ([dx] if dx is not None else [])
        parts = elementwise(kernel, arrays, scratch=2)
        da = _cpu.asarray(math.fsum(float(p) for p in parts)).reshape(self.alpha_shape) if need_alpha else None
        return dx, da


def _checked(op: str, x: Any, alpha: Any, bits: Any) -> tuple[Any, int]:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {x.dtype}")
    levels = (1 << check_bits(op, bits)) - 1
    return check_param(op, "alpha", alpha, x, None, positive=True), levels


def pact(x: Tensor, alpha: Any, bits: int) -> Tensor:
    """PACT: clamp x to [0, α], then quantize uniformly to 2^bits levels (step α/(2^bits − 1)).
    alpha: a positive number, or a one-element Tensor (learned when it requires grad:
    dα = Σ upstream where x >= α)."""
    alpha, levels = _checked("pact", x, alpha, bits)
    return PACT.apply(x, alpha, levels)


def pact_surrogate(x: Tensor, alpha: Any, bits: int, at: BasePoint | None = None) -> Tensor:
    """PACT with rounding frozen: clamp(x, 0, α) + stopgrad(ŷ − clamp(x, 0, α)), the stop-gradient part
    taken at `at` (a BasePoint of (x, alpha); default the arguments detached). Its exact derivative is
    PACT's surrogate; its kinks are x = 0 and x = α."""
    alpha, levels = _checked("pact_surrogate", x, alpha, bits)
    x0, alpha0 = (x, alpha) if at is None else at.values
    alpha0 = alpha0.detach().reshape(()) if isinstance(alpha0, Tensor) else float(alpha0)
    clipped0 = x0.detach().clamp(0.0, alpha0)
    rounding0 = pact(x0.detach(), alpha0, bits) - clipped0
    bound = alpha.reshape(()) if isinstance(alpha, Tensor) else float(alpha)
    return x.clamp(0.0, bound) + rounding0


def _sample_pact(d: Draw) -> tuple[Any, ...]:
    shape = d.shape(min_dims=0, max_dims=3, min_side=0)
    alpha = d.tensor(d.choice([(), (1,)]), low=0.5, high=3.0) if d.boolean() else d.floats(0.5, 3.0)
    bound = float(alpha.data.reshape(())) if isinstance(alpha, Tensor) else alpha
    x = d.tensor(shape, low=-1.0, high=4.0, avoid=(0.0, bound), margin=0.05)
    return x, alpha, d.integers(1, 8), BasePoint(x, alpha)


register_spec(PACT, sample=_sample_pact, call=lambda x, alpha, bits, at: pact(x, alpha, bits), reference=pact_surrogate,
              note="x is drawn at least 0.05 from the clip kinks 0 and α; the rounding stays frozen at the drawn point")
