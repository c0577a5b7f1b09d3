"""Learning-rate schedules: StepLR and CosineAnnealingLR (torch.optim.lr_scheduler's interface).

A scheduler sets ``group["lr"]`` of every parameter group from the group's
``initial_lr`` and its epoch counter ``last_epoch``; call ``step()`` once per
epoch, after the epoch's optimizer steps. The values come from the closed
forms below (torch's chainable forms give the same numbers when nothing else
changes the learning rate):

    StepLR:             lr(e) = initial_lr · gamma^⌊e / step_size⌋
    CosineAnnealingLR:  lr(e) = eta_min + (initial_lr − eta_min) · (1 + cos(π·e / T_max)) / 2

Creating a scheduler records ``initial_lr`` in each group (if missing) and
applies lr(0). `state_dict()` is a dict of numbers and lists, without the
optimizer.
"""

from __future__ import annotations

import math
from typing import Any

from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR"]


class LRScheduler:
    """Base class: subclasses give the closed form `lr_at(base_lr, epoch)`."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for index, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"{name}: 'initial_lr' is not in param_groups[{index}]; it is needed to resume at "
                        f"last_epoch={last_epoch} (load the optimizer's state_dict first)"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._last_lr: list[float] = []
        self.step()

    def lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        """The learning rates of epoch `last_epoch`."""
        return [self.lr_at(base_lr, self.last_epoch) for base_lr in self.base_lrs]

    def step(self) -> None:
        """Advance one epoch and set each group's lr."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last `step()`, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        state = {key: value for key, value in self.__dict__.items() if key != "optimizer"}
        return {key: (list(value) if isinstance(value, list) else value) for key, value in state.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        unknown = sorted(set(state_dict) - set(self.state_dict()))
        if unknown:
            raise ValueError(f"{type(self).__name__}.load_state_dict: unknown keys {unknown} (saved from a different scheduler?)")
        self.__dict__.update({key: (list(value) if isinstance(value, list) else value) for key, value in state_dict.items()})

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value}" for key, value in self.state_dict().items() if not key.startswith("_"))
        return f"{type(self).__name__}({options})"


class StepLR(LRScheduler):
    """Multiply the learning rate by `gamma` every `step_size` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if not isinstance(step_size, int) or isinstance(step_size, bool) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate from its initial value to `eta_min` over `T_max` epochs along a half cosine."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):  # noqa: N803 (torch's name)
        if not isinstance(T_max, int) or isinstance(T_max, bool) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive integer, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
