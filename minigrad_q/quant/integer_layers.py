"""The layers of an integer model (built by ``integer.convert``): integer codes in, integers out.

Notation (DESIGN.md, Quantization): a real activation is x = s_x·(q_x − z_x) with an integer code
q_x in [qmin, qmax]; a weight of output channel k is w = s_w[k]·(q_w − z_w[k]). A layer computes,
per output element,

    acc = Σ (q_x − z_x)·(q_w − z_w[k]) + b_q[k],    b_q[k] = rint(b[k] / (s_x·s_w[k]))   (int32)

so that y = s_x·s_w[k]·acc is the float layer's output up to the bias rounding. Subtracting the zero
points before the sum keeps zero padding right: a padded position is real 0, i.e. code z_x.

Exactness of the sum: (q_x − z_x) and (q_w − z_w) are cast to floats and the existing conv2d /
linear ops (BLAS GEMMs) sum their products. Every product and every partial sum is an integer no
larger in magnitude than the layer's bound A[k] = max|q_x − z_x|·Σ_j |q_w[k, j] − z_w[k]| (computed
at conversion from the actual weights), so the float sum is exact, in any summation order, when
A < 2^24 in float32 and A < 2^53 in float64: each layer uses float32 when its bound allows (W4A4,
W8A8 LeNet-5) and float64 otherwise. The result is then cast to int32 (conversion checks
A + |b_q| < 2^31). A GEMM on integers in floats is BLAS-fast and exact; NumPy's integer matmul is
exact too but runs without BLAS, tens of times slower.

Requantization to the next layer's input grid (s', z', [qmin', qmax']) uses the fixed-point
multiplier M[k] = s_x·s_w[k]/s' ≈ m[k]·2^-n[k] (m an int32 of up to 31 bits):

    q' = clamp(rint_half_even((acc·m[k] + o[k]) / 2^n[k]) + z', lo, qmax')      (int64 arithmetic)

with o[k] = rint(r[k]·m[k]) carrying the bias's rounding residual r[k] = b[k]/(s_x·s_w[k]) − b_q[k]
(|r| <= 1/2), so the bias is applied at the multiplier's precision, not to ±1/2 of an accumulator
step. ReLU is fused as lo = max(qmin', z') (relu(y) quantizes to z' exactly when y <= 0); max-pool
and flatten act on integers directly: they commute with this monotone requantization.
"""

from __future__ import annotations

from typing import Any

from .. import backend, nn, ops
from ..core import Tensor, no_grad
from ..core.validate import pair
from ..nn.conv import conv_repr
from ..nn.module import Module

__all__ = ["FLOAT_LAYERS", "QuantizeInput", "IntegerConv2d", "IntegerLinear", "IntegerMaxPool2d", "Requantize", "Dequantize"]

EXACT_FLOAT32 = 1 << 24  # integers of magnitude below 2^24 (2^53 for float64) and their sums are exact floats
EXACT_FLOAT64 = 1 << 53
INT32_LIMIT = (1 << 31) - 1


def _check_array(layer: str, name: str, array: Any, dtypes: tuple[Any, ...], shape: tuple[int, ...] | None = None) -> Any:
    """`array` (NumPy/CuPy) with one of `dtypes` and, if given, `shape`; else a clear error."""
    if not backend.is_array(array):
        raise TypeError(f"{layer}: {name} must be an array, got {type(array).__name__}")
    if array.dtype not in dtypes:
        raise TypeError(f"{layer}: {name} must be {' or '.join(str(d) for d in dtypes)}, got {array.dtype}")
    if shape is not None and tuple(array.shape) != shape:
        raise ValueError(f"{layer}: {name} must have shape {shape}, got {tuple(array.shape)}")
    return array


def _along_channels(values: Any, ndim: int) -> Any:
    """Per-channel values (C,) laid out to broadcast along dim 1 of an ndim-dim (N, C, ...) array."""
    return values.reshape((values.shape[0],) + (1,) * (ndim - 2))


def _codes_tensor(layer: str, input: Any) -> Any:
    if not isinstance(input, Tensor) or input.dtype.kind not in "iu":
        described = input.dtype if isinstance(input, Tensor) else type(input).__name__
        raise TypeError(f"{layer}: expected a Tensor of integer codes, got {described}")
    return input.data


class QuantizeInput(Module):
    """Float input -> integer codes of the first quantized layer's input grid (the only float step
    before the output): q = clamp(rint(x·(1/s)) + z, qmin, qmax), in x's dtype with s cast to it
    (fake_quant's arithmetic, torch's), returned as int32."""

    def __init__(self, scale: Any, zero_point: int, qmin: int, qmax: int) -> None:
        super().__init__()
        scale = _check_array("QuantizeInput", "scale", scale, (backend.float32, backend.float64), (1,))
        self.register_buffer("scale", Tensor(scale))
        self.zero_point, self.qmin, self.qmax = int(zero_point), int(qmin), int(qmax)

    def forward(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor) or input.dtype.kind != "f":
            described = input.dtype if isinstance(input, Tensor) else type(input).__name__
            raise TypeError(f"integer model: expected a floating-point input Tensor, got {described}")
        x = input.data
        xp = backend.get_array_module(x)
        codes = xp.rint(x * xp.reciprocal(self.scale.data.astype(x.dtype)[0]))
        codes += self.zero_point
        xp.clip(codes, self.qmin, self.qmax, out=codes)
        return Tensor(codes.astype(backend.int32))

    def config(self) -> dict[str, Any]:
        return {"zero_point": self.zero_point, "qmin": self.qmin, "qmax": self.qmax}

    def extra_repr(self) -> str:
        scale = float(self.scale.data[0])
        return f"float -> int32, scale={scale:.6g}, zero_point={self.zero_point}, range=[{self.qmin}, {self.qmax}]"


class _IntegerAffine(Module):
    """Shared by IntegerConv2d and IntegerLinear: int8 (or int16) weight codes with per-channel zero
    points, an int32 bias, and the input grid's zero point; forward returns the int32 accumulator."""

    def __init__(self, weight: Any, weight_zero_point: Any, bias: Any, *, input_zero_point: int, input_range: Any,
                 weight_range: Any, compute_dtype: str) -> None:
        super().__init__()
        name = type(self).__name__
        _check_array(name, "weight", weight, (backend.int8, backend.int16))
        channels = (weight.shape[0],)
        _check_array(name, "weight_zero_point", weight_zero_point, (backend.int32,), channels)
        _check_array(name, "bias", bias, (backend.int32,), channels)
        if compute_dtype not in ("float32", "float64"):
            raise ValueError(f"{name}: compute_dtype must be 'float32' or 'float64', got {compute_dtype!r}")
        self.register_buffer("weight", Tensor(weight))
        self.register_buffer("weight_zero_point", Tensor(weight_zero_point))
        self.register_buffer("bias", Tensor(bias))
        self.input_zero_point = int(input_zero_point)
        self.input_range = (int(input_range[0]), int(input_range[1]))
        self.weight_range = (int(weight_range[0]), int(weight_range[1]))  # the stored codes' range
        self.compute_dtype = compute_dtype

    def _operands(self, codes: Any) -> tuple[Tensor, Tensor]:
        """(q_x − z_x, q_w − z_w) as float arrays holding integers (exact, see the module docstring)."""
        xp = backend.get_array_module(codes)
        dtype = backend.as_dtype(self.compute_dtype)
        x = codes.astype(dtype)
        x -= self.input_zero_point
        w = self.weight.data.astype(dtype)
        w -= self.weight_zero_point.data.reshape((-1,) + (1,) * (w.ndim - 1)).astype(dtype)
        return Tensor(xp.ascontiguousarray(x)), Tensor(w)

    def _accumulator(self, total: Any) -> Tensor:
        """The exact float sum as int32, plus the int32 bias."""
        acc = total.astype(backend.int32)
        acc += _along_channels(self.bias.data, acc.ndim)
        return Tensor(acc)

    def config(self) -> dict[str, Any]:
        return {"input_zero_point": self.input_zero_point, "input_range": list(self.input_range),
                "weight_range": list(self.weight_range), "compute_dtype": self.compute_dtype}

    def _describe(self) -> str:
        bits = (self.weight_range[1] - self.weight_range[0]).bit_length()
        return (f"weight={self.weight.dtype}[{bits}-bit codes {self.weight_range[0]}..{self.weight_range[1]}], "
                f"bias=int32, input_zero_point={self.input_zero_point}, accumulate=int32 (exact {self.compute_dtype} GEMM)")


class IntegerConv2d(_IntegerAffine):
    """acc[n, k] = Σ_{c, i, j} (q_x[n, c, ...] − z_x)·(q_w[k, c, i, j] − z_w[k]) + b_q[k] (conv2d's
    cross-correlation, zero padding = code z_x), as int32."""

    def __init__(self, weight: Any, weight_zero_point: Any, bias: Any, *, stride: Any, padding: Any, dilation: Any,
                 groups: int, **options: Any) -> None:
        if getattr(weight, "ndim", 0) != 4:
            shape = getattr(weight, "shape", None)
            raise ValueError(f"IntegerConv2d: weight must be 4-D (out, in/groups, kh, kw), got shape {shape}")
        super().__init__(weight, weight_zero_point, bias, **options)
        self.stride = pair("IntegerConv2d", "stride", stride)
        self.padding = padding if isinstance(padding, str) else pair("IntegerConv2d", "padding", padding)
        self.dilation = pair("IntegerConv2d", "dilation", dilation)
        self.groups = int(groups)

    def forward(self, input: Tensor) -> Tensor:
        x, w = self._operands(_codes_tensor("IntegerConv2d", input))
        with no_grad():
            total = ops.conv2d(x, w, None, self.stride, self.padding, self.dilation, self.groups)
        return self._accumulator(total.data)

    def config(self) -> dict[str, Any]:
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {**super().config(), "stride": list(self.stride), "padding": padding, "dilation": list(self.dilation),
                "groups": self.groups}

    def extra_repr(self) -> str:
        out_channels, group_channels, kh, kw = self.weight.shape
        text = conv_repr(group_channels * self.groups, out_channels, (kh, kw), self.stride, self.padding,
                         self.dilation, self.groups)
        return f"{text}, {self._describe()}"


class IntegerLinear(_IntegerAffine):
    """acc[n, k] = Σ_j (q_x[n, j] − z_x)·(q_w[k, j] − z_w[k]) + b_q[k], as int32."""

    def __init__(self, weight: Any, weight_zero_point: Any, bias: Any, **options: Any) -> None:
        if getattr(weight, "ndim", 0) != 2:
            raise ValueError(f"IntegerLinear: weight must be 2-D (out, in), got shape {getattr(weight, 'shape', None)}")
        super().__init__(weight, weight_zero_point, bias, **options)

    def forward(self, input: Tensor) -> Tensor:
        x, w = self._operands(_codes_tensor("IntegerLinear", input))
        with no_grad():
            total = ops.linear(x, w)
        return self._accumulator(total.data)

    def extra_repr(self) -> str:
        out_features, in_features = self.weight.shape
        return f"in_features={in_features}, out_features={out_features}, {self._describe()}"


class IntegerMaxPool2d(Module):
    """Max over each window of an integer array (codes or accumulators); padding never wins (it is the
    dtype's minimum). Exact: max commutes with the monotone requantization (module docstring)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        self.kernel_size = pair("IntegerMaxPool2d", "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else pair("IntegerMaxPool2d", "stride", stride)
        self.padding = pair("IntegerMaxPool2d", "padding", padding)

    def forward(self, input: Tensor) -> Tensor:
        x = _codes_tensor("IntegerMaxPool2d", input)
        xp = backend.get_array_module(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if ph or pw:
            padded = xp.full(x.shape[:-2] + (x.shape[-2] + 2 * ph, x.shape[-1] + 2 * pw), xp.iinfo(x.dtype).min, dtype=x.dtype)
            padded[..., ph:ph + x.shape[-2], pw:pw + x.shape[-1]] = x
            x = padded
        oh, ow = (x.shape[-2] - kh) // sh + 1, (x.shape[-1] - kw) // sw + 1
        if oh < 1 or ow < 1:
            raise RuntimeError(f"IntegerMaxPool2d: kernel {self.kernel_size} does not fit the input of shape {input.shape}")
        out = None
        for i in range(kh):
            for j in range(kw):
                view = x[..., i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
                out = view.copy() if out is None else xp.maximum(out, view, out=out)
        return Tensor(out)

    def config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Requantize(Module):
    """int32 accumulators (N, C, ...) -> the next layer's int32 codes, per channel k along dim 1:
    q' = clamp(rint_half_even((acc·m[k] + o[k]) / 2^n[k]) + z', lo, qmax') in int64 arithmetic, with
    lo = max(qmin', z') when a ReLU is fused. Conversion picks m's bits so |acc·m + o| < 2^62."""

    def __init__(self, multiplier: Any, shift: Any, offset: Any, *, zero_point: int, qmin: int, qmax: int, relu: bool) -> None:
        super().__init__()
        channels = (getattr(multiplier, "shape", (0,))[0],)
        for name, value in (("multiplier", multiplier), ("shift", shift), ("offset", offset)):
            _check_array("Requantize", name, value, (backend.int32,), channels)
        self.register_buffer("multiplier", Tensor(multiplier))
        self.register_buffer("shift", Tensor(shift))
        self.register_buffer("offset", Tensor(offset))
        self.zero_point, self.qmin, self.qmax, self.relu = int(zero_point), int(qmin), int(qmax), bool(relu)

    def forward(self, input: Tensor) -> Tensor:
        acc = _codes_tensor("Requantize", input)
        xp = backend.get_array_module(acc)
        ndim = acc.ndim
        shift = _along_channels(self.shift.data.astype(backend.int64), ndim)
        product = acc.astype(backend.int64)
        product *= _along_channels(self.multiplier.data.astype(backend.int64), ndim)
        product += _along_channels(self.offset.data.astype(backend.int64), ndim)
        quotient = xp.right_shift(product, shift)  # floor(p / 2^n)
        remainder = product - xp.left_shift(quotient, shift)  # in [0, 2^n)
        half = xp.left_shift(xp.ones_like(shift), shift - 1)
        quotient += (remainder > half) | ((remainder == half) & (quotient & 1).astype(bool))
        quotient += self.zero_point
        low = max(self.qmin, self.zero_point) if self.relu else self.qmin
        xp.clip(quotient, low, self.qmax, out=quotient)
        return Tensor(quotient.astype(backend.int32))

    def config(self) -> dict[str, Any]:
        return {"zero_point": self.zero_point, "qmin": self.qmin, "qmax": self.qmax, "relu": self.relu}

    def extra_repr(self) -> str:
        multiplier = self.multiplier.data.astype(backend.float64) * 2.0 ** -self.shift.data.astype(backend.float64)
        low, high = float(multiplier.min()), float(multiplier.max())
        span = f"{low:.4g}" if low == high else f"{low:.4g}..{high:.4g}"
        relu = ", relu" if self.relu else ""
        return (f"int32 -> int32, M={span} (int32 multiplier, shift), zero_point={self.zero_point}, "
                f"range=[{self.qmin}, {self.qmax}]{relu}")


class Dequantize(Module):
    """int32 accumulators -> float output, per channel k along dim 1: y = acc·step[k] + residual[k],
    step = s_x·s_w[k] (the output quantization step) and residual = b − b_q·step (the bias's rounding,
    in float); computed in float64, returned as float32."""

    def __init__(self, step: Any, residual: Any) -> None:
        super().__init__()
        channels = (getattr(step, "shape", (0,))[0],)
        self.register_buffer("step", Tensor(_check_array("Dequantize", "step", step, (backend.float64,), channels)))
        self.register_buffer("residual", Tensor(_check_array("Dequantize", "residual", residual, (backend.float64,), channels)))

    def forward(self, input: Tensor) -> Tensor:
        acc = _codes_tensor("Dequantize", input)
        ndim = acc.ndim
        y = acc.astype(backend.float64)
        y *= _along_channels(self.step.data, ndim)
        y += _along_channels(self.residual.data, ndim)
        return Tensor(y.astype(backend.float32))

    def config(self) -> dict[str, Any]:
        return {}

    def extra_repr(self) -> str:
        return "int32 -> float32, per-channel step"


# ---------------------------------------------------------------- float head and tail layers
def fake_quant_codes(xp: Any, x: Any, scale: Any, zero_point: Any, qmin: int, qmax: int) -> Any:
    """clamp(rint(x·(1/s)) + z, qmin, qmax) with fake_quant's arithmetic (x's dtype; scale and zero point
    already laid out to broadcast against x), as float codes."""
    codes = xp.rint(x * xp.reciprocal(scale.astype(x.dtype)))
    xp.clip(codes, (qmin - zero_point).astype(x.dtype), (qmax - zero_point).astype(x.dtype), out=codes)
    codes += zero_point.astype(x.dtype)
    return codes


FLOAT_LAYERS: dict[str, Any] = {cls.__name__: cls for cls in (
    nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, nn.Identity)}


def float_layer(path: str, layer: Module, weight: Any = None) -> Module:
    """A float copy of a head/tail layer (before the first or after the last quantized layer): the
    layer itself for stateless ones, Dropout as Identity (eval), and Conv2d/Linear rebuilt as plain
    float layers with `weight` (the fake-quantized weight of a weight-only quantized layer) if given."""
    if isinstance(layer, (nn.Conv2d, nn.Linear)):
        copy = build_float_layer("Conv2d" if isinstance(layer, nn.Conv2d) else "Linear", float_config(layer), {})
        state = {"weight": layer.weight.detach() if weight is None else Tensor(weight)}
        if layer.bias is not None:
            state["bias"] = layer.bias.detach()
        copy.load_state_dict(state, strict=True)
        return copy.to(layer.weight.device)
    if isinstance(layer, nn.Dropout):
        return nn.Identity()
    kind = type(layer).__name__
    if kind not in FLOAT_LAYERS or type(layer) is not FLOAT_LAYERS[kind]:
        raise ValueError(f"convert: layer {path} ({kind}) is not supported by integer conversion; the float layers before "
                         f"the first and after the last quantized layer may be {', '.join(FLOAT_LAYERS)} or Dropout")
    return build_float_layer(kind, float_config(layer), {})


def float_config(layer: Module) -> dict[str, Any]:
    """The constructor arguments of a float layer, as JSON."""
    if isinstance(layer, nn.Conv2d):
        padding = layer.padding if isinstance(layer.padding, str) else list(layer.padding)
        return {"in_channels": layer.in_channels, "out_channels": layer.out_channels, "kernel_size": list(layer.kernel_size),
                "stride": list(layer.stride), "padding": padding, "dilation": list(layer.dilation), "groups": layer.groups,
                "bias": layer.bias is not None}
    if isinstance(layer, nn.Linear):
        return {"in_features": layer.in_features, "out_features": layer.out_features, "bias": layer.bias is not None}
    if isinstance(layer, nn.MaxPool2d):
        return {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": layer.padding,
                "dilation": layer.dilation, "ceil_mode": layer.ceil_mode}
    if isinstance(layer, nn.AvgPool2d):
        return {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": layer.padding,
                "ceil_mode": layer.ceil_mode}
    if isinstance(layer, nn.Flatten):
        return {"start_dim": layer.start_dim, "end_dim": layer.end_dim}
    return {}


def build_float_layer(kind: str, config: dict[str, Any], arrays: dict[str, Any]) -> Module:
    """A float layer from its type name, configuration and (for Conv2d/Linear) weights."""
    if kind not in FLOAT_LAYERS:
        raise KeyError(f"unknown layer type {kind!r}")
    layer = FLOAT_LAYERS[kind](**config)
    if arrays:
        layer.load_state_dict({name: Tensor(array) for name, array in arrays.items()}, strict=True)
    return layer
