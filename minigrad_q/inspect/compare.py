"""What a weight quantizer does to the weight gradient: ``compare_gradients`` and ``GradientComparison``.

For a float model and one batch, the reference is the float model's weight gradient g_fp = ∂L/∂W of every
Conv2d / Linear layer. For each method ("ste", "dsq", "lsq", "qnoise") and bit width b the model is
prepared with ``prepare_qat(model, weight=method, act=None, wbits=b, **options)``: only the weights are
quantized, and each weight quantizer is calibrated on its weight when it is made (min/max scales; LSQ's
step 2·mean|w|/sqrt(Qp), which clips the largest weights). The quantized gradient g_q is then measured in
one or both of two scopes:

- ``"quantizer"`` (default): the weight quantizer alone. g_q = J_q(W)ᵀ g_fp, the float gradient sent
  through the quantizer's surrogate backward at the float weights. This is the seed observation
  (examples/ste_vs_dsq.py) for a whole model: the STE's backward is the clip mask, all ones under min/max
  scales, so g_q = g_fp bit for bit at every bit width; DSQ's is the slope of its soft curve, which
  depends on where each weight sits in its bin, hence on b; LSQ's is its in-range mask; QuantNoise's is
  the identity.
- ``"model"``: end to end, as QAT trains. g_q = ∂L/∂W of the prepared model on the same batch: the forward
  uses the quantized weights of every layer, so even the STE's g_q differs from g_fp (and between bit
  widths) through the changed activations and logits, though its own backward changes nothing.

Per (scope, layer, method, bits) a row holds
    cosine   = ⟨g_q, g_fp⟩ / (‖g_q‖·‖g_fp‖)   (1 when both are zero, nan when only one is)
    rel_norm = ‖g_q‖ / ‖g_fp‖
    changed  = fraction of weights with |g_q − g_fp| > rtol·(|g_fp| + mean|g_fp|)
and per (scope, layer, method) ``bit_independent``: g_q agrees, within the same tolerance, at every bit
width asked for (None with a single bit width). Sums are taken in float64.

Both models run in training mode, the mode QAT trains in (BatchNorm uses the batch's statistics,
Dropout and QuantNoise draw masks): the global generator is reset with ``mq.manual_seed(seed)`` before
every forward, so every run draws the same masks. (So calling this reseeds minigrad_q's generator.)
LSQ's weight step is initialised by prepare_qat's calibration and marked initialised, so a training
forward does not re-initialise it; the weight observers of the other methods re-observe the same weight
and keep their grid. The given model is left unchanged (its gradients included).
"""

from __future__ import annotations

import copy
import csv
import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import backend, nn, ops
from ..core import Tensor, enable_grad
from ..nn.module import Module
from ..quant.qat import METHOD_OPTIONS, WEIGHT_METHODS, QuantConv2d, QuantLinear, prepare_qat
from ..quant.qparams import check_bits
from .plots import INSTALL_HINT

__all__ = ["compare_gradients", "GradientComparison", "SCOPES", "FIELDS"]

SCOPES = ("quantizer", "model")
FIELDS = ("scope", "layer", "kind", "method", "bits", "cosine", "rel_norm", "changed", "bit_independent")
_PREPARE_OPTIONS = ("per_channel", "skip_first_last")  # prepare_qat keywords that apply to every method
_OP = "compare_gradients"


# ---------------------------------------------------------------- input checks
def _check_batch(batch: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        kind = f"a {type(batch).__name__} of length {len(batch)}" if isinstance(batch, (tuple, list)) else type(batch).__name__
        raise TypeError(f"{_OP}: batch must be a pair (images, labels) of Tensors, got {kind}")
    for name, value in zip(("images", "labels"), batch):
        if not isinstance(value, Tensor):
            raise TypeError(f"{_OP}: batch {name} must be a Tensor, got {type(value).__name__}")
    images, labels = batch
    if images.ndim == 0 or labels.ndim == 0 or images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(f"{_OP}: batch images {images.shape} and labels {labels.shape} must have the same "
                         "non-zero first (batch) dimension")
    return images, labels


def _check_names(what: str, given: Any, valid: tuple[str, ...]) -> tuple[str, ...]:
    names = (given,) if isinstance(given, str) else given
    if not isinstance(names, Iterable):
        raise TypeError(f"{_OP}: {what} must be a sequence of names from {', '.join(valid)}, got {given!r}")
    names = tuple(names)
    unknown = [name for name in names if not isinstance(name, str) or name not in valid]
    if unknown or not names or len(set(names)) != len(names):
        problem = f"unknown {what} {unknown!r}" if unknown else f"{what} must be non-empty and distinct, got {names!r}"
        raise ValueError(f"{_OP}: {problem}; expected names from: {', '.join(valid)}")
    return names


def _check_bit_widths(bits: Any, methods: tuple[str, ...]) -> tuple[int, ...]:
    widths = (bits,) if isinstance(bits, int) and not isinstance(bits, bool) else bits
    if not isinstance(widths, Iterable):
        raise TypeError(f"{_OP}: bits must be a sequence of ints, got {bits!r}")
    widths = tuple(check_bits(_OP, width) for width in widths)
    if not widths or len(set(widths)) != len(widths):
        raise ValueError(f"{_OP}: bits must be non-empty and distinct, got {widths!r}")
    if "lsq" in methods and 1 in widths:
        raise ValueError(f"{_OP}: LSQ's signed 1-bit range [-1, 0] has no positive level; drop 1 from bits or 'lsq'")
    return widths


def _split_options(methods: tuple[str, ...], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """prepare_qat's keyword arguments per method: the method's own options plus per_channel / skip_first_last."""
    per_method: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for method in methods:
        own = set(METHOD_OPTIONS.get(("weight", method), {})) | set(_PREPARE_OPTIONS)
        per_method[method] = {name: value for name, value in options.items() if name in own}
        used |= set(per_method[method])
    unused = sorted(set(options) - used)
    if unused:
        valid = sorted({name for method in methods for name in METHOD_OPTIONS.get(("weight", method), {})}
                       | set(_PREPARE_OPTIONS))
        raise ValueError(f"{_OP}: option(s) {', '.join(unused)} apply to none of the methods {', '.join(methods)}; "
                         f"valid here: {', '.join(valid)}")
    return per_method


# ---------------------------------------------------------------- gradients
def _loss(model: Module, images: Tensor, labels: Tensor, loss_fn: Callable[..., Any], seed: int) -> Tensor:
    backend.manual_seed(seed)
    loss = loss_fn(model(images), labels)
    if not isinstance(loss, Tensor) or loss.data.size != 1:
        shape = loss.shape if isinstance(loss, Tensor) else type(loss).__name__
        raise TypeError(f"{_OP}: loss_fn must return a one-element Tensor, got {shape}")
    return loss


def _float_gradients(model: Module, images: Tensor, labels: Tensor, loss_fn: Callable[..., Any],
                     seed: int) -> dict[str, Any]:
    """∂L/∂W of every Conv2d / Linear of a training-mode copy of the float model, by module path."""
    twin = copy.deepcopy(model).train()
    twin.zero_grad()
    with enable_grad():
        _loss(twin, images, labels, loss_fn, seed).backward()
    grads = {}
    for path, module in twin.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            weight = module.weight
            grads[path] = weight.xp.zeros_like(weight.data) if weight.grad is None else weight.grad.data
    return grads


def _quantized_layers(model: Module) -> list[tuple[str, Module]]:
    return [(path, module) for path, module in model.named_modules()
            if isinstance(module, (QuantConv2d, QuantLinear)) and module.weight_quant is not None]


def _quantizer_gradients(prepared: Module, reference: dict[str, Any], seed: int) -> dict[str, Any]:
    """J_q(W)ᵀ g_fp per quantized layer: the float gradient through the weight quantizer's backward."""
    grads = {}
    for path, layer in _quantized_layers(prepared):
        weight = layer.weight
        weight.grad = None
        backend.manual_seed(seed)
        with enable_grad():
            layer.weight_quant(weight).backward(Tensor(reference[path]))
        grads[path] = weight.grad.data
    return grads


def _model_gradients(prepared: Module, images: Tensor, labels: Tensor, loss_fn: Callable[..., Any],
                     seed: int) -> dict[str, Any]:
    """∂L/∂W of the training-mode prepared model per quantized layer (forward with quantized weights)."""
    prepared.zero_grad()
    with enable_grad():
        _loss(prepared, images, labels, loss_fn, seed).backward()
    return {path: layer.weight.xp.zeros_like(layer.weight.data) if layer.weight.grad is None else layer.weight.grad.data
            for path, layer in _quantized_layers(prepared)}


# ---------------------------------------------------------------- statistics
def _float64(array: Any) -> Any:
    return array.astype(backend.float64).reshape(-1)


def _differs(grad: Any, reference: Any, rtol: float) -> Any:
    """Boolean mask: |grad − reference| > rtol·(|reference| + mean|reference|), in float64."""
    xp = backend.get_array_module(reference)
    ref = xp.abs(reference)
    return xp.abs(grad - reference) > rtol * (ref + ref.mean())


def _compare(grad: Any, reference: Any, rtol: float) -> tuple[float, float, float]:
    """(cosine, rel_norm, changed) of grad against reference."""
    xp = backend.get_array_module(reference)
    if xp.array_equal(grad, reference):
        return 1.0, 1.0, 0.0
    quant, ref = _float64(grad), _float64(reference)
    norm_q, norm_fp = float(xp.sqrt((quant * quant).sum())), float(xp.sqrt((ref * ref).sum()))
    if norm_q == 0 and norm_fp == 0:
        cosine, rel_norm = 1.0, 1.0
    elif norm_q == 0 or norm_fp == 0:
        cosine, rel_norm = math.nan, (math.inf if norm_fp == 0 else 0.0)
    else:
        cosine = min(1.0, max(-1.0, float((quant * ref).sum()) / (norm_q * norm_fp)))
        rel_norm = norm_q / norm_fp
    return cosine, rel_norm, float(_differs(quant, ref, rtol).mean())


def _same_across(grads: list[Any], rtol: float) -> bool | None:
    if len(grads) < 2:
        return None
    first = _float64(grads[0])
    return not any(bool(_differs(_float64(grad), first, rtol).any()) for grad in grads[1:])


# ---------------------------------------------------------------- entry point
def compare_gradients(model: Module, batch: Any, methods: Any = ("ste", "dsq", "lsq", "qnoise"),
                      bits: Any = (8, 4, 2), loss_fn: Callable[..., Any] | None = None, *,
                      scope: Any = "quantizer", rtol: float = 1e-4, seed: int = 0,
                      **options: Any) -> GradientComparison:
    """Compare each weight quantizer's weight gradient with the float model's on `batch` (see the module doc).

    model: a float nn.Module (no QuantConv2d / QuantLinear). batch: (images, labels) Tensors.
    methods: weight methods from "ste", "dsq", "lsq", "qnoise". bits: bit widths (1 to 16; LSQ needs >= 2).
    loss_fn(output, labels) -> one-element Tensor; default cross_entropy. scope: "quantizer", "model", or
    both as a sequence. rtol: tolerance of `changed` and `bit_independent`. seed: reset before every forward.
    options: prepare_qat's per_channel / skip_first_last and the weight methods' options (dsq_alpha,
    learn_alpha, learn_scale, qnoise_p, qnoise_block_size), each passed to the methods it applies to.
    """
    if not isinstance(model, Module):
        raise TypeError(f"{_OP}: expected an nn.Module, got {type(model).__name__}")
    if any(isinstance(module, (QuantConv2d, QuantLinear)) for module in model.modules()):
        raise ValueError(f"{_OP}: expected a float model, but it already holds QuantConv2d / QuantLinear layers")
    if not any(isinstance(module, (nn.Conv2d, nn.Linear)) for module in model.modules()):
        raise ValueError(f"{_OP}: the model has no nn.Conv2d or nn.Linear layer to quantize")
    images, labels = _check_batch(batch)
    methods = _check_names("methods", methods, WEIGHT_METHODS)
    widths = _check_bit_widths(bits, methods)
    scopes = _check_names("scope", scope, SCOPES)
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not rtol >= 0:
        raise ValueError(f"{_OP}: rtol must be a non-negative number, got {rtol!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{_OP}: seed must be an int, got {seed!r}")
    per_method = _split_options(methods, options)
    loss_fn = ops.cross_entropy if loss_fn is None else loss_fn
    if not callable(loss_fn):
        raise TypeError(f"{_OP}: loss_fn must be callable, got {type(loss_fn).__name__}")

    reference = _float_gradients(model, images, labels, loss_fn, seed)
    grads: dict[tuple[str, str, int], dict[str, Any]] = {}  # (scope, method, bits) -> {layer path: g_q}
    kinds: dict[str, str] = {}
    for method in methods:
        for width in widths:
            prepared = prepare_qat(model, weight=method, act=None, wbits=width, **per_method[method]).train()
            for path, layer in _quantized_layers(prepared):
                kinds[path] = "Conv2d" if isinstance(layer, QuantConv2d) else "Linear"
            if "quantizer" in scopes:
                grads["quantizer", method, width] = _quantizer_gradients(prepared, reference, seed)
            if "model" in scopes:
                grads["model", method, width] = _model_gradients(prepared, images, labels, loss_fn, seed)
    layers = tuple(path for path in reference if path in kinds)
    rows = []
    for scope_name in scopes:
        for path in layers:
            for method in methods:
                per_bits = [grads[scope_name, method, width][path] for width in widths]
                independent = _same_across(per_bits, rtol)
                for width, grad in zip(widths, per_bits):
                    cosine, rel_norm, changed = _compare(grad, reference[path], rtol)
                    rows.append({"scope": scope_name, "layer": path, "kind": kinds[path], "method": method,
                                 "bits": width, "cosine": cosine, "rel_norm": rel_norm, "changed": changed,
                                 "bit_independent": independent})
    return GradientComparison(rows, methods, widths, scopes, layers)


# ---------------------------------------------------------------- the result
def _cosine_text(value: float) -> str:
    if value == 1.0:
        return "1"
    text = f"{value:.4f}"
    return f"{value:.6f}" if text in ("1.0000", "-1.0000") else text


def _percent(value: float) -> str:
    return "<0.1%" if 0 < value < 0.001 else f"{100 * value:.1f}%"


def _verdict(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "no")


@dataclass
class GradientComparison:
    """The result of ``compare_gradients``: ``rows`` (dicts with the keys in FIELDS, ordered by scope, layer,
    method, bits as given) and the ``methods``, ``bits``, ``scopes`` and ``layers`` (module paths) compared."""

    rows: list[dict[str, Any]]
    methods: tuple[str, ...]
    bits: tuple[int, ...]
    scopes: tuple[str, ...]
    layers: tuple[str, ...]

    def select(self, **criteria: Any) -> list[dict[str, Any]]:
        """The rows whose fields equal the given values, e.g. select(method="ste", bits=2)."""
        unknown = sorted(set(criteria) - set(FIELDS))
        if unknown:
            raise ValueError(f"GradientComparison.select: unknown field(s) {', '.join(unknown)}; fields: {', '.join(FIELDS)}")
        return [row for row in self.rows if all(row[key] == value for key, value in criteria.items())]

    def table(self) -> str:
        """A Markdown table, one line per (scope, layer, method), the bit widths side by side in each cell:
        cosine, ‖g_q‖/‖g_fp‖, % of weights whose gradient changed, and bit-width independence.
        The scope column is shown only when both scopes were measured."""
        widths = " / ".join(str(width) for width in self.bits)
        head = ["layer", "method", f"cosine ({widths} bits)", "‖g_q‖/‖g_fp‖", "changed", "bit-width independent"]
        if len(self.scopes) > 1:
            head.insert(0, "scope")
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for scope in self.scopes:
            for layer in self.layers:
                for method in self.methods:
                    rows = self.select(scope=scope, layer=layer, method=method)
                    cells = [f"{layer} ({rows[0]['kind']})", method,
                             " / ".join(_cosine_text(row["cosine"]) for row in rows),
                             " / ".join(f"{row['rel_norm']:.3f}" for row in rows),
                             " / ".join(_percent(row["changed"]) for row in rows),
                             _verdict(rows[0]["bit_independent"])]
                    if len(self.scopes) > 1:
                        cells.insert(0, scope)
                    lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """CSV text, one line per row with the columns in FIELDS (floats in full precision; bit_independent
        is true / false, empty with a single bit width)."""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            independent = row["bit_independent"]
            writer.writerow({**row, "cosine": repr(row["cosine"]), "rel_norm": repr(row["rel_norm"]),
                             "changed": repr(row["changed"]),
                             "bit_independent": "" if independent is None else str(independent).lower()})
        return out.getvalue()

    def plot(self, path: str | Path) -> Path:
        """Write a PNG to `path`: one panel per layer, cosine against bits, one line per method
        (solid: scope "quantizer", dashed: scope "model"). Methods often agree exactly (the STE, LSQ and
        QuantNoise all at 1.0 in the quantizer scope), so each is drawn a little wider and with a larger
        hollow marker than the one drawn over it, and shifted slightly along the bits axis: every line
        stays visible where they coincide. Needs matplotlib; returns the path."""
        try:
            from matplotlib.figure import Figure
        except ImportError as error:
            raise ImportError(f"GradientComparison.plot needs matplotlib: {INSTALL_HINT}") from error
        columns = min(3, len(self.layers))
        lines_of = -(-len(self.layers) // columns)
        figure = Figure(figsize=(4.2 * columns, 3.2 * lines_of), layout="constrained")
        axes = figure.subplots(lines_of, columns, squeeze=False)
        styles = {"quantizer": "-", "model": "--"}
        markers = "osD^vp*h"
        count = len(self.methods)
        for index, layer in enumerate(self.layers):
            ax = axes[index // columns][index % columns]
            for method_index, method in enumerate(self.methods):
                wider = count - 1 - method_index  # the first method is drawn widest, underneath the others
                shift = 0.08 * (method_index - (count - 1) / 2)
                for scope in self.scopes:
                    rows = self.select(scope=scope, layer=layer, method=method)
                    label = method if len(self.scopes) == 1 else f"{method} ({scope})"
                    ax.plot([row["bits"] + shift for row in rows], [row["cosine"] for row in rows], styles[scope],
                            color=f"C{method_index}", lw=1.2 + 1.0 * wider, marker=markers[method_index % len(markers)],
                            ms=4 + 2.5 * wider, mfc="none", mew=1.5, label=label, zorder=2 + method_index)
            ax.set_title(f"{layer} ({self.select(layer=layer)[0]['kind']})")
            ax.set_xticks(sorted(self.bits))
            ax.set_xlabel("bits")
            ax.set_ylabel("cosine to float gradient")
            ax.grid(alpha=0.3)
        for index in range(len(self.layers), lines_of * columns):
            axes[index // columns][index % columns].set_visible(False)
        axes[0][0].legend(fontsize="small")
        path = Path(path)
        figure.savefig(path, format="png", dpi=100)
        return path

    def __str__(self) -> str:
        return self.table()
