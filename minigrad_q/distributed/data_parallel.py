"""Data-parallel training: every rank holds the whole model, computes the gradient of its shard of each
batch, and the ranks average their gradients before each step, so that every replica takes the step
that one process given the whole batch would (ChainerMN's multi-node optimizer, torch's DDP).

- ``broadcast_parameters(module, comm)``: rank 0's parameters and buffers on every rank (at the start).
- ``DistributedOptimizer(optimizer, comm)``: ``step(samples=n)`` first replaces each gradient g_r by
  Σ_r n_r·g_r / Σ_r n_r (n_r the samples of rank r's shard; equal weights without ``samples``), then
  runs the wrapped optimizer. Gradients travel in flat buckets of at most ``bucket_bytes`` per
  device and dtype, one all-reduce each, not one per parameter: each bucket holds n_r·g_r of its
  parameters and n_r at its end; after the sum, one division on the device gives the averages, and
  each parameter's ``grad`` becomes a view of its bucket (no copy back, no host sync).
- ``sync_batchnorm(module)``: BatchNorm layers normalise with the statistics of the whole batch, over
  every rank, instead of each rank's own (the default, as in DDP).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .. import backend, nn
from ..core import Tensor, enable_grad, no_grad
from .communicator import Communicator, DistributedError

__all__ = ["broadcast_parameters", "DistributedOptimizer", "sync_batchnorm", "BUCKET_BYTES"]

BUCKET_BYTES = 32 << 20


def broadcast_parameters(module: nn.Module, comm: Communicator) -> None:
    """Overwrite every parameter and buffer of `module` with rank 0's (all ranks call it together)."""
    with no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if not tensor.data.flags.c_contiguous:
                tensor.data = backend.get_array_module(tensor.data).ascontiguousarray(tensor.data)
            comm.bcast_(tensor.data)


def sync_batchnorm(module: nn.Module) -> int:
    """Make every BatchNorm layer in `module` normalise with whole-batch statistics over all ranks; returns
    how many layers that is."""
    layers = [m for m in module.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    for layer in layers:
        layer.synchronized = True
    return len(layers)


class DistributedOptimizer:
    """``DistributedOptimizer(optimizer, comm, bucket_bytes=BUCKET_BYTES)``: `optimizer` whose ``step``
    first averages the gradients over the ranks. ``param_groups``, ``state``, ``zero_grad``,
    ``state_dict`` and ``load_state_dict`` are the wrapped optimizer's (learning-rate schedules work
    on it as on the optimizer itself). ``averaging_seconds``: the host's wall time spent averaging so
    far (packing, all-reduce, unpacking; on a GPU the launches, not the transfer)."""

    def __init__(self, optimizer: Any, comm: Communicator, bucket_bytes: int = BUCKET_BYTES) -> None:
        self.optimizer, self.comm, self.bucket_bytes = optimizer, comm, int(bucket_bytes)
        self._agreed: tuple[int, ...] | None = None  # the parameters with gradients, as the ranks last agreed
        self.averaging_seconds = 0.0

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def state(self) -> Any:
        return self.optimizer.state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r}, {self.comm!r})"

    def step(self, closure: Callable[[], Any] | None = None, samples: int | None = None) -> Any:
        """Average the gradients (weighted by each rank's `samples`), then step; returns ``closure()``."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self.average_gradients(samples)
        self.optimizer.step()
        return loss

    def average_gradients(self, samples: int | None = None) -> None:
        """Every gradient replaced by Σ_r n_r·g_r / Σ_r n_r over the ranks (n_r = `samples`, or 1)."""
        start = time.perf_counter()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        present = tuple(i for i, p in enumerate(params) if p.grad is not None)
        if present != self._agreed:  # checked when it changes (a host exchange), not every step
            if len({*self.comm.allgather_object(present)}) != 1:
                raise DistributedError("the ranks computed gradients for different parameters; every rank must run "
                                       "the same model on a shard of the same batch")
            self._agreed = present
        weight = 1.0 if samples is None else float(samples)
        with no_grad():
            for bucket in self._buckets([params[i] for i in present]):
                self._average(bucket, weight)
        self.averaging_seconds += time.perf_counter() - start

    def _buckets(self, params: list[Tensor]) -> list[list[Tensor]]:
        """Consecutive parameters of one device and dtype, at most bucket_bytes each (one bigger parameter alone)."""
        buckets: list[list[Tensor]] = []
        size = 0
        for param in params:
            grad = param.grad.data
            last = buckets[-1][-1].grad.data if buckets else None
            same = last is not None and backend.device_of(last) == backend.device_of(grad) and last.dtype == grad.dtype
            if not same or size + grad.nbytes > self.bucket_bytes:
                buckets.append([])
                size = 0
            buckets[-1].append(param)
            size += grad.nbytes
        return buckets

    def _average(self, bucket: list[Tensor], weight: float) -> None:
        first = bucket[0].grad.data
        xp = backend.get_array_module(first)
        sizes = [param.grad.data.size for param in bucket]
        flat = xp.empty(sum(sizes) + 1, dtype=first.dtype)
        start = 0
        for param, size in zip(bucket, sizes):
            flat[start:start + size] = param.grad.data.reshape(-1)
            start += size
        if weight != 1.0:
            flat[:-1] *= weight
        flat[-1] = weight
        self.comm.allreduce_(flat)
        flat[:-1] /= flat[-1]
        start = 0
        for param, size in zip(bucket, sizes):
            param.grad = Tensor(flat[start:start + size].reshape(param.shape))
            start += size
