"""PACT (Choi et al. 2018): a learned clipping level α for unsigned activations.

With n = 2^b − 1 levels above zero and step s = α/n:

    y = clamp(x, 0, α),   ŷ = rint(y/s)·s                 (rint: round half to even)

ŷ lies on the grid of fake_quant with scale α/n, zero point 0 and range [0, n], and equals it.
Surrogate derivatives (rounding straight-through, the paper's):

    ∂ŷ/∂x = 1[0 <= x < α],   ∂ŷ/∂α = 1[x >= α]

(at x = α the gradient goes to α, at x = 0 to x). α is a number, or a one-element Tensor that
learns when it requires grad. The surrogate is the exact derivative of ``pact_surrogate``.

PACT's forward and backward are the plain path; quant/_fused.py sends GPU arrays and large CPU
arrays to the fused kernels of _fused_cpu.py / _fused_gpu.py, which compute the same values.
"""

from __future__ import annotations

from typing import Any

from ..core import Function, Tensor
from ..specs import Draw, register_spec
from ._fused import fused_kernels
from .lsq import BasePoint
from .qparams import check_bits, check_param

__all__ = ["pact", "pact_surrogate"]


class PACT(Function):
    """ŷ = rint(clamp(x, 0, α)/s)·s with s = α/n;  dx = g·1[0 <= x < α],  dα = Σ g·1[x >= α]."""

    def forward(self, x: Any, alpha: Any, levels: int) -> Any:
        a = self.xp.asarray(alpha, dtype=x.dtype).reshape(())  # α
        s = a / levels
        self.alpha_shape = getattr(alpha, "shape", ())
        self.fused = fused_kernels(self.xp, x)
        if self.fused:
            return self.fused.pact_forward(self, x, a, s)
        if any(self.needs_input_grad):
            self.save_for_backward(x, a)
        return self.xp.rint(self.xp.clip(x, 0, a) / s) * s

    def backward(self, grad_output: Any) -> tuple[Any, Any]:
        if self.fused:
            return self.fused.pact_backward(self, grad_output)
        x, a = self.saved
        need_x, need_alpha = self.needs_input_grad[:2]
        return (grad_output * ((x >= 0) & (x < a)) if need_x else None,
                (grad_output * (x >= a)).sum().reshape(self.alpha_shape) if need_alpha else None)


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
