"""The Python blocks of the README and of docs/*.md run as written, in order, one namespace per file; each
README block also runs on its own in a fresh interpreter, as a reader who copies one would run it.

Blocks fenced as ```python run; ```py marks a fragment that is shown, not run."""

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(text):
    return [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)]


def test_readme_has_a_tour():
    assert len(python_blocks(README.read_text())) >= 3


def test_readme_python_blocks_run(capsys):
    namespace = {"__name__": "readme"}
    for block in python_blocks(README.read_text()):
        exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "d loss / d h =" in printed
    assert "Log produced NaN/inf" in printed


@pytest.mark.parametrize("number", range(len(python_blocks(README.read_text()))))
def test_each_readme_block_runs_on_its_own_in_a_fresh_interpreter(number, tmp_path):
    block = python_blocks(README.read_text())[number]
    environment = {**os.environ, "PYTHONPATH": str(README.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=environment)
    assert done.returncode == 0, f"README block {number + 1} alone:\n{block}\n{done.stderr}"


def test_readme_gives_the_test_command_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]" && pytest' in README.read_text()
    assert 'pip install -e ".[test]" && pytest' in ci


def test_docs_python_blocks_run():
    for page in sorted((README.parent / "docs").glob("*.md")):
        namespace = {"__name__": page.stem}
        for block in python_blocks(page.read_text()):
            exec(compile(block, str(page), "exec"), namespace)
