"""Dropout: zero each element with probability p in training mode, scaling the rest by 1/(1-p)."""

from __future__ import annotations

from .. import ops
from ..core import Tensor
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """In training mode, each element is zeroed with probability p (mask from the device's seeded
    generator) and the others are multiplied by 1/(1-p); in eval mode the input passes unchanged.
    ``inplace`` is accepted for torch's signature; the result is always a new tensor."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return ops.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
