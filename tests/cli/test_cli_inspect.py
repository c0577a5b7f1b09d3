"""The inspection commands: minigrad-q inspect, plot-quantizer and bench --profile."""

import shutil

import pytest

from minigrad_q import cli


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def inspected(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("inspect")
    code = cli.main(["inspect", "--methods", "ste,dsq", "--bits", "4,2", "--epochs", "1", "--batch-size", "16",
                     "--out", str(out_dir)])
    assert code == 0
    return out_dir


def test_inspect_writes_the_comparison_the_tape_and_the_report(inspected):
    table = (inspected / "comparison.md").read_text()
    ste_rows = [line for line in table.splitlines() if line.startswith("| quantizer |") and "| ste |" in line]
    dsq_rows = [line for line in table.splitlines() if line.startswith("| quantizer |") and "| dsq |" in line]
    assert len(ste_rows) == len(dsq_rows) == 5  # LeNet-5's 2 convs and 3 linears
    assert all(row.endswith("| yes |") for row in ste_rows)  # the seed observation, layer by layer
    assert all(row.endswith("| no |") for row in dsq_rows)
    tape = (inspected / "tape.md").read_text()
    assert "## Per op type" in tape and "DSQ" in tape and "Conv2d" in tape
    assert "Times measured on " in tape and " CPUs." in tape  # times name the machine they came from
    assert (inspected / "tape.csv").read_text().startswith("index,phase,op,module")
    if shutil.which("dot"):  # Graphviz renders the graph; without it the DOT text is written instead
        assert (inspected / "graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert not (inspected / "graph.dot").exists()
    else:
        assert "DSQ" in (inspected / "graph.dot").read_text() and not (inspected / "graph.png").exists()
    report = (inspected / "report.md").read_text()
    assert report.startswith("# minigrad-q inspect: lenet5 on digits") and "## Gradient comparison" in report
    assert "Times measured on " in report


def test_inspect_draws_the_pictures(inspected):
    pytest.importorskip("matplotlib")
    for name in ("comparison.png", "quantizer_dsq_2bit.png", "quantizer_ste_4bit.png", "training.png", "grad_norms.png"):
        assert (inspected / name).stat().st_size > 10_000, name


@pytest.mark.parametrize("argv, message", [
    (["--methods", "ste,binary"], "inspect: unknown methods binary; expected some of: ste, dsq, lsq, qnoise"),
    (["--bits", "4,x"], "--bits must be a comma-separated list of numbers, got '4,x'"),
    (["--model", "resnet"], "inspect: unknown model 'resnet'"),
])
def test_inspect_bad_options_are_one_line_errors(capsys, tmp_path, argv, message):
    code, out, err = run_main(capsys, "inspect", "--out", str(tmp_path), *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_plot_quantizer_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "dsq.png"
    code, out, err = run_main(capsys, "plot-quantizer", "--method", "dsq", "--bits", "2", "--alpha", "0.2,0.5,0.9",
                              "--out", str(path))
    assert code == 0, err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    code, out, err = run_main(capsys, "plot-quantizer", "--method", "dsq", "--bits", "1", "--range=-1,1",
                              "--out", str(tmp_path / "binary.png"))
    assert code == 0, err


@pytest.mark.parametrize("argv, message", [
    (["--method", "round"], "plot-quantizer:"),
    (["--range", "0,1,2"], "--range must be two numbers LOW,HIGH"),
    (["--out", "/no/such/folder/x.png"], "cannot write /no/such/folder/x.png: its folder does not exist"),
])
def test_plot_quantizer_errors(capsys, argv, message):
    code, out, err = run_main(capsys, "plot-quantizer", *argv)
    assert code == 2 and message in err


def test_bench_profile_prints_time_per_op(capsys):
    code, out, err = run_main(capsys, "bench", "--profile")
    assert code == 0, err
    assert "where one LeNet-5 training step" in out
    rows = {line.split("|")[0].strip() for line in out.splitlines() if "|" in line}
    assert {"Conv2d", "Linear", "MaxPool2d", "CrossEntropy", "all ops"} <= rows


def test_inspect_takes_a_float_checkpoint_and_refuses_a_quantized_one(capsys, tmp_path):
    float_path, quant_path = tmp_path / "float.safetensors", tmp_path / "quant.safetensors"
    assert cli.main(["train", "--epochs", "1", "--train-size", "64", "--save", str(float_path)]) == 0
    assert cli.main(["train", "--epochs", "1", "--train-size", "64", "--quant", "ste", "--save", str(quant_path)]) == 0
    capsys.readouterr()
    code, out, err = run_main(capsys, "inspect", "--checkpoint", str(float_path), "--methods", "ste", "--bits", "4",
                              "--batch-size", "8", "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "from " + str(float_path) in (tmp_path / "out" / "report.md").read_text()
    code, out, err = run_main(capsys, "inspect", "--checkpoint", str(quant_path), "--out", str(tmp_path / "out2"))
    assert code == 2 and "holds a quantized model; give a float one" in err
