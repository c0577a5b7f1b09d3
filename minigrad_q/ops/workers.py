"""Worker threads for chunked array work: the batch chunks of conv2d's and max_pool2d's fused paths
(ops/_conv_plan.py, ops/_pool_plan.py) and the quantizers' chunked CPU kernels (quant/_fused_cpu.py).

NumPy releases the GIL inside its loops and GEMMs, so T threads that each take every T-th chunk of
cache-resident work (equal_chunks splits it) run in parallel. While work that calls BLAS runs, BLAS
is held to one thread: OpenBLAS's own threads would compete with the workers for the same cores
(measurements: docs/benchmarks.md, "Notes: conv2d and max_pool2d"). Chunks go to workers by a
fixed rule and results come back in worker order, so sums of partial results are reproducible.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_size = 0
_blas: list[Any] | None = None
_local: list[Any] | None = None
_hold = threading.Lock()
_holders = 0  # run_in_workers calls with BLAS work open, in all threads
_outside: list[int] = []  # each BLAS's thread count before the first of them opened


def blas_controllers() -> list[Any]:
    """threadpoolctl's handles on the loaded BLAS libraries ([] without threadpoolctl)."""
    global _blas
    if _blas is None:
        try:
            import threadpoolctl

            _blas = list(threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # noqa: BLE001  (missing or unable to inspect this process: run on one thread)
            _blas = []
    return _blas


def blas_threads() -> int:
    """Threads the BLAS uses (1 when threadpoolctl cannot tell); while run_in_workers holds it at one
    thread, the count from before."""
    with _hold:
        counts = list(_outside) if _holders else [c.get_num_threads() for c in blas_controllers()]
    return max(counts or [1])


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def equal_chunks(n: int, most: int, threads: int) -> tuple[list[tuple[int, int]], int]:
    """(chunks, workers): n items in chunks of at most `most` (>= 1), as many for each of `workers`
    (<= threads) threads, the chunks equal give or take one item; no chunks for n = 0."""
    count = -(-n // max(1, most))
    workers = max(1, min(threads, count))
    count = min(n, -(-count // workers) * workers)
    bounds = [i * n // max(1, count) for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:])), workers


def _local_setters() -> list[tuple[Any, Callable[[int], int]]]:
    """(controller, its openblas_set_num_threads_local) for each loaded OpenBLAS that has it (0.3.27 on).
    Measured with scipy-openblas 0.3.31: it sets the calling thread's BLAS threads, and also what every
    thread's get_num_threads reads; openblas_set_num_threads takes effect only from the main thread."""
    global _local
    if _local is None:
        _local = []
        for controller in blas_controllers():
            setter = getattr(getattr(controller, "dynlib", None), "openblas_set_num_threads_local", None)
            if setter is not None:
                setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
                _local.append((controller, setter))
    return _local


def _one_blas_thread_here() -> None:
    for _, setter in _local_setters():
        setter(1)


@contextlib.contextmanager
def _blas_held_at_one() -> Iterator[None]:
    """BLAS on one thread while any run_in_workers with BLAS work is open, in any thread: the first to
    open records each BLAS's thread count, and the last to close sets it back (process-wide from the
    main thread, for the closing thread from others, which is also what every thread then reads), so
    that open calls in other threads neither see 1 in blas_threads() nor restore each other's 1."""
    global _holders, _outside
    controllers = blas_controllers()
    with _hold:
        if _holders == 0:
            _outside = [c.get_num_threads() for c in controllers]
            for c, count in zip(controllers, _outside):
                if count != 1:
                    c.set_num_threads(1)
        _holders += 1
    try:
        _one_blas_thread_here()
        yield
    finally:
        with _hold:
            _holders -= 1
            if _holders == 0:
                for c, count in zip(controllers, _outside):
                    if count != 1:
                        c.set_num_threads(count)
                counts = {id(c): count for c, count in zip(controllers, _outside)}
                for c, setter in _local_setters():
                    setter(counts[id(c)])


def _on_one_blas_thread(work: Callable[[list[int]], Any], chunks: list[int]) -> Any:
    _one_blas_thread_here()
    return work(chunks)


def run_in_workers(work: Callable[[list[int]], Any], chunks: int, workers: int, blas: bool = True) -> list[Any]:
    """[work(chunk indices of worker w) for w in range(workers)]: worker w takes chunks w, w + T, ...;
    worker 0 is the calling thread. When the work calls BLAS (`blas`), BLAS runs single-threaded
    meanwhile in each worker, also with one worker: set process-wide (which takes effect when the main
    thread calls, and makes the per-thread settings cheap no-ops there: OpenBLAS otherwise adjusts its
    thread pool at each one, which made conv2d 1.6x slower), and per thread where OpenBLAS allows it (so
    that the result does not depend on the calling thread); see ``_blas_held_at_one`` for calls from
    several threads at once."""
    if not blas:
        return _run(work, chunks, workers, lambda task, indices: task(indices))
    with _blas_held_at_one():
        return _run(work, chunks, workers, _on_one_blas_thread)


def _run(work: Callable[[list[int]], Any], chunks: int, workers: int,
         run: Callable[[Callable[[list[int]], Any], list[int]], Any]) -> list[Any]:
    """run_in_workers' work on the calling thread and workers - 1 pool threads, each through `run`."""
    if workers <= 1:
        return [work(list(range(chunks)))]
    global _pool, _pool_size
    if _pool is None or _pool_size < workers - 1:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = concurrent.futures.ThreadPoolExecutor(workers - 1, thread_name_prefix="minigrad_q-worker")
        _pool_size = workers - 1
    # each worker runs in a copy of this thread's context: NumPy's errstate, for one, holds there too
    futures = [_pool.submit(contextvars.copy_context().run, run, work, list(range(w, chunks, workers)))
               for w in range(1, workers)]
    try:
        mine = work(list(range(0, chunks, workers)))
    finally:  # the others finish before their buffers or the BLAS setting can change under them
        concurrent.futures.wait(futures)
    return [mine] + [f.result() for f in futures]
