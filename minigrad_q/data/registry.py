"""load_dataset(name, split, data_dir, **options): every dataset by name.

    digits          bundled UCI handwritten digits, 1x8x8, 10 classes (1,437 train / 360 test)
    fashion-mnist   Zalando's Fashion-MNIST from IDX files, 1x28x28, 10 classes (60,000 / 10,000);
                    data_dir defaults to /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)
    mnist           MNIST from IDX files in data_dir, 1x28x28, 10 classes (60,000 / 10,000)
    synthetic       random class-dependent images; options num_samples, shape=(C, H, W), num_classes, seed, noise
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from .dataset import ImageDataset
from .digits import load_digits
from .idx import load_idx_dataset
from .synthetic import make_synthetic

__all__ = ["load_dataset", "DATASET_NAMES"]

_SPLITS = ("train", "test")


def _digits(split: str, data_dir: Any) -> ImageDataset:
    return load_digits(split)


def _fashion_mnist(split: str, data_dir: Any) -> ImageDataset:
    return load_idx_dataset("fashion-mnist", split, data_dir)


def _mnist(split: str, data_dir: Any) -> ImageDataset:
    return load_idx_dataset("mnist", split, data_dir)


def _synthetic(split: str, data_dir: Any, **options: Any) -> ImageDataset:
    return make_synthetic(split, **options)


_LOADERS: dict[str, tuple[Callable[..., ImageDataset], bool]] = {  # name -> (loader, reads files from data_dir)
    "digits": (_digits, False),
    "fashion-mnist": (_fashion_mnist, True),
    "mnist": (_mnist, True),
    "synthetic": (_synthetic, False),
}
DATASET_NAMES = tuple(_LOADERS)
_SYNTHETIC_OPTIONS = [option for option in inspect.signature(make_synthetic).parameters if option != "split"]


def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike[str] | None = None, **options: Any) -> ImageDataset:
    """The `split` ("train" or "test") of dataset `name`, as an ImageDataset ready for a DataLoader."""
    key = str(name).lower().replace("_", "-")
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)}")
    if split not in _SPLITS:
        raise ValueError(f"{key}: split must be 'train' or 'test', got {split!r}")
    loader, uses_files = _LOADERS[key]
    if data_dir is not None and not uses_files:
        raise ValueError(f"{key}: takes no data_dir (it is {'bundled' if key == 'digits' else 'generated'}), got {data_dir!r}")
    accepted = _SYNTHETIC_OPTIONS if key == "synthetic" else []
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"takes {', '.join(accepted)}" if accepted else "takes no options"
        raise TypeError(f"{key}: unexpected options {unknown}; {key} {takes}")
    return loader(split, data_dir, **options)
