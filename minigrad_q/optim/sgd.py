"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay (PyTorch's rule).

With g the gradient, θ the parameter and b the momentum buffer:

    g ← g + weight_decay·θ                          (if weight_decay ≠ 0)
    b ← g                                            (first step)
    b ← momentum·b + (1 − dampening)·g               (later steps)
    d ← g + momentum·b   (nesterov)   or   d ← b     (if momentum ≠ 0, else d ← g)
    θ ← θ − lr·d

This is PyTorch's formulation (the learning rate multiplies the buffer, not
each gradient as in Sutskever et al.), so runs agree step for step. The
momentum buffer is the only state, stored as ``"momentum_buffer"`` and only
when momentum ≠ 0.

`_update` is this rule for one parameter in NumPy/CuPy array code; on a GPU
`_update_fused`, its multi-tensor twin, updates a whole group with one kernel
launch per 8 parameters (optim/_gpu.py, kernel in optim/_cuda.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import backend
from ..core import Tensor
from . import _gpu
from .optimizer import Optimizer, ParamGroup

__all__ = ["SGD"]


class SGD(Optimizer):
    """``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False)``, as torch.optim.SGD."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
    ):
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay, "nesterov": nesterov}
        super().__init__(params, defaults)

    def _check_options(self, group: ParamGroup) -> None:
        super()._check_options(group)
        if not group["momentum"] >= 0:
            raise ValueError(f"SGD: invalid momentum value: {group['momentum']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"SGD: Nesterov momentum requires a momentum > 0 and zero dampening, "
                f"got momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: ParamGroup) -> None:
        xp = backend.get_array_module(param)
        momentum = group["momentum"]
        owned = False  # whether `grad` is a temporary of ours that may be overwritten
        if group["weight_decay"] != 0:
            grad = _plus_scaled(xp, grad, param, group["weight_decay"])
            owned = True
        direction = grad
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                state["momentum_buffer"] = buffer = Tensor(grad if owned else grad.copy())
                owned = False  # the temporary became the buffer
                velocity = buffer.data
            else:
                velocity = buffer.data
                velocity *= momentum
                dampening = group["dampening"]
                if dampening == 0:
                    velocity += grad
                elif owned:  # dampening excludes nesterov, so grad is not needed again
                    grad *= 1 - dampening
                    velocity += grad
                else:
                    velocity += xp.multiply(grad, 1 - dampening)
            if group["nesterov"]:
                direction = _plus_scaled(xp, grad, velocity, momentum)
                owned = True
            else:
                direction, owned = velocity, False
        if owned:
            direction *= group["lr"]
            param -= direction
        else:
            param -= xp.multiply(direction, group["lr"])

    def _update_fused(self, params: list[Any], grads: list[Any], states: list[dict[str, Any]], group: ParamGroup) -> None:
        _gpu.sgd(params, grads, states, group)


def _plus_scaled(xp: Any, base: Any, other: Any, scale: float) -> Any:
    """A fresh array base + scale·other (torch's ``base.add(other, alpha=scale)``)."""
    result = xp.multiply(other, scale, out=xp.empty_like(other))  # out=: an array even when 0-d
    result += base
    return result
