"""Every example program runs to completion (the QAT sweep in its quick mode, writing to a temp folder)."""

import importlib.util
import json
import os
import pathlib
import runpy
import shutil
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parent.parent / "examples").glob("*.py"))


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, capsys, monkeypatch, tmp_path):
    arguments = ["--quick", "--out", str(tmp_path / "results.md")] if path.name == "qat_sweep.py" else []
    monkeypatch.setattr(sys, "argv", [str(path), *arguments])
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip(), f"{path.name} printed nothing"
    if path.name == "qat_sweep.py":
        table = (tmp_path / "results.md").read_text()
        assert "| float32 | 32 |" in table and "| dsq | W2A2 | fine-tuned |" in table
        assert "| dsq | W2A2 | from scratch |" in table and "Does DSQ's soft gradient beat" in table
        assert "±" not in table and "seed 0 only" in table and "A smoke run" in table  # one seed: no spread


SWEEP = pathlib.Path(__file__).resolve().parent.parent / "examples" / "qat_sweep.py"
HAS_MPI = shutil.which("mpiexec") is not None and importlib.util.find_spec("mpi4py") is not None


def sweep(out, *launcher, jobs=None):
    """Run the quick sweep (on `launcher`, e.g. mpiexec -n 2); its runs without their times, and its page
    without the times and the line saying how it ran."""
    environment = {**os.environ, "PYTHONPATH": str(SWEEP.parent.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([*launcher, sys.executable, str(SWEEP), "--quick", *(["--jobs", str(jobs)] if jobs else []),
                    "--out", str(out / "results.md"), "--json", str(out / "runs.json")],
                   check=True, capture_output=True, timeout=300, env=environment)
    runs = [{name: value for name, value in run.items() if name != "seconds"}
            for run in json.loads((out / "runs.json").read_text())]
    page = [line.rsplit("|", 2)[0] if line.startswith("|") else line
            for line in (out / "results.md").read_text().splitlines() if not line.startswith("Machine:")]
    return runs, page


@pytest.mark.parametrize("launch", ["2 worker processes", pytest.param("2 MPI ranks", marks=pytest.mark.skipif(
    not HAS_MPI, reason="needs mpi4py and mpiexec: pip install -e '.[mpi]'"))])
def test_the_sweep_computes_the_same_in_parallel_as_serially(tmp_path, launch):
    """Each run on one thread, in its own process or on an MPI rank: exactly the runs of one worker, and the
    same page."""
    serial_runs, serial_page = sweep(tmp_path / "serial", jobs=1)
    if launch == "2 MPI ranks":
        runs, page = sweep(tmp_path / "mpi", "mpiexec", "-n", "2")
    else:
        runs, page = sweep(tmp_path / "jobs", jobs=2)
    assert runs == serial_runs and len(runs) == 26
    assert page == serial_page


def test_a_sweep_run_that_fails_is_listed_on_the_page_not_lost():
    sweep = runpy.run_path(str(SWEEP))
    failed = sweep["run"]({"dataset": "no-such-dataset", "epochs": 1, "seed": 0, "label": "broken run"})
    assert failed["accuracy"] is None and "ConfigError" in failed["failed"] and "no-such-dataset" in failed["failed"]
    page = sweep["markdown"]([failed], ["digits"], 1, sweep["QUICK"], 1.0, "1 worker process(es)")
    assert "## Runs that failed" in page and "- broken run: ConfigError" in page


def test_a_cell_shows_a_spread_only_over_two_or_more_runs():
    sweep = runpy.run_path(str(SWEEP))
    assert sweep["cell"]([0.5]) == "50.00"
    assert sweep["cell"]([0.5, 0.7]) == "60.00 ± 14.14"
    assert sweep["cell"]([0.5, None]) == "50.00 (1 of 2 diverged)"
    assert sweep["cell"]([None]) == "diverged (1 of 1 diverged)"
