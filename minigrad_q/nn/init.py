"""mq.nn.init: fill a tensor in place with values drawn as torch.nn.init does.

Every function writes into ``tensor.data`` under no_grad and returns the
tensor. Random values come from the tensor's device generator
(``backend.generator``, seeded by ``mq.manual_seed``), or from ``generator``
when one is given (a NumPy/CuPy ``Generator``).

Fans of a weight of shape (out, in, *kernel): fan_in = in·∏kernel,
fan_out = out·∏kernel. Bounds:
- xavier_uniform_: U(-a, a), a = gain·√(6 / (fan_in + fan_out))
- xavier_normal_:  N(0, std²), std = gain·√(2 / (fan_in + fan_out))
- kaiming_uniform_: U(-b, b), b = gain·√(3 / fan), gain = calculate_gain(nonlinearity, a)
- kaiming_normal_:  N(0, std²), std = gain / √fan

PyTorch's default for Linear and Conv2d weights is kaiming_uniform_(a=√5),
whose bound works out to 1/√fan_in.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from .. import backend
from ..core import Tensor, no_grad

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "zeros_",
    "ones_",
    "eye_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "default_layer_init_",
]

_LINEAR_GAINS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param: Any = None) -> float:
    """The recommended gain for a nonlinearity: 1 for linear/conv/sigmoid, 5/3 for tanh, √2 for relu,
    √(2 / (1 + slope²)) for leaky_relu (slope `param`, default 0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR_GAINS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shaped (out, in, *kernel)."""
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _check(op: str, tensor: Any) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"nn.init.{op}: expected a Tensor, got {type(tensor).__name__}")
    if not backend.is_floating(tensor.dtype):
        raise TypeError(f"nn.init.{op}: expected a floating point tensor, got dtype {tensor.dtype}")


def _draw(tensor: Tensor, kind: str, generator: Any, shape: Any = None) -> Any:
    """Standard uniform [0, 1) or standard normal values (of tensor's shape by default) on tensor's device;
    float16 tensors get float32 draws, which the write rounds."""
    generator = backend.generator(tensor.device) if generator is None else generator
    dtype = tensor.dtype if tensor.dtype in (backend.float32, backend.float64) else backend.float32
    draw = generator.random if kind == "uniform" else generator.standard_normal
    return draw(tensor.shape if shape is None else shape, dtype=dtype)


def _write(tensor: Tensor, values: Any) -> Tensor:
    with no_grad():
        tensor.data[...] = values
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
    """Fill with U(a, b)."""
    _check("uniform_", tensor)
    values = _draw(tensor, "uniform", generator)
    values *= b - a
    values += a
    return _write(tensor, values)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
    """Fill with N(mean, std²)."""
    _check("normal_", tensor)
    values = _draw(tensor, "normal", generator)
    values *= std
    values += mean
    return _write(tensor, values)


def trunc_normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator: Any = None
) -> Tensor:
    """Fill with N(mean, std²) restricted to [a, b]: values outside are drawn again until none is left."""
    _check("trunc_normal_", tensor)
    if not a < b:
        raise ValueError(f"nn.init.trunc_normal_: expected a < b, got a={a}, b={b}")
    values = _draw(tensor, "normal", generator) * std + mean
    outside = (values < a) | (values > b)
    for _ in range(1000):  # each round keeps a fraction ≥ P(a ≤ X ≤ b) of the remaining draws
        count = int(outside.sum())
        if count == 0:
            break
        values[outside] = _draw(tensor, "normal", generator, (count,)) * std + mean
        outside = (values < a) | (values > b)
    else:
        raise ValueError(f"nn.init.trunc_normal_: [{a}, {b}] holds almost no mass of N({mean}, {std}²)")
    return _write(tensor, values)


def constant_(tensor: Tensor, val: float) -> Tensor:
    _check("constant_", tensor)
    return _write(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity matrix (ones on the diagonal)."""
    _check("eye_", tensor)
    if tensor.ndim != 2:
        raise ValueError(f"nn.init.eye_: only tensors with 2 dimensions are supported, got shape {tensor.shape}")
    return _write(tensor, tensor.xp.eye(*tensor.shape, dtype=tensor.dtype))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """Glorot uniform: U(-a, a), a = gain·√(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """Glorot normal: N(0, std²), std = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(op: str, tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float | None:
    _check(op, tensor)
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator: Any = None
) -> Tensor:
    """He uniform: U(-b, b), b = gain·√(3 / fan), gain = calculate_gain(nonlinearity, a)."""
    std = _kaiming_std("kaiming_uniform_", tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator: Any = None
) -> Tensor:
    """He normal: N(0, std²), std = gain / √fan, gain = calculate_gain(nonlinearity, a)."""
    std = _kaiming_std("kaiming_normal_", tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


def default_layer_init_(weight: Tensor, bias: Tensor | None) -> None:
    """PyTorch's default for Linear and Conv layers: weight kaiming_uniform_(a=√5), which is
    U(-1/√fan_in, 1/√fan_in), and bias U(-1/√fan_in, 1/√fan_in) (0 when fan_in is 0)."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound)
