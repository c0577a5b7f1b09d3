"""The "synthetic" dataset: random images whose mean depends on their class, for benchmarks and tests.

Each class c has a fixed random prototype image P_c ~ N(0, 1) per pixel
(drawn from the seed alone, so train and test share them); a sample of class
c is P_c + noise·N(0, 1). Labels are balanced (as equal counts as the size
allows) in random order. Images are float32 (N, C, H, W), already centred
with unit-order spread, so no further normalisation is applied (mean 0,
std 1 are reported). Everything is a function of (seed, split): the same
arguments give the same arrays.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..core.validate import integer
from .dataset import ImageDataset

__all__ = ["make_synthetic"]

_numpy = backend.array_module("cpu")
_SPLIT_STREAMS = {"train": 1, "test": 2}
DEFAULT_NUM_SAMPLES = {"train": 1024, "test": 256}


def make_synthetic(
    split: str = "train",
    num_samples: int | None = None,
    shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    seed: int = 0,
    noise: float = 1.0,
) -> ImageDataset:
    """`num_samples` images of `shape` (C, H, W) in `num_classes` classes (default 1,024 train / 256 test)."""
    if split not in _SPLIT_STREAMS:
        raise ValueError(f"synthetic: split must be 'train' or 'test', got {split!r}")
    if num_samples is None:
        num_samples = DEFAULT_NUM_SAMPLES[split]
    integer("synthetic", "num_samples", num_samples, 0)
    integer("synthetic", "num_classes", num_classes, 1)
    integer("synthetic", "seed", seed, 0)
    dims = tuple(shape)
    if len(dims) != 3 or not all(isinstance(size, int) and size >= 1 for size in dims):
        raise ValueError(f"synthetic: shape must be (C, H, W) with positive integers, got {dims}")
    if not noise >= 0:
        raise ValueError(f"synthetic: noise must be >= 0, got {noise}")
    prototypes = _numpy.random.default_rng([seed, 0]).standard_normal((num_classes, *dims), dtype=backend.float32)
    generator = _numpy.random.default_rng([seed, _SPLIT_STREAMS[split]])
    labels = generator.permutation(_numpy.arange(num_samples) % num_classes).astype(backend.int64)
    images: Any = generator.standard_normal((num_samples, *dims), dtype=backend.float32)
    images *= noise
    images += prototypes[labels]
    return ImageDataset(images, labels, name="synthetic", split=split, num_classes=num_classes)
