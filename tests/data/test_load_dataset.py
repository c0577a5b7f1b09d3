"""load_dataset: names, splits, options and data_dir checks, each with a clear error; the result
feeds a DataLoader."""

import numpy as np
import pytest

from minigrad_q.data import DATASET_NAMES, DataLoader, load_dataset


def test_known_names():
    assert DATASET_NAMES == ("digits", "fashion-mnist", "mnist", "synthetic")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'; known datasets: digits, fashion-mnist, mnist, synthetic"):
        load_dataset("cifar10")


def test_names_ignore_case_and_underscores(tmp_path):
    assert load_dataset("Digits").name == "digits"
    with pytest.raises(FileNotFoundError, match="fashion-mnist: data directory"):
        load_dataset("Fashion_MNIST", data_dir=tmp_path / "missing")


@pytest.mark.parametrize("name", ["digits", "synthetic", "mnist"])
def test_split_must_be_train_or_test(name):
    with pytest.raises(ValueError, match=f"{name}: split must be 'train' or 'test', got 'validation'"):
        load_dataset(name, "validation")


def test_bundled_and_generated_datasets_take_no_data_dir(tmp_path):
    with pytest.raises(ValueError, match="digits: takes no data_dir \\(it is bundled\\)"):
        load_dataset("digits", data_dir=tmp_path)
    with pytest.raises(ValueError, match="synthetic: takes no data_dir \\(it is generated\\)"):
        load_dataset("synthetic", data_dir=tmp_path)


def test_unknown_options_are_named():
    with pytest.raises(TypeError, match=r"digits: unexpected options \['num_samples'\]; digits takes no options"):
        load_dataset("digits", num_samples=5)
    with pytest.raises(TypeError, match=r"synthetic: unexpected options \['size'\]; synthetic takes num_samples, shape"):
        load_dataset("synthetic", size=5)


def test_a_loaded_dataset_feeds_a_loader():
    digits = load_dataset("digits", "test")
    images, labels = next(iter(DataLoader(digits, batch_size=64, shuffle=True, seed=0)))
    assert images.shape == (64, 1, 8, 8) and labels.shape == (64,)
    assert set(np.unique(labels.numpy())) <= set(range(10))
