"""Quantizer modules: the quantizer Functions with their state (observers, learnable alpha / step /
scale) kept in Modules, so QAT layers can hold them and ``state_dict`` saves them.

Every quantizer has ``bits``, ``qmin``, ``qmax``, ``axis`` (None: per-tensor, else the channel axis),
and switches like torch.ao's FakeQuantize: ``enable_fake_quant(enabled=True)`` /
``disable_fake_quant()`` (off: forward returns its input) and ``enable_observer(enabled=True)`` /
``disable_observer()`` (off: the grid stays as it is). The switches are plain attributes, like
``training``; they are not part of ``state_dict``.

The grid is set in training mode only: observers record, and LSQ's step / DSQ's learned scale are
initialised, on training batches (unlike torch.ao, whose observers also record in eval, so evaluating
never changes a model here). ``calibrate(x)`` sets the grid from x explicitly in any mode
(``prepare_qat`` calibrates weight quantizers on the weights). ``qparams()`` returns
``(scale, zero_point, qmin, qmax, axis)``: the grid an eval-mode forward uses, i.e. eval forward ==
``fake_quant(x, scale, zero_point, qmin, qmax, axis)`` (integer.py relies on it).

Learned values are kept in their domain by projection, as torch's learnable fake-quantize clamps its
scale: before each use, DSQ's alpha is clipped into [ALPHA_MIN, ALPHA_MAX], LSQ's step, DSQ's learned
scale and PACT's alpha onto [FLOAT32_EPS, ∞). (An optimizer step may leave them outside; the next
forward projects them back, in place and without gradient.)
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..core import Tensor, collective, no_grad
from ..core.validate import flag, normalize_dim
from ..nn.module import Module
from ..nn.parameter import Parameter
from .dsq import dsq
from .fake_quant import fake_quant, round_ste
from .grad_scale import grad_scale, lsq_gradient_scale
from .lsq import lsq, lsq_init_step
from .noise import quant_noise
from .observers import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from .pact import pact
from .qparams import FLOAT32_EPS, check_bits, qrange

__all__ = ["FakeQuantize", "DSQQuantizer", "LSQQuantizer", "PACTQuantizer", "QuantNoiseQuantizer", "ALPHA_MIN", "ALPHA_MAX"]

ALPHA_MIN, ALPHA_MAX = 1e-4, 1 - 1e-4  # DSQ's alpha is projected into this part of (0, 1)


def _cast(value: Tensor, like: Tensor) -> Tensor:
    """value in like's dtype (differentiable; the value itself when it already is)."""
    return value if value.dtype == like.dtype else value.to(like.dtype)


def _project(param: Tensor, low: float, high: float | None = None) -> None:
    """Clip a learned value into its domain, in place, outside the graph."""
    with no_grad():
        if high is None:
            param.xp.maximum(param.data, low, out=param.data)
        else:
            param.xp.clip(param.data, low, high, out=param.data)


def _check_axis(op: str, axis: Any) -> int | None:
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int)):
        raise TypeError(f"{op}: axis must be None (per-tensor) or an int (the channel axis), got {axis!r}")
    return axis


def _check_channels(op: str, num_channels: Any, axis: int | None) -> int | None:
    if num_channels is None:
        return None
    if isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1:
        raise ValueError(f"{op}: num_channels must be a positive int, got {num_channels!r}")
    if axis is None:
        raise ValueError(f"{op}: num_channels={num_channels} needs a channel axis (axis=None is per-tensor)")
    return num_channels


def _minmax_observer(quant_min: int, quant_max: int, symmetric: bool, averaging_constant: float | None,
                     axis: int | None, num_channels: int | None, device: Any, dtype: Any) -> Module:
    """The observer a quantizer uses: running min/max when averaging_constant is None, else moving average."""
    if axis is None:
        if averaging_constant is None:
            return MinMaxObserver(quant_min, quant_max, symmetric, device=device, dtype=dtype)
        return MovingAverageMinMaxObserver(averaging_constant, quant_min, quant_max, symmetric, device=device, dtype=dtype)
    if averaging_constant is None:
        return PerChannelMinMaxObserver(axis, quant_min, quant_max, symmetric, num_channels=num_channels,
                                        device=device, dtype=dtype)
    return MovingAveragePerChannelMinMaxObserver(averaging_constant, axis, quant_min, quant_max, symmetric,
                                                 num_channels=num_channels, device=device, dtype=dtype)


class _Quantizer(Module):
    """Switches, the train-mode-only observation and the shared repr of every quantizer module."""

    def __init__(self, bits: int, signed: bool, narrow: bool = False, axis: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.bits = check_bits(name, bits)
        self.signed = flag(name, "signed", signed)
        self.narrow = flag(name, "narrow", narrow)
        self.qmin, self.qmax = qrange(bits, signed, narrow)
        self.axis = _check_axis(name, axis)
        self.fake_quant_enabled = True
        self.observer_enabled = True

    def enable_fake_quant(self, enabled: bool = True) -> _Quantizer:
        self.fake_quant_enabled = flag(type(self).__name__, "enabled", enabled)
        return self

    def disable_fake_quant(self) -> _Quantizer:
        return self.enable_fake_quant(False)

    def enable_observer(self, enabled: bool = True) -> _Quantizer:
        self.observer_enabled = flag(type(self).__name__, "enabled", enabled)
        return self

    def disable_observer(self) -> _Quantizer:
        return self.enable_observer(False)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__}: expected a Tensor, got {type(x).__name__}")
        if self.training and self.observer_enabled:
            with no_grad():
                self._observe(x)
        return self._quantize(x) if self.fake_quant_enabled else x

    @staticmethod
    def _batch_elements(x: Tensor, axis: int | None) -> int:
        """Elements of x per scale (per channel slice with `axis`) that the whole batch quantizes: a
        Parameter is the same on every rank of a data-parallel job; any other x is this rank's shard of
        the batch, so its count is summed over the ranks (core.collective), as one process would count."""
        per_scale = x.data.size // (x.shape[axis] or 1) if axis is not None else x.data.size
        return per_scale if isinstance(x, Parameter) else collective.all_count(per_scale)

    def calibrate(self, x: Tensor) -> _Quantizer:
        """Set the grid from x now, whatever the mode: observe x / (re)initialise the learned step or scale."""
        with no_grad():
            self._observe(x, force=True)
        return self

    def _observe(self, x: Tensor, force: bool = False) -> None:
        raise NotImplementedError

    def _quantize(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def qparams(self) -> tuple[Tensor, Tensor, int, int, int | None]:
        """(scale, zero_point, qmin, qmax, axis) of the grid an eval-mode forward uses."""
        raise NotImplementedError

    def _options(self) -> str:
        return ""

    def extra_repr(self) -> str:
        text = f"bits={self.bits}, qmin={self.qmin}, qmax={self.qmax}"
        if self.axis is not None:
            text += f", axis={self.axis}"
        options = self._options()
        text += f", {options}" if options else ""
        if not self.fake_quant_enabled:
            text += ", fake_quant=off"
        if not self.observer_enabled:
            text += ", observer=off"
        return text


class _Initialised(_Quantizer):
    """A quantizer whose learned grid is initialised from the first training batch; the buffer
    ``initialized`` records it (so a loaded state_dict is not re-initialised)."""

    def _init_flag(self, device: Any) -> None:
        xp = backend.array_module(device)
        self.register_buffer("initialized", Tensor(xp.zeros((), dtype=backend.uint8)))
        self._initialized_seen = False

    def is_initialized(self) -> bool:
        if not self._initialized_seen:  # read from the buffer (a host read) only until it is set
            self._initialized_seen = bool(self.initialized.data)
        return self._initialized_seen

    def _mark_initialized(self) -> None:
        self.initialized.data[...] = 1
        self._initialized_seen = True

    def _set_learned(self, param: Tensor, value: Any, name: str) -> None:
        """Write an initial value of shape (1,) / (C,) into a learned Parameter (keeping the object)."""
        value = value.reshape(-1).astype(param.dtype)
        if param.data.size and value.shape != param.shape:
            raise ValueError(f"{type(self).__name__}: {name} has shape {param.shape}, the input gives {value.shape} "
                             f"(axis={self.axis})")
        param.data = backend.to_device(value, param.device) if param.data.size else value

    def _learned(self, param: Tensor, name: str) -> Tensor:
        if param.data.size == 0:
            raise RuntimeError(f"{type(self).__name__}: the per-channel {name} is not initialised yet; run a training "
                               "batch or calibrate(x) first (or pass num_channels=)")
        return param


def _min_max(x: Tensor, axis: int | None, op: str) -> tuple[Any, Any]:
    """min and max of x's array, over everything (axis None) or per slice along axis (in a data-parallel
    job, over every process's x)."""
    if axis is None:
        low, high = x.data.min(), x.data.max()
    else:
        axis = normalize_dim(op, axis, x.ndim)
        others = tuple(d for d in range(x.ndim) if d != axis)
        low, high = x.data.min(axis=others), x.data.max(axis=others)
    return collective.all_min(low), collective.all_max(high)


def _param_shape(axis: int | None, num_channels: int | None) -> tuple[int]:
    return (1,) if axis is None else (num_channels or 0,)


class FakeQuantize(_Quantizer):
    """Fake quantization with a min/max observer and round + STE (``fake_quant``), as torch.ao.FakeQuantize.

    The grid is b-bit signed or unsigned (``narrow`` drops the lowest code), per-tensor or per-channel
    along ``axis``; ``symmetric`` defaults to ``signed`` (torch's qint8 weights symmetric, quint8
    activations affine). ``averaging_constant`` c: moving-average min/max (torch's default 0.01;
    1.0 = the current batch's min/max, as for weights); None: running min/max (MinMaxObserver).
    """

    def __init__(self, bits: int = 8, signed: bool = True, narrow: bool = False, axis: int | None = None,
                 symmetric: bool | None = None, averaging_constant: float | None = 0.01, num_channels: int | None = None,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(bits, signed, narrow, axis)
        name, qmin, qmax = type(self).__name__, self.qmin, self.qmax
        self.symmetric = signed if symmetric is None else flag(name, "symmetric", symmetric)
        self.averaging_constant = averaging_constant
        self.observer = _minmax_observer(qmin, qmax, self.symmetric, averaging_constant, axis,
                                         _check_channels(name, num_channels, axis), device, dtype)

    def _observe(self, x: Tensor, force: bool = False) -> None:
        self.observer(x)

    def qparams(self) -> tuple[Tensor, Tensor, int, int, int | None]:
        scale, zero_point = self.observer.calculate_qparams()
        return scale, zero_point, self.qmin, self.qmax, self.axis

    def _quantize(self, x: Tensor) -> Tensor:
        scale, zero_point = self.observer.calculate_qparams()
        return fake_quant(x, _cast(scale, x), _cast(zero_point, x), self.qmin, self.qmax, self.axis)

    def _options(self) -> str:
        return f"symmetric={self.symmetric}, averaging_constant={self.averaging_constant}"


class DSQQuantizer(_Initialised):
    """Differentiable soft quantization (Gong et al. 2019, ``dsq``): forward == fake_quant (but at ties), backward the
    derivative of the soft curve with shape alpha.

    ``alpha`` (default 0.2, the paper's initial value) is a Parameter with ``learn_alpha`` (train it with
    ``qat.dsq_alpha_penalty``), else a buffer (set it with ``qat.dsq_alpha_schedule``). The scale and
    zero point come from a min/max observer (as FakeQuantize), or with ``learn_scale`` the scale is a
    Parameter (the learned clip range of the paper) initialised from the observer on the first training
    batch, its gradient scaled as LSQ's step (``grad_scale``); the zero point then stays the observer's
    of that batch.
    """

    def __init__(self, bits: int, signed: bool, axis: int | None = None, alpha: float = 0.2, learn_alpha: bool = True,
                 learn_scale: bool = False, narrow: bool = False, symmetric: bool | None = None,
                 averaging_constant: float | None = 0.01, num_channels: int | None = None,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(bits, signed, narrow, axis)
        name, qmin, qmax = type(self).__name__, self.qmin, self.qmax
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise ValueError(f"{name}: alpha must lie in (0, 1), got {alpha!r}")
        self.learn_alpha = flag(name, "learn_alpha", learn_alpha)
        self.learn_scale = flag(name, "learn_scale", learn_scale)
        self.symmetric = signed if symmetric is None else flag(name, "symmetric", symmetric)
        self.averaging_constant = averaging_constant
        num_channels = _check_channels(name, num_channels, axis)
        device = backend.parse_device(device)
        dtype = backend.get_default_dtype() if dtype is None else backend.as_dtype(dtype)
        xp = backend.array_module(device)
        alpha_value = Tensor(xp.full((1,), alpha, dtype=dtype))
        if learn_alpha:
            self.alpha = Parameter(alpha_value)
        else:
            self.register_buffer("alpha", alpha_value)
        self.observer = _minmax_observer(qmin, qmax, self.symmetric, averaging_constant, axis, num_channels, device, dtype)
        if learn_scale:
            shape = _param_shape(axis, num_channels)
            self.scale = Parameter(Tensor(xp.ones(shape, dtype=dtype)))
            self.register_buffer("zero_point", Tensor(xp.zeros(shape, dtype=xp.int64)))
            self._init_flag(device)

    def _observe(self, x: Tensor, force: bool = False) -> None:
        if not self.learn_scale:
            self.observer(x)
        elif x.data.size and (force or not self.is_initialized()):
            self.observer.reset_min_max_vals()
            self.observer(x)
            scale, zero_point = self.observer.calculate_qparams()
            self._set_learned(self.scale, scale.data, "scale")
            self.zero_point.data = zero_point.data.reshape(self.scale.shape).copy()
            self._mark_initialized()

    def _grid(self) -> tuple[Tensor, Tensor]:
        if not self.learn_scale:
            return self.observer.calculate_qparams()
        scale = self._learned(self.scale, "scale")
        _project(scale, FLOAT32_EPS)
        return scale, self.zero_point

    def qparams(self) -> tuple[Tensor, Tensor, int, int, int | None]:
        scale, zero_point = self._grid()
        return scale.detach(), zero_point.detach(), self.qmin, self.qmax, self.axis

    def _quantize(self, x: Tensor) -> Tensor:
        scale, zero_point = self._grid()
        if self.learn_scale:  # its gradient sums over every element it quantizes: LSQ's scaling keeps steps sane
            elements = self._batch_elements(x, self.axis if scale.data.size > 1 else None)
            scale = grad_scale(scale, lsq_gradient_scale(elements, self.qmax))
        _project(self.alpha, ALPHA_MIN, ALPHA_MAX)
        return dsq(x, _cast(scale, x), _cast(zero_point, x), self.qmin, self.qmax, _cast(self.alpha, x), self.axis)

    def _options(self) -> str:
        return (f"alpha={float(self.alpha.data.reshape(-1)[0]):.4g}, learn_alpha={self.learn_alpha}, "
                f"learn_scale={self.learn_scale}, symmetric={self.symmetric}")


class LSQQuantizer(_Initialised):
    """Learned step size quantization (Esser et al. 2019, ``lsq``): x̂ = s·clamp(round(x/s), qmin, qmax).

    ``step`` s is a Parameter (per-tensor, or per channel along ``axis``), initialised on the first
    training batch to 2·mean|x|/sqrt(qmax) (``lsq_init_step``). ``offset`` (LSQ+): a learned offset β,
    x̂ = s·clamp(round((x − β)/s), qmin, qmax) + β, initialised with s from the batch's min/max
    (s = (max − min)/(qmax − qmin), β = min − s·qmin). β is used rounded to a whole number of steps,
    β' = s·round_ste(β/s) (gradient straight through to β), so the grid has the integer zero point
    z = −round(β/s) and qparams() describes it exactly. The range is [-2^(b-1), 2^(b-1) - 1] (signed) or
    [0, 2^b - 1]; signed 1-bit (qmax = 0) has no positive level and is an error.
    """

    def __init__(self, bits: int, signed: bool, axis: int | None = None, offset: bool = False,
                 grad_scale: float | None = None, num_channels: int | None = None,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(bits, signed, axis=axis)
        name, qmax = type(self).__name__, self.qmax
        if qmax <= 0:
            raise ValueError(f"{name}: LSQ needs a positive level: signed {bits}-bit gives qmax = {qmax}")
        self.use_offset = flag(name, "offset", offset)
        self.grad_scale = grad_scale
        num_channels = _check_channels(name, num_channels, axis)
        device = backend.parse_device(device)
        dtype = backend.get_default_dtype() if dtype is None else backend.as_dtype(dtype)
        xp = backend.array_module(device)
        shape = _param_shape(axis, num_channels)
        self.step = Parameter(Tensor(xp.ones(shape, dtype=dtype)))
        if offset:
            self.offset = Parameter(Tensor(xp.zeros(shape, dtype=dtype)))
        else:
            self.register_parameter("offset", None)
        self._init_flag(device)

    def _observe(self, x: Tensor, force: bool = False) -> None:
        if x.data.size == 0 or (not force and self.is_initialized()):
            return
        if self.offset is None:
            shard = not isinstance(x, Parameter)  # a weight is the same on every rank of a data-parallel job
            self._set_learned(self.step, lsq_init_step(x, self.qmax, self.axis, shard).data, "step")
        else:
            low, high = _min_max(x, self.axis, type(self).__name__)
            xp = x.xp
            step = xp.maximum((high - low) / (self.qmax - self.qmin), FLOAT32_EPS)
            self._set_learned(self.step, xp.asarray(step), "step")
            self._set_learned(self.offset, xp.asarray(low - step * self.qmin), "offset")
        self._mark_initialized()

    def _offset(self, step: Tensor) -> Tensor | None:
        """β rounded to a whole number of steps (straight-through to β, no gradient to the step)."""
        if self.offset is None:
            return None
        plain_step = step.detach()
        return round_ste(self._learned(self.offset, "offset") / plain_step) * plain_step

    def qparams(self) -> tuple[Tensor, Tensor, int, int, int | None]:
        step = self._learned(self.step, "step")
        xp = step.xp
        scale = xp.maximum(step.data, FLOAT32_EPS)
        if self.offset is None:
            zero_point = xp.zeros(scale.shape, dtype=xp.int64)
        else:
            zero_point = (-xp.rint(self.offset.data / scale)).astype(xp.int64)
        return Tensor(scale), Tensor(zero_point), self.qmin, self.qmax, self.axis

    def _quantize(self, x: Tensor) -> Tensor:
        step = self._learned(self.step, "step")
        _project(step, FLOAT32_EPS)
        offset = self._offset(step)
        scaling = self.grad_scale
        if scaling is None:  # LSQ's 1/sqrt(N·Qp), N counted over the whole batch
            scaling = lsq_gradient_scale(self._batch_elements(x, self.axis), self.qmax)
        return lsq(x, _cast(step, x), self.qmin, self.qmax, scaling, self.axis, None if offset is None else _cast(offset, x))

    def _options(self) -> str:
        return f"offset={self.use_offset}" + ("" if self.grad_scale is None else f", grad_scale={self.grad_scale}")


class PACTQuantizer(_Quantizer):
    """PACT (Choi et al. 2018, ``pact``) for activations after a ReLU: y = clamp(x, 0, α), then b-bit
    unsigned uniform quantization with STE; α a learned Parameter (default 10.0), ∂/∂α = Σ g·1[x ≥ α].
    The grid is scale α/(2^b − 1), zero point 0, range [0, 2^b − 1]."""

    def __init__(self, bits: int, alpha: float = 10.0, device: Any = None, dtype: Any = None) -> None:
        super().__init__(bits, signed=False)
        name = type(self).__name__
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"{name}: alpha must be positive, got {alpha!r}")
        device = backend.parse_device(device)
        dtype = backend.get_default_dtype() if dtype is None else backend.as_dtype(dtype)
        self.alpha = Parameter(Tensor(backend.array_module(device).full((1,), alpha, dtype=dtype)))

    def _observe(self, x: Tensor, force: bool = False) -> None:
        """PACT has nothing to observe: α is learned."""

    def qparams(self) -> tuple[Tensor, Tensor, int, int, int | None]:
        xp = self.alpha.xp
        scale = xp.maximum(self.alpha.data, FLOAT32_EPS) / self.qmax
        return Tensor(scale), Tensor(xp.zeros((1,), dtype=xp.int64)), self.qmin, self.qmax, None

    def _quantize(self, x: Tensor) -> Tensor:
        _project(self.alpha, FLOAT32_EPS)
        return pact(x, _cast(self.alpha, x), self.bits)

    def _options(self) -> str:
        return f"alpha={float(self.alpha.data.reshape(-1)[0]):.4g}"


class QuantNoiseQuantizer(_Quantizer):
    """Quant-Noise (Fan et al. 2020, ``quant_noise``) for weights: in training a random fraction p of the
    elements (block_size 1) or blocks takes its quantized value q(w), the rest stays float, backward is the
    identity; in eval the whole weight is quantized. q is per-tensor fake quant on the b-bit signed (or
    unsigned) range with the min/max (affine) grid of the weight seen in the last training forward."""

    def __init__(self, bits: int, p: float = 0.5, block_size: int = 1, signed: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(bits, signed)
        name, qmin, qmax = type(self).__name__, self.qmin, self.qmax
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"{name}: p must lie in [0, 1], got {p!r}")
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"{name}: block_size must be a positive int, got {block_size!r}")
        self.p, self.block_size = float(p), block_size
        self.observer = MovingAverageMinMaxObserver(1.0, qmin, qmax, symmetric=False, device=device, dtype=dtype)

    def _observe(self, x: Tensor, force: bool = False) -> None:
        self.observer(x)

    def qparams(self) -> tuple[Tensor, Tensor, int, int, int | None]:
        scale, zero_point = self.observer.calculate_qparams()
        return scale, zero_point, self.qmin, self.qmax, None

    def _quantize(self, x: Tensor) -> Tensor:
        scale, zero_point = self.observer.calculate_qparams()
        return quant_noise(x, self.p, self.bits, self.block_size, training=self.training,
                           scale=_cast(scale, x), zero_point=_cast(zero_point, x), signed=self.signed)

    def _options(self) -> str:
        return f"p={self.p}, block_size={self.block_size}, signed={self.signed}"
