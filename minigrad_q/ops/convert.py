"""Conversions: cast (dtype), to_device, clone. All three are differentiable.

Like PyTorch's `.to`, `cast` and `to_device` return the input itself when there
is nothing to convert. A cast to a non-floating dtype gives a tensor without
grad (only floating tensors carry gradients).
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..specs import register_spec

__all__ = ["cast", "to_device", "clone"]


class Cast(Function):
    """y = x in another dtype;  dy/dx = 1, the gradient cast back to x's dtype."""

    def forward(self, x: Any, dtype: Any) -> Any:
        self.input_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad_output: Any) -> Any:
        return grad_output.astype(self.input_dtype)


class ToDevice(Function):
    """y = x on another device;  dy/dx = 1, the gradient moved back to x's device."""

    def forward(self, x: Any, device: str) -> Any:
        self.source = backend.device_of(x)
        self.xp = backend.array_module(device)  # the output's array module (the engine makes grads with it)
        return backend.to_device(x, device)

    def backward(self, grad_output: Any) -> Any:
        return backend.to_device(grad_output, self.source)


class Clone(Function):
    """y = a copy of x;  dy/dx = 1."""

    def forward(self, x: Any) -> Any:
        return x.copy()

    def backward(self, grad_output: Any) -> Any:
        return grad_output


register_spec(
    Cast,
    sample=lambda d: (d.tensor(d.shape(min_side=0)),),
    call=lambda x: cast(cast(x, backend.float32), backend.float64),
    eps=1e-2,
    note="float64 -> float32 rounds to ~6e-8 relative, so differences at eps=1e-6 are noise; "
    "the cast is linear, so a large step is exact",
)
register_spec(
    ToDevice,
    sample=lambda d: (d.tensor(d.shape(min_side=0)),),
    call=lambda x: ToDevice.apply(ToDevice.apply(x, "cpu"), x.device),
    note="cpu and back to x's device: a round trip on cuda, a no-copy pass on cpu",
)
register_spec(Clone, sample=lambda d: (d.tensor(d.shape(min_side=0)),), call=lambda x: clone(x))


def cast(input: Tensor, dtype: Any) -> Tensor:
    """`input` in `dtype` (mq.float32, "float64", "int64", ...); `input` itself if already that dtype."""
    dtype = backend.as_dtype(dtype)
    if input.dtype == dtype:
        return input
    return Cast.apply(input, dtype)


def to_device(input: Tensor, device: Any) -> Tensor:
    """`input` on `device` ("cpu", "cuda", "cuda:N"); `input` itself if already there."""
    device = backend.parse_device(device)
    if input.device == device:
        return input
    return ToDevice.apply(input, device)


def clone(input: Tensor) -> Tensor:
    """A copy of `input` with its own memory; gradients flow through unchanged."""
    return Clone.apply(input)
