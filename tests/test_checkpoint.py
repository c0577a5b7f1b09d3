"""Checkpoints: safetensors + JSON metadata, atomic writes, clear errors on damaged files."""

import json
import os

import numpy as np
import pytest
import safetensors.numpy

import minigrad_q as mq
from minigrad_q import backend, checkpoint, nn, optim, storage
from minigrad_q.checkpoint import CheckpointError
from minigrad_q.models import lenet5


def trained_pair(optimizer="adam"):
    """A LeNet-5 (8x8) and an optimizer that has taken a step, so it has state (momentum, moments)."""
    model = lenet5(input_size=8)
    params = list(model.parameters())
    opt = optim.Adam(params, lr=1e-3) if optimizer == "adam" else optim.SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = mq.randn(*p.shape)
    opt.step()
    return model, opt


def assert_same_state(a, b):
    """Two optimizer state dicts (or nested parts) are equal, tensors elementwise."""
    if isinstance(a, mq.Tensor):
        assert isinstance(b, mq.Tensor) and a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            assert_same_state(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_state(x, y)
    else:
        assert a == b and type(a) is type(b)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_round_trip_restores_weights_and_optimizer_state(tmp_path, optimizer):
    path = tmp_path / "run.safetensors"
    model, opt = trained_pair(optimizer)
    checkpoint.save(path, model, opt, epoch=3, config={"model": "lenet5", "lr": 0.1}, extra={"note": "hi"})

    fresh_model, fresh_opt = lenet5(input_size=8), None
    fresh_opt = (optim.Adam if optimizer == "adam" else optim.SGD)(fresh_model.parameters(), lr=0.5)
    saved = checkpoint.load(path)
    assert saved.epoch == 3 and saved.config == {"model": "lenet5", "lr": 0.1} and saved.extra == {"note": "hi"}
    checkpoint.restore(saved, fresh_model, fresh_opt)
    for (name, a), (other, b) in zip(model.state_dict().items(), fresh_model.state_dict().items()):
        assert name == other
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert_same_state(opt.state_dict(), fresh_opt.state_dict())
    assert fresh_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]  # hyperparameters come back too


def test_the_file_is_plain_safetensors_with_the_model_weights_by_name(tmp_path):
    path = tmp_path / "run.safetensors"
    model, opt = trained_pair("sgd")
    checkpoint.save(path, model, opt, epoch=1)
    tensors = safetensors.numpy.load_file(str(path))  # any safetensors reader works: no pickle, no custom format
    weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer/")}
    assert list(weights) == sorted(model.state_dict())  # safetensors sorts keys
    np.testing.assert_array_equal(weights["0.weight"], model[0].weight.detach().numpy())
    assert any(k.startswith("optimizer/state/") and k.endswith("momentum_buffer") for k in tensors)
    with open(path, "rb") as file:
        header = json.loads(file.read(int.from_bytes(file.read(8), "little")))
    metadata = json.loads(header["__metadata__"]["minigrad_q"])
    assert metadata["format"] == checkpoint.FORMAT and metadata["epoch"] == 1
    assert metadata["optimizer_class"] == "SGD"


def test_torch_loads_the_weights(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    path = tmp_path / "run.safetensors"
    model = lenet5(input_size=8)
    checkpoint.save(path, model, epoch=0)
    twin = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(64, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Linear(84, 10),
    )
    twin.load_state_dict(load_file(str(path)))  # strict: same names, same shapes
    np.testing.assert_array_equal(twin[9].weight.detach().numpy(), model[9].weight.detach().numpy())


def test_rng_states_round_trip_through_json():
    mq.manual_seed(7)
    states = json.loads(json.dumps(checkpoint.rng_states(["cpu"])))
    expected = backend.generator("cpu").random(5)
    backend.generator("cpu").random(100)  # move on
    checkpoint.set_rng_states(states)
    np.testing.assert_array_equal(backend.generator("cpu").random(5), expected)


def test_nested_values_keep_their_types(tmp_path):
    class Holder:
        def __init__(self, state):
            self.state = state

        def state_dict(self):
            return self.state

    state = {"state": {0: {"step": 4, "buf": mq.ones(2)}, 1: {}}, "param_groups": [{"betas": (0.9, 0.99), "flag": True,
                                                                                   "none": None, "params": [0, 1]}]}
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, nn.Linear(2, 2), Holder(state), epoch=0)
    assert_same_state(checkpoint.load(path).optimizer_state, state)


# ---------------------------------------------------------------- damaged files and crashes
@pytest.fixture
def good_checkpoint(tmp_path):
    path = tmp_path / "good.safetensors"
    model, opt = trained_pair("sgd")
    checkpoint.save(path, model, opt, epoch=2)
    return path


def test_truncated_file_is_a_clear_error(good_checkpoint):
    data = good_checkpoint.read_bytes()
    for size in (0, 5, 100, len(data) - 10):
        good_checkpoint.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match=f"checkpoint {good_checkpoint}.* (truncated|corrupted)"):
            checkpoint.load(good_checkpoint)


def test_flipped_byte_in_the_weights_is_caught_by_the_digest(good_checkpoint):
    data = bytearray(good_checkpoint.read_bytes())
    data[-3] ^= 0xFF
    good_checkpoint.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted: its tensors or metadata do not match the sha256"):
        checkpoint.load(good_checkpoint)


def test_other_safetensors_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file({"w": np.ones(3, np.float32)}, str(path))
    with pytest.raises(CheckpointError, match="not a minigrad_q checkpoint"):
        checkpoint.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="missing.safetensors: no such file"):
        checkpoint.load(tmp_path / "missing.safetensors")


def test_checkpoint_of_another_model_is_refused_by_name(good_checkpoint):
    other = lenet5(input_size=28)  # the first linear layer has 400 inputs instead of 64
    message = f"checkpoint {good_checkpoint} does not fit this LeNet5: .*size mismatch for 7.weight"
    with pytest.raises(CheckpointError, match=message):
        checkpoint.restore(checkpoint.load(good_checkpoint), other)


def test_crash_while_saving_leaves_the_previous_checkpoint_intact(good_checkpoint, monkeypatch):
    before = good_checkpoint.read_bytes()
    expected = checkpoint.load(good_checkpoint).model_state

    def crash_half_way(file, data):
        file.write(data[: len(data) // 2])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(storage, "write_chunks", crash_half_way)
    model, opt = trained_pair("sgd")
    with pytest.raises(OSError, match="simulated"):
        checkpoint.save(good_checkpoint, model, opt, epoch=3)
    assert good_checkpoint.read_bytes() == before
    reloaded = checkpoint.load(good_checkpoint)
    assert reloaded.epoch == 2
    for name, array in expected.items():
        np.testing.assert_array_equal(reloaded.model_state[name], array)
    assert os.listdir(good_checkpoint.parent) == [good_checkpoint.name]  # no temporary file left behind


def test_crash_before_the_rename_leaves_the_previous_checkpoint_intact(good_checkpoint, monkeypatch):
    before = good_checkpoint.read_bytes()

    def no_rename(source, target):
        raise KeyboardInterrupt  # killed between writing the temporary file and renaming it

    monkeypatch.setattr(checkpoint.os, "replace", no_rename)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(good_checkpoint, nn.Linear(2, 2), epoch=9)
    assert good_checkpoint.read_bytes() == before
    assert os.listdir(good_checkpoint.parent) == [good_checkpoint.name]


def test_saving_into_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="folder .*nowhere does not exist"):
        checkpoint.save(tmp_path / "nowhere" / "c.safetensors", nn.Linear(2, 2), epoch=0)


def test_unserialisable_optimizer_state_is_a_clear_error(tmp_path):
    class Odd:
        def state_dict(self):
            return {"state": {0: {"thing": object()}}}

    with pytest.raises(CheckpointError, match="cannot store a object at optimizer/state/0/thing"):
        checkpoint.save(tmp_path / "c.safetensors", nn.Linear(2, 2), Odd(), epoch=0)
    assert not os.listdir(tmp_path)
