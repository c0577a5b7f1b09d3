"""Data-parallel training over MPI (minigrad_q.distributed), run as real jobs: `mpiexec -n 2` on this
machine's loopback, each with a timeout. Skipped where mpi4py or mpiexec is missing (pip install -e '.[mpi]').

- Equivalence: 2 (and 3) ranks at global batch 64 take the same 5 SGD steps (2 for DSQ: program.py
  says why) as 1 process at batch 64 (LeNet-5, float64), float and with each QAT method: parameters
  and buffers (observers, learned scales, α) to 1e-10 relative; likewise a CNN whose BatchNorm is
  synchronised over the ranks (running stats too).
- A rank that fails ends the whole job within seconds, naming itself.
- `minigrad-q train --distributed`: the same run as one process, rank 0 alone writes, --resume works,
  the summary records the world size; ranks that disagree, a batch that does not split and a run
  outside mpiexec are refused.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import distributed, quant
from minigrad_q.train import ConfigError, train

HERE = Path(__file__).parent
PROGRAM = HERE / "program.py"
REPO = HERE.parent.parent
MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
                               reason="needs mpi4py and mpiexec: pip install -e '.[mpi]'")
sys.path.insert(0, str(HERE))
import program  # noqa: E402


def mpiexec(*args, ranks=2, timeout=120):
    """Run `args` on `ranks` ranks; (return code, stdout, stderr, seconds)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   # Open MPI refuses to start as root (the GPU machine runs commands as root) without both; MPICH ignores them
                   "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    start = time.perf_counter()
    done = subprocess.run([MPIEXEC, "-n", str(ranks), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=environment)
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - start


def relative_difference(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)) if a.size else 0.0


@needs_mpi
@pytest.mark.parametrize("ranks, method", [(2, method) for method in ["float", *quant.METHODS, "batchnorm"]]
                         + [(3, "float"), (3, "lsq")])
def test_ranks_take_the_steps_of_one_process_with_the_whole_batch(tmp_path, ranks, method):
    """3 ranks split each batch of 64 into 21, 21 and 22 images (gradients weighted by shard size) and sum
    on rank 0 in one order before broadcasting (as MPI's all-reduce might not)."""
    out = tmp_path / "state.npz"
    code, _, stderr, _ = mpiexec(sys.executable, str(PROGRAM), "steps", method, str(out), ranks=ranks)
    assert code == 0, stderr
    expected = program.steps(method)
    got = np.load(out)
    assert sorted(got.files) == sorted(expected)
    for name, value in expected.items():
        assert relative_difference(got[name], value) <= 1e-10, name
    initial = program.steps(method, count=0)
    assert all(not np.array_equal(expected[name], initial[name]) for name in initial if name.endswith("weight"))


@needs_mpi
@pytest.mark.gpu
@pytest.mark.parametrize("method", ["float", "dsq"])
def test_on_a_gpu_two_ranks_take_the_steps_of_one_process(tmp_path, method):
    """Each rank on its GPU (NCCL), or both on one GPU (staged through host memory: NCCL refuses two ranks on
    one device)."""
    if not mq.backend.cuda_is_available():
        pytest.skip("no CuPy/GPU on this machine")
    out = tmp_path / "state.npz"
    code, _, stderr, _ = mpiexec(sys.executable, str(PROGRAM), "steps", method, str(out), "cuda")
    assert code == 0, stderr
    expected, got = program.steps(method, device="cuda"), np.load(out)
    on_cpu = program.steps(method)  # which side is off, should they differ: the ranks, or the one GPU process
    for name, value in expected.items():
        assert relative_difference(got[name], value) <= 1e-10, (
            f"{name}: ranks vs one process {relative_difference(got[name], value):.2e}; against the CPU: ranks "
            f"{relative_difference(got[name], on_cpu[name]):.2e}, one process {relative_difference(value, on_cpu[name]):.2e}")


@needs_mpi
def test_a_failing_rank_ends_the_job_within_seconds_and_names_itself():
    code, _, stderr, seconds = mpiexec(sys.executable, str(PROGRAM), "crash", timeout=60)
    assert code != 0
    assert "rank 1 of 2 failed: RuntimeError: this rank fails on purpose" in stderr
    assert seconds < 20


TRAIN = [sys.executable, "-m", "minigrad_q", "train", "--epochs", "2", "--no-progress"]


@needs_mpi
def test_the_command_trains_as_one_process_would_and_rank_0_alone_writes(tmp_path):
    summary_path, checkpoint_path = tmp_path / "run.json", tmp_path / "run.safetensors"
    code, stdout, stderr, _ = mpiexec(*TRAIN, "--distributed", "--json", str(summary_path), "--save", str(checkpoint_path))
    assert code == 0, stderr
    assert stdout.count("done: test accuracy") == 1  # rank 0 alone reports
    summary = json.loads(summary_path.read_text())
    assert summary["world_size"] == 2 and summary["config"]["distributed"] is True
    single = train(epochs=2, verbose=False)
    assert summary["world_size"] == 2 and single["world_size"] == 1
    for mine, theirs in zip(summary["history"], single["history"], strict=True):
        assert mine["test_accuracy"] == theirs["test_accuracy"]
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["run.json", "run.safetensors"]  # no partial files left by other ranks


@needs_mpi
def test_a_distributed_run_resumes_to_the_uninterrupted_result(tmp_path):
    whole, part = tmp_path / "whole.json", tmp_path / "part.json"
    checkpoint_path = tmp_path / "run.safetensors"
    constant = ["--distributed", "--schedule", "constant"]
    assert mpiexec(*TRAIN, *constant, "--json", str(whole))[0] == 0
    code, _, stderr, _ = mpiexec(*TRAIN, *constant, "--epochs", "1", "--save", str(checkpoint_path))  # the last --epochs wins
    assert code == 0, stderr
    code, stdout, stderr, _ = mpiexec(*TRAIN, "--distributed", "--resume", str(checkpoint_path), "--json", str(part))
    assert code == 0, stderr
    assert stdout.count("resumed from") == 1
    resumed, uninterrupted = json.loads(part.read_text()), json.loads(whole.read_text())
    assert [r["epoch"] for r in resumed["history"]] == [1, 2]
    for mine, theirs in zip(resumed["history"], uninterrupted["history"], strict=True):
        assert mine["test_accuracy"] == theirs["test_accuracy"] and mine["train_loss"] == theirs["train_loss"]


@needs_mpi
def test_ranks_that_disagree_are_refused_by_name():
    code, _, stderr, seconds = mpiexec(*TRAIN, "--distributed", "--seed", "0", ":", "-n", "1", *TRAIN, "--distributed",
                                       "--seed", "1", ranks=1, timeout=60)
    assert code != 0 and seconds < 30
    assert "the ranks disagree on the training settings" in stderr and "rank 1: seed" in stderr
    assert "Traceback" not in stderr  # the refusal, not the exception's trace (MPI_Abort may return first)


@needs_mpi
def test_a_global_batch_that_does_not_split_over_the_ranks_is_refused():
    code, _, stderr, _ = mpiexec(*TRAIN, "--distributed", "--batch-size", "63", timeout=60)
    assert code != 0
    assert "batch-size 63 (the global batch) does not divide evenly over 2 ranks" in stderr


def test_distributed_training_outside_mpiexec_is_refused(monkeypatch):
    for name in distributed.communicator.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="runs under an MPI launcher: mpiexec -n N"):
        train(distributed=True, epochs=1, verbose=False)


def test_sync_batchnorm_needs_a_distributed_run():
    with pytest.raises(ConfigError, match="sync-batchnorm .* add --distributed"):
        train(sync_batchnorm=True, epochs=1, verbose=False)


def test_distributed_training_without_mpi4py_is_refused_with_the_install_line(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "1")  # as if started by mpiexec
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if mpi4py were not installed
    monkeypatch.setattr(distributed, "_world", None)
    with pytest.raises(ConfigError, match=r"needs mpi4py and an MPI library: pip install -e '.\[mpi\]'"):
        train(distributed=True, epochs=1, verbose=False)
