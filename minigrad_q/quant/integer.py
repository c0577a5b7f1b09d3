"""Integer inference: ``convert(model)`` turns a QAT model into an integer model (issue 4, §3).

The QAT model is a chain of layers (an ``nn.Sequential``, nested Sequentials included, such as
``mq.models.lenet5`` after ``prepare_qat``). Every quantized layer — a Conv2d / Linear with
``weight_quant`` and ``act_quant`` quantizers (QuantConv2d, QuantLinear) — becomes an integer layer:

- its input grid (s_x, z_x, [qmin, qmax]) and weight grid (s_w per output channel, z_w) are read
  from the quantizers' ``qparams()``: the exact grids their eval forwards use;
- weight codes q_w = clamp(rint(w·(1/s_w)) + z_w, qmin, qmax) (fake_quant's arithmetic, so they are
  exactly the fake-quant model's weights) are stored in int8 — codes of up to 8 bits always fit
  after a shift of the range, q_w − t and z_w − t with t = qmin + 128 for an unsigned range — and
  int16 for 9-16 bits; the bias in int32, b_q = rint(b / (s_x·s_w)) with zero point 0 (saturated to
  int32 where a near-zero s_w would overflow it);
- between two quantized layers, the first one's int32 accumulator is requantized straight to the
  second one's input grid (``Requantize``: fixed-point multiplier, rounding half to even, the next
  zero point, clamp; a ReLU is fused as a clamp at the zero point), with max-pool on the
  accumulators and flatten on the codes: both commute with the monotone requantization;
- the first quantized layer's input is quantized from float (``QuantizeInput``) and the last one's
  accumulator is dequantized to float (``Dequantize``): the only float arithmetic of the chain.
The arithmetic and why the accumulation is exact are stated in ``integer_layers``.

The bias's rounding residual is carried into the requantizer's rounding constant (and into the
float dequantization): with the bare int32 bias, its error of up to half an accumulator step moved
about M/4 of the next layer's codes across a rounding tie (M = s_x·s_w/s'), so a W4A4 LeNet-5 on
digits agreed with its fake-quant model on only 99.2% of the test digits, with 22% of the logit rows
within one output step. With the residual, every QAT method tried (ste, dsq, lsq, lsq+offset,
qnoise, pact; W2A2, W4A4, W8A8) agrees on 100% of the predictions; a code differs only where the
fake-quant model's own float32 value lies within float32 rounding of a tie (0 to 2 of the 360 digits
at W8A8, none at W4A4), and where the codes agree the logits lie within 0.13 of an output step.

Float fallback: layers before the first quantized layer and after the last one (e.g. the first
and last layers that ``prepare_qat(skip_first_last=True)`` left in float, or a quantized layer
without an activation quantizer there) run in float, as in the QAT model (a weight-only quantized
layer becomes a float layer holding its fake-quantized weight). Between quantized layers only
ReLU, MaxPool2d, Flatten, Dropout (identity in eval) and Identity may appear; anything else (a float
Conv2d, AvgPool2d, BatchNorm, ...) is an error naming its path and type.

The integer model is saved as one safetensors file (``IntegerModel.save`` / ``load_integer_model``):
the int8/int32 buffers of ``state_dict()`` under their names, and in the header a JSON object
(``format``, ``layers``: each layer's type and configuration, ``sha256`` of the tensors); written
to a temporary file and ``os.replace``d, never pickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .. import backend, nn, storage
from ..core import Tensor, no_grad
from ..storage import host_array
from .integer_layers import (
    EXACT_FLOAT32,
    EXACT_FLOAT64,
    INT32_LIMIT,
    Dequantize,
    IntegerConv2d,
    IntegerLinear,
    IntegerMaxPool2d,
    QuantizeInput,
    Requantize,
    build_float_layer,
    fake_quant_codes,
    float_config,
    float_layer,
)
from .qparams import check_qrange

__all__ = ["IntegerModel", "IntegerModelError", "RequantizationOverflow", "convert", "load_integer_model", "FORMAT"]

FORMAT = "minigrad_q.integer/1"
_numpy = backend.array_module("cpu")

_BETWEEN = (nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Dropout, nn.Identity)
_LAYERS: dict[str, Any] = {
    cls.__name__: cls for cls in (QuantizeInput, IntegerConv2d, IntegerLinear, IntegerMaxPool2d, Requantize, Dequantize)
}


class IntegerModelError(ValueError):
    """An integer model file that cannot be written or read; the message names the file."""


class RequantizationOverflow(ValueError):
    """convert: a layer's requantization multiplier s_x·s_w / s' is 2^30 or more, beyond the fixed-point
    format; it happens when training let the weights grow without bound."""


class IntegerModel(nn.Sequential):
    """The integer model: a chain of float head layers, QuantizeInput, integer layers with
    requantizers, Dequantize and float tail layers. ``forward(x)``: float input -> float output.
    Each layer remembers the QAT model's path it came from in ``sources``."""

    def __init__(self, layers: list[nn.Module], sources: list[str] | None = None) -> None:
        super().__init__(*layers)
        self.sources = list(sources) if sources is not None else [""] * len(layers)

    def forward(self, input: Any) -> Any:
        with no_grad():
            return super().forward(input)

    def layer_configs(self) -> list[dict[str, Any]]:
        """Each layer's type and constructor configuration, as JSON (what ``save`` writes)."""
        configs = []
        for layer, source in zip(self, self.sources):
            kind = type(layer).__name__
            config = layer.config() if kind in _LAYERS else float_config(layer)
            configs.append({"type": kind, "source": source, "config": config})
        return configs

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to `path` (safetensors, JSON layer list in the header), atomically."""
        path = os.fspath(path)
        tensors = {name: host_array(value.data) for name, value in self.state_dict().items()}
        try:
            storage.write(path, tensors, {"format": FORMAT, "layers": self.layer_configs(), "keys": list(tensors)})
        except storage.StorageError as error:
            raise IntegerModelError(f"integer model {error}") from None


# ---------------------------------------------------------------- convert
def layers_in_order(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """(path, layer) in execution order, looking inside plain Sequentials."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        found = []
        for name, child in module.named_children():
            found += layers_in_order(child, f"{prefix}.{name}" if prefix else name)
        return found
    return [(prefix or type(module).__name__, module)]


def _is_quantized(layer: nn.Module) -> bool:
    return (isinstance(layer, (nn.Conv2d, nn.Linear)) and getattr(layer, "weight_quant", None) is not None
            and getattr(layer, "act_quant", None) is not None)


# ---------------------------------------------------------------- planning one quantized layer
@dataclass
class _Plan:
    """A quantized layer's integer form and the facts its neighbours need (host float64 arrays)."""

    layer: nn.Module  # IntegerConv2d or IntegerLinear
    input_grid: tuple[Any, int, int, int]  # (scale as a (1,) array of its dtype, zero point, qmin, qmax)
    input_scale: float
    step: Any  # s_x·s_w[k]: one accumulator unit in float, per output channel
    residual: Any  # b − b_q·step, the bias's rounding in float units
    bias_remainder: Any  # b / step − b_q, the same in accumulator units (|.| <= 1/2)
    bound: int  # max over channels of the largest |accumulator| (|Σ| + |b_q|)


def _host_values(value: Any) -> Any:
    data = value.data if isinstance(value, Tensor) else value
    return _numpy.asarray(backend.asnumpy(data) if backend.is_array(data) else data)


def qparams(path: str, role: str, quantizer: Any, channels: int | None) -> tuple[Any, Any, int, int, int | None]:
    """(scale, zero point, qmin, qmax, axis) of a quantizer as host arrays, checked for integer use."""
    try:
        scale, zero_point, qmin, qmax, axis = quantizer.qparams()
    except (AttributeError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"convert: the {role} quantizer of {path} ({type(quantizer).__name__}) gives no grid: {error}") from None
    scale, zero_point = _host_values(scale).reshape(-1), _host_values(zero_point).reshape(-1).astype(_numpy.float64)
    qmin, qmax = check_qrange(f"convert: {path} {role}", qmin, qmax)
    where = f"convert: the {role} quantizer of {path} ({type(quantizer).__name__})"
    if channels is None and (scale.size != 1 or zero_point.size != 1):
        raise ValueError(f"{where} is per-channel (axis={axis}); integer inference needs per-tensor activation grids")
    sizes = (1, channels)
    if channels is not None and (axis not in (None, 0) or scale.size not in sizes or zero_point.size not in sizes):
        raise ValueError(f"{where} has axis={axis} with {scale.size} scales; integer weights need per-tensor or "
                         f"per-output-channel (axis=0, {channels}) scales")
    if not (scale > 0).all() or not _numpy.isfinite(scale).all():
        raise ValueError(f"{where} has a scale that is not positive and finite: {scale}")
    if not (zero_point == _numpy.rint(zero_point)).all():
        raise ValueError(f"{where} has a non-integer zero point {zero_point}; integer inference needs integer zero points")
    return scale, zero_point, qmin, qmax, axis


def _weight_codes(path: str, layer: nn.Module) -> tuple[Any, Any, Any, int, int]:
    """(codes, zero points (K,), scales (K,), qmin, qmax): the fake-quant model's weight codes."""
    weight = _host_values(layer.weight)
    if not _numpy.isfinite(weight).all():
        raise ValueError(f"convert: the weight of {path} ({type(layer).__name__}) holds NaN or inf "
                         f"({int((~_numpy.isfinite(weight)).sum())} of {weight.size} values): has training diverged?")
    channels = weight.shape[0]
    scale, zero_point, qmin, qmax, _ = qparams(path, "weight", layer.weight_quant, channels)
    layout = (-1,) + (1,) * (weight.ndim - 1)
    codes = fake_quant_codes(_numpy, weight, scale.reshape(layout), zero_point.reshape(layout), qmin, qmax)
    return codes, _numpy.broadcast_to(zero_point, (channels,)), _numpy.broadcast_to(scale, (channels,)), qmin, qmax


def _fake_quantized_weight(path: str, layer: nn.Module) -> Any:
    """w_hat = (q_w − z_w)·s_w of a weight-only quantized layer (float fallback), in the weight's dtype."""
    codes, zero_point, scale, _, _ = _weight_codes(path, layer)
    layout = (-1,) + (1,) * (codes.ndim - 1)
    return ((codes - zero_point.reshape(layout).astype(codes.dtype)) * scale.reshape(layout).astype(codes.dtype))


def _plan(path: str, layer: nn.Module) -> _Plan:
    scale, zero_point, qmin, qmax, _ = qparams(path, "activation", layer.act_quant, None)
    input_zero, input_scale = int(zero_point[0]), float(scale[0])
    codes, weight_zero, weight_scale, wqmin, wqmax = _weight_codes(path, layer)
    offset = 0  # stored codes are q_w − offset: int8 for up to 256 codes, int16 for up to 2^16
    storage = backend.int8 if wqmax - wqmin <= 255 else backend.int16
    info = _numpy.iinfo(storage)
    if wqmin < info.min or wqmax > info.max:
        offset = wqmin - int(info.min)
    centred = (codes - weight_zero.reshape((-1,) + (1,) * (codes.ndim - 1))).reshape(codes.shape[0], -1)
    gemm_bound = max(abs(qmin - input_zero), abs(qmax - input_zero)) * _numpy.abs(centred).sum(axis=1)
    if gemm_bound.max() >= EXACT_FLOAT64 or gemm_bound.max() > INT32_LIMIT:
        raise ValueError(f"convert: the accumulator of {path} may reach {int(gemm_bound.max())}, beyond int32")
    step = input_scale * weight_scale.astype(_numpy.float64)
    bias = _numpy.zeros(codes.shape[0]) if layer.bias is None else _host_values(layer.bias).astype(_numpy.float64)
    limit = INT32_LIMIT - gemm_bound  # saturate b_q so that the int32 sum never overflows (only a near-zero s_w reaches it)
    bias_codes = _numpy.clip(_numpy.rint(bias / step), -limit, limit)
    arrays = (
        (codes - offset).astype(storage),
        (weight_zero - offset).astype(_numpy.int32),
        bias_codes.astype(_numpy.int32),
    )
    options = {"input_zero_point": input_zero, "input_range": (qmin, qmax), "weight_range": (wqmin - offset, wqmax - offset),
               "compute_dtype": "float32" if gemm_bound.max() < EXACT_FLOAT32 else "float64"}
    if isinstance(layer, nn.Conv2d):
        integer: nn.Module = IntegerConv2d(*arrays, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                                           groups=layer.groups, **options)
    else:
        integer = IntegerLinear(*arrays, **options)
    return _Plan(
        layer=integer.to(layer.weight.device), input_grid=(_numpy.asarray(scale[:1]), input_zero, qmin, qmax),
        input_scale=input_scale, step=step, residual=bias - bias_codes * step, bias_remainder=bias / step - bias_codes,
        bound=int((gemm_bound + _numpy.abs(bias_codes)).max()),
    )


def _requantizer(plan: _Plan, following: _Plan, relu: bool, path: str) -> Requantize:
    """The fixed-point requantizer from `plan`'s accumulator to `following`'s input grid:
    M[k] = step[k] / s' = f·2^E (frexp, f in [1/2, 1)), m = rint(f·2^31), n = 31 − E, so that
    |acc·m| < 2^31·2^31 = 2^62 fits int64; o = rint(bias_remainder·m)."""
    multiplier = plan.step / following.input_scale
    fraction, exponent = _numpy.frexp(multiplier)
    m = _numpy.rint(fraction * 2.0**31)
    shift = 31 - exponent.astype(_numpy.int64)
    carry = m == 2.0**31
    m[carry], shift[carry] = 2.0**30, shift[carry] - 1
    if (shift < 1).any():
        raise RequantizationOverflow(
            f"convert: layer {path}: requantization multiplier {multiplier.max():.4g} is too large (>= 2^30): its "
            f"accumulator step s_x·s_w reaches {plan.step.max():.4g} against the next layer's input step "
            f"{_numpy.max(following.input_scale):.4g}; weights that large mean training diverged")
    tiny = shift > 62  # M < 2^-32: fewer significant bits, at most 2^-62 absolute error
    m[tiny], shift[tiny] = _numpy.rint(multiplier[tiny] * 2.0**62), 62
    offset = _numpy.rint(plan.bias_remainder * m)
    _, zero_point, qmin, qmax = following.input_grid
    device = plan.layer.weight.device
    arrays = [backend.asarray(a.astype(_numpy.int32), device=device) for a in (m, shift, offset)]
    return Requantize(*arrays, zero_point=zero_point, qmin=qmin, qmax=qmax, relu=relu)


def convert(model: nn.Module) -> IntegerModel:
    """The integer model of a QAT model (see the module docstring); `model` is left unchanged.

    Its output agrees with ``model.eval()``'s: every integer code equals the fake-quant model's
    except where float32 rounding in the fake-quant model moves a value across a rounding tie, and
    then the logits differ by float rounding only (below one output step s_x·s_w)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert: expected an nn.Module, got {type(model).__name__}")
    leaves = layers_in_order(model)
    quantized = [i for i, (_, layer) in enumerate(leaves) if _is_quantized(layer)]
    if not quantized:
        raise ValueError(f"convert: {type(model).__name__} has no quantized layer (a Conv2d/Linear with weight_quant and "
                         "act_quant, as prepare_qat makes): nothing to run in integers")
    first, last = quantized[0], quantized[-1]
    layers: list[nn.Module] = []
    sources: list[str] = []

    def add(layer: nn.Module, source: str) -> None:
        layers.append(layer)
        sources.append(source)

    def add_float(path: str, layer: nn.Module) -> None:
        quantized_weight = getattr(layer, "weight_quant", None) is not None
        add(float_layer(path, layer, _fake_quantized_weight(path, layer) if quantized_weight else None), path)

    for path, layer in leaves[:first]:
        add_float(path, layer)
    plans = [_plan(*leaves[i]) for i in quantized]
    grid = plans[0].input_grid
    add(QuantizeInput(backend.asarray(grid[0], device=plans[0].layer.weight.device), *grid[1:]), leaves[first][0])
    for position, (index, plan) in enumerate(zip(quantized, plans)):
        path = leaves[index][0]
        add(plan.layer, path)
        if index == last:
            device = plan.layer.weight.device
            add(Dequantize(backend.asarray(plan.step, device=device), backend.asarray(plan.residual, device=device)), path)
            break
        between = leaves[index + 1:quantized[position + 1]]
        relu, flattens, seen_flatten = False, [], False
        for other_path, other in between:
            if not isinstance(other, _BETWEEN):
                if isinstance(other, (nn.Conv2d, nn.Linear)):
                    missing = "act_quant" if getattr(other, "weight_quant", None) is not None else "quantizers"
                    raise ValueError(
                        f"convert: layer {other_path} ({type(other).__name__}) has no {missing} but sits between the "
                        f"quantized layers {path} and {leaves[quantized[position + 1]][0]}: only the layers before the first "
                        "and after the last quantized layer may run in float (quantize it with prepare_qat)")
                raise ValueError(
                    f"convert: layer {other_path} ({type(other).__name__}) sits between the quantized layers {path} and "
                    f"{leaves[quantized[position + 1]][0]}, where only {', '.join(c.__name__ for c in _BETWEEN)} can run on "
                    "integer codes")
            if isinstance(other, nn.ReLU):
                relu = True
            elif isinstance(other, nn.MaxPool2d):
                if seen_flatten:
                    raise ValueError(f"convert: {other_path} (MaxPool2d) after a Flatten is not supported")
                if other.dilation not in (1, (1, 1)) or other.ceil_mode or other.return_indices:
                    raise ValueError(f"convert: {other_path} (MaxPool2d) has dilation={other.dilation}, ceil_mode="
                                     f"{other.ceil_mode}, return_indices={other.return_indices}; between quantized "
                                     "layers only the defaults run on integers")
                add(IntegerMaxPool2d(other.kernel_size, other.stride, other.padding), other_path)
            elif isinstance(other, nn.Flatten):
                seen_flatten = True
                flattens.append((other_path, nn.Flatten(other.start_dim, other.end_dim)))
        add(_requantizer(plan, plans[position + 1], relu, path), path)
        for other_path, flatten in flattens:
            add(flatten, other_path)
    for path, layer in leaves[last + 1:]:
        add_float(path, layer)
    return IntegerModel(layers, sources)


# ---------------------------------------------------------------- save / load
def _build(kind: str, config: dict[str, Any], arrays: dict[str, Any]) -> nn.Module:
    """One layer from its saved type, configuration and tensors (keyed by buffer name)."""
    if kind in _LAYERS:
        return _LAYERS[kind](**arrays, **config)
    return build_float_layer(kind, config, arrays)


def load_integer_model(path: str | os.PathLike[str], device: str = "cpu") -> IntegerModel:
    """The integer model saved at `path` by ``IntegerModel.save``, on `device`."""
    path = os.fspath(path)
    try:
        metadata, tensors = storage.read(path, "minigrad_q integer model", FORMAT)
    except storage.StorageError as error:
        raise IntegerModelError(f"integer model {error}") from None
    layers, sources = [], []
    try:
        for position, entry in enumerate(metadata["layers"]):
            prefix = f"{position}."
            arrays = {name[len(prefix):]: backend.asarray(array, device=device)
                      for name, array in tensors.items() if name.startswith(prefix)}
            layers.append(_build(entry["type"], entry["config"], arrays))
            sources.append(entry.get("source", ""))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        reason = " ".join(str(error).split())
        raise IntegerModelError(f"integer model {path} has a bad layer list ({type(error).__name__}: {reason})") from None
    model = IntegerModel(layers, sources)
    if sorted(model.state_dict()) != sorted(tensors):
        raise IntegerModelError(f"integer model {path}: its tensors {sorted(tensors)} do not match its layers' "
                                f"{sorted(model.state_dict())}")
    return model

