"""max_pool2d's fused CPU path (the GPU's: ops/_gpu.py): the steps of MaxPool2d's plain forward and backward (ops/pool.py), run
over chunks of the leading axis (images, or channels unbatched) on worker threads (CPU), in kh·kw
passes over output-sized arrays instead of one stacked array of every window.

    forward   out = x at offset (0, 0) of each window; for each later offset k = i·kw + j:
              greater = x_k > out,  out = max(out, x_k),  argmax = max(argmax, k·greater)
              (k grows with the scan, so the running max of k·[greater] is the first maximum)
    backward  for each offset k: the view of dx at offset k gets grad_output where argmax = k:
              written when no two windows share an element (stride >= kernel), added otherwise;
              dx starts uninitialised where the windows tile the input, zeroed otherwise.

The argmax is int8 (int32 past 128 offsets). Inputs under PARALLEL_MIN_BYTES are one chunk on the
calling thread; larger ones go in chunks of at most CHUNK_BYTES, as many for each of
the BLAS's thread count of workers. ``windows`` is pool.py's Windows: kernel offsets and their views
(dilated, and over a source padded past the input for ceil mode's last windows, alike).
Why these sizes: docs/benchmarks.md, "Notes: conv2d and max_pool2d" and "Notes: ReLU before MaxPool2d,
chunk sizes, BLAS threads across threads".
"""

from __future__ import annotations

from typing import Any

from .. import backend
from .workers import blas_threads, equal_chunks, run_in_workers

CHUNK_BYTES = 2 << 20  # input per chunk
PARALLEL_MIN_BYTES = 2 << 20  # smaller inputs are max-pooled in one piece on the calling thread (CPU)


def forward(fn: Any, source: Any, windows: Any) -> Any:
    """The max of each window of ``source`` (padded with -inf); sets ``fn.plan`` (chunks, workers) and
    saves the offset of each window's first maximum when the input needs a gradient."""
    xp = fn.xp
    out = xp.empty(source.shape[:-2] + windows.out, dtype=source.dtype)
    offsets = len(windows.offsets)
    index = None
    if fn.needs_input_grad[0]:
        index = xp.empty(out.shape, dtype=backend.int8 if offsets <= 128 else backend.int32)
    chunks, workers = fn.plan = _leading_chunks(xp, source)

    def work(indices: list[int]) -> None:
        greater = xp.empty((_largest(chunks),) + out.shape[1:], dtype=backend.bool_)
        for start, stop in (chunks[c] for c in indices):
            part = index[start:stop] if index is not None else None
            _window_max(xp, source[start:stop], windows, out[start:stop], part, greater[: stop - start])

    run_in_workers(work, len(chunks), workers, blas=False)
    fn.save_for_backward(index)
    return out


def backward(fn: Any, grad_output: Any, windows: Any, source_shape: tuple[int, ...]) -> Any:
    """The gradient of the padded input, in the chunks of ``fn.plan``."""
    xp = fn.xp
    (index,) = fn.saved
    chunks, workers = fn.plan
    grad = (xp.empty if windows.tiles(source_shape) else xp.zeros)(source_shape, dtype=grad_output.dtype)

    def work(indices: list[int]) -> None:
        chosen = xp.empty((_largest(chunks),) + index.shape[1:], dtype=backend.bool_)
        for start, stop in (chunks[c] for c in indices):
            _spread_to_max(xp, index[start:stop], grad_output[start:stop], windows, grad[start:stop],
                           chosen[: stop - start])

    run_in_workers(work, len(chunks), workers, blas=False)
    return grad


def _leading_chunks(xp: Any, source: Any) -> tuple[list[tuple[int, int]], int]:
    """Chunks of the leading axis (batch, or channels unbatched) and worker threads for a max pool."""
    if source.shape[0] < 2 or source.nbytes < PARALLEL_MIN_BYTES:
        return [(0, source.shape[0])], 1
    return equal_chunks(source.shape[0], CHUNK_BYTES // max(1, source[0].nbytes), blas_threads())


def _largest(chunks: list[tuple[int, int]]) -> int:
    return max(stop - start for start, stop in chunks)


def _window_max(xp: Any, source: Any, windows: Any, out: Any, index: Any, greater: Any) -> None:
    """out = the max of each window of source; index (if not None) = the offset k = i·kw + j of its first
    maximum: scanning offsets in order, k replaces the kept one where x is strictly greater."""
    (first, *rest) = [windows.view(source, i, j) for i, j in windows.offsets]
    xp.copyto(out, first)
    if index is not None:
        index.fill(0)
    for k, view in enumerate(rest, 1):
        xp.greater(view, out, out=greater)
        xp.maximum(out, view, out=out)
        if index is not None:
            flag = greater.view(backend.int8) if index.dtype == backend.int8 else greater.astype(index.dtype)
            flag *= k  # k grows with the scan: the running max of k·[greater] is the first argmax
            xp.maximum(index, flag, out=index)


def _spread_to_max(xp: Any, index: Any, grad_output: Any, windows: Any, grad: Any, chosen: Any) -> None:
    """grad (zeroed where windows do not tile it) += grad_output at each window's first maximum."""
    for k, (i, j) in enumerate(windows.offsets):
        xp.equal(index, k, out=chosen)
        view = windows.view(grad, i, j)
        if windows.disjoint:
            xp.multiply(grad_output, chosen, out=view)
        else:
            view += grad_output * chosen
