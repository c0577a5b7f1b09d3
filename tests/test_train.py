"""Training: a short run learns the digits, resuming is exact, the command's errors are clear."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import checkpoint, cli
from minigrad_q.train import ConfigError, TrainConfig, train

# 8 epochs over the 1,437 training digits in batches of 32 (the other settings are the defaults): < 1 s on 2 cores
SHORT = dict(epochs=8, batch_size=32, verbose=False)
# for runs whose accuracy does not matter: 256 images, 8 steps an epoch
QUICK = dict(epochs=2, train_size=256, batch_size=32, verbose=False)


class Interrupted(Exception):
    pass


def weights(path):
    return checkpoint.load(path).model_state


def assert_identical(a, b):
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_short_run_learns_the_digits():
    summary = train(**SHORT)
    # measured 98.06% (353/360) with seed 0, 97.78-98.33% with seeds 1-3; chance is 10%
    assert summary["test_accuracy"] >= 0.96
    history = summary["history"]
    assert [record["epoch"] for record in history] == list(range(1, 9))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["train_accuracy"] > 0.95
    assert summary["test_images"] == 360 and summary["epochs_run"] == 8
    assert summary["wall_time_s"] > 0 and summary["train_images_per_s"] > 0


def test_the_same_seed_gives_the_same_run():
    first, second = train(**dict(QUICK, epochs=1)), train(**dict(QUICK, epochs=1))
    assert first["history"][0]["train_loss"] == second["history"][0]["train_loss"]
    assert first["test_accuracy"] == second["test_accuracy"]


@pytest.mark.parametrize(
    "optimizer, lr, schedule, quant",
    [("sgd", 0.03, "cosine", {}), ("adam", 2e-3, "constant", {}),
     ("sgd", 0.03, "cosine", {"quant": "lsq"}), ("sgd", 0.03, "cosine", {"quant": "dsq", "learn_alpha": True}),
     ("sgd", 0.03, "cosine", {"quant": "qnoise"})],
)
def test_resume_after_epoch_k_gives_bit_identical_weights(tmp_path, optimizer, lr, schedule, quant):
    settings = dict(QUICK, epochs=3, optimizer=optimizer, lr=lr, schedule=schedule, **quant)
    train(**settings, save=str(tmp_path / "straight.safetensors"))

    def crash_after_first_epoch(epoch, record):
        if epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(**settings, save=str(tmp_path / "resumed.safetensors"), on_epoch_end=crash_after_first_epoch)
    assert checkpoint.load(tmp_path / "resumed.safetensors").epoch == 1
    summary = train(**settings, save=str(tmp_path / "resumed.safetensors"), resume=str(tmp_path / "resumed.safetensors"))
    assert summary["epochs_run"] == 2 and [r["epoch"] for r in summary["history"]] == [1, 2, 3]
    straight, resumed = checkpoint.load(tmp_path / "straight.safetensors"), checkpoint.load(tmp_path / "resumed.safetensors")
    assert_identical(straight.model_state, resumed.model_state)
    assert straight.extra["history"][-1]["test_loss"] == resumed.extra["history"][-1]["test_loss"]


def test_resume_refuses_different_settings(tmp_path):
    path = str(tmp_path / "run.safetensors")
    train(**dict(QUICK, epochs=1), save=path)
    message = r"cannot resume from .*run.safetensors: it was trained with lr=0.05, this run asks for 0.1"
    with pytest.raises(ConfigError, match=message):
        train(**dict(QUICK, epochs=1), lr=0.1, resume=path)
    with pytest.raises(ConfigError, match="it was trained with epochs=1, this run asks for 5 .* cosine schedule spans "
                                          "its epochs, .* --schedule constant can"):
        train(**dict(QUICK, epochs=5), resume=path)


def test_resume_from_a_corrupted_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "run.safetensors"
    train(**dict(QUICK, epochs=1), save=str(path))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(checkpoint.CheckpointError, match=f"checkpoint {path} is corrupted or truncated"):
        train(**dict(QUICK, epochs=2), resume=str(path))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"model": "resnet"}, "unknown model 'resnet'; known models: lenet5, toycnn"),
        ({"dataset": "cifar100"}, "unknown dataset 'cifar100'; known datasets: digits, fashion-mnist, mnist, synthetic"),
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'; expected one of: sgd, adam"),
        ({"schedule": "linear"}, "unknown schedule 'linear'"),
        ({"dataset": "mnist", "data_dir": "/no/such/folder"}, "data directory /no/such/folder does not exist"),
        ({"epochs": -1}, "epochs must be >= 0"),
        ({"batch_size": 0}, "batch-size must be at least 1"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"resume": "/no/such/run.safetensors"}, "checkpoint /no/such/run.safetensors to resume from does not exist"),
        ({"save": "/no/such/folder/run.safetensors"}, "cannot write /no/such/folder/run.safetensors: its folder does not exist"),
        ({"quant": "binary"}, "unknown quantization method 'binary'; expected one of: ste, dsq, lsq, qnoise, pact"),
        ({"convert": True}, "convert needs a quantized model"),
        ({"quant": "ste", "wbits": 0}, "wbits must be an integer from 1 to 8, got 0"),
        ({"quant": "ste", "abits": 9}, "abits must be an integer from 1 to 8, got 9"),
        ({"quant": "qnoise", "qnoise_p": 1.5}, r"qnoise-p must be in \[0, 1\], got 1.5"),
        ({"quant": "dsq", "dsq_alpha": 1.0}, r"dsq-alpha must be in \(0, 1\), got 1.0"),
    ],
)
def test_bad_settings_are_clear_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        train(TrainConfig(verbose=False, **settings))


# ---------------------------------------------------------------- the command
def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_command_runs_and_writes_json(capsys, tmp_path):
    path = tmp_path / "summary.json"
    code, out, err = run_main(capsys, "train", "--epochs", "2", "--train-size", "256", "--json", str(path))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("training lenet5 (21,386 parameters) on digits (256 train / 360 test images, 1x8x8) on cpu")
    assert lines[1].startswith("epoch 1/2  train loss ") and " img/s " in lines[1]
    assert lines[-1].startswith("done: test accuracy ") and " on 360 test images after 2 epochs; " in lines[-1]
    summary = json.loads(path.read_text())
    assert summary["config"]["epochs"] == 2 and summary["config"]["model"] == "lenet5"
    assert 0 <= summary["test_accuracy"] <= 1 and len(summary["history"]) == 2
    norms = summary["history"][-1]["grad_norms"]
    assert list(norms) == [name for name, _ in mq.models.lenet5(input_size=8).named_parameters()]
    assert all(value > 0 for value in norms.values())


def test_train_command_resume_takes_the_checkpoint_settings(capsys, tmp_path):
    path = str(tmp_path / "run.safetensors")
    code, _, err = run_main(capsys, "train", "--epochs", "1", "--train-size", "128", "--lr", "0.05",
                            "--schedule", "constant", "--save", path)
    assert code == 0, err
    code, out, err = run_main(capsys, "train", "--resume", path, "--epochs", "2")
    assert code == 0, err
    assert f"resumed from {path} after epoch 1" in out
    assert "(128 train / 360 test images" in out and "sgd lr 0.05 (constant)" in out
    assert "epoch 1/2" not in out and "epoch 2/2" in out
    assert checkpoint.load(path).epoch == 2


def test_quantized_training_converts_and_saves_the_integer_model(capsys, tmp_path):
    from minigrad_q import quant

    path = tmp_path / "run.safetensors"
    code, out, err = run_main(capsys, "train", "--quant", "lsq", "--wbits", "4", "--abits", "4", "--convert",
                              "--epochs", "1", "--train-size", "128", "--save", str(path))
    assert code == 0, err
    assert out.splitlines()[0].startswith("training lenet5 quantized W4A4 with lsq")
    line = next(line for line in out.splitlines() if line.startswith("integer model: test accuracy "))
    assert "predictions agree on " in line and f"saved to {tmp_path / 'run.int8.safetensors'}" in line
    integer_model = quant.load_integer_model(tmp_path / "run.int8.safetensors")
    assert isinstance(integer_model, quant.IntegerModel)
    assert checkpoint.load(str(path)).config["quant"] == "lsq"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "vgg"], "train: unknown model 'vgg'; known models: lenet5, toycnn"),
        (["--dataset", "imagenet"], "train: unknown dataset 'imagenet'; known datasets:"),
        (["--dataset", "mnist", "--data-dir", "/no/such/dir"], "train: data directory /no/such/dir does not exist"),
        (["--optimizer", "lbfgs"], "train: unknown optimizer 'lbfgs'"),
        (["--resume", "/no/such/run.safetensors"], "checkpoint /no/such/run.safetensors: no such file"),
        (["--device", "tpu"], "train: unknown device 'tpu'"),
    ],
)
def test_train_command_errors_are_one_line(capsys, argv, message):
    code, out, err = run_main(capsys, "train", *argv)
    assert code == 2 and out == ""
    assert err.startswith("minigrad-q: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_train_command_with_a_damaged_checkpoint(capsys, tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    code, out, err = run_main(capsys, "train", "--resume", str(path))
    assert code == 2 and out == ""
    assert f"checkpoint {path} is corrupted or not a minigrad_q checkpoint" in err


@pytest.mark.filterwarnings("error::RuntimeWarning")  # no NumPy overflow warnings on the way to NaN either
@pytest.mark.parametrize("quant", [{}, {"quant": "ste", "wbits": 2, "abits": 2}])
def test_a_diverging_run_stops_with_a_clear_error(quant):
    from minigrad_q.train import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="training diverged in epoch 1/2 by step .*: the loss or the weights "
                                               "became NaN or inf; try a lower learning rate"):
        train(TrainConfig(**dict(QUICK, lr=1e6, **quant)))


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) to give the command a terminal")
def test_the_progress_bar_draws_on_a_terminal_that_reports_no_size():
    """Under `script` a command's terminal is 0 x 0 until told otherwise; tqdm then hid the bar."""
    command = f"stty cols 0 rows 0; {sys.executable} -m minigrad_q train --epochs 1 --train-size 640"
    done = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    assert re.search(r"epoch 1/1: +\d+%\|.*\| \d+/10 ", done.stdout.replace("\r", "\n")), done.stdout


def test_the_log_says_that_the_train_loss_includes_label_smoothing(capsys):
    train(**dict(QUICK, epochs=1, verbose=True))
    assert "the train loss includes label smoothing 0.2, the test loss does not" in capsys.readouterr().out
    train(**dict(QUICK, epochs=1, verbose=True), label_smoothing=0.0)
    assert "label smoothing" not in capsys.readouterr().out
