"""The CNN benchmark modes, on tiny sizes: they run, count FLOPs right, agree with torch, and report."""

import json

import pytest

from minigrad_q import bench, cli
from minigrad_q.bench import cnn as bench_cnn

TINY_CONV = (("tiny", 2, 3, 4, 6, 3, 1),)


def test_conv_mode_counts_flops_and_matches_torch():
    result = bench_cnn.run_conv(repeat=1, gemm_gflops=10.0, cases=TINY_CONV)
    (case,) = result["cases"]
    out_side = 6 + 2 - 3 + 1
    assert case["flops"] == 6 * 2 * 4 * 3 * 3 * 3 * out_side * out_side
    assert case["gflops"] == pytest.approx(case["flops"] / case["minigrad_s"] / 1e9)
    assert case["gemm_fraction"] == pytest.approx(case["gflops"] / 10.0)
    if result["torch_missing"] is None:
        assert case["ratio"] == pytest.approx(case["minigrad_s"] / case["torch_s"])
        assert case["grad_relative_difference"] < 1e-5
        assert result["torch_threads"] == bench_cnn.blas_threads()


def test_lenet_mode_one_step_agrees_with_torch():
    result = bench_cnn.run_model("lenet", repeat=1, gemm_gflops=10.0, batch=4)
    assert result["model"] == "lenet5" and result["input"] == [4, 1, 28, 28]
    # forward MACs of LeNet-5 at 28x28, per image: conv1 6·25·784, conv2 16·150·100, fc 400·120 + 120·84 + 84·10
    macs = 6 * 25 * 784 + 16 * 150 * 100 + 400 * 120 + 120 * 84 + 84 * 10
    assert result["flops"] == 4 * (3 * 2 * macs - 2 * 6 * 25 * 784)  # no input gradient for the first conv
    if result["torch_missing"] is None:
        assert result["first_loss_difference"] < 1e-4  # same weights, same batch: same loss


def test_toycnn_mode_runs_and_leaves_torch_threads_alone():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    result = bench_cnn.run_model("toycnn", repeat=1, batch=2, threads=1)
    assert result["input"] == [2, 3, 32, 32] and result["minigrad_s"] > 0 and result["images_per_s"] > 0
    assert result["torch_threads"] == 1 and result["first_loss_difference"] < 1e-4
    assert torch.get_num_threads() == before


def test_rss_mode_in_a_fresh_process():
    result = bench_cnn.run_rss(rss_steps=12)
    assert result["steps"] == 12 and result["warmup_steps"] == 12
    assert 0 < result["start_rss_mib"] <= result["peak_rss_mib"]
    assert result["end_rss_mib"] <= result["peak_rss_mib"]


def test_cli_bench_cnn_modes_write_json_and_markdown(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(bench_cnn, "CONV_CASES", TINY_CONV)
    monkeypatch.setattr(bench_cnn, "MODEL_CASES", {"lenet": ("lenet5", 1, 28, 2), "toycnn": ("toycnn", 3, 32, 2)})
    path, markdown = tmp_path / "bench.json", tmp_path / "bench.md"
    code = cli.main(["bench", "--conv", "--lenet", "--toycnn", "--rss", "--rss-steps", "3", "--repeat", "1",
                     "--json", str(path), "--markdown", str(markdown)])
    out, err = capsys.readouterr()
    assert code == 0, err
    for title in ("conv2d forward + backward", "LeNet-5: one training step", "toy CNN: one training step",
                  "memory: peak RSS"):
        assert title in out
    results = json.loads(path.read_text())
    assert {"conv", "lenet", "toycnn", "rss"} <= set(results) and "overhead" not in results
    text = markdown.read_text()
    assert "## Conv2d forward + backward" in text and "## LeNet-5: one training step, input 1x28x28" in text
    assert "| tiny |" in text and "of GEMM" in text


def test_format_without_torch_has_no_ratio():
    results = bench.run([], repeat=1)
    results["lenet"] = {"model": "lenet5", "input": [2, 1, 28, 28], "batch": 2, "optimizer": "SGD", "flops": 1e6,
                        "minigrad_s": 0.01, "gflops": 0.1, "gemm_fraction": 0.01, "target_ratio": 1.5,
                        "images_per_s": 200.0, "torch_missing": "PyTorch not installed", "torch_threads": None,
                        "minigrad_spread": 0.02, "rounds": 1, "repeats_per_round": 1}
    text = bench.format_results(results)
    assert "<= 1.5x (no torch)" in text and "no PyTorch comparison: PyTorch not installed" in text
    assert "spread (slowest - fastest round) / median: minigrad_q 2%" in text
