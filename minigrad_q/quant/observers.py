"""Observers: modules that record the range of the tensors they see and turn it into a scale and a
zero point, with torch.ao.quantization's names and arithmetic.

An observer's forward records min/max of its input (no graph, no gradient) and returns the input
itself; in a data-parallel job the min/max are those of the whole batch, over every process
(``core.collective``). The range lives in the buffers ``min_val`` / ``max_val`` (in ``state_dict``), on the device of
the last input; recording never reads a value back to the host, so it does not stall a GPU.

- ``MinMaxObserver``: the running min and max of everything seen.
- ``MovingAverageMinMaxObserver``: min ← min + c·(min_now − min) (and max alike), c the
  ``averaging_constant``; the first observation sets min/max to the first batch's, as torch does.
  c = 1 keeps exactly the last batch's min/max.
- ``PerChannelMinMaxObserver`` / ``MovingAveragePerChannelMinMaxObserver``: the same per slice along
  ``ch_axis`` (buffers of shape (C,)).

``calculate_qparams()`` → (scale, zero_point) by ``qparams.minmax_qparams`` (DESIGN.md): the range
always includes 0; affine s = (hi − lo)/(qmax − qmin), z = clamp(qmin − round(lo/s), qmin, qmax);
symmetric s = max(−lo, hi)/((qmax − qmin)/2); s ≥ eps. Per-tensor results have shape (1,) like torch's;
before anything was observed they are scale 1, zero point 0 (torch's default).

Per-channel buffers take their length from the first input unless ``num_channels`` is given; give it
when a state_dict is to be loaded into a fresh observer (``load_state_dict`` needs matching shapes).
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..core import Tensor, collective
from ..core.validate import flag, integer, normalize_dim
from ..nn.module import Module
from .qparams import FLOAT32_EPS, NonFiniteGrid, check_qrange, minmax_qparams

__all__ = [
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "PerChannelMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver",
]


class _MinMaxObserverBase(Module):
    """min/max recording shared by the four observers: per-tensor (ch_axis None) or per-channel, running
    min/max (averaging_constant None) or moving average."""

    def __init__(self, quant_min: int, quant_max: int, symmetric: bool, eps: float, averaging_constant: float | None,
                 ch_axis: int | None, num_channels: int | None, device: Any, dtype: Any) -> None:
        super().__init__()
        name = type(self).__name__
        self.quant_min, self.quant_max = check_qrange(name, quant_min, quant_max)
        flag(name, "symmetric", symmetric)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"{name}: eps must be a positive number, got {eps!r}")
        if averaging_constant is not None and (isinstance(averaging_constant, bool)
                                               or not isinstance(averaging_constant, (int, float))
                                               or not 0 < averaging_constant <= 1):
            raise ValueError(f"{name}: averaging_constant must be in (0, 1], got {averaging_constant!r}")
        if ch_axis is not None:
            integer(name, "ch_axis", ch_axis)
        if num_channels is not None:
            integer(name, "num_channels", num_channels, 1)
        self.symmetric = symmetric
        self.eps = float(eps)
        self.averaging_constant = None if averaging_constant is None else float(averaging_constant)
        self.ch_axis = ch_axis
        shape: tuple[int, ...] = () if ch_axis is None else (num_channels or 0,)
        device = backend.parse_device(device)
        dtype = backend.get_default_dtype() if dtype is None else backend.as_dtype(dtype)
        xp = backend.array_module(device)
        self.register_buffer("min_val", Tensor(xp.full(shape, xp.inf, dtype=dtype)))
        self.register_buffer("max_val", Tensor(xp.full(shape, -xp.inf, dtype=dtype)))

    def forward(self, x: Tensor) -> Tensor:
        """Record x's range (no gradient, no host sync) and return x unchanged."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__}: expected a Tensor, got {type(x).__name__}")
        if x.data.size == 0:
            return x
        data = x.data
        if self.ch_axis is None:
            current_min, current_max = data.min(), data.max()
        else:
            axis = self._channel_axis(x)
            others = tuple(d for d in range(x.ndim) if d != axis)
            current_min, current_max = data.min(axis=others), data.max(axis=others)
        current_min, current_max = collective.all_min(current_min), collective.all_max(current_max)
        if x.device == "cpu" and not (backend.is_finite_all(current_min) and backend.is_finite_all(current_max)):
            raise NonFiniteGrid(f"{type(self).__name__}: the input holds NaN or inf (min {current_min}, max "
                                f"{current_max}); nothing was recorded (has training diverged?)")
        self._record(x.xp, x.device, current_min, current_max)
        return x

    def _channel_axis(self, x: Tensor) -> int:
        name = type(self).__name__
        if x.ndim == 0:
            raise ValueError(f"{name}: per-channel observation (ch_axis={self.ch_axis}) needs a tensor with dims, got 0-d")
        axis = normalize_dim(name, self.ch_axis, x.ndim)
        channels = x.shape[axis]
        if self.min_val.shape != (channels,):
            if self.min_val.data.size:
                raise ValueError(f"{name}: observed {self.min_val.shape[0]} channels before, the input {x.shape} "
                                 f"has {channels} along ch_axis {self.ch_axis}")
            xp = x.xp
            self.min_val.data = xp.full((channels,), xp.inf, dtype=self.min_val.dtype)
            self.max_val.data = xp.full((channels,), -xp.inf, dtype=self.max_val.dtype)
        return axis

    def _record(self, xp: Any, device: str, current_min: Any, current_max: Any) -> None:
        min_val, max_val = self.min_val.data, self.max_val.data
        if self.min_val.device != device:
            min_val, max_val = backend.to_device(min_val, device), backend.to_device(max_val, device)
        if device != "cpu":  # not read back to check: a batch with NaN or inf leaves the range as it was
            finite = xp.isfinite(current_min) & xp.isfinite(current_max)
            current_min, current_max = xp.where(finite, current_min, min_val), xp.where(finite, current_max, max_val)
        constant = self.averaging_constant
        if constant is None:
            new_min, new_max = xp.minimum(min_val, current_min), xp.maximum(max_val, current_max)
        elif constant == 1.0:
            new_min, new_max = current_min, current_max
        else:  # the first observation initialises the average: base = current there, so new = current exactly
            first = xp.isposinf(min_val) & xp.isneginf(max_val)
            base_min = xp.where(first, current_min, min_val)
            base_max = xp.where(first, current_max, max_val)
            new_min = base_min + constant * (current_min - base_min)
            new_max = base_max + constant * (current_max - base_max)
        self.min_val.data = xp.asarray(new_min, dtype=min_val.dtype).reshape(min_val.shape)
        self.max_val.data = xp.asarray(new_max, dtype=max_val.dtype).reshape(max_val.shape)

    def calculate_qparams(self) -> tuple[Tensor, Tensor]:
        """(scale, zero_point): float Tensor and int64 Tensor, shape (1,) per-tensor, (C,) per-channel."""
        min_val, max_val = self.min_val.data, self.max_val.data
        xp = backend.get_array_module(min_val)
        if min_val.size == 0:  # per-channel, nothing observed yet
            return Tensor(xp.ones((1,), dtype=min_val.dtype)), Tensor(xp.zeros((1,), dtype=xp.int64))
        scale, zero_point = minmax_qparams(xp, min_val, max_val, self.quant_min, self.quant_max, self.symmetric, self.eps)
        unobserved = xp.isposinf(min_val) & xp.isneginf(max_val)
        scale = xp.where(unobserved, 1.0, scale).astype(min_val.dtype)
        zero_point = xp.where(unobserved, 0, zero_point).astype(xp.int64)
        return Tensor(scale.reshape(-1)), Tensor(zero_point.reshape(-1))

    def reset_min_max_vals(self) -> None:
        """Forget everything observed (per-channel buffers keep their length)."""
        xp = backend.get_array_module(self.min_val.data)
        self.min_val.data = xp.full(self.min_val.shape, xp.inf, dtype=self.min_val.dtype)
        self.max_val.data = xp.full(self.max_val.shape, -xp.inf, dtype=self.max_val.dtype)

    def extra_repr(self) -> str:
        text = f"quant_min={self.quant_min}, quant_max={self.quant_max}, symmetric={self.symmetric}"
        if self.averaging_constant is not None:
            text = f"averaging_constant={self.averaging_constant}, " + text
        if self.ch_axis is None:
            return text + f", min_val={float(self.min_val.data)}, max_val={float(self.max_val.data)}"
        return f"ch_axis={self.ch_axis}, " + text + f", channels={self.min_val.shape[0]}"


class MinMaxObserver(_MinMaxObserverBase):
    """The running min/max of every input seen (per-tensor); see the module docstring for the qparams."""

    def __init__(self, quant_min: int = 0, quant_max: int = 255, symmetric: bool = False, eps: float = FLOAT32_EPS,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(quant_min, quant_max, symmetric, eps, None, None, None, device, dtype)


class MovingAverageMinMaxObserver(_MinMaxObserverBase):
    """min/max averaged over batches: min ← min + c·(min_now − min); the first batch initialises them."""

    def __init__(self, averaging_constant: float = 0.01, quant_min: int = 0, quant_max: int = 255,
                 symmetric: bool = False, eps: float = FLOAT32_EPS, device: Any = None, dtype: Any = None) -> None:
        super().__init__(quant_min, quant_max, symmetric, eps, averaging_constant, None, None, device, dtype)


class PerChannelMinMaxObserver(_MinMaxObserverBase):
    """The running min/max of each slice along ``ch_axis``."""

    def __init__(self, ch_axis: int = 0, quant_min: int = 0, quant_max: int = 255, symmetric: bool = False,
                 eps: float = FLOAT32_EPS, num_channels: int | None = None, device: Any = None, dtype: Any = None) -> None:
        super().__init__(quant_min, quant_max, symmetric, eps, None, ch_axis, num_channels, device, dtype)


class MovingAveragePerChannelMinMaxObserver(_MinMaxObserverBase):
    """Per-channel moving-average min/max: min[j] ← min[j] + c·(min_now[j] − min[j]) for each channel j;
    the first batch initialises them."""

    def __init__(self, averaging_constant: float = 0.01, ch_axis: int = 0, quant_min: int = 0, quant_max: int = 255,
                 symmetric: bool = False, eps: float = FLOAT32_EPS, num_channels: int | None = None,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(quant_min, quant_max, symmetric, eps, averaging_constant, ch_axis, num_channels, device, dtype)
