"""Dropout (torch.nn.functional.dropout): zero each element with probability p, scale the rest by 1/(1 - p).

The mask is drawn from the device's generator (``backend.generator``, seeded by ``mq.manual_seed``)
by the public function and handed to the Function, so the Function itself is deterministic and
its gradient can be checked by finite differences.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..specs import Draw, register_spec

__all__ = ["dropout"]


class Dropout(Function):
    """y = x ⊙ m with m = keep / (1 - p) (keep ~ Bernoulli(1 - p); m = 0 for p = 1);  dx = g ⊙ m."""

    def forward(self, x: Any, mask: Any) -> Any:
        if self.needs_input_grad[0]:
            self.save_for_backward(mask)
        return x * mask

    def backward(self, grad_output: Any) -> Any:
        (mask,) = self.saved
        return grad_output * mask


def _scaled_mask(xp: Any, keep: Any, p: float, dtype: Any) -> Any:
    """keep (bool, or numbers where nonzero means kept) as the float mask keep / (1 - p)."""
    mask = xp.asarray(keep, dtype=dtype)
    if p < 1:
        mask *= 1 / (1 - p)
    else:
        mask[...] = 0
    return mask


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """torch.nn.functional.dropout: in training, each element is zeroed with probability p and the
    others are scaled by 1/(1 - p), so the expectation is unchanged. p = 0 or training=False returns
    `input` itself; p = 1 gives zeros (and zero gradients)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"dropout: expected a Tensor, got {type(input).__name__}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"dropout: probability p must be a number between 0 and 1, got {p!r}")
    if input.dtype.kind != "f":
        raise RuntimeError(f"dropout: expected a floating point input, got dtype {input.dtype}")
    if not training or p == 0:
        return input
    xp = input.xp
    if p == 1:
        return Dropout.apply(input, xp.zeros(input.shape, dtype=input.dtype))
    draw_dtype = input.dtype if input.dtype in (backend.float32, backend.float64) else backend.float32
    mask = backend.generator(input.device).random(input.shape, dtype=draw_dtype)
    xp.greater_equal(mask, p, out=mask)  # kept with probability 1 - p: mask is now 1.0 or 0.0
    mask *= 1 / (1 - p)
    return Dropout.apply(input, mask if mask.dtype == input.dtype else mask.astype(input.dtype))


def _dropout_with_mask(input: Tensor, keep: Tensor, p: float) -> Tensor:
    """Dropout with a given keep pattern (for the gradient spec: no random draw)."""
    return Dropout.apply(input, _scaled_mask(input.xp, keep.data, p, input.dtype))


def _sample_dropout(d: Draw) -> tuple[Any, ...]:
    shape = d.shape(max_dims=3, min_side=0)
    keep = d.tensor(shape, low=0.0, high=1.0, requires_grad=False) > 0.5
    return d.tensor(shape), keep, d.choice([0.2, 0.5, 1.0])


register_spec(Dropout, sample=_sample_dropout, call=_dropout_with_mask,
              note="the keep pattern is drawn by the spec, so every gradcheck evaluation uses the same mask")
