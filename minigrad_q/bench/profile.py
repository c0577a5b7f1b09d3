"""``minigrad-q bench --profile``: where one training step spends its time, op by op (the tape)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend
from ..core import randint, randn
from ..inspect import Tape, record
from ..models import build_model
from ..nn.functional import cross_entropy
from ..optim import SGD


def profile_step(model: Any = "lenet5", batch: int = 128, device: str = "cpu", input_shape: Sequence[int] | None = None,
                 num_classes: int | None = None, lr: float = 0.01, warmup: int = 3, stats: bool = False,
                 seed: int = 0) -> Tape:
    """Record one SGD training step (forward, cross-entropy, zero_grad, backward, step) on a random batch.

    `model`: a name for ``build_model`` ("lenet5": 1x28x28 inputs, "toycnn": 3x32x32) or a Module, whose
    input shape (C, H, W) and number of classes are `input_shape` and `num_classes` or read from its
    ``options`` (10 classes if neither says). `warmup` unrecorded steps run
    first (buffers, threads). Print ``profile_step().table(by="op")`` for where the time goes.
    """
    net = build_model(model) if isinstance(model, str) else model
    net.to(device).train()
    options = getattr(net, "options", {})
    if input_shape is None:
        if "input_size" not in options:
            raise ValueError("profile_step: pass input_shape=(C, H, W) for a model without .options")
        input_shape = (options["in_channels"], options["input_size"], options["input_size"])
    backend.manual_seed(seed)
    images = randn(batch, *input_shape, device=device)
    labels = randint(0, num_classes or options.get("num_classes", 10), (batch,), device=device)
    optimizer = SGD(net.parameters(), lr=lr)

    def step() -> None:
        loss = cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    with record(stats=stats) as tape:
        step()
    return tape
