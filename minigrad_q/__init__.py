"""minigrad_q: a small reverse-mode autograd engine on NumPy/CuPy for transparent quantization-aware training."""

from . import autograd, backend, checkpoint, data, distributed, inspect, models, nn, onnx, ops, optim, quant, storage
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
from .core import (
    Function,
    Tensor,
    arange,
    detect_anomaly,
    empty,
    enable_grad,
    eye,
    full,
    full_like,
    is_grad_enabled,
    linspace,
    no_grad,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    set_grad_enabled,
    tensor,
    zeros,
    zeros_like,
)
from .gradcheck import GradcheckError, gradcheck
from .idle_polling import poll_idle_cpus
from .ops import *

__version__ = "0.1.0"
