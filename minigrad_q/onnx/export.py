"""ONNX export of float and QAT models (opset 13), built with onnx.helper and checked by onnx.checker.

The model is a chain of layers (an nn.Sequential, nested ones included, as ``minigrad_q.models`` and
``prepare_qat`` make them), exported in eval mode, layer by layer:

    Conv2d -> Conv    Linear -> Gemm (transB)    ReLU -> Relu    MaxPool2d -> MaxPool
    AvgPool2d -> AveragePool    AdaptiveAvgPool2d(1) -> GlobalAveragePool    Flatten -> Flatten
    BatchNorm1d/2d -> BatchNormalization    Sigmoid, Tanh -> Sigmoid, Tanh    Dropout, Identity -> nothing

A quantized layer (``weight_quant`` / ``act_quant``, as prepare_qat attaches them) becomes the QDQ form
that onnxruntime and TensorRT quantize from, with the grids its eval forward uses (``qparams()``):

- its input: QuantizeLinear -> DequantizeLinear with the activation's scale and zero point in a uint8
  (or int8) container; where the grid [qmin, qmax] is narrower than the container (fewer than 8
  bits), a Clip to [(qmin − z)·s, (qmax − z)·s] after it, so the values are the fake-quant model's;
- its weight: the integer codes q = clamp(rint(w·(1/s)) + z, qmin, qmax), fake_quant's own arithmetic,
  stored in an int8 (or uint8) initializer, and DequantizeLinear with per-output-channel scales and
  zero points along axis 0: (q − z)·s is exactly the fake-quant weight at any bit width up to 8.

DequantizeLinear's (q − z)·s is the fake-quant model's product, so the exported model computes what the
QAT model computes up to float rounding in the convolutions' sums. The rounding inside QuantizeLinear
is the runtime's own; ONNX specifies half to even, as fake_quant uses, and x/s where fake_quant (as
torch) multiplies by 1/s: an activation code can differ where x/s lies within an ulp of a tie.
"""

from __future__ import annotations

import math
import os
from typing import Any

from .. import backend, nn, storage
from ..core import Tensor, no_grad
from ..quant import layers_in_order
from ..quant.integer_layers import fake_quant_codes

_numpy = backend.array_module("cpu")
OPSET = 13
CONTAINERS = (("uint8", 0, 255), ("int8", -128, 127))  # element types for codes, and their ranges


class ExportError(ValueError):
    """The model (or a layer of it) cannot be exported exactly."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install -e '.[onnx]'") from None
    return onnx


class Graph:
    """The nodes and initializers of the graph being built, with fresh names for values."""

    def __init__(self, onnx: Any) -> None:
        self.onnx, self.nodes, self.initializers, self.count = onnx, [], [], 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, hint: str, array: Any) -> str:
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(_numpy.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], hint: str, **attributes: Any) -> str:
        output = self.name(hint)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


def export(model: nn.Module, example_input: Tensor, path: str | os.PathLike[str], *, check: bool = True) -> Any:
    """Write `model` (float, or QAT as prepare_qat makes it: QDQ) as an ONNX file at `path` and return the
    ModelProto. `example_input` (N, C, H, W) fixes the channels and image size; the batch is dynamic. The
    file is written atomically (a temporary file, then a rename); a folder that does not exist is refused
    before any work."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ExportError(f"export: cannot write {path}: its folder {folder} does not exist")
    if not isinstance(model, nn.Module):
        raise ExportError(f"export: expected an nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, Tensor) or example_input.ndim != 4:
        shape = example_input.shape if isinstance(example_input, Tensor) else type(example_input).__name__
        raise ExportError(f"export: expected an example input Tensor (N, C, H, W), got {shape}")
    onnx = _onnx()
    graph = Graph(onnx)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            output = _layers(graph, model, "input")
            expected = model(example_input)
    finally:
        model.train(was_training)
    float32 = onnx.TensorProto.FLOAT
    inputs = [onnx.helper.make_tensor_value_info("input", float32, ["N", *example_input.shape[1:]])]
    outputs = [onnx.helper.make_tensor_value_info(output, float32, ["N", *expected.shape[1:]])]
    proto = onnx.helper.make_model(onnx.helper.make_graph(graph.nodes, "minigrad_q", inputs, outputs, graph.initializers),
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="minigrad_q")
    if check:
        onnx.checker.check_model(proto, full_check=True)
    storage.write_atomic(path, proto.SerializeToString())
    return proto


def _layers(graph: Graph, model: nn.Module, current: str) -> str:
    for path, layer in layers_in_order(model):
        current = _layer(graph, path, layer, current)
    return current


def _layer(graph: Graph, path: str, layer: nn.Module, x: str) -> str:
    """The nodes of one layer, from the value `x`; returns the output's name."""
    if isinstance(layer, (nn.Conv2d, nn.Linear)):
        act_quant = getattr(layer, "act_quant", None)
        if act_quant is not None:
            x = _quantized_activation(graph, path, act_quant, x)
        weight = _weight(graph, path, layer)
        inputs = [x, weight] + ([graph.constant(f"{path}.bias", _float32(layer.bias))] if layer.bias is not None else [])
        if isinstance(layer, nn.Linear):
            return graph.node("Gemm", inputs, path, transB=1)
        top, bottom, left, right = _conv_pads(layer)
        return graph.node("Conv", inputs, path, pads=[top, left, bottom, right], strides=list(layer.stride),
                          dilations=list(layer.dilation), group=layer.groups, kernel_shape=list(layer.kernel_size))
    if isinstance(layer, nn.ReLU):
        return graph.node("Relu", [x], path)
    if isinstance(layer, nn.Sigmoid):
        return graph.node("Sigmoid", [x], path)
    if isinstance(layer, nn.Tanh):
        return graph.node("Tanh", [x], path)
    if isinstance(layer, (nn.Dropout, nn.Identity)):
        return x
    if isinstance(layer, nn.Flatten) and layer.start_dim == 1 and layer.end_dim == -1:
        return graph.node("Flatten", [x], path, axis=1)
    if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel, stride, padding = (_pair(getattr(layer, name)) for name in ("kernel_size", "stride", "padding"))
        options = {"kernel_shape": list(kernel), "strides": list(stride), "pads": [padding[0], padding[1]] * 2,
                   "ceil_mode": int(layer.ceil_mode)}
        if isinstance(layer, nn.AvgPool2d):
            return graph.node("AveragePool", [x], path, count_include_pad=1, **options)
        if layer.return_indices:
            raise ExportError(f"export: layer {path} (MaxPool2d) returns indices; the exported graph has one output")
        return graph.node("MaxPool", [x], path, dilations=list(_pair(layer.dilation)), **options)
    if isinstance(layer, nn.AdaptiveAvgPool2d) and _pair(layer.output_size) == (1, 1):
        return graph.node("GlobalAveragePool", [x], path)
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)) and layer.running_mean is not None:
        channels = layer.num_features
        scale = _float32(layer.weight) if layer.weight is not None else _numpy.ones(channels, _numpy.float32)
        shift = _float32(layer.bias) if layer.bias is not None else _numpy.zeros(channels, _numpy.float32)
        stats = [_float32(layer.running_mean), _float32(layer.running_var)]
        names = [graph.constant(f"{path}.{part}", array) for part, array in
                 zip(("weight", "bias", "running_mean", "running_var"), (scale, shift, *stats))]
        return graph.node("BatchNormalization", [x, *names], path, epsilon=float(layer.eps))
    raise ExportError(f"export: layer {path} ({type(layer).__name__}) has no ONNX form here; exportable layers: "
                      "Conv2d, Linear, ReLU, Sigmoid, Tanh, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), Flatten, "
                      "BatchNorm1d/2d with running stats, Dropout, Identity, and their QAT twins")


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _conv_pads(layer: Any) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zeros, as conv2d pads for the layer's padding."""
    if layer.padding == "valid":
        return (0, 0, 0, 0)
    if layer.padding == "same":
        total_h, total_w = (d * (k - 1) for d, k in zip(layer.dilation, layer.kernel_size))
        return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
    pad_h, pad_w = _pair(layer.padding)
    return (pad_h, pad_h, pad_w, pad_w)


def _float32(tensor: Tensor) -> Any:
    return backend.asnumpy(tensor.data).astype(_numpy.float32)


# ---------------------------------------------------------------- quantization as QDQ
def _grid(path: str, role: str, quantizer: Any) -> tuple[Any, Any, int, int, int | None, str]:
    """(scale float32, zero point int, qmin, qmax, axis, container type) of a quantizer's eval grid."""
    where = f"export: the {role} quantizer of {path} ({type(quantizer).__name__})"
    try:
        scale, zero_point, qmin, qmax, axis = quantizer.qparams()
    except (AttributeError, TypeError, ValueError, RuntimeError) as error:
        raise ExportError(f"{where} gives no grid: {error}") from None
    scale = _numpy.asarray(backend.asnumpy(scale.data if isinstance(scale, Tensor) else scale), _numpy.float64).reshape(-1)
    zero = _numpy.asarray(backend.asnumpy(zero_point.data if isinstance(zero_point, Tensor) else zero_point),
                          _numpy.float64).reshape(-1)
    if not (_numpy.isfinite(scale).all() and (scale > 0).all()):
        raise ExportError(f"{where} has a scale that is not positive and finite: {scale}")
    if not (zero == _numpy.rint(zero)).all():
        raise ExportError(f"{where} has a non-integer zero point {zero}: QDQ needs integer zero points")
    container = next((name for name, low, high in CONTAINERS if low <= qmin and qmax <= high), None)
    if container is None:
        raise ExportError(f"{where} has the grid [{qmin}, {qmax}] ({math.log2(qmax - qmin + 1):.0f} bits), which no "
                          "8-bit ONNX type holds: export supports 1 to 8 bits")
    return scale.astype(_numpy.float32), zero.astype(_numpy.int64), int(qmin), int(qmax), axis, container


def _quantized_activation(graph: Graph, path: str, quantizer: Any, x: str) -> str:
    scale, zero, qmin, qmax, _, container = _grid(path, "activation", quantizer)
    if scale.size != 1:
        raise ExportError(f"export: the activation quantizer of {path} is per-channel; QDQ activations are per-tensor")
    scale_name = graph.constant(f"{path}.input_scale", scale.reshape(()))
    zero_name = graph.constant(f"{path}.input_zero_point", zero.reshape(()).astype(container))
    codes = graph.node("QuantizeLinear", [x, scale_name, zero_name], f"{path}.input_q")
    values = graph.node("DequantizeLinear", [codes, scale_name, zero_name], f"{path}.input_dq")
    low, high = next((lo, hi) for name, lo, hi in CONTAINERS if name == container)
    if (qmin, qmax) == (low, high):
        return values
    bounds = [_numpy.float32(code - zero[0]) * scale[0] for code in (qmin, qmax)]  # the fake-quant ends (float32)
    return graph.node("Clip", [values, graph.constant(f"{path}.input_min", _numpy.asarray(bounds[0], _numpy.float32)),
                               graph.constant(f"{path}.input_max", _numpy.asarray(bounds[1], _numpy.float32))],
                      f"{path}.input_clip")


def _weight(graph: Graph, path: str, layer: Any) -> str:
    """The weight: a float initializer, or integer codes and their DequantizeLinear."""
    weight = _float32(layer.weight)
    quantizer = getattr(layer, "weight_quant", None)
    if quantizer is None:
        return graph.constant(f"{path}.weight", weight)
    scale, zero, qmin, qmax, axis, container = _grid(path, "weight", quantizer)
    channels = weight.shape[0]
    if scale.size not in (1, channels) or (scale.size > 1 and axis not in (None, 0)):
        raise ExportError(f"export: the weight quantizer of {path} has {scale.size} scales along axis {axis}; QDQ "
                          f"weights take one scale or one per output channel ({channels}, axis 0)")
    per_channel = _numpy.broadcast_to(scale, (channels,)).astype(_numpy.float32)
    zeros = _numpy.broadcast_to(zero, (channels,))
    layout = (-1,) + (1,) * (weight.ndim - 1)
    codes = fake_quant_codes(_numpy, weight, per_channel.reshape(layout), zeros.reshape(layout).astype(_numpy.float64),
                             qmin, qmax)
    names = [graph.constant(f"{path}.weight_codes", codes.astype(container)),
             graph.constant(f"{path}.weight_scale", per_channel), graph.constant(f"{path}.weight_zero_point",
                                                                                zeros.astype(container))]
    return graph.node("DequantizeLinear", names, f"{path}.weight_dq", axis=0)
