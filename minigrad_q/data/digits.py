"""The bundled "digits" dataset: 1,797 handwritten digits of 8x8 pixels, 10 classes, no download needed.

Source: UCI Machine Learning Repository, "Optical Recognition of Handwritten
Digits" (E. Alpaydin and C. Kaynak, 1998, https://doi.org/10.24432/C50P49),
licensed under Creative Commons Attribution 4.0 (CC BY 4.0), in the copy
scikit-learn ships as ``sklearn.datasets.load_digits``. Each pixel counts the
"on" pixels of a 4x4 block of a 32x32 bitmap: an integer 0..16.

``digits.npz`` (next to this file, made once by scripts/make_digits.py) holds
uint8 images and labels and a fixed stratified split: 1,437 train and 360
test images. Loading scales pixels to [0, 1] (÷16) and normalises both
splits with the mean and std of the train split's pixels, computed at load
(mean 0.30538, std 0.37612, see docs/data.md).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from .. import backend
from .dataset import ImageDataset
from .idx import normalise_uint8

__all__ = ["load_digits", "DIGITS_FILE"]

_numpy = backend.array_module("cpu")

DIGITS_FILE = Path(__file__).with_name("digits.npz")
_MAX_PIXEL = 16
_EXPECTED = {"train": 1437, "test": 360}


def _read_split(arrays: Any, split: str) -> tuple[Any, Any]:
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    count = _EXPECTED[split]
    if images.shape != (count, 8, 8) or images.dtype != backend.uint8 or labels.shape != (count,):
        raise ValueError(
            f"{split}: images {images.shape} {images.dtype}, labels {labels.shape}; expected ({count}, 8, 8) uint8, ({count},)"
        )
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{split}: labels are {labels.dtype}; expected integers 0..9")
    if int(images.max()) > _MAX_PIXEL or int(labels.min()) < 0 or int(labels.max()) > 9:
        raise ValueError(f"pixel values up to {int(images.max())} (expected <= 16), labels from {int(labels.min())} to "
                         f"{int(labels.max())} (expected 0..9)")
    return images, labels


def load_digits(split: str = "train", path: str | Path = DIGITS_FILE) -> ImageDataset:
    """The train or test split as (N, 1, 8, 8) normalised float32 images and int64 labels."""
    if split not in _EXPECTED:
        raise ValueError(f"digits: split must be 'train' or 'test', got {split!r}")
    try:
        with _numpy.load(path, allow_pickle=False) as arrays:
            train_images, _ = _read_split(arrays, "train")
            images, labels = _read_split(arrays, split)
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise RuntimeError(
            f"digits: the bundled file {path} is missing or damaged ({error}); "
            "reinstall minigrad-q, or rebuild it with `python scripts/make_digits.py` (needs scikit-learn)"
        ) from None
    scaled = train_images / _MAX_PIXEL
    mean, std = float(scaled.mean()), float(scaled.std())
    return ImageDataset(
        normalise_uint8(images[:, None], _MAX_PIXEL, mean, std),
        labels.astype(backend.int64),
        name="digits", split=split, num_classes=10, mean=mean, std=std,
    )
