"""Options that cannot work are refused before any work starts, as one line and exit code 2, never a
traceback (issue 15, items 3, 4, 7, 11 and 13)."""

import os

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q.cli.main import main


@pytest.mark.parametrize("arguments, message", [
    (["train", "--momentum", "nan"], "train: momentum must be a finite number >= 0, got nan"),
    (["train", "--momentum", "-1"], "train: momentum must be a finite number >= 0, got -1.0"),
    (["train", "--weight-decay", "-1"], "train: weight-decay must be a finite number >= 0, got -1.0"),
    (["train", "--seed", "-1"], "train: seed must be an integer >= 0, got -1"),
    (["train", "--lr", "inf"], "train: lr must be positive and finite, got inf"),
    (["train", "--quant", "lsq", "--wbits", "1"], "train: lsq needs at least 2 bits for weights"),
    (["train", "--quant", "lsq", "--abits", "1", "--first-last-bits", "same"], "train: lsq needs at least 2 bits"),
    (["train", "--wbits", "3"], "train: wbits applies to a quantization method only"),
    (["inspect", "--bits", "0"], "inspect: --bits must list bit widths from 1 to 8, got '0'"),
    (["inspect", "--epochs", "0"], "inspect: --epochs must be at least 1, got 0"),
    (["plot-quantizer", "--bits", "0"], "plot-quantizer: --bits must be at least 1, got 0"),
    (["bench", "--overhead", "--large-size", "0"], "bench: --large-size must be at least 1, got 0"),
    (["gradcheck", "--seed", "-1"], "gradcheck: --seed must be at least 0, got -1"),
])
def test_bad_options_are_one_line_and_exit_code_2(arguments, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error == f"minigrad-q: error: {error.split('minigrad-q: error: ', 1)[-1]}" and message in error
    assert len(error.strip().splitlines()) == 1 and not os.listdir(tmp_path)  # nothing trained or written first


@pytest.mark.parametrize("option", ["--save", "--json"])
def test_a_folder_or_an_unwritable_place_for_save_or_json_is_refused_before_training(option, tmp_path, capsys):
    assert main(["train", option, str(tmp_path)]) == 2
    assert f"cannot write {tmp_path}: it is a folder; give a file name in it" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who may write anywhere (root)")
        assert main(["train", option, str(locked / "run.out")]) == 2
        assert "cannot write" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_a_train_size_beyond_the_dataset_says_so(capsys):
    assert main(["train", "--train-size", "99999", "--epochs", "1", "--no-progress"]) == 0
    assert "train-size 99,999 is more than the 1,437 training images of digits: training on all of them" in \
        capsys.readouterr().out


def test_conv2d_refuses_an_empty_kernel():
    x, weight = mq.tensor(np.ones((1, 1, 6, 6))), mq.tensor(np.ones((2, 1, 0, 0)))
    with pytest.raises(ValueError, match=r"conv2d: the kernel must be at least 1x1, got 0x0 \(weight shape \(2, 1, 0, 0\)\)"):
        mq.conv2d(x, weight)
