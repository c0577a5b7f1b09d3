"""Every example program runs to completion (the QAT sweep in its quick mode, writing to a temp folder)."""

import json
import pathlib
import runpy
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


def test_the_sweep_computes_the_same_in_parallel_as_serially(tmp_path):
    """Each run on one thread in its own process: two workers give exactly the runs of one."""
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "qat_sweep.py"
    outcomes = []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        subprocess.run([sys.executable, str(path), "--quick", "--jobs", str(jobs), "--out", str(out / "results.md"),
                        "--json", str(out / "runs.json")], check=True, capture_output=True, timeout=300)
        runs = json.loads((out / "runs.json").read_text())
        outcomes.append([{name: value for name, value in run.items() if name != "seconds"} for run in runs])
    assert outcomes[0] == outcomes[1] and len(outcomes[0]) == 26
