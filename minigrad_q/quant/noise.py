"""Quant-Noise (Fan et al. 2020): quantize a random fraction p of a weight's blocks in each training step.

    w̃ = w + stopgrad(M ⊙ (q(w) − w)),   q(w) = fake_quant(w, s, z, qmin, qmax),   dw = g (identity)

computed as a select, so a noised element is q(w) bit for bit (also outside the clip range, where
it is the clipped value) and the others are w bit for bit. M ~ Bernoulli(p) per block: for a weight
of 2 or more dims a block is `block_size` consecutive entries along dim 1 with all trailing dims
(Linear (O, I): runs of in-features; Conv (O, I, kh, kw): block_size in-channels with their whole
kernels), the mask grid being (O, I // block_size); for fewer dims a block is one element. In eval
mode (training=False) every element takes q(w). (s, z) come from the min/max of w (per tensor, the
range including 0, as the observers compute them) over the b-bit range qrange(bits, signed), unless
given. The weight is never written: the output is a new array. Unlike fairseq's version, the bits
given are the bits used and a noised out-of-range weight is its clipped q(w), not a mirrored value.

QuantNoise's forward is the plain path; quant/_fused.py sends GPU arrays and large CPU arrays to the
fused kernels of _fused_cpu.py / _fused_gpu.py, which compute the same values bit for bit.
"""

from __future__ import annotations

import operator
from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..specs import Draw, register_spec
from ._fused import fused_kernels
from .fake_quant import check_quant_args
from .qparams import check_bits, minmax_qparams, qrange

__all__ = ["quant_noise", "quant_noise_mask"]

_cpu = backend.array_module("cpu")
_DRAW_LEVELS = 1 << 16  # CPU mask draws: uniform 16-bit integers
_DRAW_CHUNK = 1 << 16  # CPU mask draws: this many at a time, no grid-sized temporary


class QuantNoise(Function):
    """y = q(w) where the block's mask is set (everywhere when mask is None), else w, with
    q(w) = clamp(rint(w·(1/s)), qmin − z, qmax − z)·s (= fake_quant's forward, the same operations);  dw = g.

    The mask is a bool grid with one entry per row of w viewed as (mask.size, w.size // mask.size)."""

    def forward(self, w: Any, scale: Any, lo: Any, hi: Any, mask: Any) -> Any:
        xp = self.xp
        if w.size == 0:
            return w.copy()
        s, lo, hi = (xp.asarray(v, dtype=w.dtype) for v in (scale, lo, hi))
        if fused := fused_kernels(xp, w):
            return fused.quant_noise_forward(self, w, s, lo, hi, mask)
        q = xp.clip(xp.rint(w * xp.reciprocal(s)), lo, hi) * s  # q(w): fake_quant's operations, in its order
        if mask is None:
            return q
        rows = (mask.size, -1)  # one row of w per entry of the mask grid
        return xp.where(mask.reshape(-1, 1), q.reshape(rows), w.reshape(rows)).reshape(w.shape)

    def backward(self, grad_output: Any) -> Any:
        return grad_output


# ---------------------------------------------------------------- public functions
def _mask_shape(op: str, shape: tuple[int, ...], block_size: Any) -> tuple[int, ...]:
    """The block grid of a weight of `shape`: (O, I // block_size) for 2 or more dims, else `shape`."""
    if isinstance(block_size, bool):
        raise TypeError(f"{op}: block_size must be an int, got bool {block_size!r}")
    try:
        block_size = operator.index(block_size)
    except TypeError:
        raise TypeError(f"{op}: block_size must be an int, got {type(block_size).__name__} {block_size!r}") from None
    if block_size < 1:
        raise ValueError(f"{op}: block_size must be positive, got {block_size}")
    if len(shape) < 2:
        if block_size != 1:
            raise ValueError(f"{op}: a weight of shape {shape} ({len(shape)} dims) has no in-feature dim; "
                             f"blocks need 2 or more dims, so block_size must be 1, got {block_size}")
        return shape
    if shape[1] % block_size:
        raise ValueError(f"{op}: block_size {block_size} does not divide dim 1 (in-features / in-channels) "
                         f"of size {shape[1]} of the weight {shape}")
    return (shape[0], shape[1] // block_size)


def _check_p(op: str, p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"{op}: noise probability p must be a number between 0 and 1, got {p!r}")
    return float(p)


def quant_noise_mask(shape: Any, p: float, block_size: int = 1, device: Any = "cpu") -> Tensor:
    """The Bernoulli(p) block mask for a weight of `shape` (bool Tensor; True = quantized), drawn from
    the device's generator (backend.generator, seeded by mq.manual_seed): shape (O, I // block_size)
    for 2 or more dims, `shape` itself otherwise. On the CPU a block is noised where a uniform 16-bit
    draw (four from each raw 64-bit word of the generator) is below round(p·2^16) (p to 2^-16); on a
    GPU where a uniform float32 draw is below p."""
    shape = tuple(operator.index(side) for side in shape)
    grid = _mask_shape("quant_noise_mask", shape, block_size)
    p = _check_p("quant_noise_mask", p)
    device = backend.parse_device(device)
    generator = backend.generator(device)
    if device != "cpu":
        return Tensor(generator.random(grid, dtype=backend.float32) < p)
    threshold = round(p * _DRAW_LEVELS)
    if threshold >= _DRAW_LEVELS:
        return Tensor(_cpu.ones(grid, dtype=bool))
    mask = _cpu.empty(grid, dtype=bool)
    flat = mask.reshape(-1)
    bits = generator.bit_generator
    for start in range(0, flat.size, _DRAW_CHUNK):
        count = min(_DRAW_CHUNK, flat.size - start)
        draw = bits.random_raw(-(-count // 4)).view(_cpu.uint16)[:count]  # four 16-bit draws per 64-bit word
        _cpu.less(draw, _cpu.uint16(threshold), out=flat[start:start + count])
    return Tensor(mask)


def _min_max(xp: Any, w: Any) -> tuple[Any, Any]:
    """(min, max) of w as 0-d arrays of its dtype."""
    fused = fused_kernels(xp, w)
    return fused.min_max(w) if fused else (w.min(), w.max())


def quant_noise(w: Tensor, p: float, bits: int, block_size: int = 1, mask: Tensor | None = None, training: bool = True,
                scale: Any = None, zero_point: Any = None, signed: bool = False) -> Tensor:
    """Quant-Noise: in training, each block of w takes q(w) with probability p (or where `mask`, a bool
    block grid as quant_noise_mask gives, is True) and keeps w elsewhere; in eval every element takes q(w).
    q(w) = fake_quant(w, s, z, *qrange(bits, signed)) with (s, z) from w's min/max unless `scale` (and
    `zero_point`, default 0) are given. Backward: the identity (q(w) − w is a constant). p = 0 in training
    returns w itself. w is never modified."""
    op = "quant_noise"
    if not isinstance(w, Tensor):
        raise TypeError(f"{op}: expected a Tensor weight, got {type(w).__name__}")
    p = _check_p(op, p)
    qmin, qmax = qrange(check_bits(op, bits), signed=bool(signed))
    grid = _mask_shape(op, tuple(w.shape), block_size)
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != backend.bool_:
            given = f"a {mask.dtype} Tensor" if isinstance(mask, Tensor) else type(mask).__name__
            raise TypeError(f"{op}: mask must be a bool Tensor (True = quantized), got {given}")
        if tuple(mask.shape) != grid:
            raise ValueError(f"{op}: mask must have the block-grid shape {grid} for a weight {tuple(w.shape)} with "
                             f"block_size {block_size}, got {tuple(mask.shape)}")
        if mask.device != w.device:
            raise RuntimeError(f"{op}: mask is on {mask.device} but the weight is on {w.device}")
    if scale is None and zero_point is not None:
        raise ValueError(f"{op}: zero_point={zero_point!r} was given without a scale; give both, or neither "
                         "(then both come from the weight's min/max)")
    if scale is None:
        if w.dtype.kind != "f":
            raise TypeError(f"{op}: expected a floating point weight, got dtype {w.dtype}")
        if w.data.size == 0:
            scale, zero_point = 1.0, 0
        else:
            scale, zero_point = minmax_qparams(w.xp, *_min_max(w.xp, w.data), qmin, qmax)
    else:
        zero_point = 0 if zero_point is None else zero_point
        check_quant_args(op, w, scale, zero_point, qmin, qmax, None)
        scale, zero_point = (v.data if isinstance(v, Tensor) else v for v in (scale, zero_point))
    lo, hi = qmin - zero_point, qmax - zero_point
    if not training:
        return QuantNoise.apply(w, scale, lo, hi, None)
    if mask is None:
        if p == 0:
            return w
        mask = None if p == 1 else quant_noise_mask(w.shape, p, block_size, w.device)
    return QuantNoise.apply(w, scale, lo, hi, None if mask is None else mask.data)


def _sample_quant_noise(d: Draw) -> tuple[Any, ...]:
    shape = d.shape(min_dims=0, max_dims=4, min_side=0)
    block_size = d.choice([b for b in (1, 2, 3) if b == 1 or (len(shape) >= 2 and shape[1] % b == 0)])
    grid = _mask_shape("quant_noise", shape, block_size)
    mask = d.tensor(grid, low=0.0, high=1.0, requires_grad=False) > 0.5
    return d.tensor(shape), d.integers(1, 8), block_size, mask, d.boolean(), d.boolean()


register_spec(QuantNoise, sample=_sample_quant_noise,
              call=lambda w, bits, block_size, mask, training, signed: quant_noise(
                  w, 0.5, bits, block_size, mask=mask, training=training, signed=signed),
              reference=lambda w, *rest: w * 1.0,
              note="the backward is the identity; the mask is drawn by the spec (no random draw inside)")
