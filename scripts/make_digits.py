"""Make minigrad_q/data/digits.npz, the bundled handwritten-digits dataset (run once; the file is committed).

Source: the UCI "Optical Recognition of Handwritten Digits" dataset (E. Alpaydin
and C. Kaynak, 1998; https://doi.org/10.24432/C50P49), licensed CC BY 4.0, in the
copy that scikit-learn ships (sklearn.datasets.load_digits: 1,797 images of
8x8 pixels with values 0..16, classes 0..9).

The file holds uint8 arrays and a fixed stratified train/test split
(1,437 / 360, scikit-learn's train_test_split with random_state=0), so loading
it never recomputes the split:

    train_images (1437, 8, 8) uint8   train_labels (1437,) uint8   train_index (1437,) uint16
    test_images   (360, 8, 8) uint8   test_labels   (360,) uint8   test_index   (360,) uint16

``*_index`` are the rows of scikit-learn's array each image came from.

    pip install scikit-learn     # only for this script
    python scripts/make_digits.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

TEST_SIZE = 360
SPLIT_SEED = 0
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "minigrad_q" / "data" / "digits.npz"


def make_digits(output: Path) -> None:
    digits = load_digits()
    images, labels = digits.images, digits.target
    assert images.shape == (1797, 8, 8) and images.min() == 0 and images.max() == 16
    assert np.array_equal(images, np.round(images)), "expected integer pixel counts"
    rows = np.arange(len(labels))
    train_index, test_index = train_test_split(rows, test_size=TEST_SIZE, stratify=labels, random_state=SPLIT_SEED)
    train_index, test_index = np.sort(train_index), np.sort(test_index)
    arrays = {}
    for split, index in (("train", train_index), ("test", test_index)):
        arrays[f"{split}_images"] = images[index].astype(np.uint8)
        arrays[f"{split}_labels"] = labels[index].astype(np.uint8)
        arrays[f"{split}_index"] = index.astype(np.uint16)
    np.savez_compressed(output, **arrays)
    print(f"wrote {output} ({output.stat().st_size:,} bytes): "
          f"{len(train_index)} train / {len(test_index)} test images, "
          f"test counts per class {np.bincount(labels[test_index]).tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    make_digits(parser.parse_args().output)


if __name__ == "__main__":
    main()
