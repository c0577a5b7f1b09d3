"""The fused CPU path of sigmoid and of tanh's and sigmoid's backward: their plain NumPy steps (ops/unary.py),
in the same order, run over chunks of CHUNK elements, so that each step's intermediate stays in cache
instead of making a pass over memory of its own. The results are bit for bit the plain path's.

On a 2-core Intel Xeon, sigmoid's four passes over 1M float32 take 1.56 ms, the chunked ones 1.0 ms
(docs/benchmarks.md, "Notes: elementwise chains"). Arrays under MIN_SIZE take the plain path.

ReLU's forward and backward, from PARALLEL_MIN_BYTES on, are split into one contiguous part per worker
thread instead (ops/workers.py): on the toy CNN's 8 MiB activations they are memory-bound, and two
cores move more bytes than one. Below that size the hand-off to a thread costs more than it saves.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from .workers import blas_threads, run_in_workers

CHUNK = 1 << 16  # elements per chunk: 256 KiB of float32, in L2 with its temporary
MIN_SIZE = 2 * CHUNK
PARALLEL_MIN_BYTES = 4 << 20  # relu's passes split among the workers from this array size


def takes(*arrays: Any, min_bytes: int | None = None) -> bool:
    """Whether an op on these NumPy arrays (of one shape) takes the chunked path: MIN_SIZE elements or
    more, or `min_bytes` bytes when given."""
    first = arrays[0]
    large = first.size >= MIN_SIZE if min_bytes is None else first.nbytes >= min_bytes
    return (type(first) is backend.ndarray and large and backend.fused_enabled()
            and first.dtype.kind == "f" and all(a.flags.c_contiguous and a.shape == first.shape for a in arrays))


def takes_split(*arrays: Any) -> bool:
    """Whether relu on these arrays is split among two or more workers."""
    return takes(*arrays, min_bytes=PARALLEL_MIN_BYTES) and blas_threads() > 1


def _split(size: int, body: Any) -> None:
    """body(part) for `size` elements in one contiguous slice per worker (as many as the BLAS's threads)."""
    workers = blas_threads()
    bounds = [i * size // workers for i in range(workers + 1)]

    def work(indices: list[int]) -> None:
        for index in indices:
            body(slice(bounds[index], bounds[index + 1]))

    run_in_workers(work, workers, workers, blas=False)


def relu(x: Any) -> Any:
    """clip(x, 0, inf) (Relu.forward's step), one part per worker."""
    xp = backend.get_array_module(x)
    flat = x.reshape(-1)
    y = xp.empty_like(flat)
    _split(flat.size, lambda part: xp.clip(flat[part], 0.0, math.inf, out=y[part]))
    return y.reshape(x.shape)


def relu_backward(grad_output: Any, y: Any) -> Any:
    """(y > 0)·grad_output (Relu.backward's), one part per worker; the comparison's 0/1 are written as
    floats straight into the result, which grad_output then multiplies in place."""
    xp = backend.get_array_module(y)
    g, s = grad_output.reshape(-1), y.reshape(-1)
    gx = xp.empty_like(s)

    def body(part: slice) -> None:
        xp.greater(s[part], 0, out=gx[part], casting="unsafe")
        xp.multiply(gx[part], g[part], out=gx[part])

    _split(s.size, body)
    return gx.reshape(y.shape)


def _chunks(size: int) -> range:
    return range(0, size, CHUNK)


def sigmoid(x: Any, cap: float) -> Any:
    """e = exp(min(x, cap)), y = e / (e + 1), chunk by chunk (Sigmoid.forward's steps)."""
    xp = backend.get_array_module(x)
    flat = x.reshape(-1)
    y = xp.empty_like(flat)
    scratch = xp.empty(min(CHUNK, flat.size), dtype=flat.dtype)
    for start in _chunks(flat.size):
        e, total = y[start:start + CHUNK], scratch[: min(CHUNK, flat.size - start)]
        xp.minimum(flat[start:start + CHUNK], cap, out=e)
        xp.exp(e, out=e)
        xp.add(e, 1, out=total)
        xp.divide(e, total, out=e)
    return y.reshape(x.shape)


def sigmoid_backward(grad_output: Any, y: Any) -> Any:
    """(1 − y)·y·grad_output, chunk by chunk (Sigmoid.backward's steps)."""
    xp = backend.get_array_module(y)
    g, s = grad_output.reshape(-1), y.reshape(-1)
    gx = xp.empty_like(s)
    for start in _chunks(s.size):
        part = gx[start:start + CHUNK]
        xp.subtract(1, s[start:start + CHUNK], out=part)
        part *= s[start:start + CHUNK]
        part *= g[start:start + CHUNK]
    return gx.reshape(y.shape)


def tanh_backward(grad_output: Any, y: Any) -> Any:
    """(1 − y²)·grad_output, chunk by chunk (Tanh.backward's steps)."""
    xp = backend.get_array_module(y)
    g, t = grad_output.reshape(-1), y.reshape(-1)
    gx = xp.empty_like(t)
    for start in _chunks(t.size):
        part = gx[start:start + CHUNK]
        xp.multiply(t[start:start + CHUNK], t[start:start + CHUNK], out=part)
        xp.subtract(1, part, out=part)
        part *= g[start:start + CHUNK]
    return gx.reshape(y.shape)
