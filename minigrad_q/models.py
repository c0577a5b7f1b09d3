"""Small CNNs for the training command and the benchmarks: LeNet-5 and a toy CIFAR-sized CNN.

Each model is an ``nn.Sequential`` subclass (so its repr is torch's tree and
its state-dict keys are ``0.weight``, ``3.bias``, ... like a torch
``nn.Sequential`` with the same layers), remembers the options it was built
with in ``.options`` (stored in checkpoints), and is built by name with
``build_model("lenet5", input_size=8)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import nn

__all__ = ["LeNet5", "ToyCNN", "lenet5", "toycnn", "build_model", "MODELS"]


def _lenet5_sizes(input_size: int) -> tuple[int, int]:
    """(padding of the second conv, side of its pooled output) for a square input of `input_size`."""
    pooled = input_size // 2  # after conv1 (5x5, padding 2: same size) and a 2x2 max-pool
    padding = 0 if pooled - 4 >= 2 else 2  # keep the classic valid conv2 where it leaves room for a pool
    side = (pooled + 2 * padding - 4) // 2
    return padding, side


class LeNet5(nn.Sequential):
    """LeNet-5 with ReLU and max-pooling (the layout of torch tutorials), for square `input_size` inputs.

    conv5x5(6, padding 2) - ReLU - maxpool2 - conv5x5(16, padding p) - ReLU - maxpool2 - flatten -
    linear(120) - ReLU - linear(84) - ReLU - linear(num_classes).
    The first conv keeps the input's size; the second is the classic valid
    conv (p = 0) when the pooled map is at least 6 pixels wide, else it pads
    by 2 so small inputs still work. Shapes (C = in_channels):

    - 28x28 (MNIST): C x 28 x 28 -> 6 x 28 x 28 -> 6 x 14 x 14 -> 16 x 10 x 10 -> 16 x 5 x 5 = 400 -> 120 -> 84 -> 10
    - 32x32 (CIFAR): C x 32 x 32 -> 6 x 32 x 32 -> 6 x 16 x 16 -> 16 x 12 x 12 -> 16 x 6 x 6 = 576 -> ...
    - 8x8 (digits):  C x 8 x 8 -> 6 x 8 x 8 -> 6 x 4 x 4 -> 16 x 4 x 4 (p = 2) -> 16 x 2 x 2 = 64 -> ...

    Inputs from 4x4 up work (the flattened size follows `input_size`).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28):
        _check_positive("lenet5", in_channels=in_channels, num_classes=num_classes)
        if not isinstance(input_size, int) or input_size < 4:
            raise ValueError(f"lenet5: input_size must be an integer of at least 4, got {input_size!r}")
        padding, side = _lenet5_sizes(input_size)
        super().__init__(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=padding), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * side * side, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )
        self.options = {"in_channels": in_channels, "num_classes": num_classes, "input_size": input_size}


class ToyCNN(nn.Sequential):
    """A toy CNN for 32x32 images (CIFAR-sized), all convs 3x3 with padding 1:

    conv(32) - ReLU - conv(32) - ReLU - maxpool2 - conv(64) - ReLU - maxpool2 - flatten - linear(num_classes).
    Shapes: C x 32 x 32 -> 32 x 32 x 32 -> 32 x 32 x 32 -> 32 x 16 x 16 -> 64 x 16 x 16 -> 64 x 8 x 8 = 4096 -> 10.
    Other sizes divisible by 4 work too (`input_size`, default 32).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, input_size: int = 32):
        _check_positive("toycnn", in_channels=in_channels, num_classes=num_classes)
        if not isinstance(input_size, int) or input_size < 4:
            raise ValueError(f"toycnn: input_size must be an integer of at least 4, got {input_size!r}")
        side = input_size // 4
        super().__init__(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * side * side, num_classes),
        )
        self.options = {"in_channels": in_channels, "num_classes": num_classes, "input_size": input_size}


def _check_positive(model: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{model}: {name} must be a positive integer, got {value!r}")


def lenet5(in_channels: int = 1, num_classes: int = 10, input_size: int = 28) -> LeNet5:
    """LeNet-5 (see ``LeNet5``): 28x28 by default; pass ``input_size=8`` for the bundled digits."""
    return LeNet5(in_channels, num_classes, input_size)


def toycnn(in_channels: int = 3, num_classes: int = 10, input_size: int = 32) -> ToyCNN:
    """The toy CNN of the benchmarks (see ``ToyCNN``), for 32x32 inputs."""
    return ToyCNN(in_channels, num_classes, input_size)


MODELS: dict[str, Callable[..., nn.Module]] = {"lenet5": lenet5, "toycnn": toycnn}


def build_model(name: str, **options: Any) -> nn.Module:
    """The model called `name` ("lenet5", "toycnn"), built with `options` (in_channels, num_classes, input_size)."""
    builder = MODELS.get(name.lower() if isinstance(name, str) else name)
    if builder is None:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    try:
        return builder(**options)
    except TypeError as error:
        raise ValueError(f"{name}: bad options {options}: {error}") from None
