"""The synthetic dataset: deterministic by seed, balanced, shaped as asked, and learnable
(a nearest-class-mean rule fitted on train classifies test)."""

import numpy as np
import pytest

from minigrad_q.data import load_dataset


def test_same_arguments_same_arrays_different_seed_different_arrays():
    a = load_dataset("synthetic", num_samples=64, shape=(2, 5, 5), num_classes=4, seed=3)
    b = load_dataset("synthetic", num_samples=64, shape=(2, 5, 5), num_classes=4, seed=3)
    c = load_dataset("synthetic", num_samples=64, shape=(2, 5, 5), num_classes=4, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)


def test_shape_dtype_balance_and_defaults():
    data = load_dataset("synthetic", "test", num_samples=30, shape=(3, 4, 6), num_classes=7)
    assert data.images.shape == (30, 3, 4, 6) and data.images.dtype == np.float32 and data.labels.dtype == np.int64
    assert data.shape == (3, 4, 6) and data.num_classes == 7 and data.name == "synthetic" and data.split == "test"
    counts = np.bincount(data.labels, minlength=7)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 30
    assert len(load_dataset("synthetic")) == 1024 and load_dataset("synthetic").shape == (3, 32, 32)
    assert len(load_dataset("synthetic", "test")) == 256


def test_train_and_test_differ_but_share_class_means():
    train = load_dataset("synthetic", "train", num_samples=400, shape=(1, 6, 6), num_classes=4, seed=1)
    test = load_dataset("synthetic", "test", num_samples=400, shape=(1, 6, 6), num_classes=4, seed=1)
    assert not np.array_equal(train.images[:10], test.images[:10])
    train_means = np.stack([train.images[train.labels == c].mean(0) for c in range(4)])
    test_means = np.stack([test.images[test.labels == c].mean(0) for c in range(4)])
    assert np.abs(train_means - test_means).max() < 0.6  # both estimate the same prototypes (noise 1, 100 samples)


def test_a_nearest_class_mean_rule_learns_it():
    train = load_dataset("synthetic", "train", num_samples=200, shape=(1, 8, 8), num_classes=5, noise=2.0)
    test = load_dataset("synthetic", "test", num_samples=200, shape=(1, 8, 8), num_classes=5, noise=2.0)
    means = np.stack([train.images[train.labels == c].mean(0) for c in range(5)]).reshape(5, -1)
    distances = ((test.images.reshape(200, 1, -1) - means[None]) ** 2).sum(-1)
    accuracy = (distances.argmin(1) == test.labels).mean()
    assert accuracy > 0.9


def test_noise_zero_gives_the_prototypes():
    data = load_dataset("synthetic", num_samples=20, shape=(1, 2, 2), num_classes=2, noise=0.0)
    for c in range(2):
        rows = data.images[data.labels == c]
        np.testing.assert_array_equal(rows, np.broadcast_to(rows[0], rows.shape))


@pytest.mark.parametrize("options, error, message", [
    ({"num_samples": -1}, ValueError, "num_samples must be a non-negative integer, got -1"),
    ({"num_classes": 0}, ValueError, "num_classes must be a positive integer, got 0"),
    ({"shape": (3, 32)}, ValueError, r"shape must be \(C, H, W\) with positive integers, got \(3, 32\)"),
    ({"shape": (3, 0, 4)}, ValueError, "shape must be"),
    ({"seed": 1.5}, TypeError, "seed must be a non-negative integer, got float 1.5"),
    ({"noise": -1.0}, ValueError, "noise must be >= 0"),
])
def test_bad_synthetic_options(options, error, message):
    with pytest.raises(error, match="synthetic: " + message):
        load_dataset("synthetic", **options)
