"""``minigrad-q bench --quant`` on a tiny tensor: it runs every quantizer, times it against torch and a copy in
the same rounds, agrees with torch, and reports a table (with and without torch)."""

import json
import sys

import pytest

from minigrad_q import cli
from minigrad_q.bench import machine
from minigrad_q.bench import quant as bench_quant

TINY = 4096
NAMES = ["fake_quant", "dsq", "quant_noise", "quant_noise (mask given)", "lsq", "pact"]
TIMES = ("minigrad_s", "minigrad_min_s", "copy_s", "copy_min_s")


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch):
    monkeypatch.setattr(bench_quant, "WARMUP_S", 0.0)


@pytest.fixture(scope="module")
def with_torch():
    pytest.importorskip("torch")
    return bench_quant.run_quant(size=TINY, repeat=1, warmup=0.0)


def test_every_quantizer_is_timed_against_a_copy_in_the_same_rounds(with_torch):
    assert [case["name"] for case in with_torch["cases"]] == NAMES
    assert with_torch["elements"] == TINY and with_torch["dtype"] == "float32"
    for case in with_torch["cases"]:
        assert all(case[key] > 0 for key in TIMES)
        assert case["rounds"] == 1 and case["repeats_per_round"] == 1  # one call each: medians are the calls
        assert case["copy_ratio"] == pytest.approx(case["minigrad_s"] / case["copy_s"])
        assert case["copy_ratio_best"] == pytest.approx(case["minigrad_min_s"] / case["copy_min_s"])
        assert case["copy_target"] == 5.0
    targets = {case["name"]: case["target_ratio"] for case in with_torch["cases"]}
    assert targets == {"fake_quant": 0.5, "dsq": 0.2, "quant_noise": 0.2, "quant_noise (mask given)": 0.2,
                       "lsq": None, "pact": None}


def test_torch_runs_with_blas_threads_and_agrees(with_torch):
    assert with_torch["torch_missing"] is None and with_torch["torch_threads"] == bench_quant.blas_threads()
    for case in with_torch["cases"]:
        assert case["ratio"] == pytest.approx(case["minigrad_s"] / case["torch_s"])
        assert case["ratio_best"] == pytest.approx(case["minigrad_min_s"] / case["torch_min_s"])
        mismatch = case["mismatch"]
        assert mismatch["x.grad"] <= 1e-3, case["name"]  # a near-tie may round the other way in one engine
        if case["name"] != "quant_noise":  # the engines draw different masks
            assert mismatch["output"] <= 1e-3, case["name"]
    by_name = {case["name"]: case["mismatch"] for case in with_torch["cases"]}
    assert by_name["lsq"]["step.grad"] < 1e-3 and by_name["pact"]["alpha.grad"] < 1e-4


def test_torch_leaves_its_thread_count_alone():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    result = bench_quant.run_quant(size=64, repeat=1, threads=1, cases=bench_quant.CASES[:1], warmup=0.0)
    assert result["torch_threads"] == 1 and torch.get_num_threads() == before


def test_without_torch_there_is_no_ratio(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    quant = bench_quant.run_quant(size=256, repeat=1, warmup=0.0)
    assert quant["torch_missing"] == "PyTorch not installed" and quant["torch_threads"] is None
    assert [case["name"] for case in quant["cases"]] == NAMES
    for case in quant["cases"]:
        assert not {"ratio", "torch_s", "mismatch", "torch_baseline"} & set(case)
        assert case["copy_ratio"] > 0
    title, header, rows, notes = bench_quant.table(quant)
    assert title == "quantizers: forward + backward on 256 float32 elements"
    assert len(rows) == len(NAMES) and all(len(row) == len(header) for row in rows)
    fake_quant = rows[0]
    assert fake_quant[3] == "-" and fake_quant[5] == "-" and fake_quant[7] == "<= 0.5x (no torch)"
    assert rows[4][7] == "-"  # lsq: no target
    assert "no PyTorch comparison: PyTorch not installed" in notes


def test_verdicts_follow_the_median_ratios(with_torch):
    quant = json.loads(json.dumps(with_torch))
    quant["elements"] = 1 << 24
    fake_quant, dsq = quant["cases"][0], quant["cases"][1]
    fake_quant.update(ratio=0.4, ratio_best=0.3, copy_ratio=6.0, copy_ratio_best=4.0)
    dsq.update(ratio=0.25, ratio_best=0.15, copy_ratio=2.0, copy_ratio_best=1.5)
    title, header, rows, _ = bench_quant.table(quant)
    assert title == "quantizers: forward + backward on 16M float32 elements"
    assert header[5:] == ["ratio", "best", "target", "x copy", "best", "target"]
    assert rows[0][5:] == ["0.40x", "0.30x", "<= 0.5x met", "6.0x", "4.0x", "<= 5x MISSED"]
    assert rows[1][5:] == ["0.25x", "0.15x", "<= 0.2x MISSED", "2.0x", "1.5x", "<= 5x met"]


def test_cli_bench_quant_prints_and_writes_json_and_markdown(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "GEMM_SIZE", 64)  # the machine's limits, measured by every bench run: small here
    monkeypatch.setattr(machine, "COPY_ELEMENTS", 1 << 16)
    path, markdown = tmp_path / "bench.json", tmp_path / "bench.md"
    code = cli.main(["bench", "--quant", "--quant-size", "512", "--repeat", "1", "--json", str(path),
                     "--markdown", str(markdown)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "quantizers: forward + backward on 512 float32 elements" in out and "x copy" in out
    results = json.loads(path.read_text())
    assert results["quant"]["elements"] == 512 and "overhead" not in results and "limits" in results
    text = markdown.read_text()
    assert text.startswith("# Benchmarks on ") and "## Machine" in text
    assert "## Quantizers: forward + backward on 512 float32 elements" in text
    assert "`minigrad-q bench --quant`" in text and "| fake_quant |" in text and "| pact |" in text


def test_cli_bench_quant_size_must_be_positive(capsys):
    assert cli.main(["bench", "--quant", "--quant-size", "0"]) == 2
    assert "--quant-size must be at least 1, got 0" in capsys.readouterr().err


def test_format_results_is_empty_without_quant():
    assert bench_quant.format_results({}) == "" and bench_quant.write_markdown({}) == ""


def test_every_case_steps_twice_on_each_device(device):
    """Each timed step runs backward again: a learnable parameter moved to the GPU with .to() was no leaf,
    so the second step's backward went through a freed ToDevice (issue 12)."""
    import minigrad_q as mq

    parameter = bench_quant._learnable(0.5, mq.zeros(3, device=device))
    assert parameter.is_leaf and parameter.requires_grad and parameter.device.startswith(device)
    result = bench_quant.run_quant(device=device, size=64, repeat=2, warmup=0.0)
    assert all(case["minigrad_s"] > 0 for case in result["cases"])
