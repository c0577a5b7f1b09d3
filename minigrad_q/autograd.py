"""``mq.autograd``: what you need to write and check your own differentiable ops."""

from .core import (
    Function,
    Tensor,
    backward,
    detect_anomaly,
    enable_grad,
    is_anomaly_enabled,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    topological_order,
)
from .gradcheck import GradcheckError, gradcheck

__all__ = [
    "Function", "Tensor", "backward", "topological_order", "gradcheck", "GradcheckError", "detect_anomaly",
    "enable_grad", "is_anomaly_enabled", "is_grad_enabled", "no_grad", "set_grad_enabled",
]
