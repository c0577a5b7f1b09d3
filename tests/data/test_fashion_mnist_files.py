"""The real Fashion-MNIST, from Debian's dataset-fashion-mnist package (`apt-get install dataset-fashion-mnist`).
Runs where /usr/share/datasets/fashion-mnist exists (CI installs it) and skips elsewhere."""

import os

import numpy as np
import pytest

from minigrad_q.data import DataLoader, load_dataset
from minigrad_q.data.idx import FASHION_MNIST_DIR

pytestmark = pytest.mark.skipif(
    not os.path.isdir(FASHION_MNIST_DIR), reason=f"{FASHION_MNIST_DIR} not installed (apt-get install dataset-fashion-mnist)"
)


@pytest.fixture(scope="module")
def train():
    return load_dataset("fashion-mnist", "train")


def test_train_split_has_60000_balanced_normalised_images(train):
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == np.float32
    assert train.labels.shape == (60000,) and train.labels.dtype == np.int64
    assert train.labels.min() == 0 and train.labels.max() == 9
    np.testing.assert_array_equal(np.bincount(train.labels), [6000] * 10)
    # the documented constants are the train pixels' mean and std, so the result is standardised
    assert abs(float(train.images.mean(dtype=np.float64))) < 1e-3
    assert abs(float(train.images.std(dtype=np.float64)) - 1) < 1e-3
    # raw 0 and 255 map to the ends of the range
    np.testing.assert_allclose([train.images.min(), train.images.max()], [-0.2860 / 0.3530, (1 - 0.2860) / 0.3530], rtol=1e-6)


def test_test_split_has_10000_images():
    test = load_dataset("fashion-mnist", "test")
    assert test.images.shape == (10000, 1, 28, 28) and test.labels.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), [1000] * 10)
    assert test.classes[9] == "Ankle boot"


def test_the_default_directory_equals_passing_it(train):
    first = load_dataset("fashion-mnist", "train", data_dir=FASHION_MNIST_DIR)
    np.testing.assert_array_equal(first.labels[:100], train.labels[:100])
    np.testing.assert_array_equal(first.images[:5], train.images[:5])


def test_loader_serves_full_batches(train):
    images, labels = next(iter(DataLoader(train, batch_size=256, shuffle=True, seed=0)))
    assert images.shape == (256, 1, 28, 28) and labels.shape == (256,)
