"""Making tensors: mq.tensor, zeros, ones, full, arange, rand, randn, ... (torch's names)."""

from __future__ import annotations

from typing import Any

from .. import backend
from .tensor import Tensor


def _place(dtype: Any, device: Any) -> tuple[Any, str, Any]:
    device = backend.parse_device(device)
    dtype = backend.get_default_dtype() if dtype is None else backend.as_dtype(dtype)
    return dtype, device, backend.array_module(device)


def _sizes(size: tuple[Any, ...]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(isinstance(s, int) and s >= 0 for s in size):
        raise ValueError(f"expected non-negative integer sizes, got {size}")
    return tuple(size)


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor with a copy of `data` (list, scalar, numpy/cupy array, Tensor).

    Python floats become the default dtype (float32), Python ints int64,
    arrays keep their dtype unless `dtype` is given.
    """
    if isinstance(data, Tensor):
        data = data.data
    device = backend.parse_device(device if device is not None else (backend.device_of(data) if backend.is_array(data) else None))
    dtype = backend.infer_dtype(data) if dtype is None else backend.as_dtype(dtype)
    array = backend.asarray(data, dtype=dtype, device=device)
    if backend.is_array(data) and array is data:
        array = array.copy()
    return Tensor(array, requires_grad=requires_grad)


def _filled(kind: str, size: tuple[Any, ...], dtype: Any, device: Any, requires_grad: bool, value: Any = None) -> Tensor:
    dtype, device, xp = _place(dtype, device)
    shape = _sizes(size)
    if kind == "full":
        array = xp.full(shape, value, dtype=dtype)
    else:
        array = getattr(xp, kind)(shape, dtype=dtype)
    return Tensor(array, requires_grad=requires_grad)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled("zeros", size, dtype, device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled("ones", size, dtype, device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled("empty", size, dtype, device, requires_grad)


def full(size: Any, fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    if dtype is None and isinstance(fill_value, bool):
        dtype = backend.bool_
    elif dtype is None and isinstance(fill_value, int):
        dtype = backend.int64
    return _filled("full", (size,) if isinstance(size, int) else tuple(size), dtype, device, requires_grad, fill_value)


def _like(other: Tensor, dtype: Any, device: Any) -> tuple[Any, Any]:
    return (other.dtype if dtype is None else dtype), (other.device if device is None else device)


def zeros_like(other: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(other, dtype, device)
    return zeros(other.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(other: Tensor, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(other, dtype, device)
    return ones(other.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(other: Tensor, fill_value: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(other, dtype, device)
    return full(other.shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def arange(
    start: Any, end: Any = None, step: Any = 1, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """[start, end) in steps of `step`; int64 when all bounds are ints, else the default dtype."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None and all(isinstance(v, int) for v in (start, end, step)):
        dtype = backend.int64
    dtype, device, xp = _place(dtype, device)
    return Tensor(xp.arange(start, end, step, dtype=dtype), requires_grad=requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    dtype, device, xp = _place(dtype, device)
    return Tensor(xp.linspace(start, end, steps, dtype=dtype), requires_grad=requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    dtype, device, xp = _place(dtype, device)
    return Tensor(xp.eye(n, m, dtype=dtype), requires_grad=requires_grad)


_FLOAT16_BELOW_ONE = 1 - 2**-11


def _random(op: str, size: tuple[Any, ...], dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    dtype, device, _ = _place(dtype, device)
    if not backend.is_floating(dtype):
        raise TypeError(f"{op}: expected a floating dtype, got {dtype}")
    generator = backend.generator(device)
    draw = generator.random if op == "rand" else generator.standard_normal
    # the generators draw float32/float64 only; float16 is drawn in float32 and rounded
    if dtype != backend.float16:
        return Tensor(draw(_sizes(size), dtype=dtype), requires_grad=requires_grad)
    # the generators draw float32/float64 only: draw float32 and round, keeping rand below 1
    array = draw(_sizes(size), dtype=backend.float32).astype(dtype)
    if op == "rand":
        array.clip(None, _FLOAT16_BELOW_ONE, out=array)
    return Tensor(array, requires_grad=requires_grad)


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1), from the device's generator (seeded by mq.manual_seed)."""
    return _random("rand", size, dtype, device, requires_grad)


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal, from the device's generator (seeded by mq.manual_seed)."""
    return _random("randn", size, dtype, device, requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), dtype: Any = None, device: Any = None) -> Tensor:
    """Integers uniform on [low, high); ``randint(high, size)`` works too, as in torch."""
    if isinstance(high, (tuple, list)):
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    device = backend.parse_device(device)
    dtype = backend.int64 if dtype is None else backend.as_dtype(dtype)
    array = backend.generator(device).integers(low, high, size=_sizes((size,) if isinstance(size, int) else tuple(size)))
    return Tensor(array.astype(dtype, copy=False))


def rand_like(other: Tensor, dtype: Any = None, device: Any = None) -> Tensor:
    dtype, device = _like(other, dtype, device)
    return rand(other.shape, dtype=dtype, device=device)


def randn_like(other: Tensor, dtype: Any = None, device: Any = None) -> Tensor:
    dtype, device = _like(other, dtype, device)
    return randn(other.shape, dtype=dtype, device=device)
