"""Gradient scaling (Esser et al. 2019, LSQ): a value passes unchanged while its gradient is scaled.

A quantizer's learned step or clipping range gets one gradient summed over every element it
quantizes, so the step an optimizer takes on it grows with the tensor's size. LSQ multiplies that
gradient by g = 1/sqrt(N·qmax), N the number of elements that share the parameter, which keeps its
updates in proportion to the weights' (the paper's section 2.2). DSQ's learned scale gets the same.
"""

from __future__ import annotations

import math
from typing import Any

from ..core import Function, Tensor
from ..specs import Draw, register_spec

__all__ = ["grad_scale", "lsq_gradient_scale"]


class GradScale(Function):
    """y = x;  dy/dx = g (a positive constant).

    Reference for gradient checks: x·g, whose derivative is g."""

    def forward(self, x: Any, g: float) -> Any:
        self.g = g
        return x.copy()

    def backward(self, grad_output: Any) -> tuple[Any, None]:
        return grad_output * self.g, None


def grad_scale(x: Tensor, g: float) -> Tensor:
    """x itself in the forward; its gradient times g in the backward."""
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not g > 0:
        raise ValueError(f"grad_scale: g must be a positive number, got {g!r}")
    return GradScale.apply(x, float(g))


def lsq_gradient_scale(elements: int, qmax: int) -> float:
    """LSQ's g = 1/sqrt(N·qmax) for a parameter shared by N elements (at least 1 of each)."""
    return 1 / math.sqrt(max(elements, 1) * max(qmax, 1))


def _sample(d: Draw) -> tuple[Any, ...]:
    return d.tensor(d.shape(max_dims=2)), d.floats(0.01, 2.0)


register_spec(GradScale, sample=_sample, call=grad_scale, reference=lambda x, g: x * g)
