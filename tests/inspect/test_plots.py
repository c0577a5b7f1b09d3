"""Quantizer curves and plots (minigrad_q/inspect/plots.py). The numbers behind the pictures are
checked against the formulas of docs/quantization.md without matplotlib; the figures are checked to
be written as PNGs of non-trivial size (skipped without matplotlib)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import inspect
from minigrad_q.inspect import plots
from minigrad_q.inspect.plots import quantizer_curves

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def dsq_slope(u, alpha):
    """½·S·k·(1 − tanh²(k·r)) with r = u − floor(u) − ½ (DESIGN.md), integer units."""
    S, k = 1 / (1 - alpha), np.log(2 / alpha - 1)
    r = u - np.floor(u) - 0.5
    return 0.5 * S * k * (1 - np.tanh(k * r) ** 2)


def away_from(x, points, margin):
    return np.all(np.abs(x[:, None] - np.asarray(points)[None, :]) > margin, axis=1)


# ---------------------------------------------------------------- the numbers
def test_hard_fake_quant_lies_on_the_levels_and_its_gradient_is_the_mask():
    data = quantizer_curves("ste", 2, range=(-1.0, 0.5))
    assert not data.shifted and data.scale == 0.5 and data.levels == [-1.0, -0.5, 0.0, 0.5]
    assert set(np.unique(data.hard.output)) == {-1.0, -0.5, 0.0, 0.5}
    np.testing.assert_array_equal(data.hard.output, np.clip(np.rint(data.x / 0.5), -2, 1) * 0.5)
    inside = (np.rint(data.x / 0.5) >= -2) & (np.rint(data.x / 0.5) <= 1)
    assert 0 < inside.mean() < 1
    np.testing.assert_array_equal(data.hard.gradient, inside.astype(float))
    assert data.curves == []


def test_one_bit_on_minus_one_one_is_the_sign_quantizer_on_a_shifted_grid():
    """Levels −1 and +1 need z = ½; the grid is shifted instead, and the title says so."""
    data = quantizer_curves("dsq", 1, range=(-1, 1))
    assert data.shifted and data.levels == [-1.0, 1.0] and data.scale == 2.0
    assert "z = 0.5 is not an integer" in data.title and "Q(x + 1) − 1" in data.title
    x = data.x
    np.testing.assert_array_equal(data.hard.output[x > 0], 1.0)
    np.testing.assert_array_equal(data.hard.output[x < 0], -1.0)
    # the shift's gradient is 1: the slope on [−1, 1] at x is the slope on the unshifted [0, 2] grid at x + 1
    unshifted = quantizer_curves("dsq", 1, range=(0, 2), points=len(x))
    assert not unshifted.shifted
    for curve, reference in zip(data.curves, unshifted.curves):
        np.testing.assert_allclose(curve.gradient, reference.gradient, atol=1e-12)
        np.testing.assert_allclose(curve.output, reference.output - 1, atol=1e-12)


def test_one_bit_on_zero_one_needs_no_shift():
    data = quantizer_curves("dsq", 1, range=(0, 1), alphas=(0.4,))
    assert not data.shifted and data.levels == [0.0, 1.0]
    assert set(np.unique(data.hard.output)) == {0.0, 1.0}


@pytest.mark.parametrize("bits, grid", [(1, (0, 1)), (1, (-1, 1)), (2, (0, 3)), (3, (-1, 1))])
def test_dsq_gradient_is_the_exact_slope_of_its_soft_curve(bits, grid):
    alphas = (0.1, 0.4, 0.9)
    data = quantizer_curves("dsq", bits, alphas=alphas, range=grid, points=6001)
    u = (data.x - data.low) / data.scale  # integer units, codes 0 .. 2^bits − 1
    inside = (u > 0) & (u < 2**bits - 1) & away_from(u, np.arange(2**bits), 0.01)
    for alpha, curve in zip(alphas, data.curves):
        assert curve.label == f"alpha {alpha:g}"
        np.testing.assert_allclose(curve.gradient[inside], dsq_slope(u[inside], alpha), rtol=1e-9)
        assert np.all(curve.gradient[(u < -1e-9) | (u > 2**bits - 1 + 1e-9)] == 0)
        numeric = np.gradient(curve.output, data.x)
        np.testing.assert_allclose(curve.gradient[inside], numeric[inside], rtol=2e-3, atol=2e-3)


def test_dsq_slopes_at_alpha_0_4_match_the_design_numbers():
    data = quantizer_curves("dsq", 2, alphas=(0.4,), range=(0, 3), points=4501)
    x, slope = data.x, data.curves[0].gradient
    assert slope[np.argmin(np.abs(x - 1.5))] == pytest.approx(1.1552, abs=1e-3)
    assert slope[np.argmin(np.abs(x - 1.0 - 1e-6))] == pytest.approx(0.7394, abs=1e-3)
    one_bin = (x >= 1) & (x < 2)
    assert slope[one_bin].mean() == pytest.approx(1.0, abs=2e-3)


def test_lsq_curve_has_the_step_gradient_of_the_paper():
    data = quantizer_curves("lsq", 2, range=(-1.0, 0.5))
    (curve,) = data.curves
    v = data.x / 0.5
    code = np.rint(v)
    expected = np.where(code < -2, -2.0, np.where(code > 1, 1.0, code - v))
    np.testing.assert_allclose(curve.extra["d/d step"], expected, atol=1e-12)
    np.testing.assert_array_equal(curve.output, data.hard.output)
    np.testing.assert_array_equal(curve.gradient, data.hard.gradient)


def test_lsq_on_a_shifted_grid_uses_the_lsq_plus_offset():
    data = quantizer_curves("lsq", 1, range=(-1, 1))
    (curve,) = data.curves
    assert curve.label == "LSQ+ (offset low)"
    np.testing.assert_array_equal(curve.output, data.hard.output)


def test_pact_curve_gradients():
    data = quantizer_curves("pact", 2, range=(0.0, 1.0), points=801)
    (curve,) = data.curves
    x = data.x
    np.testing.assert_array_equal(curve.gradient, ((x >= 0) & (x < 1)).astype(float))
    np.testing.assert_array_equal(curve.extra["d/d alpha"], (x >= 1).astype(float))
    np.testing.assert_allclose(curve.output, np.rint(np.clip(x, 0, 1) * 3) / 3, atol=1e-12)


def test_quant_noise_draw_is_seeded_locally():
    before = mq.rand(3).numpy()
    mq.manual_seed(0)
    data = quantizer_curves("qnoise", 2, range=(-1.0, 0.5), p=0.25, seed=7)
    after_curves = mq.rand(3).numpy()
    np.testing.assert_array_equal(before, after_curves)  # the global generator was not advanced
    (curve,) = data.curves
    quantized = curve.output == data.hard.output
    kept = curve.output == data.x
    assert np.all(quantized | kept)
    assert 0.2 < (quantized & ~kept).mean() < 0.3
    np.testing.assert_array_equal(curve.gradient, 1.0)
    again = quantizer_curves("qnoise", 2, range=(-1.0, 0.5), p=0.25, seed=7).curves[0]
    np.testing.assert_array_equal(again.output, curve.output)


@pytest.mark.parametrize("call, message", [
    (lambda: quantizer_curves("round", 2), "unknown method 'round'; known methods: ste, dsq, lsq, pact, qnoise"),
    (lambda: quantizer_curves("ste", 0), "bits must be an int from 1 to 8, got 0"),
    (lambda: quantizer_curves("ste", 2.0), "bits must be an int from 1 to 8, got 2.0"),
    (lambda: quantizer_curves("ste", 2, range=(1, 1)), r"range must be finite with low < high, got \(1.0, 1.0\)"),
    (lambda: quantizer_curves("ste", 2, range=3), "range must be \\(low, high\\), two numbers, got 3"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------- figures
def assert_png(path, min_bytes=10_000):
    data = open(path, "rb").read()
    assert data[:8] == PNG_MAGIC and len(data) > min_bytes, f"{path}: {len(data)} bytes"


@pytest.mark.parametrize("method", plots.METHODS)
def test_plot_quantizer_writes_a_png(method, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "deeper" / f"{method}.png"
    figure = plots.plot_quantizer(method, 2, out=out)
    assert_png(out)
    parameter_gradient = method in ("lsq", "pact")  # d/d step, d/d alpha: on an axis of their own
    assert len(figure.axes) == (2 if method == "ste" else 5 if parameter_gradient else 4)
    assert figure._suptitle.get_text().startswith(f"{method}: 2 bits")
    if parameter_gradient:
        gradient, right = figure.axes[3], figure.axes[4]
        assert [line.get_label() for line in gradient.get_lines() if not line.get_label().startswith("_")] == [
            "STE mask", "d/dx"]
        assert right.get_yscale() == "symlog" and right.get_lines()[0].get_label().endswith("(right axis)")
        assert gradient.get_ylim()[1] < 2  # LSQ's d/d step reaches Qp = 3 outside the grid: not on this axis


def test_plot_quantizer_dsq_paper_binary_picture(tmp_path):
    pytest.importorskip("matplotlib")
    figure = plots.plot_quantizer("dsq", 1, alphas=(0.1, 0.5), range=(-1, 1), out=tmp_path / "dsq.png")
    assert_png(tmp_path / "dsq.png")
    assert "not an integer" in figure._suptitle.get_text()
    method_top = figure.axes[1]
    assert [line.get_label() for line in method_top.get_lines()][:3] == ["hard fake quant", "alpha 0.1", "alpha 0.5"]


def test_plot_quantizers_and_plot_dsq(tmp_path):
    pytest.importorskip("matplotlib")
    plots.plot_quantizers(out=tmp_path / "all.png")
    figure = plots.plot_dsq(out=tmp_path / "dsq.png")
    assert_png(tmp_path / "all.png")
    assert_png(tmp_path / "dsq.png")
    assert [axes.get_title() for axes in figure.axes[:3]] == ["1 bit on [0, 1]", "1 bit on [-1, 1] (shifted)", "2 bits on [0, 3]"]


def test_the_script_writes_both_figures(tmp_path):
    pytest.importorskip("matplotlib")
    script = os.path.join(ROOT, "scripts", "plot_quantizers.py")
    result = subprocess.run([sys.executable, script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert_png(tmp_path / "quantizers.png")
    assert_png(tmp_path / "dsq.png")


def test_a_missing_matplotlib_says_how_to_install_it(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'plot_quantizer needs matplotlib.*pip install -e "\.\[plot\]"'):
        plots.plot_quantizer("ste", 2)


# ---------------------------------------------------------------- training runs
HISTORY = [
    {"epoch": 1, "train_loss": 2.0, "train_accuracy": 0.40, "test_loss": 1.5, "test_accuracy": 0.55,
     "grad_norms": {"0.weight": 1.0, "0.bias": 0.5, "3.weight": 2.0, "3.weight_quant.alpha": 0.01}},
    {"epoch": 2, "train_loss": 1.0, "train_accuracy": 0.70, "test_loss": float("nan"), "test_accuracy": 0.75,
     "grad_norms": {"0.weight": 0.8, "0.bias": 0.4, "3.weight": 1.5, "3.weight_quant.alpha": 0.02}},
    {"epoch": 3, "train_loss": 0.5, "train_accuracy": 0.90, "test_loss": 0.7, "test_accuracy": 0.85,
     "grad_norms": {"0.weight": 0.6, "0.bias": 0.3, "3.weight": 1.0, "3.weight_quant.alpha": 0.03}},
]


def write_json(path, payload):
    path.write_text(json.dumps(payload))
    return path


def lines_by_label(axes):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes.get_lines()}


def test_plot_training_draws_the_history(tmp_path):
    pytest.importorskip("matplotlib")
    source = write_json(tmp_path / "run.json", {"config": {"model": "lenet5", "dataset": "digits", "quant": "dsq",
                                                           "wbits": 4, "abits": 4}, "history": HISTORY})
    figure = plots.plot_training(source, tmp_path / "curves.png")
    assert_png(tmp_path / "curves.png")
    loss, accuracy = figure.axes
    assert lines_by_label(loss)["train"] == ([1, 2, 3], [2.0, 1.0, 0.5])
    assert lines_by_label(loss)["test"] == ([1, 3], [1.5, 0.7])  # the NaN is left out
    assert lines_by_label(accuracy)["test"] == ([1, 2, 3], pytest.approx([55.0, 75.0, 85.0]))
    assert figure._suptitle.get_text() == "lenet5 on digits, dsq W4A4"


def test_plot_grad_norms_draws_one_line_per_parameter(tmp_path):
    pytest.importorskip("matplotlib")
    source = write_json(tmp_path / "run.json", HISTORY)  # a bare history list works too
    figure = plots.plot_grad_norms(source, tmp_path / "norms.png")
    assert_png(tmp_path / "norms.png")
    (axes,) = figure.axes
    lines = lines_by_label(axes)
    assert sorted(lines) == ["0.bias", "0.weight", "3.weight", "3.weight_quant.alpha"]
    assert lines["3.weight"] == ([1, 2, 3], [2.0, 1.5, 1.0])
    styles = {line.get_label(): (line.get_linestyle(), line.get_color()) for line in axes.get_lines()}
    assert styles["0.weight"][0] == "-" and styles["0.bias"][0] == "--" and styles["3.weight_quant.alpha"][0] == ":"
    assert styles["0.weight"][1] == styles["0.bias"][1] != styles["3.weight"][1]
    assert axes.get_yscale() == "log"


def test_history_errors_are_clear(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="no history record has \"grad_norms\""):
        plots.plot_grad_norms(write_json(tmp_path / "old.json", {"history": [{"epoch": 1, "train_loss": 1.0}]}))
    with pytest.raises(ValueError, match="non-empty \"history\" list"):
        plots.plot_training(write_json(tmp_path / "empty.json", {"history": []}))


def test_plots_of_a_real_training_run(tmp_path):
    pytest.importorskip("matplotlib")
    from minigrad_q.train import TrainConfig, train

    path = tmp_path / "run.json"
    train(TrainConfig(epochs=2, train_size=128, json_path=str(path), verbose=False, progress=False, log_every=1))
    plots.plot_training(path, tmp_path / "curves.png")
    figure = plots.plot_grad_norms(path, tmp_path / "norms.png")
    assert_png(tmp_path / "curves.png")
    assert_png(tmp_path / "norms.png")
    names = {line.get_label() for line in figure.axes[0].get_lines()}
    assert names == set(json.loads(path.read_text())["history"][0]["grad_norms"]) and "0.weight" in names


def test_quantizer_history_draws_each_quantizers_range_and_alpha(tmp_path):
    pytest.importorskip("matplotlib")
    from minigrad_q.train import train

    path = tmp_path / "run.json"
    train(epochs=2, train_size=64, quant="dsq", wbits=2, abits=2, verbose=False, json_path=str(path))
    figure = inspect.plot_quantizer_history(path, out=tmp_path / "quantizers.png")
    ranges, alphas = figure.axes[:2]
    assert len(ranges.lines) == 2 * 10 and len(alphas.lines) == 10  # 5 layers x (weight, input) quantizers
    history = inspect.load_history(path)
    upper = [record["quantizers"]["3.weight_quant"]["high"]["mean"] for record in history]
    assert list(ranges.lines[2 * 2].get_ydata()) == upper  # layer 3's weight quantizer: the third pair of lines
    assert (tmp_path / "quantizers.png").stat().st_size > 0
    float_run = tmp_path / "float.json"
    train(epochs=1, train_size=64, verbose=False, json_path=str(float_run))
    with pytest.raises(ValueError, match="no history record has \"quantizers\""):
        inspect.plot_quantizer_history(float_run)
