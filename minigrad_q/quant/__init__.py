"""Quantization-aware training, mq.quant: quantizer Functions with explicit surrogate gradients
(round+STE fake quant, DSQ, LSQ, PACT, QuantNoise), observers, quantizer modules, QAT layers and
prepare_qat, and conversion to integer-only inference. The math is in docs/quantization.md."""

from .dsq import dsq, dsq_soft
from .fake_quant import fake_quant, round_ste
from .grad_scale import grad_scale, lsq_gradient_scale
from .integer import IntegerModel, IntegerModelError, RequantizationOverflow, convert, layers_in_order, load_integer_model
from .lsq import lsq, lsq_init_step, lsq_surrogate
from .modules import DSQQuantizer, FakeQuantize, LSQQuantizer, PACTQuantizer, QuantNoiseQuantizer
from .noise import quant_noise, quant_noise_mask
from .observers import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from .pact import pact
from .qat import (
    ACT_METHODS,
    METHOD_OPTIONS,
    METHODS,
    WEIGHT_METHODS,
    QuantConv2d,
    QuantLinear,
    dsq_alpha_penalty,
    dsq_alpha_schedule,
    prepare_qat,
    quantizer_state,
)
from .qparams import FLOAT32_EPS, NonFiniteGrid, check_bits, minmax_qparams, qrange, tensor_qparams

__all__ = [
    "FLOAT32_EPS", "NonFiniteGrid", "check_bits", "qrange", "minmax_qparams", "tensor_qparams",
    "fake_quant", "round_ste", "grad_scale", "lsq_gradient_scale", "dsq", "dsq_soft", "lsq", "lsq_init_step",
    "lsq_surrogate", "pact",
    "quant_noise", "quant_noise_mask",
    "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver",
    "FakeQuantize", "DSQQuantizer", "LSQQuantizer", "PACTQuantizer", "QuantNoiseQuantizer",
    "QuantConv2d", "QuantLinear", "prepare_qat", "quantizer_state", "METHODS", "WEIGHT_METHODS", "ACT_METHODS", "METHOD_OPTIONS",
    "dsq_alpha_penalty",
    "dsq_alpha_schedule",
    "convert", "layers_in_order", "IntegerModel", "IntegerModelError", "RequantizationOverflow", "load_integer_model",
]
