"""Quantization-aware training: QuantConv2d / QuantLinear, ``prepare_qat`` that swaps them into a model,
and DSQ's training extras (``dsq_alpha_penalty``, ``dsq_alpha_schedule``).

A quantized layer is the float layer with two quantizer submodules: ``act_quant`` quantizes the
layer's *input* (None: float input) and ``weight_quant`` its weight (None: float weight); forward is
``conv2d(act_quant(input), weight_quant(weight), bias, ...)``. The bias stays float (integer inference
folds it into the int32 accumulator).

``prepare_qat`` picks the quantizers per method (each paper's choices):

| method | weights (signed, per channel along axis 0 with ``per_channel``) | activations (layer inputs) |
|---|---|---|
| ste | FakeQuantize, symmetric narrow range, min/max of the current weight | FakeQuantize, affine, moving-average min/max |
| dsq | DSQQuantizer, symmetric narrow range, alpha 0.2 and clip range learned | DSQQuantizer, affine, both learned |
| lsq | LSQQuantizer, step from 2·mean(abs(w))/sqrt(Qp) | LSQQuantizer, step from the first batch |
| qnoise | QuantNoiseQuantizer, per-tensor affine (as the paper) | — |
| pact | — | PACTQuantizer, alpha 4 (see below) |

Activations are unsigned ([0, 2^b − 1]: the inputs of the bundled models' later layers are ReLU
outputs), except at the model's first quantized layer, whose input is the raw (normalised, signed) image:
there the quantizer is signed (for "pact", whose clip at 0 needs a ReLU before it, a signed affine
FakeQuantize).

PACT's paper starts α at 10. The bundled models' activations stay below 10, so α would get no gradient
(∂/∂α = 1[x ≥ α]) and only shrink by weight decay; prepare_qat starts it at 4, where it trains (LeNet-5
W4A4 with STE weights on digits, 40 epochs, seeds 0 and 1: 98.6 / 98.1% with α0 = 4, 97.8 / 97.2% with α0 = 10).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from .. import backend, nn, ops
from ..core import Tensor
from ..nn.module import Module
from .modules import (
    ALPHA_MAX,
    ALPHA_MIN,
    DSQQuantizer,
    FakeQuantize,
    LSQQuantizer,
    PACTQuantizer,
    QuantNoiseQuantizer,
    _Quantizer,
)
from .qparams import check_bits

__all__ = ["QuantConv2d", "QuantLinear", "prepare_qat", "quantizer_state", "dsq_alpha_penalty", "dsq_alpha_schedule",
           "METHODS", "WEIGHT_METHODS", "ACT_METHODS", "METHOD_OPTIONS"]

# One name for a whole model's quantization (``minigrad-q train --quant M``): M's (weight, activation) quantizers.
METHODS = {"ste": ("ste", "ste"), "dsq": ("dsq", "dsq"), "lsq": ("lsq", "lsq"), "qnoise": ("qnoise", "ste"),
           "pact": ("ste", "pact")}
WEIGHT_METHODS = ("ste", "dsq", "lsq", "qnoise")
ACT_METHODS = ("ste", "dsq", "lsq", "pact")
# prepare_qat's **method_options: which (part, method) each applies to, and its default
METHOD_OPTIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("weight", "dsq"): {"dsq_alpha": 0.2, "learn_alpha": True, "learn_scale": True},
    ("weight", "qnoise"): {"qnoise_p": 0.5, "qnoise_block_size": 1},
    ("act", "ste"): {"averaging_constant": 0.01},
    ("act", "dsq"): {"dsq_alpha": 0.2, "learn_alpha": True, "learn_scale": True, "averaging_constant": 0.01},
    ("act", "lsq"): {"lsq_offset": False},
    ("act", "pact"): {"pact_alpha": 4.0},
}


def _check_quantizer(op: str, name: str, quantizer: Any) -> None:
    if quantizer is not None and not isinstance(quantizer, Module):
        raise TypeError(f"{op}: {name} must be a quantizer Module or None, got {type(quantizer).__name__}")


def _attach(layer: Module, weight_quant: Module | None, act_quant: Module | None) -> None:
    """Register the quantizers on a quantized layer; a weight quantizer's grid is set from the weight."""
    op = type(layer).__name__
    _check_quantizer(op, "weight_quant", weight_quant)
    _check_quantizer(op, "act_quant", act_quant)
    layer.add_module("weight_quant", weight_quant)
    layer.add_module("act_quant", act_quant)
    if isinstance(weight_quant, _Quantizer):
        weight_quant.calibrate(layer.weight)


def _quantized_operands(layer: Any, input: Tensor) -> tuple[Tensor, Tensor]:
    """(act_quant(input), weight_quant(weight)) of a quantized layer; a missing quantizer passes its operand through."""
    if layer.act_quant is not None:
        input = layer.act_quant(input)
    return input, layer.weight if layer.weight_quant is None else layer.weight_quant(layer.weight)


def _from_float(cls: type, float_type: type, module: Any, weight_quant: Module | None,
                act_quant: Module | None) -> Any:
    """A cls layer that shares module's parameters, buffers and hooks (no new random init)."""
    if not isinstance(module, float_type) or isinstance(module, (QuantConv2d, QuantLinear)):
        raise TypeError(f"{cls.__name__}.from_float: expected an nn.{float_type.__name__}, got {type(module).__name__}")
    source: Any = module  # (isinstance narrowed it to a bare type)
    layer: Any = object.__new__(cls)
    Module.__init__(layer)
    for key, value in vars(source).items():
        if not key.startswith("_"):  # the layer's settings (in_channels, stride, ..., training)
            object.__setattr__(layer, key, value)
    layer._parameters.update(source._parameters)
    layer._buffers.update(source._buffers)
    layer._non_persistent_buffers.update(source._non_persistent_buffers)
    layer._modules.update(source._modules)
    layer._forward_pre_hooks.extend(source._forward_pre_hooks)
    layer._forward_hooks.extend(source._forward_hooks)
    layer._backward_hooks.extend(source._backward_hooks)
    _attach(layer, weight_quant, act_quant)
    return layer.train(source.training)


class QuantConv2d(nn.Conv2d):
    """nn.Conv2d with fake-quantized input and weight:
    out = conv2d(act_quant(input), weight_quant(weight), bias, stride, padding, dilation, groups)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device: Any = None, dtype: Any = None, weight_quant: Module | None = None,
                 act_quant: Module | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         device, dtype)
        _attach(self, weight_quant, act_quant)

    @classmethod
    def from_float(cls, module: nn.Conv2d, weight_quant: Module | None = None,
                   act_quant: Module | None = None) -> QuantConv2d:
        """The quantized twin of a float Conv2d, sharing its weight and bias Parameters."""
        return _from_float(cls, nn.Conv2d, module, weight_quant, act_quant)

    def forward(self, input: Tensor) -> Tensor:
        input, weight = _quantized_operands(self, input)
        return ops.conv2d(input, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class QuantLinear(nn.Linear):
    """nn.Linear with fake-quantized input and weight: y = act_quant(x) · weight_quant(W)ᵀ + b."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None,
                 weight_quant: Module | None = None, act_quant: Module | None = None) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        _attach(self, weight_quant, act_quant)

    @classmethod
    def from_float(cls, module: nn.Linear, weight_quant: Module | None = None,
                   act_quant: Module | None = None) -> QuantLinear:
        """The quantized twin of a float Linear, sharing its weight and bias Parameters."""
        return _from_float(cls, nn.Linear, module, weight_quant, act_quant)

    def forward(self, input: Tensor) -> Tensor:
        input, weight = _quantized_operands(self, input)
        return ops.linear(input, weight, self.bias)


# ---------------------------------------------------------------- prepare_qat
def _check_method(part: str, method: Any, methods: tuple[str, ...]) -> str | None:
    if method is not None and (not isinstance(method, str) or method not in methods):
        raise ValueError(f"prepare_qat: unknown {part} method {method!r}; expected one of: {', '.join(methods)} or None")
    return method


def _options(weight: str | None, act: str | None, given: dict[str, Any]) -> dict[str, Any]:
    """The method options that apply to (weight, act), defaults filled in; others are an error."""
    valid: dict[str, Any] = {}
    for (part, method), options in METHOD_OPTIONS.items():
        if (part == "weight" and method == weight) or (part == "act" and method == act):
            valid.update(options)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        every = sorted({name for options in METHOD_OPTIONS.values() for name in options})
        raise ValueError(
            f"prepare_qat: option(s) {', '.join(unknown)} do not apply to weight={weight!r}, act={act!r}; "
            f"valid here: {', '.join(sorted(valid)) or 'none'} (all options: {', '.join(every)})"
        )
    return {**valid, **given}


def _weight_quantizer(method: str, bits: int, per_channel: bool, channels: int, options: dict[str, Any],
                      device: str, dtype: Any) -> Module:
    axis, num = (0, channels) if per_channel else (None, None)
    place = {"device": device, "dtype": dtype}
    narrow = bits > 1  # symmetric [-(2^(b-1) - 1), 2^(b-1) - 1]: the largest |w| lands on a level, not half a step out
    if method == "ste":
        return FakeQuantize(bits, signed=True, narrow=narrow, axis=axis, symmetric=True, averaging_constant=1.0,
                            num_channels=num, **place)
    if method == "dsq":
        return DSQQuantizer(bits, True, axis, narrow=narrow, alpha=options["dsq_alpha"], learn_alpha=options["learn_alpha"],
                            learn_scale=options["learn_scale"], symmetric=True, averaging_constant=1.0,
                            num_channels=num, **place)
    if method == "lsq":
        return LSQQuantizer(bits, True, axis, num_channels=num, **place)
    return QuantNoiseQuantizer(bits, p=options["qnoise_p"], block_size=options["qnoise_block_size"], signed=True, **place)


def _act_quantizer(method: str, bits: int, first: bool, options: dict[str, Any], device: str, dtype: Any) -> Module:
    place = {"device": device, "dtype": dtype}
    if method == "ste":
        return FakeQuantize(bits, signed=first, symmetric=False, averaging_constant=options["averaging_constant"], **place)
    if method == "dsq":
        return DSQQuantizer(bits, first, alpha=options["dsq_alpha"], learn_alpha=options["learn_alpha"],
                            learn_scale=options["learn_scale"], symmetric=False,
                            averaging_constant=options["averaging_constant"], **place)
    if method == "lsq":
        return LSQQuantizer(bits, first, offset=options["lsq_offset"], **place)
    if first:  # PACT clips at 0: the raw input gets a signed affine quantizer
        return FakeQuantize(bits, signed=True, symmetric=False, **place)
    return PACTQuantizer(bits, alpha=options["pact_alpha"], **place)


def prepare_qat(model: Module, weight: str | None = "dsq", act: str | None = "ste", wbits: int = 4, abits: int = 4,
                per_channel: bool = True, skip_first_last: bool = False, first_last_bits: int | None = None,
                **method_options: Any) -> Module:
    """A deep copy of `model` with every nn.Conv2d / nn.Linear swapped, by module path, for a
    QuantConv2d / QuantLinear with the quantizers of `weight` ("ste", "dsq", "lsq", "qnoise", or None: float
    weights) at `wbits` bits and `act` ("ste", "dsq", "lsq", "pact", or None: float inputs) at `abits` bits.

    per_channel: weight grids per output channel (axis 0); QuantNoise's is per-tensor regardless.
    skip_first_last: the first and the last quantizable layers (in module order) stay float.
    first_last_bits: the first and the last quantizable layers get this many bits, weights and inputs
      alike (None: wbits and abits, like the rest). Common practice keeps them at 8 (``minigrad-q train``'s
      default): the first sees the raw image and the last decides the class, and both are small.
    method_options (the defaults in METHOD_OPTIONS; one that does not apply to the chosen methods is an error):
      dsq_alpha (0.2), learn_alpha (True), learn_scale (False)  — weight="dsq" or act="dsq"
      qnoise_p (0.5), qnoise_block_size (1)                     — weight="qnoise"
      averaging_constant (0.01) of the activation observers     — act="ste" or "dsq"
      lsq_offset (False): LSQ+ learned offsets                  — act="lsq"
      pact_alpha (4.0)                                          — act="pact"
    The model itself is left unchanged; its shared layers stay shared in the copy.
    """
    if not isinstance(model, Module):
        raise TypeError(f"prepare_qat: expected an nn.Module, got {type(model).__name__}")
    weight = _check_method("weight", weight, WEIGHT_METHODS)
    act = _check_method("act", act, ACT_METHODS)
    if weight is not None:
        check_bits("prepare_qat (wbits)", wbits)
    if act is not None:
        check_bits("prepare_qat (abits)", abits)
    for name, flag in (("per_channel", per_channel), ("skip_first_last", skip_first_last)):
        if not isinstance(flag, bool):
            raise TypeError(f"prepare_qat: {name} must be a bool, got {flag!r}")
    if first_last_bits is not None:
        check_bits("prepare_qat (first_last_bits)", first_last_bits)
        if skip_first_last:
            raise ValueError("prepare_qat: skip_first_last keeps the first and last layers float, first_last_bits "
                             "quantizes them: give one")
    options = _options(weight, act, method_options)
    prepared = copy.deepcopy(model)
    paths: dict[int, list[str]] = {}
    layers: dict[int, Module] = {}
    for path, module in prepared.named_modules(remove_duplicate=False):
        if isinstance(module, (nn.Conv2d, nn.Linear)) and not isinstance(module, (QuantConv2d, QuantLinear)):
            paths.setdefault(id(module), []).append(path)
            layers[id(module)] = module
    order = list(paths)
    if skip_first_last:
        order = order[1:-1]
    for position, key in enumerate(order):
        module = layers[key]
        device, dtype = module.weight.device, module.weight.dtype
        first = position == 0 and not skip_first_last
        edge = first_last_bits is not None and position in (0, len(order) - 1)
        layer_wbits, layer_abits = (first_last_bits, first_last_bits) if edge else (wbits, abits)
        weight_quant = (None if weight is None else
                        _weight_quantizer(weight, layer_wbits, per_channel, module.weight.shape[0], options, device, dtype))
        act_quant = None if act is None else _act_quantizer(act, layer_abits, first, options, device, dtype)
        swap: Callable[..., Any] = QuantConv2d.from_float if isinstance(module, nn.Conv2d) else QuantLinear.from_float
        layer = swap(module, weight_quant, act_quant)
        for path in paths[key]:
            if not path:  # the model is itself a single layer
                return layer
            parent_path, _, child = path.rpartition(".")
            prepared.get_submodule(parent_path).add_module(child, layer)
    return prepared


# ---------------------------------------------------------------- what the quantizers learned
def _summary(values: Any) -> dict[str, float]:
    host = backend.asnumpy(values).astype(backend.float64).reshape(-1)
    if host.size == 1:
        return {"mean": float(host[0])}
    return {"mean": float(host.mean()), "min": float(host.min()), "max": float(host.max())}


def quantizer_state(model: Module) -> dict[str, dict[str, Any]]:
    """Each quantizer's grid now, by module path: its bits, its scale (LSQ's step) and the float range
    [(qmin - z)·s, (qmax - z)·s] it covers, and DSQ's or PACT's alpha; one summary per quantizer (the
    mean, and for per-channel grids the min and max over channels), not every element. For watching
    what QAT learns epoch by epoch (``minigrad-q train --json`` records it)."""
    state: dict[str, dict[str, Any]] = {}
    for path, module in model.named_modules():
        if not isinstance(module, _Quantizer):
            continue
        scale, zero_point, qmin, qmax, _ = module.qparams()
        scale_data, zero_data = scale.data.astype(backend.float64), zero_point.data.astype(backend.float64)
        entry = {"kind": type(module).__name__, "bits": module.bits, "scale": _summary(scale_data),
                 "low": _summary((qmin - zero_data) * scale_data), "high": _summary((qmax - zero_data) * scale_data)}
        alpha = getattr(module, "alpha", None)
        if alpha is not None:
            entry["alpha"] = _summary(alpha.data)
        state[path] = entry
    return state


# ---------------------------------------------------------------- DSQ extras
def _dsq_quantizers(model: Module) -> list[DSQQuantizer]:
    if not isinstance(model, Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    return [module for module in model.modules() if isinstance(module, DSQQuantizer)]


def dsq_alpha_penalty(model: Module, lam: float) -> Tensor:
    """lam · Σ ‖α‖₂² over the DSQ quantizers of `model` with a learned alpha: add it to the loss.

    The DSQ paper trains α under the constraint ‖α‖₂ < λ; this is its penalty (Lagrangian) form with the
    squared L2 norm, whose gradient 2·lam·α pulls every α towards 0, i.e. the soft curve towards round.
    The result is a 0-d Tensor that backpropagates into the alphas (0 when there is none)."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0:
        raise ValueError(f"dsq_alpha_penalty: lam must be a non-negative number, got {lam!r}")
    total: Tensor | None = None
    for quantizer in _dsq_quantizers(model):
        if quantizer.learn_alpha:
            term = (quantizer.alpha * quantizer.alpha).sum()
            total = term if total is None else total + term
    if total is None:
        device = next((param.device for param in model.parameters()), "cpu")
        xp = backend.array_module(device)
        return Tensor(xp.zeros((), dtype=backend.get_default_dtype()))
    return total * lam


def dsq_alpha_schedule(model: Module, start: float, end: float, epoch: int, epochs: int) -> float:
    """Anneal the fixed alphas (learn_alpha=False) of `model`'s DSQ quantizers; returns the value set.

    Geometric from `start` at epoch 0 to `end` at epoch epochs − 1 (later epochs keep `end`):
    α = start · (end / start)^(epoch / (epochs − 1)). From a soft start (e.g. 0.5) to a small end (0.01)
    the curve moves towards round at an even pace in k = log(2/α − 1). Call it at the start of each epoch."""
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ALPHA_MIN <= value <= ALPHA_MAX:
            raise ValueError(f"dsq_alpha_schedule: {name} must lie in [{ALPHA_MIN}, {ALPHA_MAX}], got {value!r}")
    for name, value, low in (("epoch", epoch, 0), ("epochs", epochs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"dsq_alpha_schedule: {name} must be an int >= {low}, got {value!r}")
    fixed = [quantizer for quantizer in _dsq_quantizers(model) if not quantizer.learn_alpha]
    if not fixed:
        raise ValueError("dsq_alpha_schedule: the model has no DSQ quantizer with a fixed alpha "
                         "(prepare it with learn_alpha=False; learned alphas follow dsq_alpha_penalty)")
    progress = 1.0 if epochs == 1 else min(epoch / (epochs - 1), 1.0)
    alpha = float(start * math.exp(progress * math.log(end / start)))
    for quantizer in fixed:
        quantizer.alpha.data[...] = alpha
    return alpha
