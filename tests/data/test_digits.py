"""The bundled digits: sizes, dtypes, the fixed stratified split, class balance, normalisation,
the file's size and format, agreement with scikit-learn's copy, and a clear error for a damaged file."""

import zipfile

import numpy as np
import pytest

from minigrad_q.data import load_dataset
from minigrad_q.data.digits import DIGITS_FILE, load_digits


@pytest.fixture(scope="module")
def raw():
    with np.load(DIGITS_FILE, allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}


def test_the_bundled_file_is_small_and_holds_plain_uint8_arrays(raw):
    assert DIGITS_FILE.stat().st_size <= 100_000
    assert sorted(raw) == ["test_images", "test_index", "test_labels", "train_images", "train_index", "train_labels"]
    for split, count in (("train", 1437), ("test", 360)):
        assert raw[f"{split}_images"].shape == (count, 8, 8) and raw[f"{split}_images"].dtype == np.uint8
        assert raw[f"{split}_labels"].shape == (count,) and raw[f"{split}_labels"].dtype == np.uint8
    assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in zipfile.ZipFile(DIGITS_FILE).infolist())


def test_split_is_a_partition_of_the_1797_images(raw):
    rows = np.concatenate([raw["train_index"], raw["test_index"]])
    np.testing.assert_array_equal(np.sort(rows), np.arange(1797))
    assert raw["train_images"].max() == 16 and raw["test_images"].min() == 0


def test_split_is_stratified(raw):
    train_counts = np.bincount(raw["train_labels"], minlength=10)
    test_counts = np.bincount(raw["test_labels"], minlength=10)
    share = test_counts / (train_counts + test_counts)
    assert np.all(np.abs(share - 360 / 1797) < 0.01), share
    assert train_counts.min() >= 139 and test_counts.min() >= 34


@pytest.mark.parametrize("split, count", [("train", 1437), ("test", 360)])
def test_digits_loads_normalised_float32_images(raw, split, count):
    dataset = load_dataset("digits", split)
    assert len(dataset) == count and dataset.images.shape == (count, 1, 8, 8) and dataset.shape == (1, 8, 8)
    assert dataset.images.dtype == np.float32 and dataset.labels.dtype == np.int64
    assert dataset.num_classes == 10 and dataset.classes == [str(d) for d in range(10)]
    train_scaled = raw["train_images"] / 16
    mean, std = train_scaled.mean(), train_scaled.std()
    assert dataset.mean == pytest.approx(mean, rel=1e-12) and dataset.std == pytest.approx(std, rel=1e-12)
    assert dataset.mean == pytest.approx(0.30538, abs=1e-5) and dataset.std == pytest.approx(0.37612, abs=1e-5)
    expected = (raw[f"{split}_images"][:, None] / 16 - mean) / std
    np.testing.assert_allclose(dataset.images, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(dataset.labels, raw[f"{split}_labels"])


def test_train_split_is_standardised():
    images = load_dataset("digits").images
    assert abs(float(images.mean(dtype=np.float64))) < 1e-6 and abs(float(images.std(dtype=np.float64)) - 1) < 1e-6


def test_digits_match_scikit_learns_copy(raw):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    digits = sklearn_datasets.load_digits()
    for split in ("train", "test"):
        index = raw[f"{split}_index"]
        np.testing.assert_array_equal(raw[f"{split}_images"], digits.images[index])
        np.testing.assert_array_equal(raw[f"{split}_labels"], digits.target[index])


def test_a_damaged_file_gives_a_clear_error(tmp_path):
    broken = tmp_path / "digits.npz"
    broken.write_bytes(DIGITS_FILE.read_bytes()[:5000])
    with pytest.raises(RuntimeError, match=rf"digits: the bundled file {broken} is missing or damaged .*make_digits.py"):
        load_digits("train", path=broken)
    np.savez_compressed(tmp_path / "wrong.npz", train_images=np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(RuntimeError, match="missing or damaged"):
        load_digits("train", path=tmp_path / "wrong.npz")


def test_a_file_needing_pickle_is_refused(tmp_path):
    evil = tmp_path / "digits.npz"
    np.savez(evil, train_images=np.array([object()], dtype=object))
    with pytest.raises(RuntimeError, match="missing or damaged"):
        load_digits("train", path=evil)


def test_digits_split_names_are_checked():
    with pytest.raises(ValueError, match="digits: split must be 'train' or 'test', got 'val'"):
        load_digits("val")
