"""Datasets and the DataLoader: digits (bundled), fashion-mnist and mnist (IDX files), synthetic."""

from .dataset import Dataset, ImageDataset, TensorDataset
from .idx import IDXError, read_idx, read_idx_images, read_idx_labels
from .loader import DataLoader
from .registry import DATASET_NAMES, load_dataset

__all__ = [
    "DATASET_NAMES",
    "DataLoader",
    "Dataset",
    "IDXError",
    "ImageDataset",
    "TensorDataset",
    "load_dataset",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
]
