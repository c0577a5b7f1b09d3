"""The quantizers' fused CPU kernels: each forward and backward as one pass over cache-sized chunks.

Each quantizer's class holds its plain path (DESIGN.md, "plain first, fused second"); quant/_fused.py
sends large CPU arrays here. A kernel here computes the same values as the plain path, with the
same NumPy operations in the same order where tests/quant/test_fused.py checks equality, and a
stated tolerance where they differ (DSQ, the sums of parameter gradients).

Why chunks: on whole 16M-element arrays every ufunc call streams the arrays through memory, and
every temporary is a fresh allocation that is page-faulted in again (DESIGN.md, Speed). On
64K-element chunks with ``out=`` into per-thread scratch buffers the temporaries stay in L2 and
only the inputs and outputs touch memory once. NumPy releases the GIL inside ufunc loops, so the
workers of ops.workers run chunks in parallel.

    def kernel(rows, x, y, t):           # views of one chunk, then the scratch buffers
        numpy.multiply(x, 2.0, out=t)    # (per-row parameters: channels.at(param, rows))
        numpy.add(t, 1.0, out=y)

    elementwise(kernel, [x, y], scratch=1)

``elementwise(kernel, arrays, row_size=1, scratch=0)``:
- ``arrays``: C-contiguous NumPy arrays with the same number of elements (any dtypes: inputs and
  the outputs the kernel writes). Each is viewed as a matrix of ``row_size`` columns; a chunk is a
  run of whole rows (at most CHUNK elements, or one row), and the kernel gets
  ``(rows, *views, *scratch)``: ``rows`` the chunk's row ``slice``, each view ``(rows, row_size)``.
- ``scratch``: that many buffers of the views' shape and the first array's dtype, or one buffer per
  dtype in a sequence of dtypes; allocated once per worker and reused for each of its chunks.
- Returns the kernel's return values in chunk order: sums of partial results taken in that order
  do not depend on the number of threads.
The kernel must only write its own chunk (outputs and scratch). Chunks go to up to MAX_THREADS
workers (ops.workers.run_in_workers) when the arrays hold at least PARALLEL_MIN elements.

``Channels(shape, axis)`` does the per-channel bookkeeping: its ``row_size`` is the one to pass,
``prepare(value, dtype)`` turns a scale / zero point (number, or array of 1 or C elements) into
what ``at(prepared, rows)`` hands the kernel for one chunk, and ``partial_sum(view)`` /
``total(partials)`` reduce a chunk and then all chunks to one value per channel, in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .. import backend
from ..ops.workers import equal_chunks, run_in_workers, usable_cores

CHUNK = 1 << 16  # elements per chunk: 256 KiB of float32, a few arrays of it fit in L2
FUSED_MIN = 1 << 12  # smaller CPU arrays take the plain path (quant/_fused.py)
PARALLEL_MIN = 1 << 20  # fewer elements than this stay on the calling thread
MAX_THREADS = 2
THREADS: int | None = None  # tests: force this many workers

_numpy = backend.array_module("cpu")


def elementwise(kernel: Callable[..., Any], arrays: Sequence[Any], row_size: int = 1,
                scratch: int | Sequence[Any] = 0) -> list[Any]:
    """Run ``kernel(rows, *views, *scratch)`` over cache-sized chunks of rows (module docstring)."""
    if not arrays:
        raise ValueError("elementwise: needs at least one array")
    size = arrays[0].size
    for array in arrays:
        if array.size != size or not array.flags.c_contiguous:
            raise ValueError(f"elementwise: arrays must be C-contiguous with {size} elements, got shape "
                             f"{array.shape} (contiguous: {array.flags.c_contiguous})")
    if size == 0:
        return []
    if row_size < 1 or size % row_size:
        raise ValueError(f"elementwise: row_size {row_size} does not divide the size {size}")
    rows = size // row_size
    matrices = [array.reshape(rows, row_size) for array in arrays]
    threads = THREADS or (1 if size < PARALLEL_MIN else min(MAX_THREADS, usable_cores()))
    chunks, workers = equal_chunks(rows, max(1, CHUNK // row_size), threads)
    most = max(stop - start for start, stop in chunks)
    dtypes = [arrays[0].dtype] * scratch if isinstance(scratch, int) else list(scratch)

    def work(indices: list[int]) -> list[Any]:
        buffers = [_numpy.empty((most, row_size), dtype=dtype) for dtype in dtypes]
        results = []
        for index in indices:
            start, stop = chunks[index]
            part = slice(start, stop)
            results.append(kernel(part, *[m[part] for m in matrices], *[b[:stop - start] for b in buffers]))
        return results

    ordered: list[Any] = [None] * len(chunks)
    for worker, results in enumerate(run_in_workers(work, len(chunks), workers, blas=False)):
        ordered[worker::workers] = results  # worker w ran chunks w, w + T, ...
    return ordered


def contiguous(array: Any) -> Any:
    """The array itself if C-contiguous, else a C-contiguous copy (0-d stays 0-d, unlike ascontiguousarray)."""
    return array if array.flags.c_contiguous else array.copy(order="C")


class Channels:
    """The driver's row layout of an x of `shape` quantized per tensor (axis None) or per channel.

    x is (outer, C, inner) around `axis`. With inner > 1 a row is one channel of one outer index
    (row_size = inner, row r belongs to channel r % C); with inner == 1 (the last axis) a row holds
    one entry of every channel (row_size = C). Per tensor, rows are single elements."""

    def __init__(self, shape: tuple[int, ...], axis: int | None) -> None:
        self.axis = axis
        self.channels = 1 if axis is None else shape[axis]
        self.outer = 1 if axis is None else math.prod(shape[:axis])
        inner = 1 if axis is None else math.prod(shape[axis + 1:])
        self.by_column = axis is not None and inner == 1
        self.row_size = self.channels if self.by_column else inner

    def prepare(self, value: Any, dtype: Any) -> Any:
        """A number (kept as a Python number) or an array of 1 or C elements, in the layout `at` slices."""
        if not hasattr(value, "shape"):
            return value
        value = value.astype(dtype, copy=False)
        if value.size == 1 or self.axis is None:
            return value.reshape(())[()]
        if self.by_column:
            return value.reshape(1, self.channels)
        return _numpy.tile(value.reshape(-1), self.outer).reshape(-1, 1)

    def at(self, prepared: Any, rows: slice) -> Any:
        """The prepared parameter for the chunk `rows`: a scalar or a view broadcasting against it."""
        if getattr(prepared, "ndim", 0) == 2 and not self.by_column:
            return prepared[rows]
        return prepared

    def partial_sum(self, view: Any) -> Any:
        """One chunk's contribution: the sum over its per-tensor / per-channel elements."""
        if self.axis is None:
            return view.sum(dtype=backend.float64)
        return view.sum(axis=0 if self.by_column else 1, dtype=backend.float64)

    def total(self, partials: list[Any]) -> Any:
        """float64 sums over all chunks (in chunk order): shape () per tensor, (C,) per channel."""
        if not partials:
            return _numpy.zeros(() if self.axis is None else (self.channels,), dtype=backend.float64)
        if self.axis is None:
            return _numpy.asarray(math.fsum(float(p) for p in partials))
        if self.by_column:
            return _numpy.sum(partials, axis=0)
        return _numpy.concatenate(partials).reshape(self.outer, self.channels).sum(axis=0)


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", ()))


def _times(grad_output: Any, derivative: Any) -> Any:
    """grad_output·derivative in one chunked pass."""
    grad_output = contiguous(grad_output)
    grad_input = backend.empty(grad_output.shape, grad_output.dtype)
    elementwise(lambda rows, g, d, dx: _numpy.multiply(g, d, out=dx), [grad_output, derivative, grad_input])
    return grad_input


# ---------------------------------------------------------------- fake_quant
def _reciprocal(channels: Channels, scale: Any, dtype: Any) -> Any:
    """1/s computed in `dtype` and laid out as `channels.prepare` lays out s: what x is multiplied by to
    get its codes (fake_quant's arithmetic, torch's)."""
    return channels.prepare(_numpy.reciprocal(_numpy.asarray(scale, dtype=dtype)), dtype)


def fake_quant_forward(fn: Any, x: Any, scale: Any, zero_point: Any, qmin: int, qmax: int, axis: int | None) -> Any:
    """One pass writes y = clamp(rint(x·(1/s)), qmin − z, qmax − z)·s and, when x wants a gradient, the mask."""
    x = contiguous(x)
    channels = Channels(x.shape, axis)
    s, lo, hi = (channels.prepare(v, x.dtype) for v in (scale, qmin - zero_point, qmax - zero_point))
    inverse = _reciprocal(channels, scale, x.dtype)
    y = backend.empty(x.shape, x.dtype)
    mask = backend.empty(x.shape, backend.bool_) if fn.needs_input_grad[0] else None

    def kernel(rows: slice, x: Any, y: Any, *mask_and_code: Any) -> None:
        si = channels.at(s, rows)
        code = mask_and_code[1] if mask_and_code else y  # with the mask: the rounded codes go to scratch
        _numpy.multiply(x, channels.at(inverse, rows), out=code)
        _numpy.rint(code, out=code)
        _numpy.clip(code, channels.at(lo, rows), channels.at(hi, rows), out=y)
        if mask_and_code:
            _numpy.equal(y, code, out=mask_and_code[0])  # NaN compares false: no gradient
        _numpy.multiply(y, si, out=y)

    if mask is None:
        elementwise(kernel, [x, y], channels.row_size)
        return y
    elementwise(kernel, [x, y, mask], channels.row_size, scratch=1)
    fn.save_for_backward(mask)
    return y


def fake_quant_backward(fn: Any, grad_output: Any) -> tuple[Any, None, None]:
    (mask,) = fn.saved
    return _times(grad_output, mask.view(_numpy.uint8)), None, None  # uint8 × float: no bool cast


# ---------------------------------------------------------------- DSQ
# Through the rounding n = rint(u) and a = u − n: |r| = ½ − |a|, so with T = tanh(k(½ − |a|))
#   soft'(u) = ½·S·k·(1 − T²) = ½·S·k / cosh²(k(½ − |a|)),  soft(u) = n + sign(a)·½·(1 − S·T),
#   tanh(k·r) = −sign(a)·T;
# at the clamp bounds (and at integer codes) a = 0, which makes the soft value the code and the α term
# exactly 0 with no extra mask. The forward writes y and every derivative the backward needs (soft'
# masked; ∂ŝ/∂s and ∂ŝ/∂α per element when scale / alpha want gradients), so each backward is one pass.
def dsq_forward(fn: Any, x: Any, scale: Any, zero_point: Any, alpha: Any, S: Any, k: Any, qmin: int, qmax: int,
                axis: int | None) -> Any:
    need_x, need_scale, need_alpha = fn.needs_input_grad[0], fn.needs_input_grad[1], fn.needs_input_grad[3]
    need_slope = need_x or need_scale or need_alpha
    x = contiguous(x)
    dtype = x.dtype
    channels = Channels(x.shape, axis)
    s = channels.prepare(scale, dtype)
    lo, hi = channels.prepare(qmin - zero_point, dtype), channels.prepare(qmax - zero_point, dtype)
    minus_k, half_k = channels.prepare(-k, dtype), channels.prepare(0.5 * k, dtype)
    half_S_k = channels.prepare(0.5 * S * k, dtype)
    minus_half_S = channels.prepare(-0.5 * S, dtype)
    if need_alpha:  # the α term in float64: its two parts cancel as α → 1
        alpha64 = _numpy.asarray(alpha, dtype=backend.float64)
        k64, S64 = channels.prepare(k, backend.float64), channels.prepare(S, backend.float64)
        two_over_alpha_2_minus_alpha = channels.prepare(2 / (alpha64 * (2 - alpha64)), backend.float64)
        minus_half_S_s = channels.prepare(-0.5 * S * _numpy.asarray(scale, dtype=backend.float64), backend.float64)
    y = backend.empty(x.shape, dtype)
    slope = backend.empty(x.shape, dtype) if need_slope else None
    d_scale = backend.empty(x.shape, dtype) if need_scale else None
    d_alpha = backend.empty(x.shape, dtype) if need_alpha else None
    outputs = [a for a in (slope, d_scale, d_alpha) if a is not None]

    def kernel(rows: slice, x: Any, y: Any, *rest: Any) -> None:
        at = channels.at
        si = at(s, rows)
        if not need_slope:
            _numpy.divide(x, si, out=y)
            _numpy.clip(y, at(lo, rows), at(hi, rows), out=y)
            _numpy.rint(y, out=y)
            _numpy.multiply(y, si, out=y)
            return
        outs, (t, a, b, inside) = list(rest[:len(outputs)]), rest[len(outputs):]
        slope_out = outs.pop(0)
        scale_out = outs.pop(0) if need_scale else None
        alpha_out = outs.pop(0) if need_alpha else None
        _numpy.divide(x, si, out=t)                          # t = v − z
        _numpy.clip(t, at(lo, rows), at(hi, rows), out=a)    # u − z
        _numpy.equal(a, t, out=inside)                       # qmin <= v <= qmax (NaN: outside)
        _numpy.rint(a, out=y)                                # n − z
        _numpy.subtract(a, y, out=a)                         # a = u − rint(u)
        _numpy.abs(a, out=b)
        _numpy.multiply(b, at(minus_k, rows), out=b)
        _numpy.add(b, at(half_k, rows), out=b)               # k·(½ − |a|) = k·|r|
        if not (need_scale or need_alpha):
            _numpy.cosh(b, out=b)
            _numpy.square(b, out=b)
            _numpy.divide(at(half_S_k, rows), b, out=slope_out)  # ½·S·k / cosh²(k·r)
        else:
            _numpy.tanh(b, out=b)                            # T
            _numpy.square(b, out=slope_out)
            _numpy.subtract(1, slope_out, out=slope_out)
            _numpy.multiply(slope_out, at(half_S_k, rows), out=slope_out)  # ½·S·k·(1 − T²)
        _numpy.multiply(slope_out, inside.view(_numpy.uint8), out=slope_out)
        if alpha_out is not None:                            # before b (T) is overwritten
            _alpha_term(a, at(k64, rows), at(two_over_alpha_2_minus_alpha, rows), at(S64, rows),
                        at(minus_half_S_s, rows), alpha_out)
        if scale_out is not None:                            # n − z + sign(a)·½(1 − S·T) − soft'·t
            _numpy.multiply(b, at(minus_half_S, rows), out=b)
            _numpy.add(b, 0.5, out=b)
            _numpy.copysign(b, a, out=b)
            _numpy.add(b, y, out=scale_out)
            _numpy.multiply(slope_out, t, out=t)
            _numpy.subtract(scale_out, t, out=scale_out)
        _numpy.multiply(y, si, out=y)

    scratch = [dtype, dtype, dtype, backend.bool_] if need_slope else 0
    elementwise(kernel, [x, y, *outputs], channels.row_size, scratch=scratch)
    fn.axis, fn.scale_shape, fn.alpha_shape = axis, _shape(scale), _shape(alpha)
    if need_slope:
        fn.save_for_backward(slope if need_x else None, d_scale, d_alpha)
    return y


def _alpha_term(a: Any, k: Any, two_w: Any, S: Any, minus_half_S_s: Any, out: Any) -> None:
    """out = ∂ŝ/∂α = −sign(a)·½·S·s·[S·T − 2ρ(1 − T²)/(α(2 − α))], ρ = ½ − |a|, T = tanh(k·ρ), in float64
    (two_w = 2/(α(2 − α)))."""
    rho = _numpy.abs(a, dtype=backend.float64)
    _numpy.subtract(0.5, rho, out=rho)
    tanh = _numpy.multiply(rho, k)
    _numpy.tanh(tanh, out=tanh)
    sech2 = _numpy.square(tanh)
    _numpy.subtract(1, sech2, out=sech2)
    _numpy.multiply(sech2, rho, out=sech2)
    _numpy.multiply(sech2, two_w, out=sech2)
    _numpy.multiply(tanh, S, out=tanh)
    _numpy.subtract(tanh, sech2, out=tanh)
    _numpy.multiply(tanh, minus_half_S_s, out=tanh)
    _numpy.multiply(tanh, _numpy.sign(a), out=out, casting="same_kind")


def dsq_backward(fn: Any, grad_output: Any) -> tuple[Any, Any, None, Any]:
    slope, d_scale, d_alpha = fn.saved
    grad_x = _times(grad_output, slope) if slope is not None else None
    return (grad_x, _parameter_grad(fn.axis, grad_output, d_scale, fn.scale_shape), None,
            _parameter_grad(fn.axis, grad_output, d_alpha, fn.alpha_shape))


def _parameter_grad(axis: int | None, grad_output: Any, derivative: Any, shape: tuple[int, ...]) -> Any:
    """Σ grad_output·derivative over the elements of each parameter value (float64 partial sums)."""
    if derivative is None:
        return None
    channels = Channels(derivative.shape, None if math.prod(shape) == 1 else axis)

    def kernel(rows: slice, g: Any, d: Any, product: Any) -> Any:
        _numpy.multiply(g, d, out=product)
        return channels.partial_sum(product)

    partials = elementwise(kernel, [contiguous(grad_output), derivative], channels.row_size, scratch=1)
    return channels.total(partials).reshape(shape)


# ---------------------------------------------------------------- LSQ
# The forward saves x; the backward recomputes v (cheaper than storing a mask and a step derivative).
def _in_steps(x: Any, s: Any, b: Any, out: Any) -> None:
    """out = v = (x − β)/s (β None: x/s)."""
    if b is None:
        _numpy.divide(x, s, out=out)
    else:
        _numpy.subtract(x, b, out=out)
        out /= s


def lsq_forward(fn: Any, x: Any, step: Any, offset: Any) -> Any:
    x = contiguous(x)
    layout = Channels(x.shape, fn.axis)
    s, b = layout.prepare(step, x.dtype), layout.prepare(offset, x.dtype)
    qmin, qmax = fn.qmin, fn.qmax
    y = backend.empty(x.shape, x.dtype)

    def kernel(rows: slice, x: Any, y: Any) -> None:
        s_rows, b_rows = layout.at(s, rows), layout.at(b, rows)
        _in_steps(x, s_rows, b_rows, out=y)
        _numpy.rint(y, out=y)
        _numpy.clip(y, qmin, qmax, out=y)
        y *= s_rows
        if b_rows is not None:
            y += b_rows

    elementwise(kernel, [x, y], row_size=layout.row_size)
    if any(fn.needs_input_grad):
        fn.save_for_backward(x, step, offset, s, b)
        fn.layout = layout
    return y


def lsq_backward(fn: Any, grad_output: Any) -> tuple[Any, Any, Any]:
    x, step, offset, s, b = fn.saved
    need_x, need_step, need_offset = fn.needs_input_grad[:3]
    layout, qmin, qmax = fn.layout, fn.qmin, fn.qmax
    dx = backend.empty(x.shape, x.dtype) if need_x else None

    def kernel(rows: slice, g: Any, x: Any, *views: Any) -> tuple[Any, Any]:
        *dx_rows, v, code, clamped = views
        s_rows, b_rows = layout.at(s, rows), layout.at(b, rows)
        _in_steps(x, s_rows, b_rows, out=v)
        _numpy.rint(v, out=code)
        _numpy.clip(code, qmin, qmax, out=clamped)
        inside = _numpy.equal(code, clamped, out=code)  # 1.0 in range, 0.0 at the clips
        if dx_rows:
            _numpy.multiply(g, inside, out=dx_rows[0])
        step_part = offset_part = None
        if need_step:  # m·(rint(v) − v) + (1 − m)·clamp(rint(v)) = clamp(rint(v)) − m·v
            v *= inside
            clamped -= v
            clamped *= g
            step_part = layout.partial_sum(clamped)
        if need_offset:
            _numpy.subtract(1, inside, out=inside)
            inside *= g
            offset_part = layout.partial_sum(inside)
        return step_part, offset_part

    arrays = [contiguous(grad_output), x] + ([dx] if dx is not None else [])
    parts = elementwise(kernel, arrays, row_size=layout.row_size, scratch=3)
    ds = layout.total([p[0] for p in parts]).reshape(step.shape) * fn.grad_scale if need_step else None
    db = layout.total([p[1] for p in parts]).reshape(offset.shape) * fn.grad_scale if need_offset else None
    return dx, ds, db


# ---------------------------------------------------------------- PACT
def pact_forward(fn: Any, x: Any, a: Any, s: Any) -> Any:
    """y = rint(clamp(x, 0, α)/s)·s in one pass (a = α and s: 0-d arrays of x's dtype)."""
    x = contiguous(x)
    a, s = a[()], s[()]  # NumPy scalars of x's dtype
    y = backend.empty(x.shape, x.dtype)

    def kernel(rows: slice, x: Any, y: Any) -> None:
        _numpy.clip(x, 0, a, out=y)
        y /= s
        _numpy.rint(y, out=y)
        y *= s

    elementwise(kernel, [x, y])
    if any(fn.needs_input_grad):
        fn.save_for_backward(x, a)
    return y


def pact_backward(fn: Any, grad_output: Any) -> tuple[Any, Any]:
    x, a = fn.saved
    need_x, need_alpha = fn.needs_input_grad[:2]
    dx = backend.empty(x.shape, x.dtype) if need_x else None
    sum_dtype = backend.float32 if x.dtype.itemsize < 4 else x.dtype  # chunk sums; fsum adds them up

    def kernel(rows: slice, g: Any, x: Any, *views: Any) -> Any:
        *dx_rows, clipped, work = views
        _numpy.greater_equal(x, a, out=clipped)  # 1.0 where x >= α
        part = None
        if need_alpha:
            _numpy.multiply(clipped, g, out=work)
            part = work.sum(dtype=sum_dtype)
        if dx_rows:
            _numpy.greater_equal(x, 0, out=work)
            work -= clipped  # 1.0 where 0 <= x < α (α > 0)
            _numpy.multiply(g, work, out=dx_rows[0])
        return part

    arrays = [contiguous(grad_output), x] + ([dx] if dx is not None else [])
    parts = elementwise(kernel, arrays, scratch=2)
    da = _numpy.asarray(math.fsum(float(p) for p in parts)).reshape(fn.alpha_shape) if need_alpha else None
    return dx, da


# ---------------------------------------------------------------- QuantNoise
def _quantize(w: Any, s: Any, lo: Any, hi: Any, out: Any) -> Any:
    """out = clamp(rint(w·(1/s)), lo, hi)·s: fake_quant's operations, in the same order (bit-identical)."""
    _numpy.multiply(w, _numpy.reciprocal(s), out=out)
    _numpy.rint(out, out=out)
    _numpy.clip(out, lo, hi, out=out)
    _numpy.multiply(out, s, out=out)
    return out


def quant_noise_forward(fn: Any, w: Any, s: Any, lo: Any, hi: Any, mask: Any) -> Any:
    """y = q(w) where the block's mask entry is set (everywhere without a mask), else w, bit for bit
    (s, lo, hi: 0-d arrays of w's dtype)."""
    w = contiguous(w)
    y = backend.empty(w.shape, w.dtype)
    s, lo, hi = s[()], lo[()], hi[()]
    if mask is None:
        elementwise(lambda rows, w, y: _quantize(w, s, lo, hi, y), [w, y])
        return y
    row_size = w.size // mask.size
    mask_rows = mask.reshape(-1, 1)
    if row_size == 1:  # one element per block: select on the bit patterns, exact and branch-free
        words, mask_bytes = _numpy.dtype(f"u{w.dtype.itemsize}"), mask_rows.view(_numpy.uint8)

        def kernel(rows: slice, w: Any, y: Any, q: Any) -> None:
            _quantize(w, s, lo, hi, q)
            q_words, w_words = q.view(words), w.view(words)
            _numpy.bitwise_xor(q_words, w_words, out=q_words)
            _numpy.multiply(q_words, mask_bytes[rows], out=q_words)  # (q ^ w)·m: 0 where not noised
            _numpy.bitwise_xor(q_words, w_words, out=y.view(words))  # y = w ^ ((q ^ w)·m)
    else:  # whole blocks: copy w, then the noised blocks' bytes of q (one masked copy per block)
        block = _numpy.dtype(f"V{row_size * w.dtype.itemsize}")

        def kernel(rows: slice, w: Any, y: Any, q: Any) -> None:
            _quantize(w, s, lo, hi, q)
            _numpy.copyto(y, w)
            _numpy.copyto(y.view(block), q.view(block), where=mask_rows[rows])

    elementwise(kernel, [w, y], row_size=row_size, scratch=1)
    return y


def min_max(w: Any) -> tuple[Any, Any]:
    """(min, max) of w as 0-d arrays of its dtype, in one chunked pass."""
    w = contiguous(w)
    parts = elementwise(lambda rows, chunk: (chunk.min(), chunk.max()), [w])
    low, high = min(lo for lo, _ in parts), max(hi for _, hi in parts)
    return _numpy.asarray(low, dtype=w.dtype), _numpy.asarray(high, dtype=w.dtype)
