"""The core: Tensor, Function, the backward engine, grad mode, the tensor factories, and the reductions
over the processes of a data-parallel job (``collective``)."""

from . import collective
from .creation import (
    arange,
    empty,
    eye,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from .engine import backward, sum_to_shape, topological_order
from .function import Function, check_finite, check_same_device
from .grad_mode import (
    detect_anomaly,
    enable_grad,
    is_anomaly_enabled,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    state,
)
from .tensor import RemovableHandle, Tensor

__all__ = [
    "collective", "arange", "empty", "eye", "full", "full_like", "linspace", "ones", "ones_like", "rand", "rand_like", "randint",
    "randn", "randn_like", "tensor", "zeros", "zeros_like", "backward", "sum_to_shape", "topological_order", "Function",
    "check_finite", "check_same_device", "detect_anomaly", "enable_grad", "is_anomaly_enabled", "is_grad_enabled",
    "no_grad", "set_grad_enabled", "state", "RemovableHandle", "Tensor",
]
