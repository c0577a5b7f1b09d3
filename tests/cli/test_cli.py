"""The minigrad-q command: in-process through main(argv) and as a real console script."""

import json
import shutil
import subprocess
import sys

import pytest

import minigrad_q as mq
from minigrad_q import backend, cli
from minigrad_q.core import Function
from minigrad_q.specs import SPECS, register_spec

FEW_OPS = ("Add", "Mul", "Tanh", "Sigmoid", "Exp", "Log")


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_script(*argv, module=False, timeout=120, env=None):
    """The installed `minigrad-q` script (or `python -m minigrad_q`) in a fresh process."""
    if module:
        command = [sys.executable, "-m", "minigrad_q", *argv]
    else:
        script = shutil.which("minigrad-q")
        if script is None:
            pytest.skip("the minigrad-q console script is not installed (pip install -e .)")
        command = [script, *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)


def registered(names):
    present = {spec.function.__name__ for spec in SPECS.values()}
    return [name for name in names if name in present]


# ---------------------------------------------------------------- --version, info
def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"minigrad-q {mq.__version__}"


@pytest.mark.parametrize("module", [False, True], ids=["console-script", "python-m"])
def test_version_in_a_subprocess(module):
    result = run_script("--version", module=module)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"minigrad-q {mq.__version__}"


def test_info_lists_versions_devices_and_blas(capsys):
    code, out, err = run_main(capsys, "info")
    assert code == 0 and err == ""
    import numpy

    assert f"minigrad_q  {mq.__version__}" in out
    assert f"numpy       {numpy.__version__}" in out
    assert f"Python      {sys.version.split()[0]}" in out
    assert backend.blas_info() in out
    devices = next(line for line in out.splitlines() if line.startswith("devices"))
    assert "cpu" in devices
    if backend.cuda_is_available():
        assert "cuda:0 (" in devices
    elif backend.versions()["cupy"] == "not installed":
        assert 'CuPy not installed (pip install -e ".[cuda12]")' in devices
        assert "cupy        not installed" in out
    else:
        assert "no GPU found" in devices
    assert any(line.startswith("threads") for line in out.splitlines())


def test_info_in_a_subprocess():
    result = run_script("info")
    assert result.returncode == 0, result.stderr
    assert "numpy" in result.stdout and "devices" in result.stdout and "BLAS" in result.stdout


def test_info_lists_what_importing_minigrad_q_changed_and_each_off_switch():
    """In fresh processes: with the switches off, info says each effect is off."""
    import os

    off = {"OPENBLAS_THREAD_TIMEOUT": "2", "MINIGRAD_Q_KEEP_FREED_MEMORY": "0", "MINIGRAD_Q_FUSED": "0"}
    unset = {name: value for name, value in os.environ.items() if name not in off}
    default = run_script("info", env=unset)
    assert default.returncode == 0, default.stderr
    lines = default.stdout.splitlines()
    effects = lines[lines.index("what importing minigrad_q changed in this process, and how to turn it off:") + 3:]
    assert len(effects) == 4 and all("| yes |" in line for line in effects)
    switched = run_script("info", env={**unset, **off})
    assert switched.returncode == 0, switched.stderr
    assert "| yes " not in switched.stdout and "no: OPENBLAS_THREAD_TIMEOUT=2 was set before import" in switched.stdout


def test_no_command_prints_help(capsys):
    code, out, _ = run_main(capsys)
    assert code == 2 and "gradcheck" in out and "bench" in out


# ---------------------------------------------------------------- gradcheck
def test_gradcheck_a_few_ops_passes(capsys):
    names = registered(FEW_OPS)
    if not names:
        pytest.skip("none of the elementwise ops is registered yet")
    for name in names:
        code, out, err = run_main(capsys, "gradcheck", "--op", name.lower(), "--cases", "2", "--seed", "3")
        assert code == 0, out + err
        lines = out.splitlines()
        assert lines[0].split() == ["op", "|", "inputs", "|", "max", "abs", "error", "|", "result"]
        row = next(line for line in lines if line.startswith(name + " "))
        assert row.rstrip().endswith("PASS") and "(" in row  # the shapes of the first case
        assert "1 ops, 1 passed, 0 failed" in out


def test_gradcheck_of_every_spec_in_a_subprocess():
    result = run_script("gradcheck", "--cases", "1")
    summary = [line for line in result.stdout.splitlines() if " ops, " in line]
    assert summary, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert f"{len(SPECS)} ops, {len(SPECS)} passed, 0 failed" in summary[0]


def test_gradcheck_unknown_op_lists_the_names(capsys):
    code, out, err = run_main(capsys, "gradcheck", "--op", "NoSuchOp")
    assert code == 2 and out == ""
    assert err.startswith("minigrad-q: error: gradcheck: no op named 'NoSuchOp'; registered ops:")
    assert len(err.strip().splitlines()) == 1
    for name in registered(FEW_OPS):
        assert name in err


@pytest.mark.parametrize("argv", [["--cases", "0"], ["--device", "tpu"]])
def test_gradcheck_bad_arguments(capsys, argv):
    code, out, err = run_main(capsys, "gradcheck", *argv)
    assert code == 2 and out == ""
    assert err.startswith("minigrad-q: error: ") and "Traceback" not in err


@pytest.mark.skipif(backend.cuda_is_available(), reason="this machine has a GPU")
def test_gradcheck_on_cuda_without_gpu_is_a_clean_error():
    result = run_script("gradcheck", "--device", "cuda")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("minigrad-q: error: device 'cuda'")
    assert ".[cuda12]" in result.stderr or "no usable GPU" in result.stderr


def test_gradcheck_reports_a_wrong_backward_and_exits_1(capsys):
    class BrokenDouble(Function):
        """y = 2x, but backward claims dy/dx = 3 (deliberately wrong)."""

        def forward(self, x):
            return x * 2

        def backward(self, grad_output):
            return grad_output * 3

    register_spec(BrokenDouble, sample=lambda d: (d.tensor(d.shape(min_dims=1)),), call=BrokenDouble.apply)
    try:
        code, out, err = run_main(capsys, "gradcheck", "--op", "brokendouble", "--cases", "2")
    finally:
        del SPECS[BrokenDouble]
    assert code == 1, out + err
    row = next(line for line in out.splitlines() if line.startswith("BrokenDouble "))
    assert row.rstrip().endswith("FAIL")
    assert "1 ops, 0 passed, 1 failed" in out
    failure = out[out.index("FAIL BrokenDouble: case 0 (--seed 0)"):]  # the failure message follows the table
    assert "numerical 2, analytic 3" in failure


def test_gradcheck_reports_an_op_that_raises(capsys):
    class Crashing(Function):
        """Raises in forward: the command must report it as a failure, not crash."""

        def forward(self, x):
            raise ValueError("crashing: this op always fails")

        def backward(self, grad_output):
            return grad_output

    register_spec(Crashing, sample=lambda d: (d.tensor((2,)),), call=Crashing.apply)
    try:
        code, out, err = run_main(capsys, "gradcheck", "--op", "Crashing", "--cases", "1")
    finally:
        del SPECS[Crashing]
    assert code == 1 and "Traceback" not in out + err
    assert "FAIL Crashing: case 0 (--seed 0): raised ValueError: crashing: this op always fails" in out


# ---------------------------------------------------------------- bench
BENCH_KEYS = {"minigrad_q", "date", "device", "repeat", "machine", "limits", "overhead"}
CASE_KEYS = {"name", "elements", "minigrad_s", "minigrad_per_op_us", "runs_per_repeat", "target_ratio"}
TORCH_KEYS = {"torch_s", "torch_default_threads_s", "ratio", "ratio_default_threads", "grad_relative_difference"}


def test_bench_overhead_writes_json(capsys, tmp_path):
    path = tmp_path / "bench.json"
    code, out, err = run_main(capsys, "bench", "--overhead", "--repeat", "1", "--large-size", "2000", "--json", str(path))
    assert code == 0, err
    assert "overhead: 100-op elementwise chain" in out and "GFLOP/s" in out and "GB/s" in out
    results = json.loads(path.read_text())
    assert BENCH_KEYS <= set(results)
    assert results["limits"]["gemm_gflops"] > 0 and results["limits"]["copy_gbps"] > 0
    assert results["machine"]["cpu"] and results["machine"]["numpy"]
    overhead = results["overhead"]
    assert overhead["chain_ops"] == 100
    cases = {case["name"]: case for case in overhead["cases"]}
    assert set(cases) == {"tiny", "large"}
    assert cases["tiny"]["elements"] == 8 and cases["large"]["elements"] == 2000
    for case in cases.values():
        assert CASE_KEYS <= set(case) and case["minigrad_s"] > 0
        assert case["minigrad_per_op_us"] == pytest.approx(case["minigrad_s"] / 100 * 1e6)
        if overhead["torch_missing"] is None:
            assert TORCH_KEYS <= set(case)
            assert case["ratio"] == pytest.approx(case["minigrad_s"] / case["torch_s"])
            assert case["grad_relative_difference"] < 1e-4  # both engines computed the same gradients
    assert cases["tiny"]["target_ratio"] == 3.0 and cases["large"]["target_ratio"] == 1.3


def test_write_markdown_names_the_machine(tmp_path):
    from minigrad_q import bench

    results = bench.run(["overhead"], repeat=1, large_size=1000)
    text = bench.write_markdown(results)
    assert text.startswith("# Benchmarks on ")
    assert results["machine"]["cpu"] in text and results["date"] in text
    assert "GFLOP/s" in text and "| tiny |" in text and "| 0.001M |" in text


def test_a_gpu_page_is_titled_by_the_gpu_and_says_how_to_regenerate_it():
    from minigrad_q import bench

    results = bench.run(["overhead"], repeat=1, large_size=1000)
    results["device"], results["machine"]["gpus"] = "cuda:1", ["cuda:0 (NVIDIA A100)", "cuda:1 (NVIDIA H200)"]
    text = bench.write_markdown(results)
    assert text.startswith("# Benchmarks on cuda:1 (NVIDIA H200)\n")
    assert "scripts/gpu_check.sh" in text and "docs/benchmarks/" not in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--overhead", "--repeat", "0"], "--repeat must be at least 1"),
        (["--overhead", "--threads", "0"], "--threads must be at least 1"),
        (["--overhead", "--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bench_usage_errors(capsys, argv, message):
    code, out, err = run_main(capsys, "bench", *argv)
    assert code == 2 and out == ""
    assert err.startswith("minigrad-q: error: ") and message in err


def test_a_bare_bench_measures_the_lenet_step(capsys, monkeypatch):
    from minigrad_q import bench

    measured = []
    monkeypatch.setattr(bench, "run", lambda modes, **options: measured.append(modes) or {"modes": modes})
    monkeypatch.setattr(bench, "format_results", lambda results: "formatted", raising=False)
    code = cli.main(["bench"])
    assert code == 0 and measured == [["lenet"]]
    assert "no mode given: measuring --lenet" in capsys.readouterr().out


def test_bench_unwritable_json_path_is_a_clean_error(tmp_path):
    result = run_script(
        "bench", "--overhead", "--repeat", "1", "--large-size", "100", "--json", str(tmp_path / "missing" / "x.json")
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "minigrad-q: error: bench: cannot write" in result.stderr
    assert result.stdout == ""  # refused before measuring anything


# ---------------------------------------------------------------- plot
def test_plot_draws_a_runs_curves_and_refuses_what_is_not_a_run(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    from minigrad_q.train import train

    summary = tmp_path / "run.json"
    train(epochs=2, train_size=64, quant="lsq", verbose=False, json_path=str(summary))
    code, out, err = run_main(capsys, "plot", str(summary), "--out", str(tmp_path))
    assert code == 0, err
    for name in ("training.png", "grad_norms.png", "quantizers.png"):
        assert f"wrote {tmp_path / name}" in out and (tmp_path / name).stat().st_size > 0
    (tmp_path / "notes.json").write_text("not json")
    code, out, err = run_main(capsys, "plot", str(tmp_path / "notes.json"))
    assert code == 2 and err.startswith(f"minigrad-q: error: plot: {tmp_path / 'notes.json'}: not JSON")
    code, _, err = run_main(capsys, "plot", str(summary), "--out", str(tmp_path / "nowhere"))
    assert code == 2 and "the folder does not exist" in err


def test_a_gpu_index_without_cupy_is_named_in_the_error(capsys):
    if mq.backend.cuda_is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = run_main(capsys, "train", "--device", "cuda:1", "--epochs", "1")
    assert code == 2 and "device 'cuda:1'" in err


def test_ctrl_c_says_how_to_resume_when_a_checkpoint_was_saved(capsys, monkeypatch, tmp_path):
    from minigrad_q.cli import train as train_command

    def interrupted(config):
        open(config.save, "wb").close()  # as if an epoch had been saved before Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "train", interrupted)
    path = str(tmp_path / "run.safetensors")
    assert cli.main(["train", "--save", path]) == 130
    assert f"continue it with minigrad-q train --resume {path}" in capsys.readouterr().err
    monkeypatch.setattr(train_command, "train", lambda config: (_ for _ in ()).throw(KeyboardInterrupt))
    assert cli.main(["train"]) == 130
    assert "interrupted (without --save there is nothing to resume)" in capsys.readouterr().err
