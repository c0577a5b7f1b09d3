"""``minigrad-q bench``: speed against PyTorch and against the machine's own limits.

A program, not a test. Each mode (``--overhead`` here; ``--conv``,
``--lenet``, ``--toycnn`` and ``--rss`` in bench_cnn.py) adds one key to the
results dict, which ``format_results`` prints, ``write_json`` saves and
``write_markdown`` turns into docs/benchmarks.md.

Overhead mode: forward + backward of a chain of ``CHAIN_OPS`` (100)
elementwise ops that look like a small net (scale by a weight, add a bias,
tanh, scale, sigmoid, repeated), then ``.sum().backward()``; once on tiny
tensors (8 elements, where Python overhead is everything) and once on 1M
float32 elements (where memory traffic is everything), and the identical
chain in PyTorch in the same run when it is importable.

Timing: the median over ``repeat`` timed repeats after one warm-up run; a
repeat runs the chain ``number`` times (enough for ~50 ms) and divides, with
the garbage collector off, as ``timeit`` does.
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from . import __version__, backend

CHAIN_OPS = 100
CHAIN_CYCLE = ("h * w", "h + 0.5", "tanh(h)", "h * 0.9", "sigmoid(h)")
TINY_SIZE = 8
TARGETS = {"tiny": 3.0, "large": 1.3}  # minigrad time / PyTorch time we aim to stay under
MIN_REPEAT_SECONDS = 0.05
GEMM_SIZE = 1024
COPY_ELEMENTS = 1 << 26  # float32: 256 MiB, far beyond any cache


# ---------------------------------------------------------------- timing
def _synchronizer(device: str) -> Callable[[], None]:
    if device == "cpu":
        return lambda: None
    stream = backend.array_module(device).cuda.get_current_stream()
    return stream.synchronize


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


# ---------------------------------------------------------------- the chain
def chain(h: Any, w: Any) -> Any:
    """CHAIN_OPS elementwise ops, cycling through CHAIN_CYCLE; works on mq and torch tensors alike."""
    for i in range(CHAIN_OPS):
        step = i % len(CHAIN_CYCLE)
        if step == 0:
            h = h * w
        elif step == 1:
            h = h + 0.5
        elif step == 2:
            h = h.tanh()
        elif step == 3:
            h = h * 0.9
        else:
            h = h.sigmoid()
    return h


def _minigrad_step(size: int, device: str) -> tuple[Callable[[], None], Any, Any]:
    import minigrad_q as mq

    uniform = backend.generator(device).random
    x = mq.tensor(uniform(size, dtype=backend.float32) * 2 - 1, requires_grad=True)  # in [-1, 1)
    w = mq.tensor(uniform(size, dtype=backend.float32) + 0.5, requires_grad=True)  # in [0.5, 1.5)

    def step() -> None:
        x.grad = w.grad = None
        chain(x, w).sum().backward()

    return step, x, w


def _torch_step(torch: Any, x: Any, w: Any, device: str) -> tuple[Callable[[], None], tuple[Any, Any]]:
    tx = torch.from_numpy(backend.asnumpy(x.data).copy()).to(device).requires_grad_()
    tw = torch.from_numpy(backend.asnumpy(w.data).copy()).to(device).requires_grad_()

    def step() -> None:
        tx.grad = tw.grad = None
        chain(tx, tw).sum().backward()

    return step, (tx, tw)


def _torch_or_reason(device: str) -> tuple[Any, str]:
    try:
        import torch
    except ImportError:
        return None, "PyTorch not installed"
    if device != "cpu" and not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} has no CUDA here"
    return torch, ""


def run_overhead(device: str = "cpu", repeat: int = 7, threads: int = 1, large_size: int = 1_000_000) -> dict[str, Any]:
    """Time the chain on tiny and large tensors, in minigrad_q and (when present) PyTorch."""
    torch, no_torch = _torch_or_reason(device)
    torch_device = device if device == "cpu" else f"cuda:{device.split(':')[1]}"
    sync = _synchronizer(device)
    torch_sync = (lambda: None) if torch is None or device == "cpu" else torch.cuda.synchronize
    default_threads = torch.get_num_threads() if torch is not None else None
    cases = []
    for name, size in (("tiny", TINY_SIZE), ("large", large_size)):
        step, x, w = _minigrad_step(size, device)
        seconds, number, spread = time_median(step, repeat, sync)
        case: dict[str, Any] = {
            "name": name, "elements": size, "minigrad_s": seconds, "runs_per_repeat": number, "minigrad_spread": spread,
            "minigrad_per_op_us": seconds / CHAIN_OPS * 1e6, "target_ratio": TARGETS[name],
        }
        if torch is not None:
            torch_step, torch_leaves = _torch_step(torch, x, w, torch_device)
            try:
                torch.set_num_threads(default_threads)
                case["torch_default_threads_s"], _, _ = time_median(torch_step, repeat, torch_sync)
                torch.set_num_threads(threads)
                case["torch_s"], _, case["torch_spread"] = time_median(torch_step, repeat, torch_sync)
            finally:
                torch.set_num_threads(default_threads)
            case["torch_per_op_us"] = case["torch_s"] / CHAIN_OPS * 1e6
            case["ratio"] = seconds / case["torch_s"]
            case["ratio_default_threads"] = seconds / case["torch_default_threads_s"]
            case["grad_relative_difference"] = max(
                _relative_difference(ours.grad.data, theirs.grad.cpu().numpy()) for ours, theirs in zip((x, w), torch_leaves)
            )
        cases.append(case)
    return {
        "chain_ops": CHAIN_OPS,
        "chain": ", ".join(CHAIN_CYCLE) + f" repeated to {CHAIN_OPS} ops, then .sum().backward()",
        "dtype": "float32",
        "torch_threads": threads if torch is not None else None,
        "torch_default_threads": default_threads,
        "torch_missing": no_torch or None,
        "cases": cases,
    }


def _relative_difference(ours: Any, theirs: Any) -> float:
    """max |ours - theirs| / max |theirs|: the chain's gradients shrink to ~1e-24 for x, so absolute is meaningless."""
    xp = backend.array_module("cpu")
    return float(xp.abs(backend.asnumpy(ours) - theirs).max() / xp.abs(theirs).max())


# ---------------------------------------------------------------- the machine
def machine_limits(device: str = "cpu", repeat: int = 5) -> dict[str, Any]:
    """float32 GEMM GFLOP/s (GEMM_SIZE²) and memory copy GB/s, measured through the backend."""
    xp = backend.array_module(device)
    sync = _synchronizer(device)
    gen = backend.generator(device)
    a = gen.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=backend.float32)
    b = gen.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=backend.float32)
    c = xp.empty_like(a)
    gemm_s, _, _ = time_median(lambda: xp.matmul(a, b, out=c), repeat, sync)
    src = xp.ones(COPY_ELEMENTS, dtype=backend.float32)
    dst = xp.zeros_like(src)  # touched once, so the timed copies pay no page faults
    copy_s, _, _ = time_median(lambda: xp.copyto(dst, src), repeat, sync)
    return {
        "gemm_size": GEMM_SIZE,
        "gemm_gflops": 2 * GEMM_SIZE**3 / gemm_s / 1e9,
        "copy_bytes": int(src.nbytes),
        "copy_gbps": 2 * src.nbytes / copy_s / 1e9,
        "copy_counts": "bytes read + bytes written",
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: str = "cpu") -> dict[str, Any]:
    from .cli import gpu_report, thread_report

    try:
        import torch

        torch_version: str | None = torch.__version__
    except ImportError:
        torch_version = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "architecture": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": backend.versions()["numpy"],
        "blas": backend.blas_info(),
        "thread_pools": thread_report(),
        "torch": torch_version,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
        "keeps_freed_host_memory": backend.keeps_freed_host_memory,
        "gpus": gpu_report()[0] if device != "cpu" else [],
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


# ---------------------------------------------------------------- running and reporting
MODES: dict[str, Callable[..., dict[str, Any]]] = {"overhead": run_overhead}


def run(modes: list[str], device: str = "cpu", repeat: int = 7, threads: int | None = None, large_size: int = 1_000_000,
        rss_steps: int = 200) -> dict[str, Any]:
    """Every benchmark in `modes`, plus the machine's description and limits.

    `threads`: PyTorch's intra-op threads; by default 1 for ``overhead`` (NumPy's
    elementwise work is single-threaded) and NumPy's BLAS thread count for the CNN modes.
    """
    from . import bench_cnn

    results: dict[str, Any] = {
        "minigrad_q": __version__,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": device,
        "repeat": repeat,
        "machine": describe_machine(device),
        "limits": machine_limits(device, repeat=min(repeat, 5)),
    }
    for mode in modes:
        if mode in MODES:
            results[mode] = MODES[mode](device=device, repeat=repeat, threads=threads or 1, large_size=large_size)
        else:
            results[mode] = bench_cnn.MODES[mode](device=device, repeat=repeat, threads=threads,
                                                  gemm_gflops=results["limits"]["gemm_gflops"], rss_steps=rss_steps)
    return results


def write_json(results: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
        file.write("\n")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f} ms"


def _ratio(case: dict[str, Any], key: str) -> str:
    return "-" if key not in case else f"{case[key]:.2f}x"


def _verdict(case: dict[str, Any]) -> str:
    if "ratio" not in case:
        return f"<= {case['target_ratio']}x (no torch)"
    met = "met" if case["ratio"] <= case["target_ratio"] else "MISSED"
    return f"<= {case['target_ratio']}x {met}"


def _overhead_rows(overhead: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "case", "elements", "minigrad_q", "torch (matched threads)", "ratio", "target",
        "torch (default threads)", "ratio", "minigrad_q per op",
    ]
    rows = []
    for case in overhead["cases"]:
        label = "tiny" if case["name"] == "tiny" else f"{case['elements'] / 1e6:g}M"
        rows.append([
            label, str(case["elements"]), _ms(case["minigrad_s"]), _ms(case.get("torch_s")), _ratio(case, "ratio"),
            _verdict(case), _ms(case.get("torch_default_threads_s")), _ratio(case, "ratio_default_threads"),
            f"{case['minigrad_per_op_us']:.2f} us",
        ])
    return header, rows


def _overhead_notes(overhead: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    large = overhead["cases"][-1]
    copy_s = 2 * 4 * large["elements"] / (limits["copy_gbps"] * 1e9)  # float32: read + write 4 bytes each
    notes = [
        f"chain: {overhead['chain']} ({overhead['dtype']}); times are per forward+backward run, median of the repeats",
        f"per op = run time / {overhead['chain_ops']} chain ops (sum() and backward()'s own work included, "
        "so an upper bound on one op's forward+backward cost)",
        "ratio = minigrad_q time / torch time (lower is better); run-to-run spread (slowest - fastest repeat) / median: "
        + ", ".join(
            f"{case['name']} {case['minigrad_spread']:.0%}"
            + (f" (torch {case['torch_spread']:.0%})" if "torch_spread" in case else "")
            for case in overhead["cases"]
        ),
        f"at {large['elements']} elements one op (forward+backward) costs as much as "
        f"{large['minigrad_s'] / overhead['chain_ops'] / copy_s:.1f} copies of the array at the measured copy bandwidth",
    ]
    if overhead["torch_missing"]:
        notes.append(f"no PyTorch comparison: {overhead['torch_missing']}")
    else:
        notes.append(
            f"matched threads: torch.set_num_threads({overhead['torch_threads']}) (numpy elementwise is single-threaded); "
            f"default threads: torch's own default, {overhead['torch_default_threads']}"
        )
        worst = max(case.get("grad_relative_difference", 0.0) for case in overhead["cases"])
        notes.append(f"gradients of x and w agree with torch's to {worst:.1e} (max abs difference / max abs gradient)")
    return notes


def format_results(results: dict[str, Any]) -> str:
    from .text_table import format_table

    machine, limits = results["machine"], results["limits"]
    lines = [
        f"machine: {machine['cpu']}, {machine['usable_cores']} usable cores; numpy {machine['numpy']} ({machine['blas']}); "
        f"torch {machine['torch'] or 'not installed'}; OPENBLAS_CORETYPE={machine['OPENBLAS_CORETYPE'] or 'unset'}",
        f"limits on {results['device']}: float32 GEMM {limits['gemm_size']}^2 {limits['gemm_gflops']:.1f} GFLOP/s; "
        f"memory copy {limits['copy_gbps']:.1f} GB/s ({limits['copy_counts']})",
    ]
    if "overhead" in results:
        header, rows = _overhead_rows(results["overhead"])
        lines += ["", "overhead: 100-op elementwise chain, forward + backward", format_table(header, rows)]
        lines += ["  " + note for note in _overhead_notes(results["overhead"], limits)]
    from .bench_cnn import tables

    for _, title, header, rows, notes in tables(results):
        lines += ["", title, format_table(header, rows), *("  " + note for note in notes)]
    return "\n".join(lines)


def write_markdown(results: dict[str, Any]) -> str:
    """docs/benchmarks.md from one run's results."""
    machine, limits = results["machine"], results["limits"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {results['date']} with `minigrad-q bench` (minigrad_q {results['minigrad_q']}, "
        f"device `{results['device']}`, median of {results['repeat']} repeats after a warm-up run).",
        "Regenerate with `minigrad-q bench --overhead --conv --lenet --toycnn --rss --quant --markdown docs/benchmarks.md` "
        "(add `--json PATH` for raw numbers).",
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cpu']} ({machine['architecture']}), {machine['cores']} cores ({machine['usable_cores']} usable)",
        f"- Platform: {machine['platform']}, Python {machine['python']}",
        f"- NumPy {machine['numpy']}, BLAS: {machine['blas']}; thread pools: {machine['thread_pools']}",
        f"- PyTorch: {machine['torch'] or 'not installed'}",
        f"- OPENBLAS_CORETYPE: {machine['OPENBLAS_CORETYPE'] or 'unset'}",
        f"- OPENBLAS_THREAD_TIMEOUT: {machine.get('OPENBLAS_THREAD_TIMEOUT') or 'unset'} (minigrad_q sets 4 where it is "
        "unset, so that idle BLAS threads sleep at once)",
        "- host memory: " + (
            "freed arrays up to 32 MiB stay in glibc's heap (minigrad_q's default at import; "
            "MINIGRAD_Q_KEEP_FREED_MEMORY=0 turns it off)"
            if machine.get("keeps_freed_host_memory") else "glibc's defaults"
        ),
        f"- load average (1 min) when the run started: {machine['load_average_1min']:.2f}"
        " (other work on the machine slows every number; ratios suffer less)",
    ]
    if machine["gpus"]:
        lines.append(f"- GPUs: {', '.join(machine['gpus'])}")
    lines += [
        f"- float32 GEMM ({limits['gemm_size']}x{limits['gemm_size']}): {limits['gemm_gflops']:.1f} GFLOP/s",
        f"- memory copy ({limits['copy_bytes'] / 2**20:.0f} MiB): {limits['copy_gbps']:.1f} GB/s ({limits['copy_counts']})",
    ]
    if "overhead" in results:
        overhead = results["overhead"]
        header, rows = _overhead_rows(overhead)
        lines += [
            "",
            "## Overhead: a 100-op elementwise chain",
            "",
            "`minigrad-q bench --overhead`. Targets: within 3x of PyTorch on tiny tensors "
            "(Python overhead per op), within 1.3x on 1M elements (memory traffic).",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows),
            "",
            *("- " + note for note in _overhead_notes(overhead, limits)),
        ]
    from .bench_cnn import tables

    for mode, title, header, rows, notes in tables(results):
        purpose = "Target: flat after warm-up." if mode == "rss" else "Target: at most 1.5x PyTorch's time (stretch: match it)."
        lines += [
            "", f"## {title[0].upper()}{title[1:]}", "", f"`minigrad-q bench --{mode}`. {purpose}", "",
            "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows), "", *("- " + note for note in notes),
        ]
    return "\n".join(lines) + "\n"
