"""Tensor's operators and torch-named methods, each a one-line call into an op family.

The ops sit above the core, so the core's Tensor cannot import them; ``install`` gives
Tensor these methods once, when ``minigrad_q.ops`` is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend
from ..core import Tensor
from . import convert, elementwise, index, linalg, reduce, selection, shape, softmaxes, unary


def install(tensor_class: type) -> None:
    """Give `tensor_class` (Tensor) every method of TensorMethods."""
    for name, member in vars(TensorMethods).items():
        if name not in _CLASS_BOOKKEEPING:
            setattr(tensor_class, name, member)


class TensorMethods:
    """What ``install`` gives Tensor: `x + y`, `x @ w`, `x.sum(dim=1)`, `x.reshape(2, -1)`, `x.to("cuda")`, ..."""

    data: Any

    # ------------------------------------------------------------ operators
    def __add__(self, other: Any) -> Tensor:
        return elementwise.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return elementwise.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return elementwise.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return elementwise.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return elementwise.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return elementwise.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return elementwise.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return elementwise.div(other, self)

    def __pow__(self, exponent: Any) -> Tensor:
        return elementwise.pow(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return elementwise.pow(base, self)

    def __neg__(self) -> Tensor:
        return elementwise.neg(self)

    def __pos__(self) -> Any:
        return self

    def __abs__(self) -> Tensor:
        return unary.abs(self)

    def __matmul__(self, other: Any) -> Tensor:
        return linalg.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return linalg.matmul(other, self)

    def __getitem__(self, key: Any) -> Tensor:
        return index.getitem(self, key)


    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return elementwise.eq(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return elementwise.ne(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return elementwise.lt(self, other)

    def __le__(self, other: Any) -> Tensor:
        return elementwise.le(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return elementwise.gt(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return elementwise.ge(self, other)

    # ------------------------------------------------------------ methods (torch names)
    def add(self, other: Any) -> Tensor:
        return elementwise.add(self, other)

    def sub(self, other: Any) -> Tensor:
        return elementwise.sub(self, other)

    def mul(self, other: Any) -> Tensor:
        return elementwise.mul(self, other)

    def div(self, other: Any) -> Tensor:
        return elementwise.div(self, other)

    def pow(self, exponent: Any) -> Tensor:
        return elementwise.pow(self, exponent)

    def neg(self) -> Tensor:
        return elementwise.neg(self)

    def exp(self) -> Tensor:
        return unary.exp(self)

    def log(self) -> Tensor:
        return unary.log(self)

    def sqrt(self) -> Tensor:
        return unary.sqrt(self)

    def abs(self) -> Tensor:
        return unary.abs(self)

    def sign(self) -> Tensor:
        return unary.sign(self)

    def sin(self) -> Tensor:
        return unary.sin(self)

    def cos(self) -> Tensor:
        return unary.cos(self)

    def tanh(self) -> Tensor:
        return unary.tanh(self)

    def sigmoid(self) -> Tensor:
        return unary.sigmoid(self)

    def relu(self) -> Tensor:
        return unary.relu(self)

    def maximum(self, other: Any) -> Tensor:
        return selection.maximum(self, other)

    def minimum(self, other: Any) -> Tensor:
        return selection.minimum(self, other)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        return selection.clamp(self, min, max)

    clip = clamp

    def sum(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return reduce.sum(self, dim, keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return reduce.mean(self, dim, keepdim)

    def var(self, dim: Any = None, *, correction: float = 1, keepdim: bool = False) -> Tensor:
        return reduce.var(self, dim, correction=correction, keepdim=keepdim)

    def std(self, dim: Any = None, *, correction: float = 1, keepdim: bool = False) -> Tensor:
        return reduce.std(self, dim, correction=correction, keepdim=keepdim)

    def max(self, dim: Any = None, keepdim: bool = False) -> Any:
        return reduce.max(self, dim, keepdim)

    def min(self, dim: Any = None, keepdim: bool = False) -> Any:
        return reduce.min(self, dim, keepdim)

    def amax(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return reduce.amax(self, dim, keepdim)

    def amin(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return reduce.amin(self, dim, keepdim)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return reduce.argmax(self, dim, keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return reduce.argmin(self, dim, keepdim)

    def all(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return reduce.all(self, dim, keepdim)

    def any(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return reduce.any(self, dim, keepdim)

    def cumsum(self, dim: int, *, dtype: Any = None) -> Tensor:
        return reduce.cumsum(self, dim, dtype=dtype)

    def logsumexp(self, dim: Any, keepdim: bool = False) -> Tensor:
        return softmaxes.logsumexp(self, dim, keepdim)

    def softmax(self, dim: int) -> Tensor:
        return softmaxes.softmax(self, dim)

    def log_softmax(self, dim: int) -> Tensor:
        return softmaxes.log_softmax(self, dim)

    def matmul(self, other: Tensor) -> Tensor:
        return linalg.matmul(self, other)

    def reshape(self, *sizes: Any) -> Tensor:
        return shape.reshape(self, _sizes(sizes))

    def view(self, *sizes: Any) -> Tensor:
        return shape.reshape(self, _sizes(sizes))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return shape.flatten(self, start_dim, end_dim)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return shape.transpose(self, dim0, dim1)

    def permute(self, *dims: Any) -> Tensor:
        return shape.permute(self, _sizes(dims))

    @property
    def T(self) -> Tensor:
        return shape.permute(self, tuple(reversed(range(self.data.ndim))))

    def squeeze(self, dim: Any = None) -> Tensor:
        return shape.squeeze(self, dim)

    def unsqueeze(self, dim: int) -> Tensor:
        return shape.unsqueeze(self, dim)

    def expand(self, *sizes: Any) -> Tensor:
        return shape.expand(self, _sizes(sizes))

    def broadcast_to(self, size: Sequence[int]) -> Tensor:
        return shape.broadcast_to(self, tuple(size))

    def split(self, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
        return index.split(self, split_size_or_sections, dim)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        return index.chunk(self, chunks, dim)

    # ------------------------------------------------------------ conversion
    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``; differentiable."""
        device, dtype = backend.device_and_dtype("to()", args, kwargs)
        out = self
        if device is not None:
            out = convert.to_device(out, device)
        if dtype is not None:
            out = convert.cast(out, dtype)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: int | None = None) -> Tensor:
        return self.to("cuda" if device is None else f"cuda:{device}")

    def float(self) -> Tensor:
        return convert.cast(self, backend.float32)

    def double(self) -> Tensor:
        return convert.cast(self, backend.float64)

    def half(self) -> Tensor:
        return convert.cast(self, backend.float16)

    def long(self) -> Tensor:
        return convert.cast(self, backend.int64)

    def int(self) -> Tensor:
        return convert.cast(self, backend.int32)

    def bool(self) -> Tensor:
        return convert.cast(self, backend.bool_)

    def type(self, dtype: Any) -> Tensor:
        return convert.cast(self, dtype)

    def clone(self) -> Tensor:
        return convert.clone(self)


def _sizes(args: Sequence[Any]) -> tuple[int, ...]:
    """Accept both f(2, 3) and f((2, 3)), as torch does."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


# What Python puts in every class's namespace; __hash__ is None there because the class defines __eq__.
_CLASS_BOOKKEEPING = {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__firstlineno__",
                      "__static_attributes__", "__annotations__", "__hash__"}
