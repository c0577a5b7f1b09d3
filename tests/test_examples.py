"""Every example program runs to completion (the QAT sweep in its quick mode, writing to a temp folder)."""

import pathlib
import runpy
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
        assert "| float32 | 32 |" in table and "| dsq | W2A2 |" in table
