"""Loss layers: CrossEntropyLoss, NLLLoss, MSELoss (each calls its functional op)."""

from __future__ import annotations

from .. import ops
from ..core import Tensor
from .module import Module

__all__ = ["CrossEntropyLoss", "MSELoss", "NLLLoss"]

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{self._get_name()}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with torch's class weights: a (C,) buffer, so that it moves with .to() and sits in state_dict."""

    def __init__(self, weight: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if weight is not None and not isinstance(weight, Tensor):
            raise TypeError(f"{self._get_name()}: weight must be a Tensor of shape (C,) or None, got {type(weight).__name__}")
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """F.cross_entropy(scores (N, C) or (N, C, d...), class indices (N, d...) or class probabilities of the
    scores' shape), with torch's weight, ignore_index, reduction and label_smoothing. torch's deprecated
    size_average and reduce are not taken, so the options after weight are keyword-only."""

    def __init__(self, weight: Tensor | None = None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return ops.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                                 label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """F.nll_loss(log-probabilities (N, C) or (N, C, d...), class indices (N, d...)), with torch's weight,
    ignore_index and reduction; the options after weight are keyword-only."""

    def __init__(self, weight: Tensor | None = None, *, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return ops.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(_Loss):
    """F.mse_loss: mean (or sum) of (input - target)²."""

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return ops.mse_loss(input, target, reduction=self.reduction)
