"""DataLoader: batches of a dataset as Tensors on a device, shuffled reproducibly.

For array-backed datasets (TensorDataset, ImageDataset) a batch is gathered
with one indexing operation per array (``take`` with the batch's indices) and
moved to the device with one copy per array; other datasets are read sample
by sample and stacked.

Shuffling uses the loader's own generator, seeded from (seed, epoch): the
order of epoch k depends on nothing else, so a run resumed at epoch k sees the
same batches as an uninterrupted one. Each ``iter(loader)`` uses the current
epoch and then advances it; ``set_epoch(k)`` chooses the next one.

Data parallel: with ``shard=(rank, ranks)`` every rank's loader walks the same
order in the same batches of ``batch_size`` (the global batch) and yields its
own contiguous part of each, the parts as equal as can be; together they are
the batches one loader would give. A last batch with fewer samples than ranks
is left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from .. import backend
from ..core import Tensor
from .dataset import TensorDataset

__all__ = ["DataLoader"]

_numpy = backend.array_module("cpu")


class DataLoader:
    """``DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, seed=None, device="cpu")``.

    Yields one tuple of Tensors per batch, e.g. ``(images, labels)`` for an
    image dataset, on `device`. ``seed=None`` with ``shuffle=True`` draws a
    seed from minigrad_q's CPU generator (so ``mq.manual_seed`` fixes it).
    ``len(loader)`` is the number of batches per epoch.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        device: Any = "cpu",
        shard: tuple[int, int] | None = None,
    ):
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(f"DataLoader: the dataset must define __getitem__ and __len__, got {type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"DataLoader: seed must be a non-negative integer or None, got {seed!r}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = backend.parse_device(device)
        if shard is not None and not (isinstance(shard, tuple) and len(shard) == 2
                                      and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
                                      and 0 <= shard[0] < shard[1]):
            raise ValueError(f"DataLoader: shard must be (rank, ranks) with 0 <= rank < ranks, got {shard!r}")
        self.shard = shard
        if seed is None and self.shuffle:
            seed = int(backend.generator("cpu").integers(2**63 - 1))
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        size = len(self.dataset)
        batches = size // self.batch_size if self.drop_last else math.ceil(size / self.batch_size)
        if self.shard is not None and not self.drop_last and 0 < size % self.batch_size < self.shard[1]:
            batches -= 1  # a last batch with fewer samples than ranks is left out
        return batches

    # ------------------------------------------------------------ order and resuming
    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use the order of `epoch` (0-based)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = epoch

    def order(self, epoch: int) -> Any:
        """The sample indices of `epoch` in the order they are served (a NumPy int64 array)."""
        size = len(self.dataset)
        if not self.shuffle:
            return _numpy.arange(size)
        return _numpy.random.default_rng([self.seed, epoch]).permutation(size)

    def state_dict(self) -> dict[str, Any]:
        """``{"seed": int | None, "epoch": int}``: the next iteration's order, for checkpoints."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"seed", "epoch"}:
            raise ValueError(f"DataLoader.load_state_dict: expected keys ['epoch', 'seed'], got {sorted(state)}")
        self.seed = None if state["seed"] is None else int(state["seed"])
        self.set_epoch(int(state["epoch"]))

    # ------------------------------------------------------------ batches
    def __iter__(self) -> Iterator[Any]:
        epoch = self.epoch
        self.epoch += 1
        if isinstance(self.dataset, TensorDataset):
            return self._array_batches(epoch)
        return self._sample_batches(epoch)

    def _bounds(self) -> Iterator[tuple[int, int]]:
        """(start, end) in the epoch's order of each batch this loader yields (its shard's part of it)."""
        size = len(self.dataset)
        stop = size - size % self.batch_size if self.drop_last else size
        for start in range(0, stop, self.batch_size):
            end = min(start + self.batch_size, stop)
            if self.shard is None:
                yield start, end
            elif end - start >= self.shard[1]:
                rank, ranks = self.shard
                yield start + (end - start) * rank // ranks, start + (end - start) * (rank + 1) // ranks

    def _array_batches(self, epoch: int) -> Iterator[tuple[Tensor, ...]]:
        arrays = self.dataset.arrays
        order = self.order(epoch) if self.shuffle else None
        orders_on_device: dict[str, Any] = {}
        for start, end in self._bounds():
            batch = []
            for array in arrays:
                source = backend.device_of(array)
                if order is None:
                    rows = array[start:end]
                    rows = rows.copy() if source == self.device else backend.to_device(rows, self.device)
                else:
                    if source not in orders_on_device:
                        orders_on_device[source] = backend.asarray(order, device=source)
                    xp = backend.get_array_module(array)
                    rows = backend.to_device(xp.take(array, orders_on_device[source][start:end], axis=0), self.device)
                batch.append(Tensor(rows))
            yield tuple(batch)

    def _sample_batches(self, epoch: int) -> Iterator[Any]:
        order = self.order(epoch)
        for start, end in self._bounds():
            yield _collate([self.dataset[int(index)] for index in order[start:end]], self.device)

    def __repr__(self) -> str:
        return (
            f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, device={self.device!r})"
        )


def _collate(samples: list[Any], device: str) -> Any:
    """Stack samples (tuples of arrays/Tensors/numbers, or single ones) into Tensors on `device`."""
    first = samples[0]
    if isinstance(first, (tuple, list)):
        if any(len(sample) != len(first) for sample in samples):
            raise ValueError(f"DataLoader: samples have different lengths: {sorted({len(s) for s in samples})}")
        return tuple(_stack([sample[position] for sample in samples], device) for position in range(len(first)))
    return _stack(samples, device)


def _stack(values: list[Any], device: str) -> Tensor:
    first = values[0]
    if isinstance(first, Tensor) or backend.is_array(first):
        arrays = [backend.asnumpy(value.data if isinstance(value, Tensor) else value) for value in values]
        shapes = {array.shape for array in arrays}
        if len(shapes) != 1:
            raise ValueError(f"DataLoader: cannot stack samples of different shapes {sorted(shapes)} into a batch")
        stacked = _numpy.stack(arrays)
    elif isinstance(first, (bool, int, float)) or hasattr(first, "dtype"):
        stacked = backend.asarray(values, dtype=backend.infer_dtype(values))
    else:
        raise TypeError(
            f"DataLoader: a sample should hold arrays, Tensors or numbers (or a tuple of them), got {type(first).__name__}"
        )
    return Tensor(backend.to_device(stacked, device))
