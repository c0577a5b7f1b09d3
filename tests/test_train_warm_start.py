"""Warm start: quantization-aware training that starts from a trained float model (init_from), or
trains one first in the same run (pretrain_epochs); and the errors for checkpoints that do not fit."""

import json
import os
import shutil

import numpy as np
import pytest

from minigrad_q import checkpoint, cli
from minigrad_q.train import FINETUNE_LR, FLOAT_LR, ConfigError, TrainConfig, float_checkpoint_path, train

FLOAT = dict(epochs=6, batch_size=32, verbose=False)  # about 97% on the digits in under a second


@pytest.fixture(scope="module")
def float_run(tmp_path_factory):
    """(path, summary) of a float LeNet-5 trained on the digits."""
    path = str(tmp_path_factory.mktemp("float") / "float.safetensors")
    summary = train(**FLOAT, save=path)
    assert summary["test_accuracy"] > 0.9
    return path, summary


def test_init_from_loads_the_float_weights(float_run):
    path, trained = float_run
    # no epochs: the model is the checkpoint's, so it scores exactly what the float run scored
    summary = train(epochs=0, init_from=path, verbose=False)
    assert summary["test_accuracy"] == trained["test_accuracy"]
    assert summary["float_test_accuracy"] == trained["test_accuracy"]


def test_quantized_fine_tune_keeps_the_float_accuracy_where_quantized_from_scratch_has_none(float_run):
    path, trained = float_run
    fine_tuned = train(epochs=1, quant="ste", wbits=8, abits=8, init_from=path, verbose=False)
    from_scratch = train(epochs=1, quant="ste", wbits=8, abits=8, verbose=False, lr=FINETUNE_LR)
    assert fine_tuned["config"]["lr"] == FINETUNE_LR and fine_tuned["config"]["init_from"] == path
    assert fine_tuned["test_accuracy"] >= trained["test_accuracy"] - 0.02
    assert from_scratch["test_accuracy"] < trained["test_accuracy"] - 0.2


def test_pretrain_epochs_is_a_float_run_then_a_fine_tune_of_its_model(tmp_path, float_run):
    _, trained = float_run
    path = str(tmp_path / "run.safetensors")
    summary = train(**dict(FLOAT, epochs=1), pretrain_epochs=FLOAT["epochs"], quant="ste", wbits=8, abits=8,
                    save=path)
    assert summary["pretrain"]["test_accuracy"] == trained["test_accuracy"]  # the same seed: the same float run
    assert summary["float_test_accuracy"] == trained["test_accuracy"]
    float_weights = checkpoint.load(float_checkpoint_path(path)).model_state
    for name, array in checkpoint.load(float_run[0]).model_state.items():
        np.testing.assert_array_equal(float_weights[name], array, err_msg=name)
    stored = checkpoint.load(path).config
    assert stored["quant"] == "ste" and stored["pretrain_epochs"] == FLOAT["epochs"] and stored["lr"] == FINETUNE_LR
    assert summary["config"]["lr"] == FINETUNE_LR and len(summary["history"]) == 1


def test_learning_rate_defaults_depend_on_the_start():
    assert TrainConfig().resolved().lr == FLOAT_LR
    assert TrainConfig(quant="dsq").resolved().lr == FLOAT_LR  # quantized from scratch
    assert TrainConfig(quant="dsq", pretrain_epochs=2).resolved().lr == FINETUNE_LR
    assert TrainConfig(quant="dsq", pretrain_epochs=2, lr=0.01).resolved().lr == 0.01


def test_checkpoints_that_do_not_fit_are_refused_by_name(tmp_path, float_run):
    path, _ = float_run
    quantized = str(tmp_path / "quantized.safetensors")
    train(epochs=1, train_size=64, quant="lsq", verbose=False, save=quantized)
    with pytest.raises(ConfigError, match=f"init-from {quantized}: the checkpoint holds a model quantized with lsq "
                                          r"\(W4A4\); start from a float checkpoint"):
        train(epochs=1, quant="dsq", init_from=quantized, verbose=False)
    with pytest.raises(ConfigError, match=f"init-from {path}: the checkpoint was trained on digits, this run uses synthetic"):
        train(epochs=1, quant="dsq", dataset="synthetic", init_from=path, verbose=False)
    other = str(tmp_path / "toycnn.safetensors")
    train(epochs=1, model="toycnn", train_size=64, verbose=False, save=other)
    with pytest.raises(ConfigError, match=f"init-from {other}: the checkpoint holds a toycnn with .*, this run builds "
                                          "a lenet5 with"):
        train(epochs=1, quant="dsq", init_from=other, verbose=False)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(checkpoint.CheckpointError, match=f"checkpoint {broken} is corrupted or not a minigrad_q"):
        train(epochs=1, quant="dsq", init_from=str(broken), verbose=False)


@pytest.mark.parametrize("settings, message", [
    ({"init_from": "/no/such/float.safetensors", "quant": "dsq"},
     "checkpoint /no/such/float.safetensors to start from does not exist"),
    ({"pretrain_epochs": 2}, "pretrain-epochs trains a float model to quantize: give a quantization method too"),
    ({"pretrain_epochs": -1, "quant": "ste"}, "pretrain-epochs must be an integer >= 0, got -1"),
    ({"pretrain_epochs": 1, "quant": "ste", "init_from": __file__},
     "pretrain-epochs and init-from are two ways to start from a float model: give one, not both"),
])
def test_bad_warm_start_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        train(TrainConfig(verbose=False, **settings))


def test_train_command_prints_both_phases(capsys, tmp_path):
    summary_path = tmp_path / "summary.json"
    code = cli.main(["train", "--pretrain-epochs", "1", "--epochs", "1", "--quant", "dsq", "--wbits", "2", "--abits", "2",
                     "--train-size", "128", "--json", str(summary_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "phase 1 of 2: 1 epoch of float training" and lines[1].startswith("training lenet5 (")
    second = lines.index("phase 2 of 2: 1 epoch of quantization-aware fine-tuning")
    assert lines[second + 1].startswith("training lenet5 quantized W2A2 with dsq (first and last layers 8-bit), starting "
                                        "from the float model of phase 1")
    assert "lr 0.005" in lines[second + 1]
    summary = json.loads(summary_path.read_text())
    assert summary["config"]["pretrain_epochs"] == 1 and "test_accuracy" in summary["pretrain"]


def test_train_command_init_from_a_missing_file_is_one_line(capsys):
    code = cli.main(["train", "--quant", "dsq", "--init-from", "/no/such/float.safetensors"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.strip() == "minigrad-q: error: train: checkpoint /no/such/float.safetensors to start from does not exist"


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_diverging_fine_tune_stops_with_one_clear_error(float_run):
    from minigrad_q.train import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="training diverged in epoch 1/2 by step .*: the loss or the weights "
                                               "became NaN or inf; try a lower learning rate"):
        train(epochs=2, quant="dsq", wbits=2, abits=2, init_from=float_run[0], lr=1e6, verbose=False)


def test_a_fine_tune_resumes_without_its_float_checkpoint(capsys, tmp_path, float_run):
    """The resumed run restores its own quantized weights, so the float checkpoint it started from may be
    gone; it keeps the run's quantization settings (first_last_bits included) and ends where an
    uninterrupted run ends."""
    start, path, straight = (str(tmp_path / name) for name in ("float.safetensors", "run.safetensors",
                                                               "straight.safetensors"))
    shutil.copy(float_run[0], start)
    settings = dict(quant="ste", wbits=3, abits=3, first_last_bits=6, init_from=start, schedule="constant", verbose=False)
    train(epochs=2, save=straight, **settings)
    train(epochs=1, save=path, **settings)
    os.remove(start)
    code = cli.main(["train", "--resume", path, "--epochs", "2", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    resumed = checkpoint.load(path)
    assert resumed.epoch == 2 and resumed.config["first_last_bits"] == 6 and resumed.config["init_from"] == start
    for name, array in checkpoint.load(straight).model_state.items():
        np.testing.assert_array_equal(resumed.model_state[name], array, err_msg=name)
