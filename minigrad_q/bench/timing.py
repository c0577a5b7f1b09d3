"""Timing for the benchmarks: medians of repeats, and alternating rounds against PyTorch.

``time_median`` runs one function like ``timeit``; ``time_rounds`` / ``time_both`` let minigrad_q and
PyTorch take turns, so that a shared machine's drift does not land in the ratio.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import backend
from ..ops import workers

MIN_REPEAT_SECONDS = 0.05
WARMUP_S = 0.2  # each engine's back-to-back calls before its timed ones, in every round (see time_rounds)


def synchronizer(device: str) -> Callable[[], None]:
    if device == "cpu":
        return lambda: None
    stream = backend.array_module(device).cuda.get_current_stream()
    return stream.synchronize


def torch_or_reason(device: str) -> tuple[Any, str]:
    try:
        import torch
    except ImportError:
        return None, "PyTorch not installed"
    if device != "cpu" and not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} has no CUDA here"
    return torch, ""


def time_median(fn: Callable[[], Any], repeat: int, sync: Callable[[], None] = lambda: None) -> tuple[float, int, float]:
    """(median seconds per call, calls per repeat, spread) of `fn` after one warm-up call.

    spread = (slowest - fastest repeat) / median: how noisy the machine was.
    """
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    number = max(1, min(1000, int(MIN_REPEAT_SECONDS / max(first, 1e-9))))
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            sync()
            times.append((time.perf_counter() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    median = statistics.median(times)
    return median, number, (max(times) - min(times)) / median


def blas_threads() -> int:
    """Threads NumPy's BLAS uses (threadpoolctl), else the usable cores."""
    return workers.blas_threads() if workers.blas_controllers() else workers.usable_cores()


@contextlib.contextmanager
def torch_threads(torch: Any, count: int) -> Iterator[None]:
    """torch.set_num_threads(count) inside the block, torch's previous setting after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _time_calls(fn: Callable[[], Any], sync: Callable[[], None], count: int, warmup: float) -> list[float]:
    """Seconds of each of `count` calls of fn, after calling it back to back for `warmup` seconds (at least
    once), the garbage collector off."""
    end = time.perf_counter() + warmup
    fn()
    sync()
    while time.perf_counter() < end:
        fn()
        sync()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    times = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def time_rounds(engines: dict[str, tuple[Callable[[], Any], Callable[[], None], bool]], repeat: int, warmup: float,
                torch: Any = None, threads: int = 1) -> dict[str, list[list[float]]]:
    """Each engine's call times, in min(5, repeat) rounds of ceil(repeat / rounds) calls each.

    engines: name -> (step, sync, runs in torch); within a round they take turns in the dict's order,
    each running back to back for `warmup` seconds before its timed calls, so that the previous engine's
    spinning threads have stopped and its own worker threads are awake: training runs steps back to back."""
    rounds = min(5, repeat)
    per_round = -(-repeat // rounds)
    times: dict[str, list[list[float]]] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, (step, sync, in_torch) in engines.items():
            with torch_threads(torch, threads) if in_torch else contextlib.nullcontext():
                times[name].append(_time_calls(step, sync, per_round, warmup))
    return times


def time_both(ours: Callable[[], Any], sync: Callable[[], None], theirs: Callable[[], Any] | None,
              their_sync: Callable[[], None], torch: Any, threads: int, repeat: int) -> dict[str, Any]:
    """Time `ours` and (when given) `theirs` in alternating rounds (``time_rounds``), so both see the
    same machine: a shared machine's speed drifts over seconds, and timing one engine after the other
    would put that drift into the ratio. Times are the medians over rounds of each round's median, the
    ratio the median of the rounds' ratios."""
    engines = {"minigrad": (ours, sync, False)}
    if theirs is not None:
        engines["torch"] = (theirs, their_sync, True)
    times = time_rounds(engines, repeat, WARMUP_S, torch, threads)
    medians = {name: [statistics.median(round_times) for round_times in rounds] for name, rounds in times.items()}
    ours_times = medians["minigrad"]
    timing: dict[str, Any] = {"minigrad_s": statistics.median(ours_times), "rounds": len(ours_times),
                              "repeats_per_round": len(times["minigrad"][0])}
    timing["minigrad_spread"] = (max(ours_times) - min(ours_times)) / timing["minigrad_s"]
    if "torch" in medians:
        their_times = medians["torch"]
        timing["torch_s"] = statistics.median(their_times)
        timing["torch_spread"] = (max(their_times) - min(their_times)) / timing["torch_s"]
        timing["ratio"] = statistics.median(a / b for a, b in zip(ours_times, their_times))
    return timing


def ms(seconds: float | None, decimals: int = 2) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.{decimals}f} ms"
