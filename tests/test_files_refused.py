"""Files that cannot be right are refused with the file named, and writes never lose data (issue 15,
items 12 and 13): crafted checkpoint metadata, empty IDX files, bad digit labels, NaN weights at
conversion, symbolic links, stale temporary files, the umask, devices that do not exist."""

import gzip
import json
import os
import struct

import numpy as np
import pytest
import safetensors.numpy

import minigrad_q as mq
from minigrad_q import checkpoint, data, quant, storage
from minigrad_q.data.digits import load_digits
from minigrad_q.models import build_model
from minigrad_q.train import train


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "run.safetensors"
    train(epochs=1, save=str(path), verbose=False)
    return path


def rewrite(source, target, change, digest=True):
    """A copy of the checkpoint at `source` with its metadata changed by `change`, its digest made to fit."""
    data_bytes = source.read_bytes()
    size = int.from_bytes(data_bytes[:8], "little")
    metadata = json.loads(json.loads(data_bytes[8:8 + size])["__metadata__"][storage.METADATA_KEY])
    tensors = safetensors.numpy.load(data_bytes)
    change(metadata)
    if digest:
        metadata["sha256"] = storage.digest(tensors, metadata)
    target.write_bytes(safetensors.numpy.save(tensors, metadata={storage.METADATA_KEY: json.dumps(metadata)}))
    return target


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(epoch=-3), "its epoch is -3, expected an integer >= 0"),
    (lambda m: m.update(loader={"epoch": 1}), "its loader is .* expected {\"seed\""),
    (lambda m: m.update(loader={"seed": -5, "epoch": 1}), "its loader is"),
    (lambda m: m.update(rng={"cpu": [1, 2]}), "its rng is .* a generator state"),
])
def test_crafted_checkpoint_metadata_is_refused_naming_the_field(saved, tmp_path, change, message):
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load(rewrite(saved, tmp_path / "crafted.safetensors", change))


def test_metadata_changed_without_the_digest_is_caught_by_the_digest(saved, tmp_path):
    changed = rewrite(saved, tmp_path / "edited.safetensors", lambda m: m.update(epoch=7), digest=False)
    with pytest.raises(checkpoint.CheckpointError, match="its tensors or metadata do not match the sha256"):
        checkpoint.load(changed)


def test_deeply_nested_metadata_is_a_clear_error_not_a_recursion_error(saved, tmp_path):
    deep = rewrite(saved, tmp_path / "deep.safetensors", lambda m: m.update(extra={}))
    raw = deep.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    header["__metadata__"][storage.METADATA_KEY] = "[" * 200_000 + "]" * 200_000
    body = json.dumps(header).encode()
    deep.write_bytes(len(body).to_bytes(8, "little") + body + raw[8 + size:])
    with pytest.raises(checkpoint.CheckpointError, match="is corrupted or not a minigrad_q checkpoint"):
        checkpoint.load(deep)


def test_a_wrong_generator_state_is_refused_when_resuming(saved, tmp_path):
    bad = rewrite(saved, tmp_path / "rng.safetensors", lambda m: m.update(rng={"cpu": {"bit_generator": "nope"}}))
    with pytest.raises(checkpoint.CheckpointError, match="rng.safetensors: the saved state of the cpu generator is not one"):
        train(epochs=1, resume=str(bad), verbose=False)


def write_idx(path, magic, shape, payload):
    with gzip.open(path, "wb") as file:
        file.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", side) for side in shape) + payload)


def test_idx_files_holding_no_images_are_refused(tmp_path):
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", 0x803, (0, 28, 28), b"")
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", 0x801, (0,), b"")
    with pytest.raises(data.IDXError, match="holds no images"):
        data.load_dataset("mnist", split="train", data_dir=tmp_path)


@pytest.mark.parametrize("labels, message", [(np.full(1437, -1, np.int64), "labels from -1 to -1"),
                                             (np.zeros(1437, np.float64), "labels are float64")])
def test_digit_files_with_negative_or_float_labels_are_refused(tmp_path, labels, message):
    with np.load(load_digits.__defaults__[1]) as original:
        arrays = dict(original)
    arrays["train_labels"] = labels
    np.savez(tmp_path / "digits.npz", **arrays)
    with pytest.raises(RuntimeError, match=message):
        load_digits("train", tmp_path / "digits.npz")


def test_convert_names_the_layer_whose_weight_is_nan():
    model = quant.prepare_qat(build_model("lenet5", in_channels=1, num_classes=10, input_size=8), "ste", "ste")
    model(mq.tensor(data.load_dataset("digits", split="test").images[:8]))
    model[3].weight.data[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"convert: the weight of 3 \(QuantConv2d\) holds NaN or inf \(1 of 2400"):
        quant.convert(model)


def test_saving_through_a_symbolic_link_writes_its_target(tmp_path):
    target = tmp_path / "real.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    storage.write_atomic(str(link), b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_temporary_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    path = tmp_path / "run.safetensors"
    dead = 2 ** 22 + 12345  # above the kernel's default pid_max: no such process
    stale = tmp_path / f".run.safetensors.{dead}.abcd.tmp"
    stale.write_bytes(b"")
    other = tmp_path / f".other.safetensors.{dead}.abcd.tmp"  # another file's temporaries are left alone
    other.write_bytes(b"")
    storage.write_atomic(str(path), b"data")
    assert not stale.exists() and other.exists() and path.read_bytes() == b"data"


def test_written_files_follow_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        storage.write_atomic(str(tmp_path / "file.bin"), b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "file.bin").stat().st_mode & 0o777 == 0o640


def test_to_a_device_that_does_not_exist_names_it():
    with pytest.raises(mq.backend.DeviceError, match="'xpu' is neither a device"):
        mq.tensor([1.0]).to("xpu")
