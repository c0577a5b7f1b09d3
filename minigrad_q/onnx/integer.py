"""ONNX export of the integer model that ``quant.convert`` makes: integer operators end to end, agreeing with
it exactly. Layer by layer (its layers are stated in quant/integer_layers.py):

    QuantizeInput     QuantizeLinear (x / s, rounded half to even, + z), then a Clip of the codes to
                      [qmin, qmax] where the grid is narrower than its uint8/int8 container
    IntegerConv2d     ConvInteger(codes, weight codes, z_x, z_w) + the int32 bias  (padding is code z_x)
    IntegerLinear     MatMulInteger(codes, weight codesᵀ, z_x, z_w) + the int32 bias
    IntegerMaxPool2d  MaxPool on the accumulators, through double (exact below 2^53; MaxPool has no int32)
    Requantize        int64 arithmetic: p = acc·m + o;  r = p mod 2^n;  q = (p − r) / 2^n, plus 1 where
                      r > 2^(n−1), or r = 2^(n−1) and q is odd (half to even);  + z', Clip, Cast
    Dequantize        acc in double · step + residual, as float32
    float head/tail   as export.py writes float layers

The weight codes keep one zero point per layer (ConvInteger and MatMulInteger take a per-tensor one in
onnxruntime); prepare_qat's weight grids (symmetric, or QuantNoise's per-tensor) have one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .. import backend, nn, storage
from ..core import Tensor
from ..quant import IntegerModel
from ..quant.integer_layers import Dequantize, IntegerConv2d, IntegerLinear, IntegerMaxPool2d, QuantizeInput, Requantize
from .export import CONTAINERS, OPSET, ExportError, Graph, _layer, _onnx, _pair

_numpy = backend.array_module("cpu")


@dataclass
class Value:
    """The value flowing between layers: its name, what it holds and its rank."""

    name: str
    kind: str  # "float", "codes" (in `container`, zero point `zero_point`) or "acc" (int32 accumulators)
    rank: int
    container: str = ""


def export_integer(model: IntegerModel, example_input: Tensor, path: str | os.PathLike[str], *, check: bool = True) -> Any:
    """Write `model` (``quant.convert``'s IntegerModel) as an ONNX file of integer operators; returns the
    ModelProto. The file is written atomically; a folder that does not exist is refused before any work."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ExportError(f"export: cannot write {path}: its folder {folder} does not exist")
    if not isinstance(model, IntegerModel):
        raise ExportError(f"export: expected the IntegerModel of quant.convert, got {type(model).__name__}")
    if not isinstance(example_input, Tensor) or example_input.ndim != 4:
        raise ExportError("export: expected an example input Tensor (N, C, H, W)")
    onnx = _onnx()
    graph = Graph(onnx)
    value = Value("input", "float", 4)
    for index, (layer, source) in enumerate(zip(model, model.sources)):
        value = _integer_layer(graph, f"{index}:{source or type(layer).__name__}", layer, value)
    if value.kind != "float":
        raise ExportError(f"export: the integer model ends in {value.kind}, not float")
    expected = model(example_input)
    float32 = onnx.TensorProto.FLOAT
    inputs = [onnx.helper.make_tensor_value_info("input", float32, ["N", *example_input.shape[1:]])]
    outputs = [onnx.helper.make_tensor_value_info(value.name, float32, ["N", *expected.shape[1:]])]
    proto = onnx.helper.make_model(onnx.helper.make_graph(graph.nodes, "minigrad_q_integer", inputs, outputs,
                                                          graph.initializers),
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="minigrad_q")
    if check:
        onnx.checker.check_model(proto, full_check=True)
    storage.write_atomic(path, proto.SerializeToString())
    return proto


def _host(tensor: Tensor) -> Any:
    return _numpy.asarray(backend.asnumpy(tensor.data))


def _container(path: str, low: int, high: int) -> str:
    found = next((name for name, lo, hi in CONTAINERS if lo <= low and high <= hi), None)
    if found is None:
        raise ExportError(f"export: {path} has codes from {low} to {high}, beyond any 8-bit ONNX type")
    return found


def _along_channels(array: Any, rank: int) -> Any:
    return array.reshape((-1,) + (1,) * (rank - 2))


def _integer_layer(graph: Graph, path: str, layer: nn.Module, value: Value) -> Value:
    constant, node = graph.constant, graph.node
    if isinstance(layer, QuantizeInput):
        container = _container(path, layer.qmin, layer.qmax)
        scale = constant(f"{path}.scale", _host(layer.scale).astype(_numpy.float32).reshape(()))
        zero = constant(f"{path}.zero_point", _numpy.asarray(layer.zero_point, container))
        codes = node("QuantizeLinear", [value.name, scale, zero], path)
        return Value(_clip_codes(graph, path, codes, container, layer.qmin, layer.qmax), "codes", value.rank, container)
    if isinstance(layer, (IntegerConv2d, IntegerLinear)):
        if value.kind != "codes":
            raise ExportError(f"export: {path} expects integer codes, got {value.kind}")
        weight, zeros = _host(layer.weight), _host(layer.weight_zero_point)
        if weight.dtype != _numpy.int8 or len(set(zeros.tolist())) != 1:
            raise ExportError(f"export: {path} has {weight.dtype} weight codes with {len(set(zeros.tolist()))} zero points; "
                              "ConvInteger / MatMulInteger here take int8 codes with one zero point per layer")
        input_zero = constant(f"{path}.input_zero_point", _numpy.asarray(layer.input_zero_point, value.container))
        weight_zero = constant(f"{path}.weight_zero_point", _numpy.asarray(zeros[0], _numpy.int8))
        if isinstance(layer, IntegerConv2d):
            kernel = weight.shape[2:]
            top, bottom, left, right = _integer_conv_pads(layer, kernel)
            total = node("ConvInteger", [value.name, constant(f"{path}.weight", weight), input_zero, weight_zero], path,
                         pads=[top, left, bottom, right], strides=list(layer.stride), dilations=list(layer.dilation),
                         group=layer.groups, kernel_shape=list(kernel))
        else:
            total = node("MatMulInteger", [value.name, constant(f"{path}.weight_t", weight.T), input_zero, weight_zero],
                         path)
        bias = constant(f"{path}.bias", _along_channels(_host(layer.bias), value.rank))
        return Value(node("Add", [total, bias], f"{path}.acc"), "acc", value.rank)
    if isinstance(layer, IntegerMaxPool2d):
        wide = node("Cast", [value.name], f"{path}.double", to=graph.onnx.TensorProto.DOUBLE)
        (ph, pw) = layer.padding
        pooled = node("MaxPool", [wide], path, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                      pads=[ph, pw, ph, pw])
        to = graph.onnx.TensorProto.INT32 if value.kind == "acc" else _proto_type(graph, value.container)
        return Value(node("Cast", [pooled], f"{path}.int", to=to), value.kind, value.rank, value.container)
    if isinstance(layer, Requantize):
        return _requantize(graph, path, layer, value)
    if isinstance(layer, Dequantize):
        wide = node("Cast", [value.name], f"{path}.double", to=graph.onnx.TensorProto.DOUBLE)
        scaled = node("Mul", [wide, constant(f"{path}.step", _along_channels(_host(layer.step), value.rank))], path)
        shifted = node("Add", [scaled, constant(f"{path}.residual", _along_channels(_host(layer.residual), value.rank))],
                       f"{path}.residual")
        return Value(node("Cast", [shifted], f"{path}.float", to=graph.onnx.TensorProto.FLOAT), "float", value.rank)
    if isinstance(layer, nn.Flatten) and value.kind != "float":
        return Value(node("Flatten", [value.name], path, axis=1), value.kind, 2, value.container)
    if value.kind != "float":
        raise ExportError(f"export: layer {path} ({type(layer).__name__}) cannot run on {value.kind}")
    output = _layer(graph, path, layer, value.name)
    rank = 2 if isinstance(layer, (nn.Flatten, nn.Linear)) else value.rank
    return Value(output, "float", rank)


def _proto_type(graph: Graph, container: str) -> int:
    return graph.onnx.TensorProto.UINT8 if container == "uint8" else graph.onnx.TensorProto.INT8


def _clip_codes(graph: Graph, path: str, codes: str, container: str, low: int, high: int) -> str:
    """Codes clipped to [low, high] where that is narrower than their container."""
    if next((lo, hi) for name, lo, hi in CONTAINERS if name == container) == (low, high):
        return codes
    bounds = [graph.constant(f"{path}.{end}", _numpy.asarray(bound, container)) for end, bound in (("min", low),
                                                                                                   ("max", high))]
    return graph.node("Clip", [codes, *bounds], f"{path}.clip")


def _integer_conv_pads(layer: IntegerConv2d, kernel: tuple[int, int]) -> tuple[int, int, int, int]:
    if layer.padding == "valid":
        return (0, 0, 0, 0)
    if layer.padding == "same":
        total_h, total_w = (d * (k - 1) for d, k in zip(layer.dilation, kernel))
        return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
    pad_h, pad_w = _pair(layer.padding)
    return (pad_h, pad_h, pad_w, pad_w)


def _requantize(graph: Graph, path: str, layer: Requantize, value: Value) -> Value:
    """Requantize's int64 fixed-point rounding, operator by operator (see the module docstring)."""
    constant, node, rank = graph.constant, graph.node, value.rank
    shift = _host(layer.shift).astype(_numpy.int64)
    int64 = graph.onnx.TensorProto.INT64

    def per_channel(name: str, array: Any) -> str:
        return constant(f"{path}.{name}", _along_channels(_numpy.asarray(array, _numpy.int64), rank))

    wide = node("Cast", [value.name], f"{path}.int64", to=int64)
    product = node("Mul", [wide, per_channel("multiplier", _host(layer.multiplier))], f"{path}.product")
    product = node("Add", [product, per_channel("offset", _host(layer.offset))], f"{path}.offset")
    divisor, half = per_channel("divisor", 2 ** shift), per_channel("half", 2 ** (shift - 1))
    remainder = node("Mod", [product, divisor], f"{path}.remainder", fmod=0)  # in [0, 2^n): the divisor's sign
    quotient = node("Div", [node("Sub", [product, remainder], f"{path}.floor"), divisor], f"{path}.quotient")
    odd = node("Equal", [node("Mod", [quotient, constant(f"{path}.two", _numpy.asarray(2, _numpy.int64))],
                              f"{path}.parity", fmod=0), constant(f"{path}.one", _numpy.asarray(1, _numpy.int64))],
               f"{path}.odd")
    up = node("Or", [node("Greater", [remainder, half], f"{path}.above"),
                     node("And", [node("Equal", [remainder, half], f"{path}.tie"), odd], f"{path}.tie_odd")], f"{path}.up")
    rounded = node("Add", [quotient, node("Cast", [up], f"{path}.carry", to=int64)], f"{path}.rounded")
    shifted = node("Add", [rounded, constant(f"{path}.zero_point", _numpy.asarray(layer.zero_point, _numpy.int64))],
                   f"{path}.shifted")
    low = max(layer.qmin, layer.zero_point) if layer.relu else layer.qmin
    clipped = node("Clip", [shifted, constant(f"{path}.low", _numpy.asarray(low, _numpy.int64)),
                            constant(f"{path}.high", _numpy.asarray(layer.qmax, _numpy.int64))], f"{path}.clip")
    container = _container(path, layer.qmin, layer.qmax)
    return Value(node("Cast", [clipped], path, to=_proto_type(graph, container)), "codes", rank, container)
