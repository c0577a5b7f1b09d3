"""Datasets: the map-style `Dataset` protocol, `TensorDataset` over whole arrays, and `ImageDataset`,
the labelled image set that every `load_dataset` name returns.

A `TensorDataset` (and so an `ImageDataset`) is array-backed: the DataLoader
gathers a whole batch with one indexing operation per array instead of
calling ``__getitem__`` per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend
from ..core import Tensor

__all__ = ["Dataset", "TensorDataset", "ImageDataset"]


class Dataset:
    """A map-style dataset: ``dataset[i]`` gives one sample, ``len(dataset)`` their number.

    Subclass it and define both methods. A sample is a tuple of arrays,
    Tensors or numbers (e.g. ``(image, label)``); the DataLoader stacks each
    position into a batch.
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset):
    """Samples are the rows along the first dimension of each of `tensors` (Tensors or arrays).

    ``dataset[i]`` is a tuple with row i of each tensor. The arrays are kept as
    given (no copy), on whatever device they are.
    """

    def __init__(self, *tensors: Any):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        wrapped = []
        for position, tensor in enumerate(tensors):
            if not isinstance(tensor, Tensor):
                if not backend.is_array(tensor):
                    raise TypeError(
                        f"TensorDataset: argument {position} should be a Tensor or an array, got {type(tensor).__name__}"
                    )
                tensor = Tensor(tensor)
            if tensor.ndim == 0:
                raise ValueError(f"TensorDataset: argument {position} is 0-d; every tensor needs a first (sample) dimension")
            wrapped.append(tensor)
        sizes = [len(tensor) for tensor in wrapped]
        if len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: all tensors must have the same size in the first dimension, got {sizes}")
        self.tensors: tuple[Tensor, ...] = tuple(wrapped)

    @property
    def arrays(self) -> tuple[Any, ...]:
        """The underlying arrays, one per tensor."""
        return tuple(tensor.data for tensor in self.tensors)

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(Tensor(tensor.data[index]) for tensor in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])


class ImageDataset(TensorDataset):
    """Labelled images: ``images`` (N, C, H, W) float32 and ``labels`` (N,) int64, plus what they are.

    ``name`` and ``split`` say where they came from, ``num_classes`` and
    ``classes`` (names) the labels, ``shape`` is (C, H, W); ``mean`` and
    ``std`` are the constants the pixels were normalised with:
    pixel = (raw / scale − mean) / std.
    """

    def __init__(
        self,
        images: Any,
        labels: Any,
        *,
        name: str,
        split: str,
        num_classes: int,
        mean: float = 0.0,
        std: float = 1.0,
        classes: Sequence[str] | None = None,
    ):
        if images.ndim != 4:
            raise ValueError(f"{name}: images must be (N, C, H, W), got shape {tuple(images.shape)}")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(f"{name}: labels must be a 1-d integer array, got shape {tuple(labels.shape)} {labels.dtype}")
        super().__init__(images, labels)
        self.name = name
        self.split = split
        self.num_classes = num_classes
        self.mean = mean
        self.std = std
        self.classes = list(classes) if classes is not None else [str(c) for c in range(num_classes)]

    @property
    def images(self) -> Any:
        return self.tensors[0].data

    @property
    def labels(self) -> Any:
        return self.tensors[1].data

    @property
    def shape(self) -> tuple[int, int, int]:
        channels, height, width = self.images.shape[1:]
        return channels, height, width

    @property
    def nbytes(self) -> int:
        return int(self.images.nbytes + self.labels.nbytes)

    def to(self, device: str) -> ImageDataset:
        """The same dataset with its arrays on `device` (itself if they are there already): a DataLoader then
        gathers each batch there, with no copy from the host per batch."""
        device = backend.parse_device(device)
        if backend.device_of(self.images) == device:
            return self
        return ImageDataset(backend.to_device(self.images, device), backend.to_device(self.labels, device),
                            name=self.name, split=self.split, num_classes=self.num_classes, mean=self.mean,
                            std=self.std, classes=self.classes)

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, split={self.split!r}, {len(self)} images of shape {self.shape}, "
            f"{self.num_classes} classes)"
        )
