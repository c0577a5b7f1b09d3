"""IDX files (the MNIST / Fashion-MNIST format) and the "mnist" and "fashion-mnist" datasets.

An IDX file is a big-endian header followed by the raw values:

    bytes 0-1  zero;   byte 2  type code (0x08 = uint8, ... );   byte 3  number of dimensions d
    d × 4 bytes        the size of each dimension (uint32)
    then               prod(sizes) values

Images are magic 0x00000803 (uint8, 3 dims: count × rows × cols), labels
0x00000801 (uint8, 1 dim: count). Files may be gzip-compressed (detected
from their first bytes, whatever their name). Every check that fails raises
`IDXError` naming the file and what was wrong.

The datasets look in their directory for ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each with or without ``.gz`` (and the
``train-images.idx3-ubyte`` spelling some mirrors use). Pixels are scaled to
[0, 1] and normalised with fixed per-dataset constants (mean and std of the
training pixels):

    fashion-mnist   mean 0.2860  std 0.3530   (Zalando Research, MIT licence)
    mnist           mean 0.1307  std 0.3081   (LeCun, Cortes and Burges)
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Any

from .. import backend
from .dataset import ImageDataset

__all__ = ["IDXError", "read_idx", "read_idx_images", "read_idx_labels", "load_idx_dataset", "FASHION_MNIST_DIR"]

_numpy = backend.array_module("cpu")

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_DATASETS: dict[str, dict[str, Any]] = {
    "fashion-mnist": {"mean": 0.2860, "std": 0.3530, "classes": FASHION_MNIST_CLASSES},
    "mnist": {"mean": 0.1307, "std": 0.3081, "classes": tuple(str(digit) for digit in range(10))},
}
_HOW_TO_GET = {
    "fashion-mnist": (
        "get Fashion-MNIST with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; the files land in "
        f"{FASHION_MNIST_DIR}, used by default), or download the four .gz files from "
        "https://github.com/zalandoresearch/fashion-mnist into a directory and pass data_dir=DIR (--data-dir DIR)"
    ),
    "mnist": (
        "download the four MNIST files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) into a directory and pass data_dir=DIR (--data-dir DIR)"
    ),
}


class IDXError(ValueError):
    """An IDX file that is missing, truncated or not what it should be."""


def read_idx(path: str | os.PathLike[str]) -> Any:
    """The array stored in an IDX file (gzip or raw), with the file's dtype and shape."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IDXError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise IDXError(f"{path}: not an IDX file (magic number 0x{int.from_bytes(raw[:4], 'big'):08X})")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise IDXError(f"{path}: truncated header: {ndim} dimensions need {header_size} bytes, the file has {len(raw)}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _numpy.dtype(_TYPES[raw[2]])
    expected = math.prod(shape) * dtype.itemsize
    found = len(raw) - header_size
    if found < expected:
        raise IDXError(
            f"{path}: truncated: the header announces shape {shape} ({expected:,} bytes of data), the file holds {found:,}"
        )
    if found > expected:
        raise IDXError(f"{path}: {found - expected:,} unexpected bytes after the {expected:,} announced by the header {shape}")
    return _numpy.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_images(path: str | os.PathLike[str]) -> Any:
    """uint8 images (N, rows, cols) from an IDX file with magic 0x00000803."""
    return _read_with_magic(path, IMAGES_MAGIC, "images")


def read_idx_labels(path: str | os.PathLike[str]) -> Any:
    """uint8 labels (N,) from an IDX file with magic 0x00000801."""
    return _read_with_magic(path, LABELS_MAGIC, "labels")


def _read_with_magic(path: str | os.PathLike[str], magic: int, what: str) -> Any:
    path = Path(path)
    raw = _read_bytes(path, limit=4)
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        kind = {IMAGES_MAGIC: " (an images file)", LABELS_MAGIC: " (a labels file)"}.get(found, "")
        raise IDXError(f"{path}: bad magic number 0x{found:08X}{kind}; IDX {what} files start with 0x{magic:08X}")
    return read_idx(path)


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The file's (decompressed) bytes, or its first `limit` bytes."""
    try:
        with open(path, "rb") as file:
            compressed = file.read(2) == b"\x1f\x8b"
        opener: Any = gzip.open if compressed else open
        with opener(path, "rb") as file:
            return file.read() if limit is None else file.read(limit)
    except FileNotFoundError:
        raise IDXError(f"{path}: no such file") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise IDXError(f"{path}: damaged or truncated gzip data ({error})") from None
    except OSError as error:
        raise IDXError(f"{path}: cannot read ({error.strerror or error})") from None


# ---------------------------------------------------------------- datasets
def find_idx_file(directory: Path, split: str, kind: str) -> Path | None:
    """The file for `split` ("train"/"test") and `kind` ("images"/"labels") in `directory`, or None."""
    prefix = "train" if split == "train" else "t10k"
    stem = "idx3-ubyte" if kind == "images" else "idx1-ubyte"
    for name in (f"{prefix}-{kind}-{stem}", f"{prefix}-{kind}.{stem}"):
        for candidate in (directory / f"{name}.gz", directory / name):
            if candidate.is_file():
                return candidate
    return None


def load_idx_dataset(name: str, split: str = "train", data_dir: str | os.PathLike[str] | None = None) -> ImageDataset:
    """The "mnist" or "fashion-mnist" split from IDX files in `data_dir` as (N, 1, 28, 28) normalised float32 images."""
    if name not in _DATASETS:
        raise ValueError(f"load_idx_dataset: unknown IDX dataset {name!r}; known: {sorted(_DATASETS)}")
    if data_dir is None:
        if name != "fashion-mnist" or not os.path.isdir(FASHION_MNIST_DIR):
            raise FileNotFoundError(f"{name}: no data directory given (data_dir=None) and none installed; {_HOW_TO_GET[name]}")
        data_dir = FASHION_MNIST_DIR
    directory = Path(data_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"{name}: data directory {directory} does not exist; {_HOW_TO_GET[name]}")
    paths = {}
    for kind in ("images", "labels"):
        found = find_idx_file(directory, split, kind)
        if found is None:
            prefix = "train" if split == "train" else "t10k"
            stem = "idx3-ubyte" if kind == "images" else "idx1-ubyte"
            raise FileNotFoundError(
                f"{name}: no {split} {kind} in {directory} (looked for {prefix}-{kind}-{stem}[.gz]); {_HOW_TO_GET[name]}"
            )
        paths[kind] = found
    images = read_idx_images(paths["images"])
    labels = read_idx_labels(paths["labels"])
    if not len(images):
        raise IDXError(f"{paths['images']}: holds no images; {name} needs a {split} split to train or test on")
    if len(images) != len(labels):
        raise IDXError(
            f"{name}: {paths['images']} holds {len(images):,} images but {paths['labels']} holds {len(labels):,} labels"
        )
    if images.shape[1:] != (28, 28):
        raise IDXError(f"{paths['images']}: expected 28x28 {name} images, got {images.shape[1]}x{images.shape[2]}")
    if len(labels) and int(labels.max()) > 9:
        raise IDXError(f"{paths['labels']}: {name} labels are 0..9, found {int(labels.max())}")
    constants = _DATASETS[name]
    return ImageDataset(
        normalise_uint8(images[:, None], 255, constants["mean"], constants["std"]),
        labels.astype(backend.int64),
        name=name, split=split, num_classes=10, mean=constants["mean"], std=constants["std"], classes=constants["classes"],
    )


def normalise_uint8(raw: Any, scale: float, mean: float, std: float) -> Any:
    """float32 (raw / scale − mean) / std, computed as raw · (1 / (scale·std)) − mean / std in two passes."""
    images = _numpy.multiply(raw, _numpy.float32(1 / (scale * std)), dtype=backend.float32)
    images -= _numpy.float32(mean / std)
    return images
