"""Losses: cross_entropy, nll_loss and mse_loss, as torch.nn.functional.

Class scores come as (N, C), (N, C, d1, ...) (a class per position: target (N, d1, ...)) or
unbatched (C,) (target a 0-d tensor); internally they are laid out as rows (M, C), one per target.
Targets are class indices (integers), or for cross_entropy class probabilities: a float target of
the input's shape (torch's rule: same shape means probabilities). ``weight`` (C,) scales each class's
term; a target equal to ``ignore_index`` (class indices only) has loss 0 and no gradient, and may lie
outside [0, C). ``reduction`` is "mean", "sum" or "none" (a loss per target, shaped like the target).
The mean is torch's: Σ_m loss_m / Σ_m w[t_m] over the targets not ignored for class indices (their
count without weight; nan when there is none), Σ_m loss_m / M for class probabilities.
"""

from __future__ import annotations

import warnings
from typing import Any

from .. import backend
from ..core import Function, Tensor, is_grad_enabled
from ..specs import Draw, register_spec
from . import _dims, _gpu

__all__ = ["cross_entropy", "nll_loss", "mse_loss"]

_REDUCTIONS = ("mean", "sum", "none")
_IGNORE_INDEX = -100  # torch's default


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


def _reduce(xp: Any, losses: Any, reduction: str, total: Any = None) -> Any:
    """The losses, their sum, or their sum over `total` (default: their number) for the mean; 0/0 is nan."""
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    with _dims.quiet(xp):
        return losses.sum() / (losses.size if total is None else total)


def _weights(grad_output: Any, reduction: str, total: float) -> Any:
    """dL/d(loss_m) for each per-target loss: grad_output, or grad_output / total for the mean (0 when total
    is 0: then no target counts, and none gets a gradient)."""
    if reduction == "mean":
        return grad_output * (1 / total if total else 0.0)
    return grad_output.reshape(-1) if reduction == "none" else grad_output


def _kept(xp: Any, targets: Any, ignore_index: int) -> tuple[Any, Any]:
    """(the targets with the ignored ones set to class 0, so that they index safely; the mask of the targets
    kept, None when every one is)."""
    ignored = targets == ignore_index
    if not ignored.any():
        return targets, None
    return xp.where(ignored, 0, targets), ~ignored


def _target_weights(weight: Any, targets: Any, kept: Any, dtype: Any) -> Any:
    """r_m = w[t_m]·[t_m kept], each target's share of the loss and of the mean's denominator; None when all are 1."""
    if weight is None:
        return None if kept is None else kept.astype(dtype)
    return weight[targets] if kept is None else weight[targets] * kept


def _total(count: int, target_weights: Any) -> float:
    """The mean's denominator Σ_m r_m (the number of targets when every r_m is 1), as a host number."""
    return count if target_weights is None else float(target_weights.sum())


# ---------------------------------------------------------------- cross_entropy, nll_loss
class CrossEntropy(Function):
    """Class-index targets t_m:  loss_m = -Σ_c w_c q_c log p_c with p = softmax(x_m) (computed stably:
    log p = x - max - log Σ exp(x - max)), q = (1 - ε) onehot(t_m) + ε/C (label smoothing ε, torch's
    formula), w the class weights (1 without);  loss_m = 0 where t_m = ignore_index.
    With a = w ⊙ q (so Σ_c a_c = (1 - ε) w[t_m] + ε·mean(w)):

        dx_m = (p Σ_c a_c - a) · dL/dloss_m   (p - q without weights; 0 for an ignored target)

    The mean's denominator is Σ w[t_m] over the targets kept. Forward keeps p, the softmax, for the backward.
    On a GPU, without weight and with the default ignore_index, each direction is one kernel over the rows
    (ops/_gpu.py), ignored rows masked around it, and a target out of range is reported at the next read
    of a result."""

    gpu = False  # whether forward took the GPU path

    def forward(self, x: Any, target: Any, weight: Any, ignore_index: int, reduction: str, label_smoothing: float) -> Any:
        xp = self.xp
        self.input_shape, self.reduction, self.smoothing = x.shape, reduction, label_smoothing
        logits = _rows(x)
        targets = target.reshape(-1)
        out_shape = target.shape if reduction == "none" else ()
        if _takes_gpu(x, weight):
            self.gpu = True
            return _gpu_forward(self, logits, targets, ignore_index).reshape(out_shape)
        count, classes = logits.shape
        targets, kept = _kept(xp, targets, ignore_index)
        target_weights = _target_weights(weight, targets, kept, x.dtype)
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = xp.exp(shifted)
        total = probs.sum(axis=1)
        log_total = xp.log(total)
        losses = log_total - shifted[xp.arange(count), targets]  # -log p_t
        if target_weights is not None:
            losses *= target_weights
        if label_smoothing:
            if weight is None:
                uniform = log_total - shifted.mean(axis=1)  # -(1/C) Σ_c log p_c
            else:
                uniform = (weight.sum() * log_total - shifted @ weight) / classes  # -(1/C) Σ_c w_c log p_c
            if kept is not None:
                uniform *= kept
            losses *= 1 - label_smoothing
            losses += label_smoothing * uniform
        self.total = _total(count, target_weights)
        if self.needs_input_grad[0]:
            probs /= total[:, None]
            self.save_for_backward(probs, targets, kept, weight)
        return _reduce(xp, losses, reduction, self.total).reshape(out_shape)

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        if self.gpu:
            return _unrows(xp, _gpu_backward(self, grad_output), self.input_shape)
        probs, targets, kept, weight = self.saved
        count, classes = probs.shape
        smoothing = self.smoothing
        scale = _weights(grad_output, self.reduction, self.total)  # dL/dloss_m
        if kept is not None:
            scale = scale * kept
        column = scale[:, None] if scale.ndim else scale
        rows = xp.arange(count)
        if weight is None:
            grad = probs * column
            if smoothing:
                grad -= (smoothing / classes) * column
            grad[rows, targets] -= (1 - smoothing) * scale
        else:
            target_weights = weight[targets]
            mass = (1 - smoothing) * target_weights + smoothing * weight.mean()  # Σ_c a_c
            grad = probs * (mass * scale)[:, None]
            if smoothing:
                grad -= (smoothing / classes) * weight * column
            grad[rows, targets] -= (1 - smoothing) * target_weights * scale
        return _unrows(xp, grad, self.input_shape)


def _takes_gpu(x: Any, weight: Any) -> bool:
    """cross_entropy with class indices takes the GPU kernels without class weights (with them: the plain path)."""
    return weight is None and _gpu.takes(x)


def _gpu_forward(fn: Any, logits: Any, targets: Any, ignore_index: int) -> Any:
    """CrossEntropy's reduced loss by the GPU kernel, which gives ignored rows loss 0 and counts the rest on the
    device (the mean's denominator): no host sync."""
    losses, kept = _gpu.cross_entropy_forward(fn, logits, targets, fn.smoothing, ignore_index)
    fn.total = kept.sum() if fn.reduction == "mean" else None
    return _reduce(fn.xp, losses, fn.reduction, fn.total)


def _gpu_backward(fn: Any, grad_output: Any) -> Any:
    """CrossEntropy's (M, C) gradient by the GPU kernel from the per-row weights dL/dloss_m (0 for ignored rows,
    and for every row of a mean over no row)."""
    if fn.reduction == "mean":
        with _dims.quiet(fn.xp):
            grad_output = fn.xp.nan_to_num(grad_output / fn.total, nan=0.0, posinf=0.0, neginf=0.0)
    scale = grad_output.reshape(-1) if fn.reduction == "none" else grad_output
    return _gpu.cross_entropy_backward(fn, scale)


class CrossEntropyProbs(Function):
    """Class-probability targets t (the input's shape):  loss_m = -Σ_c w_c t'_c log p_c with p = softmax(x_m),
    t' = (1 - ε) t + ε/C (label smoothing ε, torch's formula) and w the class weights (1 without).
    With a = w ⊙ t':

        dx_m = (p Σ_c a_c - a) · dL/dloss_m,    dt_m = -(1 - ε) w ⊙ log p · dL/dloss_m

    The mean divides by M, the number of rows (torch)."""

    def forward(self, x: Any, target: Any, weight: Any, reduction: str, label_smoothing: float) -> Any:
        xp = self.xp
        self.input_shape, self.reduction, self.smoothing = x.shape, reduction, label_smoothing
        logits, targets = _rows(x), _rows(target)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        mixed = targets * (1 - label_smoothing) + label_smoothing / logits.shape[1] if label_smoothing else targets
        scaled = mixed if weight is None else mixed * weight  # a
        with _dims.quiet(xp):  # 0 · log 0 = nan, as torch
            losses = -(scaled * log_probs).sum(axis=1)
        self.save_for_backward(log_probs, scaled if self.needs_input_grad[0] else None, weight)
        out_shape = x.shape[:1] + x.shape[2:] if reduction == "none" and x.ndim > 1 else ()
        return _reduce(xp, losses, reduction).reshape(out_shape)

    def backward(self, grad_output: Any) -> tuple[Any, Any]:
        xp = self.xp
        log_probs, scaled, weight = self.saved
        scale = _weights(grad_output, self.reduction, log_probs.shape[0])
        column = scale[:, None] if scale.ndim else scale
        grad_x = grad_t = None
        if self.needs_input_grad[0]:
            grad_x = (xp.exp(log_probs) * scaled.sum(axis=1, keepdims=True) - scaled) * column
            grad_x = _unrows(xp, grad_x, self.input_shape)
        if self.needs_input_grad[1]:
            grad_t = log_probs * (-(1 - self.smoothing) * column)
            if weight is not None:
                grad_t *= weight
            grad_t = _unrows(xp, grad_t, self.input_shape)
        return grad_x, grad_t


class NLLLoss(Function):
    """loss_m = -w[t_m] x[m, t_m] (x holds log-probabilities; w the class weights, 1 without), 0 where
    t_m = ignore_index;  dx[m, t_m] = -w[t_m] dL/dloss_m, 0 elsewhere and for ignored targets.
    The mean's denominator is Σ w[t_m] over the targets kept."""

    def forward(self, x: Any, target: Any, weight: Any, ignore_index: int, reduction: str) -> Any:
        xp = self.xp
        self.input_shape, self.reduction = x.shape, reduction
        scores = _rows(x)
        targets, kept = _kept(xp, target.reshape(-1), ignore_index)
        target_weights = _target_weights(weight, targets, kept, x.dtype)
        self.save_for_backward(targets, target_weights)
        losses = -scores[xp.arange(scores.shape[0]), targets]
        if target_weights is not None:
            losses *= target_weights
        self.total = _total(targets.shape[0], target_weights)
        return _reduce(xp, losses, reduction, self.total).reshape(target.shape if reduction == "none" else ())

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        targets, target_weights = self.saved
        count = targets.shape[0]
        classes = self.input_shape[1] if len(self.input_shape) > 1 else self.input_shape[0]
        scale = _weights(grad_output, self.reduction, self.total)
        grad = xp.zeros((count, classes), dtype=grad_output.dtype)
        grad[xp.arange(count), targets] = -(scale if target_weights is None else scale * target_weights)
        return _unrows(xp, grad, self.input_shape)


# ---------------------------------------------------------------- argument checks
def _check_scores(op: str, input: Any, target: Any, reduction: str) -> int:
    """The checks every class-score loss shares; returns C, the number of classes."""
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{op}: expected Tensors input and target, got {type(input).__name__} and {type(target).__name__}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected floating point class scores, got dtype {input.dtype}")
    if input.ndim == 0 or input.shape[1 if input.ndim > 1 else 0] == 0:
        raise RuntimeError(f"{op}: expected input (N, C), (N, C, d1, ...) or (C,) with C >= 1 classes, got shape {input.shape}")
    if target.device != input.device:
        raise RuntimeError(f"{op}: input is on {input.device}, target on {target.device}")
    return input.shape[1 if input.ndim > 1 else 0]


def _check_weight(op: str, input: Tensor, weight: Any, classes: int) -> None:
    if weight is None:
        return
    if not isinstance(weight, Tensor):
        hint = " (reduction and the other options are keyword arguments)" if isinstance(weight, str) else ""
        raise TypeError(f"{op}: weight must be a Tensor of shape ({classes},) or None, got {type(weight).__name__} "
                        f"{weight!r}{hint}")
    if weight.shape != (classes,):
        raise RuntimeError(f"{op}: weight must hold one value per class, shape ({classes},), got shape {weight.shape}")
    if weight.dtype != input.dtype or weight.device != input.device:
        raise RuntimeError(f"{op}: weight must have the input's dtype and device ({input.dtype}, {input.device}), "
                           f"got {weight.dtype} on {weight.device}")
    if weight.requires_grad and is_grad_enabled():
        raise RuntimeError(f"{op}: weight requires grad, but class weights get no gradient here (as in torch's "
                           "nll_loss); pass weight.detach()")


def _check_ignore_index(op: str, ignore_index: Any) -> None:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"{op}: ignore_index must be an int, got {type(ignore_index).__name__} {ignore_index!r}")


def _check_class_targets(op: str, input: Any, target: Any, classes: int, ignore_index: int, check_range: bool) -> None:
    """Integer targets of the input's shape without the class dim, in [0, C) except those equal to ignore_index."""
    if target.dtype.kind not in "iu":
        probabilities = f", or class probabilities of the input's shape {input.shape}" if op == "cross_entropy" else ""
        raise RuntimeError(f"{op}: expected integer class targets{probabilities}, got {target.dtype} of shape {target.shape}")
    expected = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
    if target.shape != expected:
        raise RuntimeError(
            f"{op}: input of shape {input.shape} needs a target of shape {expected} (one class index per "
            f"{'sample' if input.ndim <= 2 else 'sample and position'}), got {target.shape}"
        )
    if not check_range or not target.numel():
        return
    values = target.data.reshape(-1)
    values = values[values != ignore_index]
    if values.size:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= classes:
            raise IndexError(
                f"{op}: target values must be class indices in [0, {classes}), got values from {low} to {high} "
                f"(targets equal to ignore_index={ignore_index} aside)"
            )


def _check_smoothing(op: str, label_smoothing: float) -> None:
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *, ignore_index: int = _IGNORE_INDEX,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """torch.nn.functional.cross_entropy: log_softmax over the class dim (dim 1, or 0 for unbatched (C,)
    input) and the negative log-likelihood of each target, fused. Targets are class indices, or class
    probabilities (a float target of the input's shape); label_smoothing ε mixes the target distribution
    with the uniform one: (1 - ε) target + ε/C; weight (C,) scales each class's term; targets equal to
    ignore_index (class indices only) count for nothing. The options after weight are keyword-only."""
    classes = _check_scores("cross_entropy", input, target, reduction)
    _check_weight("cross_entropy", input, weight, classes)
    _check_ignore_index("cross_entropy", ignore_index)
    _check_smoothing("cross_entropy", label_smoothing)
    if target.shape == input.shape:  # class probabilities (torch's rule)
        if target.dtype != input.dtype:
            raise RuntimeError(f"cross_entropy: class probabilities (a target of the input's shape {input.shape}) "
                               f"must have the input's dtype {input.dtype}, got {target.dtype}")
        if ignore_index >= 0:
            raise ValueError(f"cross_entropy: ignore_index ({ignore_index}) is not supported with class probabilities")
        return CrossEntropyProbs.apply(input, target, weight, reduction, float(label_smoothing))
    on_gpu = _takes_gpu(input.data, weight)  # there: the kernel checks the range
    _check_class_targets("cross_entropy", input, target, classes, ignore_index, check_range=not on_gpu)
    return CrossEntropy.apply(input, target, weight, ignore_index, reduction, float(label_smoothing))


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, *, ignore_index: int = _IGNORE_INDEX,
             reduction: str = "mean") -> Tensor:
    """torch.nn.functional.nll_loss: -weight[t]·input[m, t] for log-probabilities `input` (say from log_softmax)
    and class-index targets t; targets equal to ignore_index count for nothing. The options after weight
    are keyword-only."""
    classes = _check_scores("nll_loss", input, target, reduction)
    _check_weight("nll_loss", input, weight, classes)
    _check_ignore_index("nll_loss", ignore_index)
    _check_class_targets("nll_loss", input, target, classes, ignore_index, check_range=True)
    return NLLLoss.apply(input, target, weight, ignore_index, reduction)


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
def _sample_scores(d: Draw, reduction: str, log_probs: bool = False) -> tuple[Any, tuple[int, ...], int]:
    """Scores (C,), (N, C) or (N, C, d); no empty batch for "mean" (its nan output has no derivative to check)."""
    classes = d.integers(1, 4)
    batch = d.integers(0 if reduction != "mean" else 1, 4)
    shape = d.choice([(classes,), (batch, classes), (d.integers(1, 2), classes, d.integers(1, 3))])
    scores = d.tensor(shape, low=-4.0, high=0.0) if log_probs else d.tensor(shape, low=-3.0, high=3.0)
    return scores, shape, classes


def _sample_class_targets(d: Draw, shape: tuple[int, ...], classes: int, reduction: str) -> tuple[Any, int]:
    """Class indices and an ignore_index; some targets (drawn) set to it, but for "mean" not all of them."""
    target_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    target = d.tensor(target_shape, low=0.0, high=classes - 0.01, dtype=backend.int64)
    if not d.boolean():
        return target, _IGNORE_INDEX
    ignore_index = d.choice([_IGNORE_INDEX, -1, classes])
    flags = d.tensor(target_shape, low=0.0, high=1.99, dtype=backend.int64).data == 1
    if reduction == "mean" and bool(flags.all()):
        return target, ignore_index
    return Tensor(backend.get_array_module(flags).where(flags, ignore_index, target.data)), ignore_index


def _sample_weight(d: Draw, classes: int) -> Any:
    return d.choice([None, d.tensor((classes,), low=0.2, high=2.0, requires_grad=False)])


def _sample_cross_entropy(d: Draw) -> tuple[Any, ...]:
    reduction = d.choice(_REDUCTIONS)
    scores, shape, classes = _sample_scores(d, reduction)
    target, ignore_index = _sample_class_targets(d, shape, classes, reduction)
    return scores, target, _sample_weight(d, classes), ignore_index, reduction, d.choice([0.0, 0.1, 0.5])


def _sample_cross_entropy_probs(d: Draw) -> tuple[Any, ...]:
    reduction = d.choice(_REDUCTIONS)
    scores, shape, classes = _sample_scores(d, reduction)
    target = d.tensor(shape, low=0.0, high=1.0, requires_grad=d.boolean())
    return scores, target, _sample_weight(d, classes), _IGNORE_INDEX, reduction, d.choice([0.0, 0.1, 0.5])


def _sample_nll(d: Draw) -> tuple[Any, ...]:
    reduction = d.choice(_REDUCTIONS)
    scores, shape, classes = _sample_scores(d, reduction, log_probs=True)
    target, ignore_index = _sample_class_targets(d, shape, classes, reduction)
    return scores, target, _sample_weight(d, classes), ignore_index, reduction


def _sample_mse(d: Draw) -> tuple[Any, ...]:
    reduction = d.choice(_REDUCTIONS)
    shape = d.shape(min_side=0 if reduction != "mean" else 1)
    return d.tensor(shape), d.tensor(shape, requires_grad=d.boolean()), reduction


def _call_cross_entropy(x: Any, target: Any, weight: Any, ignore_index: int, reduction: str, smoothing: float) -> Any:
    return cross_entropy(x, target, weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)


register_spec(CrossEntropy, sample=_sample_cross_entropy, call=_call_cross_entropy)
register_spec(CrossEntropyProbs, sample=_sample_cross_entropy_probs, call=_call_cross_entropy)
register_spec(NLLLoss, sample=_sample_nll,
              call=lambda x, target, weight, ignore_index, reduction: nll_loss(
                  x, target, weight, ignore_index=ignore_index, reduction=reduction))
register_spec(MSELoss, sample=_sample_mse, call=mse_loss)
