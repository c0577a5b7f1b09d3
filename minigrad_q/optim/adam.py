"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), with PyTorch's update rule.

With g the gradient, θ the parameter, t the step count (from 1), m and v the
first and second moment estimates (zero at the start):

    g ← g + weight_decay·θ          (Adam: L2 penalty folded into the gradient)
    θ ← θ·(1 − lr·weight_decay)     (AdamW: decoupled decay, applied before the update)
    m ← β₁·m + (1 − β₁)·g           (computed as m + (1 − β₁)(g − m), torch's lerp)
    v ← β₂·v + (1 − β₂)·g²
    θ ← θ − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)

State per parameter: ``"step"`` (an int), ``"exp_avg"`` (m), ``"exp_avg_sq"`` (v).
Each update allocates one temporary the size of the parameter (two with Adam's
L2 weight decay) and otherwise works in place.

`_update` is this rule for one parameter in NumPy/CuPy array code; on a GPU
`_update_fused`, its multi-tensor twin, updates a whole group with one kernel
launch per 8 parameters and no temporaries (optim/_gpu.py, kernel in
optim/_cuda.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .. import backend
from ..core import Tensor
from . import _gpu
from .optimizer import Optimizer, ParamGroup

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)``, as torch.optim.Adam."""

    decoupled_weight_decay = False
    number_state = ("step",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
    ):
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def _check_options(self, group: ParamGroup) -> None:
        super()._check_options(group)
        name = type(self).__name__
        if not group["eps"] >= 0:
            raise ValueError(f"{name}: invalid epsilon value: {group['eps']}")
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas}")
        for index, beta in enumerate(betas):
            if not 0 <= beta < 1:
                raise ValueError(f"{name}: invalid beta parameter at index {index}: {beta} (expected 0 <= beta < 1)")

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: ParamGroup) -> None:
        xp = backend.get_array_module(param)
        if not state:
            state["step"] = 0
            state["exp_avg"] = Tensor(xp.zeros_like(param))
            state["exp_avg_sq"] = Tensor(xp.zeros_like(param))
        step = state["step"] = int(state["step"]) + 1
        exp_avg, exp_avg_sq = state["exp_avg"].data, state["exp_avg_sq"].data
        beta1, beta2 = group["betas"]
        lr, weight_decay = group["lr"], group["weight_decay"]

        if weight_decay != 0:
            if self.decoupled_weight_decay:
                param *= 1 - lr * weight_decay
            else:
                decayed = xp.multiply(param, weight_decay, out=xp.empty_like(param))  # out=: an array even when 0-d
                decayed += grad
                grad = decayed

        scratch = xp.subtract(grad, exp_avg, out=xp.empty_like(param))
        scratch *= 1 - beta1
        exp_avg += scratch
        xp.multiply(grad, grad, out=scratch)
        scratch *= 1 - beta2
        exp_avg_sq *= beta2
        exp_avg_sq += scratch

        step_size = lr / (1 - beta1**step)
        xp.sqrt(exp_avg_sq, out=scratch)
        scratch /= math.sqrt(1 - beta2**step)
        scratch += group["eps"]
        xp.divide(exp_avg, scratch, out=scratch)
        scratch *= step_size
        param -= scratch

    def _update_fused(self, params: list[Any], grads: list[Any], states: list[dict[str, Any]], group: ParamGroup) -> None:
        _gpu.adam(params, grads, states, group, decoupled=self.decoupled_weight_decay)


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)``: Adam with decoupled weight decay."""

    decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
