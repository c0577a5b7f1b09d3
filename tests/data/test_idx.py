"""The IDX reader on small files written here (gzip and raw): values, dtypes, and a clear error naming
the file for each kind of damage; the mnist / fashion-mnist loaders on such files."""

import gzip
import re

import numpy as np
import pytest
from idx_files import idx_bytes, write_idx, write_mnist_like

from minigrad_q.data import IDXError, load_dataset, read_idx, read_idx_images, read_idx_labels
from minigrad_q.data.idx import FASHION_MNIST_DIR, find_idx_file


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_reads_images_and_labels_back(tmp_path, compress):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    got_images = read_idx_images(write_idx(tmp_path / "images", images, compress))
    got_labels = read_idx_labels(write_idx(tmp_path / "labels", labels, compress))
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_images.flags.writeable


@pytest.mark.parametrize("dtype", [">i1", ">i2", ">i4", ">f4", ">f8"])
def test_reads_every_idx_value_type_in_native_byte_order(tmp_path, dtype):
    array = (np.arange(-6, 6).reshape(2, 2, 3) * 3).astype(dtype)
    got = read_idx(write_idx(tmp_path / "values.idx", array))
    np.testing.assert_array_equal(got, array)
    assert got.dtype == np.dtype(dtype).newbyteorder("=")


def test_gzip_is_detected_from_content_not_name(tmp_path):
    labels = np.array([1, 2, 3], dtype=np.uint8)
    path = tmp_path / "train-labels-idx1-ubyte"  # no .gz, but compressed
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx_labels(path), labels)


def test_zero_images_are_fine(tmp_path):
    assert read_idx_images(write_idx(tmp_path / "empty", np.zeros((0, 28, 28), np.uint8))).shape == (0, 28, 28)


def damaged(path, data):
    path.write_bytes(data)
    return path


IMAGES = idx_bytes(np.ones((4, 3, 3), dtype=np.uint8))
LABELS = idx_bytes(np.ones(4, dtype=np.uint8))


@pytest.mark.parametrize(
    "data, reader, message",
    [
        (LABELS, read_idx_images, r"bad magic number 0x00000801 \(a labels file\); IDX images files start with 0x00000803"),
        (IMAGES, read_idx_labels, r"bad magic number 0x00000803 \(an images file\); IDX labels files start with 0x00000801"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), read_idx_images, "bad magic number 0x89504E47"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), read_idx, r"not an IDX file \(magic number 0x89504E47\)"),
        (IMAGES[:-1], read_idx_images,
         r"truncated: the header announces shape \(4, 3, 3\) \(36 bytes of data\), the file holds 35$"),
        (IMAGES[:10], read_idx_images, r"truncated header: 3 dimensions need 16 bytes, the file has 10"),
        (IMAGES + b"\x00\x00", read_idx_images, "2 unexpected bytes after the 36 announced by the header"),
        (b"\x00\x00", read_idx, r"too short for an IDX header \(2 bytes\)"),
        (gzip.compress(IMAGES)[:-12], read_idx_images, "damaged or truncated gzip data"),
        (gzip.compress(IMAGES)[:-8] + b"\xff\xff\xff\xff" + gzip.compress(IMAGES)[-4:], read_idx_images,
         "damaged or truncated gzip data"),
    ],
    ids=["labels-as-images", "images-as-labels", "png-images", "png-idx", "truncated-data", "truncated-header",
         "trailing-bytes", "too-short", "truncated-gzip", "bad-crc"],
)
def test_each_kind_of_damage_gives_a_clear_error_naming_the_file(tmp_path, data, reader, message):
    path = damaged(tmp_path / "train-images-idx3-ubyte.gz", data)
    with pytest.raises(IDXError, match=message) as caught:
        reader(path)
    assert str(caught.value).startswith(str(path) + ": ")


def test_a_missing_file_is_an_idx_error_naming_it(tmp_path):
    with pytest.raises(IDXError, match=re.escape(f"{tmp_path / 'nothing'}: no such file")):
        read_idx(tmp_path / "nothing")


# ---------------------------------------------------------------- datasets from IDX directories
@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("name, mean, std", [("mnist", 0.1307, 0.3081), ("fashion-mnist", 0.2860, 0.3530)])
def test_loads_a_directory_of_idx_files(tmp_path, compress, name, mean, std):
    arrays = write_mnist_like(tmp_path, compress=compress)
    for split, (images, labels) in arrays.items():
        dataset = load_dataset(name, split, data_dir=tmp_path)
        assert dataset.images.shape == (len(labels), 1, 28, 28) and dataset.images.dtype == np.float32
        assert dataset.labels.dtype == np.int64 and dataset.shape == (1, 28, 28) and dataset.num_classes == 10
        assert (dataset.name, dataset.split, dataset.mean, dataset.std) == (name, split, mean, std)
        expected = (images[:, None] / 255 - mean) / std
        np.testing.assert_allclose(dataset.images, expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(dataset.labels, labels)
    assert load_dataset("fashion-mnist", data_dir=tmp_path).classes[0] == "T-shirt/top"


def test_the_dotted_file_names_of_some_mirrors_are_found(tmp_path):
    write_idx(tmp_path / "t10k-images.idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", np.array([3, 4], np.uint8))
    assert find_idx_file(tmp_path, "test", "images") == tmp_path / "t10k-images.idx3-ubyte"
    np.testing.assert_array_equal(load_dataset("mnist", "test", data_dir=tmp_path).labels, [3, 4])


def test_images_and_labels_counts_must_agree(tmp_path):
    write_mnist_like(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8), compress=True)
    with pytest.raises(IDXError, match=r"train-images-idx3-ubyte.gz holds 12 images but .*train-labels-idx1-ubyte.gz holds 11"):
        load_dataset("mnist", data_dir=tmp_path)


def test_images_must_be_28_by_28(tmp_path):
    write_mnist_like(tmp_path, size=27)
    with pytest.raises(IDXError, match=r"train-images-idx3-ubyte.gz: expected 28x28 mnist images, got 27x27"):
        load_dataset("mnist", data_dir=tmp_path)


def test_labels_must_be_digits(tmp_path):
    write_mnist_like(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 3, 4, 12], np.uint8), compress=True)
    with pytest.raises(IDXError, match=r"t10k-labels-idx1-ubyte.gz: mnist labels are 0..9, found 12"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_a_damaged_file_in_a_dataset_directory_is_named(tmp_path):
    write_mnist_like(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(IDXError, match=re.escape(str(path)) + ": damaged or truncated gzip data"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_a_missing_file_says_what_was_looked_for_and_how_to_get_it(tmp_path):
    write_mnist_like(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    message = r"fashion-mnist: no test labels in .* \(looked for t10k-labels-idx1-ubyte\[.gz\]\); get Fashion-MNIST with `apt-get"
    with pytest.raises(FileNotFoundError, match=message):
        load_dataset("fashion-mnist", "test", data_dir=tmp_path)


def test_a_missing_directory_says_how_to_get_the_data(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mnist: data directory .*nowhere does not exist; download the four MNIST files"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")


def test_mnist_needs_a_data_dir():
    with pytest.raises(FileNotFoundError, match=r"mnist: no data directory given \(data_dir=None\).*pass data_dir=DIR"):
        load_dataset("mnist")


def test_fashion_mnist_default_directory_is_debians():
    assert FASHION_MNIST_DIR == "/usr/share/datasets/fashion-mnist"
