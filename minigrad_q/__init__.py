"""minigrad_q: a small reverse-mode autograd engine on NumPy/CuPy for transparent quantization-aware training."""

from . import autograd, backend, data, inspect, models, nn, ops, optim, quant
from .backend import (
    DeviceError,
    bool_,
    float16,
    float32,
    float64,
    get_default_dtype,
    int8,
    int16,
    int32,
    int64,
    manual_seed,
    set_default_dtype,
    uint8,
)
from .core import Function, Tensor
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
from .grad_mode import detect_anomaly, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck
from .ops import *

__version__ = "0.1.0"
