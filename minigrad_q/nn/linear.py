"""Linear (y = x Wᵀ + b) and Identity."""

from __future__ import annotations

from typing import Any

from .. import ops
from ..core import Tensor, empty
from ..core.validate import integer
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Identity", "Linear"]


class Identity(Module):
    """Returns its input unchanged; takes (and ignores) any constructor arguments, like torch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    """y = x Wᵀ + b over the last dim of x (any leading dims).

    weight: (out_features, in_features), bias: (out_features,). Initialised as
    torch does: W ~ kaiming_uniform_(a=√5), i.e. U(-1/√in, 1/√in), and
    b ~ U(-1/√in, 1/√in).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        integer("Linear", "in_features", in_features, 0)
        integer("Linear", "out_features", out_features, 0)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(empty(out_features, in_features, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return ops.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
