"""Conv2d: 2-D convolution over NCHW input with an OIHW weight (torch.nn.Conv2d)."""

from __future__ import annotations

from typing import Any

from .. import ops
from ..core import Tensor, empty
from ..core.validate import integer, pair
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Conv2d"]


class Conv2d(Module):
    """out[n, o] = bias[o] + Σ_c weight[o, c] ⋆ input[n, g·C/G + c] (cross-correlation, as torch).

    weight: (out_channels, in_channels / groups, kH, kW), bias: (out_channels,).
    ``padding`` is an int, a pair, ``"valid"`` (none) or ``"same"`` (output size
    = input size; stride 1 only). Only ``padding_mode="zeros"`` is supported.
    Initialised as torch does: weight ~ kaiming_uniform_(a=√5), i.e.
    U(-1/√fan_in, 1/√fan_in) with fan_in = in_channels / groups · kH · kW, and
    bias ~ U(-1/√fan_in, 1/√fan_in).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        integer("Conv2d", "in_channels", in_channels, 0)
        integer("Conv2d", "out_channels", out_channels, 0)
        if not isinstance(groups, int) or groups <= 0:
            raise ValueError(f"Conv2d: groups must be a positive integer, got {groups!r}")
        if in_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"Conv2d: out_channels ({out_channels}) must be divisible by groups ({groups})")
        if padding_mode != "zeros":
            raise ValueError(f"Conv2d: padding_mode {padding_mode!r} is not supported; only 'zeros'")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size)
        self.stride = pair("Conv2d", "stride", stride)
        self.dilation = pair("Conv2d", "dilation", dilation)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: invalid padding string {padding!r}, should be one of 'valid', 'same'")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' is not supported for strided convolutions (stride={self.stride})")
            self.padding: Any = padding
        else:
            self.padding = pair("Conv2d", "padding", padding)
        if min(self.kernel_size) <= 0 or min(self.stride) <= 0 or min(self.dilation) <= 0:
            raise ValueError(
                f"Conv2d: kernel_size, stride and dilation must be positive, got kernel_size={self.kernel_size}, "
                f"stride={self.stride}, dilation={self.dilation}"
            )
        if not isinstance(self.padding, str) and min(self.padding) < 0:
            raise ValueError(f"Conv2d: padding must be non-negative, got {self.padding}")
        self.groups = groups
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(empty(shape, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return ops.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = conv_repr(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                         self.dilation, self.groups)
        if self.bias is None:
            text += ", bias=False"
        return text


def conv_repr(in_channels: int, out_channels: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
              groups: int) -> str:
    """torch's Conv2d repr text: the sizes, then padding, dilation and groups where not the defaults."""
    text = f"{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
    if padding != (0, 0):
        text += f", padding={padding}"
    if dilation != (1, 1):
        text += f", dilation={dilation}"
    if groups != 1:
        text += f", groups={groups}"
    return text
