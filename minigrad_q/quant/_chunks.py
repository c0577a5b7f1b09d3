"""A CPU driver for fused elementwise work: run a kernel over cache-sized chunks, on up to 2 threads.

A quantizer's forward or backward on NumPy is a few ufunc calls. Run on whole 16M-element arrays,
each call streams the arrays through memory and every temporary is a fresh allocation that is
page-faulted in again (DESIGN.md, Speed). Run on 64K-element chunks with ``out=`` into per-thread
scratch buffers, the temporaries stay in L2 and only the inputs and outputs touch memory once.
NumPy releases the GIL inside ufunc loops, so two threads over halves of the chunks run in parallel.

    from ._chunks import elementwise

    def kernel(rows, x, y, t):           # views of one chunk, then the scratch buffers
        np.multiply(x, 2.0, out=t)       # (per-row parameters: param[rows, None])
        np.add(t, 1.0, out=y)

    elementwise(kernel, [x, y], scratch=1)

``elementwise(kernel, arrays, row_size=1, scratch=0, scratch_dtype=None)``:
- ``arrays``: C-contiguous NumPy arrays with the same number of elements (any dtypes: inputs and
  the outputs the kernel writes). Each is viewed as a matrix of ``row_size`` columns; a chunk is a
  run of whole rows (about CHUNK elements), and the kernel gets ``(rows, *views, *scratch)``:
  ``rows`` the chunk's row ``slice`` and each view of shape ``(rows in the chunk, row_size)``.
  Per-channel parameters are per-row parameters: lay x out as (outer, C, inner), take
  ``row_size = inner`` and give row r the parameter of channel r % C.
- ``scratch``: that many buffers of the views' shape (``scratch_dtype``, default the first array's
  dtype), or one buffer per dtype in a sequence of dtypes; allocated once per thread and reused
  for every chunk; the kernel may overwrite them.
- Returns the kernel's return values in chunk order (for reductions: sum them in that order, the
  result does not depend on the number of threads).
The kernel must only write its own chunk (outputs and scratch). Chunks go to THREADS threads
(None: 2 where the machine has 2 cores and the arrays hold at least PARALLEL_MIN elements), each
taking a contiguous half of the chunks; this thread does the first half.
On CuPy, callers use ``backend.elementwise_kernel`` (one fused kernel) instead.

``Channels(shape, axis)`` does the per-channel bookkeeping: its ``row_size`` is the one to pass,
``prepare(value, dtype)`` turns a scale / zero point (number, or array of 1 or C elements) into
what ``at(prepared, rows)`` hands the kernel for one chunk (a scalar, or a view that broadcasts
against the chunk's views), and ``partial_sum(view)`` / ``total(partials)`` reduce a chunk and
then all chunks to one value per channel (shape (C,); () per-tensor), in float64.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import math
from collections.abc import Callable, Sequence
from typing import Any

from .. import backend
from ..ops.workers import usable_cores

__all__ = ["elementwise", "contiguous", "Channels", "CHUNK", "THREADS", "PARALLEL_MIN"]

CHUNK = 1 << 16  # elements per chunk: 256 KiB of float32, a few arrays of it fit in L2
THREADS: int | None = None  # None: 2 threads where there are 2 cores and the work is large
PARALLEL_MIN = 1 << 20  # fewer elements than this stay on the calling thread
MAX_THREADS = 2

_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _thread_count(size: int, chunks: int) -> int:
    if THREADS is not None:
        return max(1, min(THREADS, chunks))
    if size < PARALLEL_MIN:
        return 1
    return max(1, min(MAX_THREADS, usable_cores(), chunks))


def _worker_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(MAX_THREADS - 1, thread_name_prefix="minigrad_q-chunks")
    return _pool


def elementwise(kernel: Callable[..., Any], arrays: Sequence[Any], row_size: int = 1, scratch: int | Sequence[Any] = 0,
                scratch_dtype: Any = None) -> list[Any]:
    """Run ``kernel(rows, *views, *scratch)`` over cache-sized chunks of rows (see the module docstring)."""
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
    step = max(1, CHUNK // row_size)
    starts = list(range(0, rows, step))
    dtype = arrays[0].dtype if scratch_dtype is None else scratch_dtype
    scratch_dtypes = [dtype] * scratch if isinstance(scratch, int) else list(scratch)
    xp = backend.array_module("cpu")

    def work(first: int, last: int) -> list[Any]:
        buffers = [xp.empty((min(step, rows), row_size), dtype=d) for d in scratch_dtypes]
        results = []
        for start in starts[first:last]:
            stop = min(start + step, rows)
            n = stop - start
            rows_slice = slice(start, stop)
            results.append(kernel(rows_slice, *[m[rows_slice] for m in matrices], *[b[:n] for b in buffers]))
        return results

    threads = _thread_count(size, len(starts))
    if threads == 1:
        return work(0, len(starts))
    bounds = [len(starts) * t // threads for t in range(threads + 1)]
    futures = [_worker_pool().submit(contextvars.copy_context().run, work, bounds[t], bounds[t + 1])
               for t in range(1, threads)]  # in this thread's context: NumPy's errstate holds there too
    results = work(bounds[0], bounds[1])
    for future in futures:
        results.extend(future.result())
    return results


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
        xp = backend.array_module("cpu")
        return xp.tile(value.reshape(-1), self.outer).reshape(-1, 1)

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
        xp = backend.array_module("cpu")
        if not partials:
            return xp.zeros(() if self.axis is None else (self.channels,), dtype=backend.float64)
        if self.axis is None:
            return xp.asarray(math.fsum(float(p) for p in partials))
        if self.by_column:
            return xp.sum(partials, axis=0)
        return xp.concatenate(partials).reshape(self.outer, self.channels).sum(axis=0)
