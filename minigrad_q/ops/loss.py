"""Losses: cross_entropy, nll_loss (integer class targets) and mse_loss, as torch.nn.functional.

Class scores come as (N, C), (N, C, d1, ...) (a class per position: target (N, d1, ...)) or
unbatched (C,) (target a 0-d tensor); internally they are laid out as rows (M, C), one per target.
``reduction`` is "mean" (over the M targets; nan for M = 0, as torch), "sum" or "none" (a loss per
target, shaped like the target). Not supported: class weights, ignore_index, probability targets.
"""

from __future__ import annotations

import warnings
from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..specs import Draw, register_spec
from . import _dims, _gpu

__all__ = ["cross_entropy", "nll_loss", "mse_loss"]

_REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------- shared by the losses
def _rows(x: Any) -> Any:
    """Class scores as (M, C): (C,) -> (1, C), (N, C) as is, (N, C, d...) with the class dim moved last."""
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim == 2:
        return x
    return x.reshape(x.shape[0], x.shape[1], -1).swapaxes(1, 2).reshape(-1, x.shape[1])


def _unrows(xp: Any, grad: Any, shape: tuple[int, ...]) -> Any:
    """Undo `_rows` for a gradient."""
    if len(shape) <= 2:
        return grad if grad.shape == shape else grad.reshape(shape)  # no view: the engine would copy one
    columns = grad.reshape(shape[0], -1, shape[1]).swapaxes(1, 2)
    return xp.ascontiguousarray(columns).reshape(shape)


def _reduce(xp: Any, losses: Any, reduction: str) -> Any:
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    with _dims.quiet(xp):
        return losses.sum() / losses.size if losses.size else losses.sum() / 0  # the mean of nothing is nan


def _weights(grad_output: Any, reduction: str, count: int) -> Any:
    """dL/d(loss_m) for each of the `count` per-target losses: grad_output, or grad_output / count for the mean."""
    if reduction == "mean":
        return grad_output * (1 / max(count, 1))
    return grad_output.reshape(-1) if reduction == "none" else grad_output


# ---------------------------------------------------------------- cross_entropy, nll_loss
class CrossEntropy(Function):
    """loss_m = -Σ_c q_c log p_c with p = softmax(x_m) (computed stably: log p = x - max - log Σ exp(x - max)),
    q = (1 - ε) onehot(t_m) + ε/C (label smoothing ε, torch's formula);  dx_m = (p - q) · dL/dloss_m.

    Forward keeps p, the softmax, for the backward. On a GPU each direction is one kernel over the rows
    (ops/_gpu.py), and a target out of range is reported at the next read of a result."""

    gpu = False  # whether forward took the GPU path

    def forward(self, x: Any, target: Any, reduction: str, label_smoothing: float) -> Any:
        xp = self.xp
        self.input_shape, self.reduction, self.smoothing = x.shape, reduction, label_smoothing
        logits = _rows(x)
        targets = target.reshape(-1)
        if _gpu.takes(x):
            self.gpu = True
            losses = _gpu.cross_entropy_forward(self, logits, targets, label_smoothing)
            return _reduce(xp, losses, reduction).reshape(target.shape if reduction == "none" else ())
        count, classes = logits.shape
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = xp.exp(shifted)
        total = probs.sum(axis=1)
        log_total = xp.log(total)
        rows = xp.arange(count)
        losses = log_total - shifted[rows, targets]
        if label_smoothing:
            losses *= 1 - label_smoothing
            losses += label_smoothing * (log_total - shifted.mean(axis=1))
        if self.needs_input_grad[0]:
            probs /= total[:, None]
            self.save_for_backward(probs, targets)
        return _reduce(xp, losses, reduction).reshape(target.shape if reduction == "none" else ())

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        probs, targets = self.saved
        count, classes = probs.shape
        weights = _weights(grad_output, self.reduction, count)
        if self.gpu:
            return _unrows(xp, _gpu.cross_entropy_backward(self, weights), self.input_shape)
        column = weights[:, None] if weights.ndim else weights
        grad = probs * column
        if self.smoothing:
            grad -= (self.smoothing / classes) * column
        grad[xp.arange(count), targets] -= (1 - self.smoothing) * weights
        return _unrows(xp, grad, self.input_shape)


class NLLLoss(Function):
    """loss_m = -x[m, t_m] (x holds log-probabilities);  dx[m, t_m] = -dL/dloss_m, 0 elsewhere."""

    def forward(self, x: Any, target: Any, reduction: str) -> Any:
        xp = self.xp
        self.input_shape, self.reduction = x.shape, reduction
        scores = _rows(x)
        targets = target.reshape(-1)
        self.save_for_backward(targets)
        losses = -scores[xp.arange(scores.shape[0]), targets]
        return _reduce(xp, losses, reduction).reshape(target.shape if reduction == "none" else ())

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        (targets,) = self.saved
        count = targets.shape[0]
        classes = self.input_shape[1] if len(self.input_shape) > 1 else self.input_shape[0]
        grad = xp.zeros((count, classes), dtype=grad_output.dtype)
        grad[xp.arange(count), targets] = -_weights(grad_output, self.reduction, count)
        return _unrows(xp, grad, self.input_shape)


def _check_class_targets(op: str, input: Any, target: Any, reduction: str) -> None:
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{op}: expected Tensors input and target, got {type(input).__name__} and {type(target).__name__}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected floating point class scores, got dtype {input.dtype}")
    if input.ndim == 0 or input.shape[1 if input.ndim > 1 else 0] == 0:
        raise RuntimeError(f"{op}: expected input (N, C), (N, C, d1, ...) or (C,) with C >= 1 classes, got shape {input.shape}")
    if target.dtype.kind not in "iu":
        hint = ""
        if target.dtype.kind == "f":
            hint = " (for class probabilities use -(target * log_softmax(input, 1)).sum(1).mean())"
        raise RuntimeError(f"{op}: expected integer class targets, got {target.dtype}{hint}")
    expected = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
    if target.shape != expected:
        raise RuntimeError(
            f"{op}: input of shape {input.shape} needs a target of shape {expected} (one class index per "
            f"{'sample' if input.ndim <= 2 else 'sample and position'}), got {target.shape}"
        )
    if target.device != input.device:
        raise RuntimeError(f"{op}: input is on {input.device}, target on {target.device}")
    classes = input.shape[1 if input.ndim > 1 else 0]
    if target.numel() and not (op == "cross_entropy" and _gpu.takes(input.data)):  # there: checked by its kernel
        low, high = int(target.data.min()), int(target.data.max())
        if low < 0 or high >= classes:
            raise IndexError(
                f"{op}: target values must be class indices in [0, {classes}), got values from {low} to {high} "
                "(ignore_index is not supported)"
            )


def cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """torch.nn.functional.cross_entropy with integer class targets: log_softmax over the class dim
    (dim 1, or 0 for unbatched (C,) input) and the negative log-likelihood of each target, fused;
    label_smoothing ε mixes the one-hot target with the uniform distribution: (1 - ε) onehot + ε/C."""
    _check_class_targets("cross_entropy", input, target, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
    return CrossEntropy.apply(input, target, reduction, float(label_smoothing))


def nll_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """torch.nn.functional.nll_loss: -input[m, target[m]] for log-probabilities `input` (say from log_softmax)."""
    _check_class_targets("nll_loss", input, target, reduction)
    return NLLLoss.apply(input, target, reduction)


# ---------------------------------------------------------------- mse_loss
class MSELoss(Function):
    """loss = (x - y)² per element, then reduced;  dx = 2 (x - y) · dL/dloss,  dy = -dx."""

    def forward(self, x: Any, y: Any, reduction: str) -> Any:
        xp = self.xp
        self.reduction = reduction
        diff = x - y
        self.save_for_backward(diff)
        return _reduce(xp, diff * diff, reduction)

    def backward(self, grad_output: Any) -> tuple[Any, Any]:
        (diff,) = self.saved
        need_x, need_y = self.needs_input_grad[:2]
        weights = grad_output if self.reduction == "none" else _weights(grad_output, self.reduction, diff.size)
        grad = diff * (2 * weights)
        return grad if need_x else None, -grad if need_y else None


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """torch.nn.functional.mse_loss: the (mean, sum or per-element) squared difference. Shapes that
    differ broadcast, with torch's warning."""
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"mse_loss: expected Tensors, got {type(input).__name__} and {type(target).__name__}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if input.dtype.kind != "f" or input.dtype != target.dtype:
        raise RuntimeError(f"mse_loss: expected input and target of one floating dtype, got {input.dtype} and {target.dtype}")
    if input.shape != target.shape:
        try:
            backend.array_module("cpu").broadcast_shapes(input.shape, target.shape)
        except ValueError:
            raise RuntimeError(
                f"mse_loss: input of shape {input.shape} and target of shape {target.shape} do not broadcast"
            ) from None
        warnings.warn(
            f"mse_loss: target size {target.shape} differs from input size {input.shape}; they broadcast, "
            "which is likely not what you meant", UserWarning, stacklevel=2,
        )
    return MSELoss.apply(input, target, reduction)


# ---------------------------------------------------------------- gradient specs
def _sample_class_scores(d: Draw, reduction: str, log_probs: bool = False) -> tuple[Any, ...]:
    """Scores and targets; no empty batch for "mean" (its nan output has no derivative to check)."""
    classes = d.integers(1, 4)
    batch = d.integers(0 if reduction != "mean" else 1, 4)
    shape = d.choice([(classes,), (batch, classes), (d.integers(1, 2), classes, d.integers(1, 3))])
    target_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    scores = d.tensor(shape, low=-4.0, high=0.0) if log_probs else d.tensor(shape, low=-3.0, high=3.0)
    target = d.tensor(target_shape, low=0.0, high=classes - 0.01, dtype=backend.int64)
    return scores, target, reduction


def _sample_mse(d: Draw) -> tuple[Any, ...]:
    reduction = d.choice(_REDUCTIONS)
    shape = d.shape(min_side=0 if reduction != "mean" else 1)
    return d.tensor(shape), d.tensor(shape, requires_grad=d.boolean()), reduction


register_spec(CrossEntropy, sample=lambda d: (*_sample_class_scores(d, d.choice(_REDUCTIONS)), d.choice([0.0, 0.1, 0.5])),
              call=cross_entropy)
register_spec(NLLLoss, sample=lambda d: _sample_class_scores(d, d.choice(_REDUCTIONS), log_probs=True), call=nll_loss)
register_spec(MSELoss, sample=_sample_mse, call=mse_loss)
