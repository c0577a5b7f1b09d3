"""Pictures of what quantizers do to values and gradients, and of a training run (needs matplotlib:
``pip install -e ".[plot]"``).

- ``quantizer_curves(method, bits, ...)``: the numbers behind a quantizer picture, no matplotlib needed:
  on a fine grid of x, the output of minigrad_q's own forward and the gradient of its own backward
  (``y.sum().backward()``, so ``x.grad`` is dy/dx element by element), for the method and for hard fake
  quant (round + STE).
- ``plot_quantizer(method, bits, alphas, range, out)``: those curves drawn, the method beside hard fake quant.
- ``plot_quantizers(bits, out)``: every method in one figure; ``plot_dsq(out)``: the DSQ paper's figures.
- ``plot_training(json_path, out)``, ``plot_grad_norms(json_path, out)``: from ``minigrad-q train --json``.

The grid. ``range=(low, high)`` is where the 2^b levels lie: level k is low + k·s, s = (high − low)/(2^b − 1).
An affine quantizer puts its levels at (code − z)·s with an *integer* zero point z, so it can place
them there only when low/s is an integer. When it is not, as for 1 bit on [−1, 1] (levels −1 and +1 need
z = ½), the curve is drawn as Q(x − low) + low, with Q quantizing to codes [0, 2^b − 1] at zero point 0:
the same levels, the sign-like binary quantizer for [−1, 1]. The shift is an ordinary minigrad_q add, so
the plotted gradient is still the chain rule through the quantizer's own backward (the shift's factor is 1).
``QuantizerCurves.shifted`` says when this happened, and the figure's title says so too.

Figures are ``matplotlib.figure.Figure`` objects drawn on the Agg canvas, never through pyplot, so
nothing changes matplotlib's global backend and no figure is left open.
"""

from __future__ import annotations

import builtins
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from .. import backend, core
from .. import quant as q
from ..core import Tensor

__all__ = ["METHODS", "Curve", "QuantizerCurves", "quantizer_curves", "plot_quantizer", "plot_quantizers", "plot_dsq",
           "plot_training", "plot_grad_norms", "load_history"]

METHODS = ("ste", "dsq", "lsq", "pact", "qnoise")
INSTALL_HINT = 'pip install -e ".[plot]"  (matplotlib)'
_DSQ_PAPER_PANELS = ((1, (0.0, 1.0)), (1, (-1.0, 1.0)), (2, (0.0, 3.0)))


@dataclass
class Curve:
    """One curve on the grid x: the output y, its gradient dy/dx, and other gradients (by name,
    e.g. "d/d step") each on the same grid. ``dots``: a random draw per x, drawn as points."""

    label: str
    output: Any
    gradient: Any
    extra: dict[str, Any] = field(default_factory=dict)
    dots: bool = False


@dataclass
class QuantizerCurves:
    """What ``quantizer_curves`` computed. ``levels`` are the 2^bits values low + k·scale; ``shifted``
    is True when no integer zero point gives them and the quantizer ran on x − low (module docstring)."""

    method: str
    bits: int
    low: float
    high: float
    scale: float
    shifted: bool
    levels: list[float]
    x: Any
    hard: Curve
    curves: list[Curve]

    @property
    def title(self) -> str:
        grid = f"{self.bits} bit{'s' * (self.bits > 1)}, levels {_g(self.low)} .. {_g(self.high)} (step {_g(self.scale)})"
        if not self.shifted:
            return grid
        size = _g(abs(self.low))
        shift, back = (f"x + {size}", f"− {size}") if self.low < 0 else (f"x − {size}", f"+ {size}")
        return grid + f"; z = {_g(-self.low / self.scale)} is not an integer, so drawn as Q({shift}) {back}"


def _g(value: float) -> str:
    return f"{value:.4g}"


# ---------------------------------------------------------------- the numbers
def _check(method: str, bits: Any, range: Any) -> tuple[float, float]:
    if method not in METHODS:
        raise ValueError(f"plot_quantizer: unknown method {method!r}; known methods: {', '.join(METHODS)}")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"plot_quantizer: bits must be an int from 1 to 8, got {bits!r}")
    if range is None:
        return 0.0, float((1 << bits) - 1)
    try:
        low, high = (float(v) for v in range)
    except (TypeError, ValueError):
        raise ValueError(f"plot_quantizer: range must be (low, high), two numbers, got {range!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"plot_quantizer: range must be finite with low < high, got ({low}, {high})")
    return low, high


def _evaluate(function: Any, x_values: Any) -> tuple[Any, Any]:
    """(f(x), df/dx) on the grid, from minigrad_q's forward and the backward of f(x).sum()."""
    x = Tensor(x_values.copy(), requires_grad=True)
    y = function(x)
    y.sum().backward()
    gradient = x.grad.numpy() if x.grad is not None else x_values * 0.0
    return y.detach().numpy(), gradient


def quantizer_curves(method: str, bits: int, alphas: Any = (0.2, 0.5, 0.9), range: Any = None, points: int = 2001,
                     p: float = 0.5, seed: int = 0) -> QuantizerCurves:
    """The transfer curve and gradient of `method` at `bits` on a grid of `points` x values that covers
    `range` (default (0, 2^bits − 1): step 1) with ¾ of a step to spare on each side, computed by
    minigrad_q's forward and backward in float64, next to hard fake quant (round + STE) on the same grid:

    - ste: fake_quant itself (no further curve);
    - dsq: for each alpha, the soft curve (dsq_soft) and dsq's backward; dsq's forward is hard fake quant;
    - lsq: the output, dx, and d/d step per x (grad_scale 1: the per-element term, before LSQ's 1/sqrt(N·Qp));
    - pact: clipping level α = high − low; the output, dx and d/dα per x;
    - qnoise: one draw per x with probability p of quantizing (a local generator seeded with `seed`; the
      global one is not touched) and the gradient (the identity).
    """
    low, high = _check(method, bits, range)
    n = (1 << bits) - 1
    scale = (high - low) / n
    offset = low / scale
    shifted = abs(offset - round(offset)) > 1e-9 * max(1.0, abs(offset))
    k = 0 if shifted else int(round(offset))  # codes [k, k + n] at zero point 0 put level c at c·s
    points = max(int(points), 16 * (n + 1))
    cpu = backend.array_module("cpu")
    x_values = cpu.linspace(low - 0.75 * scale, high + 0.75 * scale, points, dtype=cpu.float64)

    def on_grid(quantize: Any) -> Any:
        """quantize(t, qmin, qmax) with its levels at low + k·s, shifting t when no integer z can."""
        if shifted:
            return lambda t: quantize(t - low, 0, n) + low
        return lambda t: quantize(t, k, k + n)

    hard_y, hard_dx = _evaluate(on_grid(lambda t, lo, hi: q.fake_quant(t, scale, 0, lo, hi)), x_values)
    hard = Curve("hard fake quant (round + STE)", hard_y, hard_dx)
    curves: list[Curve] = []
    if method == "dsq":
        for alpha in alphas:
            soft, _ = _evaluate(on_grid(lambda t, lo, hi, a=alpha: q.dsq_soft(t, scale, 0, lo, hi, a)), x_values)
            _, slope = _evaluate(on_grid(lambda t, lo, hi, a=alpha: q.dsq(t, scale, 0, lo, hi, a)), x_values)
            curves.append(Curve(f"alpha {alpha:g}", soft, slope))
    elif method == "lsq":
        curves.append(_lsq_curve(x_values, scale, low, k, n, shifted))
    elif method == "pact":
        curves.append(_pact_curve(x_values, high - low, low, bits))
    elif method == "qnoise":
        mask = Tensor(cpu.random.default_rng(seed).random(points) < p)
        noised, noise_dx = _evaluate(on_grid(
            lambda t, lo, hi: q.quant_noise(t, p, bits, mask=mask, scale=scale, zero_point=-lo, signed=False)), x_values)
        curves.append(Curve(f"p {p:g}, one draw per x", noised, noise_dx, dots=True))
    levels = [low + i * scale for i in builtins.range(n + 1)]  # `range` is the contract's parameter name here
    return QuantizerCurves(method, bits, low, high, scale, shifted, levels, x_values, hard, curves)


def _lsq_curve(x_values: Any, scale: float, low: float, k: int, n: int, shifted: bool) -> Curve:
    """LSQ on codes [k, k + n] with no offset when k + n > 0 (plain LSQ needs Qp = qmax > 0), else LSQ+
    with offset low on codes [0, n]; one step per x (axis 0) so that step.grad holds d output/d step per x."""
    plain = not shifted and k + n > 0
    step = core.full((len(x_values),), scale, dtype=backend.float64, requires_grad=True)
    qmin, qmax, offset = (k, k + n, None) if plain else (0, n, low)
    output, dx = _evaluate(lambda t: q.lsq(t, step, qmin, qmax, grad_scale=1.0, axis=0, offset=offset), x_values)
    assert step.grad is not None
    return Curve("LSQ" if plain else "LSQ+ (offset low)", output, dx, {"d/d step": step.grad.numpy()})


def _pact_curve(x_values: Any, alpha: float, low: float, bits: int) -> Curve:
    """PACT at clipping level alpha (shifted by low); d/dα per x needs one backward per x (α has one element)."""
    output, dx = _evaluate(lambda t: q.pact(t - low, alpha, bits) + low if low else q.pact(t, alpha, bits), x_values)
    level = core.tensor(alpha, dtype=backend.float64, requires_grad=True)
    d_alpha = []
    for value in x_values.tolist():
        level.grad = None
        q.pact(core.tensor([value - low], dtype=backend.float64), level, bits).sum().backward()
        d_alpha.append(level.grad.item() if level.grad is not None else 0.0)
    return Curve(f"PACT, alpha {_g(alpha)}", output, dx, {"d/d alpha": d_alpha})


# ---------------------------------------------------------------- drawing
def _figure(op: str, rows: int, columns: int, size: tuple[float, float]) -> tuple[Any, Any]:
    """A Figure on the Agg canvas and its axes grid (rows × columns, always 2-d)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(f"{op} needs matplotlib, which is not installed: {INSTALL_HINT}") from error
    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=False, sharex="col")


def _finish(figure: Any, out: Any) -> Any:
    figure.tight_layout()
    if out is not None:
        directory = os.path.dirname(os.fspath(out))
        if directory:
            os.makedirs(directory, exist_ok=True)
        figure.savefig(out, dpi=90)
    return figure


def _draw(top: Any, bottom: Any, data: QuantizerCurves, curves: list[Curve], title: str, reference: bool) -> None:
    """Outputs on `top`, gradients on `bottom`; with `reference`, hard fake quant in grey behind them.
    A parameter's gradient (LSQ's d/d step, PACT's d/d alpha) gets its own axis on the right, symlog
    (linear within ±1, logarithmic beyond): LSQ's is within ±½ on the grid but jumps to Qn and Qp (up to
    255 at 8 bits) outside it, which on a shared linear axis would flatten d/dx and the sawtooth alike."""
    x = data.x
    if reference:
        top.plot(x, data.hard.output, color="0.7", lw=1, label="hard fake quant")
        bottom.plot(x, data.hard.gradient, color="0.7", lw=1, ls="--", label="STE mask")
    extras = [(name, values) for curve in curves for name, values in curve.extra.items()]
    for curve in curves:
        if curve.dots:
            top.plot(x, curve.output, ".", ms=1.5, label=curve.label)
        else:
            top.plot(x, curve.output, lw=1.5, label=curve.label)
        bottom.plot(x, curve.gradient, lw=1.5, label=f"dx, {curve.label}" if len(curves) > 1 else "d/dx")
    right = bottom.twinx() if extras else None
    for index, (name, values) in enumerate(extras):
        right.plot(x, values, lw=1.2, ls=":", color=f"C{3 + index}", label=f"{name} (right axis)")
    if right is not None:
        from matplotlib.ticker import FuncFormatter

        right.set_yscale("symlog", linthresh=1.0)
        right.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        right.set_ylabel(", ".join(name for name, _ in extras) + " (symlog)", color="C3", fontsize=8)
        right.tick_params(axis="y", labelcolor="C3", labelsize=8)
        for axes in (bottom, right):  # the curves keep the lower 70% of the panel, the legend the top
            scale = axes.yaxis.get_transform()
            low, high = scale.transform(axes.get_ylim())
            axes.set_ylim(axes.get_ylim()[0], scale.inverted().transform(low + (high - low) / 0.7))
    top.set_title(title, fontsize=10)
    bottom.set_xlabel("x")
    for axes in (top, bottom):
        axes.grid(alpha=0.3)
        for level in data.levels if len(data.levels) <= 16 else ():
            axes.axvline(level, color="0.85", lw=0.5, zorder=0)
    if reference or len(curves) > 1 or extras:
        top.legend(fontsize=7, loc="upper left")
        handles, labels = bottom.get_legend_handles_labels()
        if right is not None:
            more = right.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        (right or bottom).legend(handles, labels, fontsize=7, loc="upper left")


_TITLES = {"ste": "round + STE (fake_quant)", "dsq": "DSQ: soft curve, dsq backward", "lsq": "LSQ",
           "pact": "PACT", "qnoise": "QuantNoise"}


def plot_quantizer(method: str, bits: int, alphas: Any = (0.2, 0.5, 0.9), range: Any = None, out: Any = None,
                   **options: Any) -> Any:
    """The transfer curve (top) and gradient (bottom) of `method` ("ste", "dsq", "lsq", "pact", "qnoise")
    at `bits` over `range` (the levels' span, module docstring), beside hard fake quant on the same grid;
    DSQ with one curve per alpha. Returns the matplotlib Figure; saves it (PNG, or the suffix's format) to
    `out` when given. `options` go to ``quantizer_curves`` (points, p, seed).
    E.g. the DSQ paper's binary picture: ``plot_quantizer("dsq", 1, range=(-1, 1))``."""
    data = quantizer_curves(method, bits, alphas=alphas, range=range, **options)
    columns = 1 if method == "ste" else 2
    figure, axes = _figure("plot_quantizer", 2, columns, (5.0 * columns, 6.0))
    _draw(axes[0, 0], axes[1, 0], data, [data.hard], "hard fake quant (round + STE)", reference=False)
    if method != "ste":
        _draw(axes[0, 1], axes[1, 1], data, data.curves, _TITLES[method], reference=True)
    axes[0, 0].set_ylabel("output")
    axes[1, 0].set_ylabel("gradient")
    figure.suptitle(f"{method}: {data.title}", fontsize=10)
    return _finish(figure, out)


def plot_quantizers(bits: int = 2, alphas: Any = (0.2, 0.5, 0.9), out: Any = None) -> Any:
    """Every method in one figure, one column each: levels on a signed grid over [−1, 1) (step 2^(1−bits),
    zero on the grid), PACT on [0, 1]; hard fake quant in grey behind each. Returns the Figure."""
    figure, axes = _figure("plot_quantizers", 2, len(METHODS), (3.4 * len(METHODS), 6.0))
    step = 2.0 ** (1 - bits)
    for column, method in enumerate(METHODS):
        grid = (0.0, 1.0) if method == "pact" else (-1.0, 1.0 - step)
        data = quantizer_curves(method, bits, alphas=alphas, range=grid)
        curves = data.curves or [data.hard]
        _draw(axes[0, column], axes[1, column], data, curves, f"{_TITLES[method]}, {bits} bits", reference=method != "ste")
    axes[0, 0].set_ylabel("output")
    axes[1, 0].set_ylabel("gradient")
    return _finish(figure, out)


def plot_dsq(alphas: Any = (0.1, 0.2, 0.5, 0.9), panels: Any = _DSQ_PAPER_PANELS, out: Any = None) -> Any:
    """The DSQ paper's pictures: the soft curve (top) and dsq's backward (bottom) for several alphas, one
    column per (bits, range) in `panels`: by default 1 bit on [0, 1], 1 bit on [−1, 1] (shifted grid) and
    2 bits on [0, 3]. Returns the Figure."""
    panels = list(panels)
    figure, axes = _figure("plot_dsq", 2, len(panels), (4.2 * len(panels), 6.0))
    for column, (bits, grid) in enumerate(panels):
        data = quantizer_curves("dsq", bits, alphas=alphas, range=grid)
        title = f"{bits} bit{'s' * (bits > 1)} on [{_g(data.low)}, {_g(data.high)}]"
        _draw(axes[0, column], axes[1, column], data, data.curves, title + (" (shifted)" if data.shifted else ""),
              reference=True)
    axes[0, 0].set_ylabel("soft(x); grey: round")
    axes[1, 0].set_ylabel("dsq backward = d soft / dx")
    return _finish(figure, out)


# ---------------------------------------------------------------- training runs
def load_history(json_path: Any) -> list[dict[str, Any]]:
    """The per-epoch history of a ``minigrad-q train --json`` file (the summary's "history"; a bare
    list of records is accepted too), with a clear error when the file holds none."""
    return _load(json_path)[1]


def _load(json_path: Any) -> tuple[Any, list[dict[str, Any]]]:
    with open(json_path, encoding="utf-8") as file:
        try:
            summary = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{json_path}: not JSON ({error})") from None
    history = summary.get("history") if isinstance(summary, dict) else summary
    if not isinstance(history, list) or not history or not all(isinstance(r, dict) and "epoch" in r for r in history):
        raise ValueError(f"{json_path}: expected the JSON of `minigrad-q train --json` with a non-empty \"history\" "
                         "list of per-epoch records (epoch, train_loss, ...)")
    return summary, history


def _series(history: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pairs = [(r["epoch"], r[key]) for r in history if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [e for e, _ in pairs], [v for _, v in pairs]


def plot_training(json_path: Any, out: Any = None) -> Any:
    """Loss (left) and accuracy (right) per epoch, train and test, from a ``minigrad-q train --json`` file.
    Returns the Figure; saves it to `out` when given."""
    summary, history = _load(json_path)
    figure, axes = _figure("plot_training", 1, 2, (10.0, 3.8))
    for column, (what, unit) in enumerate((("loss", ""), ("accuracy", " (%)"))):
        for split, style in (("train", "-"), ("test", "--")):
            epochs, values = _series(history, f"{split}_{what}")
            if what == "accuracy":
                values = [100 * v for v in values]
            axes[0, column].plot(epochs, values, style, marker="o", ms=3, label=split)
        axes[0, column].set_xlabel("epoch")
        axes[0, column].set_ylabel(what + unit)
        axes[0, column].grid(alpha=0.3)
        axes[0, column].legend(fontsize=8)
    figure.suptitle(_run_title(summary, json_path), fontsize=10)
    return _finish(figure, out)


def plot_grad_norms(json_path: Any, out: Any = None) -> Any:
    """Each parameter's gradient norm per epoch (the history records' "grad_norms": the mean over the
    epoch's logged steps), on a log scale: one colour per layer (the name before the last dot), weights
    solid, biases dashed, anything else (e.g. quantizer parameters) dotted. Returns the Figure."""
    summary, history = _load(json_path)
    names: list[str] = []
    for record in history:
        for name in record.get("grad_norms") or {}:
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError(f"{json_path}: no history record has \"grad_norms\"; it was written before "
                         "`minigrad-q train --json` logged gradient norms")
    figure, axes = _figure("plot_grad_norms", 1, 1, (8.0, 4.5))
    plot = axes[0, 0]
    layers = list(dict.fromkeys(name.rpartition(".")[0] for name in names))
    colours = [f"C{i % 10}" for i in range(len(layers))]
    positive = True
    for name in names:
        points = [(r["epoch"], r["grad_norms"][name]) for r in history
                  if name in (r.get("grad_norms") or {}) and math.isfinite(r["grad_norms"][name])]
        positive = positive and all(v > 0 for _, v in points)
        kind = name.rpartition(".")[2]
        style = "-" if kind == "weight" else "--" if kind == "bias" else ":"
        plot.plot([e for e, _ in points], [v for _, v in points], style, marker="o", ms=3,
                  color=colours[layers.index(name.rpartition(".")[0])], label=name)
    if positive:
        plot.set_yscale("log")
    plot.set_xlabel("epoch")
    plot.set_ylabel("gradient norm (mean over logged steps)")
    plot.grid(alpha=0.3, which="both")
    plot.legend(fontsize=7, ncol=2 if len(names) > 8 else 1, loc="best")
    plot.set_title(_run_title(summary, json_path), fontsize=10)
    return _finish(figure, out)


def plot_quantizer_history(json_path: Any, out: Any = None) -> Any:
    """What the quantizers learned, epoch by epoch, from a ``minigrad-q train --quant M --json`` file (the
    history records' "quantizers", ``quant.quantizer_state``): each quantizer's float range (left; the
    upper end solid, the lower dashed, means over channels) and DSQ's or PACT's alpha (right). One
    colour per layer. Returns the Figure."""
    summary, history = _load(json_path)
    paths: list[str] = []
    for record in history:
        paths += [path for path in record.get("quantizers") or {} if path not in paths]
    if not paths:
        raise ValueError(f"{json_path}: no history record has \"quantizers\"; it is not a quantized run, or it was "
                         "written before `minigrad-q train --json` recorded them")
    figure, axes = _figure("plot_quantizer_history", 1, 2, (11.0, 4.5))
    ranges, alphas = axes[0, 0], axes[0, 1]
    layers = list(dict.fromkeys(path.rpartition(".")[0] for path in paths))
    for path in paths:
        records = [(r["epoch"], r["quantizers"][path]) for r in history if path in (r.get("quantizers") or {})]
        colour = f"C{layers.index(path.rpartition('.')[0]) % 10}"
        style = "-" if path.endswith("weight_quant") else ":"
        epochs = [epoch for epoch, _ in records]
        ranges.plot(epochs, [state["high"]["mean"] for _, state in records], style, marker="o", ms=3, color=colour,
                    label=path)
        ranges.plot(epochs, [state["low"]["mean"] for _, state in records], style, marker="o", ms=3, color=colour,
                    alpha=0.5)
        if all("alpha" in state for _, state in records):
            alphas.plot(epochs, [state["alpha"]["mean"] for _, state in records], style, marker="o", ms=3,
                        color=colour, label=path)
    ranges.set(xlabel="epoch", ylabel="float range of the grid (mean over channels)",
               title="range: upper and (faint) lower end; weights solid, inputs dotted")
    alphas.set(xlabel="epoch", ylabel="alpha", title="DSQ's / PACT's alpha")
    for plot in (ranges, alphas):
        plot.grid(alpha=0.3)
        if plot.get_legend_handles_labels()[0]:
            plot.legend(fontsize=7)
    figure.suptitle(_run_title(summary, json_path), fontsize=10)
    return _finish(figure, out)


def _run_title(summary: Any, json_path: Any) -> str:
    """"model on dataset, quant method WxAy" from the summary's config, else the file's name."""
    config = summary.get("config") if isinstance(summary, dict) else None
    if not isinstance(config, dict) or "model" not in config:
        return os.path.basename(os.fspath(json_path))
    title = f"{config['model']} on {config.get('dataset', '?')}"
    if config.get("quant"):
        title += f", {config['quant']} W{config.get('wbits', '?')}A{config.get('abits', '?')}"
    return title
