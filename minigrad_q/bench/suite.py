"""``minigrad-q bench``: speed against PyTorch and against the machine's own limits.

A program, not a test. Each mode (``--overhead`` in overhead.py; ``--conv``, ``--lenet``, ``--toycnn``
and ``--rss`` in cnn.py; ``--quant`` in quant.py) adds one key to the results dict, which
``format_results`` prints, ``write_json`` saves and ``write_markdown`` turns into docs/benchmarks.md.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from .. import __version__
from ..inspect import format_table
from ..storage import write_atomic
from . import cnn, overhead, quant
from .machine import cpu_page, describe_machine, machine_limits

MODES = ("overhead", *cnn.MODES, "quant")


def run(modes: list[str], device: str = "cpu", repeat: int = 7, threads: int | None = None, large_size: int = 1_000_000,
        rss_steps: int = 200, quant_size: int = quant.QUANT_SIZE, idle_cpus_poll: bool = False) -> dict[str, Any]:
    """Every benchmark in `modes` (keys of MODES), plus the machine's description and limits.

    `threads`: PyTorch's intra-op threads; by default 1 for ``overhead`` (NumPy's
    elementwise work is single-threaded) and NumPy's BLAS thread count for the others.
    `idle_cpus_poll`: whether the caller holds poll_idle_cpus() meanwhile, for the machine's description.
    """
    results: dict[str, Any] = {
        "minigrad_q": __version__,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": device,
        "repeat": repeat,
        "machine": {**describe_machine(device), "idle_cpus_poll": idle_cpus_poll},
        "limits": machine_limits(device, repeat=min(repeat, 5)),
    }
    for mode in modes:
        if mode == "overhead":
            results[mode] = overhead.run_overhead(device=device, repeat=repeat, threads=threads or 1, large_size=large_size)
        elif mode == "quant":
            results[mode] = quant.run_quant(device=device, repeat=repeat, threads=threads, size=quant_size)
        else:
            results[mode] = cnn.MODES[mode](device=device, repeat=repeat, threads=threads,
                                            gemm_gflops=results["limits"]["gemm_gflops"], rss_steps=rss_steps)
    return results


def write_json(results: dict[str, Any], path: str) -> None:
    write_atomic(path, (json.dumps(results, indent=2) + "\n").encode("utf-8"))


def format_results(results: dict[str, Any]) -> str:
    machine, limits = results["machine"], results["limits"]
    lines = [
        f"machine: {machine['cpu']}, {machine['usable_cores']} usable cores; numpy {machine['numpy']} ({machine['blas']}); "
        f"torch {machine['torch'] or 'not installed'}; OPENBLAS_CORETYPE={machine['OPENBLAS_CORETYPE'] or 'unset'}"
        + ("; idle CPUs poll (--poll-idle)" if machine.get("idle_cpus_poll") else ""),
        f"limits on {results['device']}: float32 GEMM {limits['gemm_size']}^2 {limits['gemm_gflops']:.1f} GFLOP/s; "
        f"memory copy {limits['copy_gbps']:.1f} GB/s ({limits['copy_counts']})",
    ]
    if "overhead" in results:
        header, rows = overhead.rows(results["overhead"])
        lines += ["", "overhead: 100-op elementwise chain, forward + backward", format_table(header, rows)]
        lines += ["  " + note for note in overhead.notes(results["overhead"], limits)]
    for _, title, header, rows, notes in cnn.tables(results):
        lines += ["", title, format_table(header, rows), *("  " + note for note in notes)]
    return "\n".join(lines) + quant.format_results(results)


def write_markdown(results: dict[str, Any]) -> str:
    """docs/benchmarks.md from one run's results."""
    machine, limits, device = results["machine"], results["limits"], results["device"]
    polled = machine.get("idle_cpus_poll")
    measured = (f"Measured {results['date']} with `minigrad-q bench` (minigrad_q {results['minigrad_q']}, "
                f"device `{device}`, median of {results['repeat']} repeats after a warm-up run).")
    if device == "cpu":
        lines = [
            f"# Benchmarks on {machine['cpu']}",
            "",
            measured,
            "Regenerate with `minigrad-q bench --overhead --conv --lenet --toycnn --rss --quant "
            f"{'--poll-idle ' if polled else ''}--markdown "
            f"docs/benchmarks/{cpu_page(machine['cpu'])}{'-poll-idle' if polled else ''}.md` on this CPU type "
            "(add `--json PATH` for raw numbers); "
            "[benchmarks.md](../benchmarks.md) lists the pages of every CPU type measured.",
        ]
    else:
        gpu = next((name for name in machine["gpus"] if name.startswith(f"{device} ")), device)
        lines = [
            f"# Benchmarks on {gpu}",
            "",
            measured,
            "Regenerate with `bash scripts/gpu_check.sh` on a GPU machine, which writes this page. The target "
            "columns are the CPU pages' targets; [benchmarks.md](benchmarks.md) states the GPU's.",
        ]
    lines += [
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
        "- idle CPUs: " + ("poll (`--poll-idle`, minigrad_q.poll_idle_cpus)" if polled else "as the system sets them"),
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
        header, rows = overhead.rows(results["overhead"])
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
            *("- " + note for note in overhead.notes(results["overhead"], limits)),
        ]
    for mode, title, header, rows, notes in cnn.tables(results):
        purpose = "Target: flat after warm-up." if mode == "rss" else "Target: at most 1.5x PyTorch's time (stretch: match it)."
        lines += [
            "", f"## {title[0].upper()}{title[1:]}", "", f"`minigrad-q bench --{mode}`. {purpose}", "",
            "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows), "", *("- " + note for note in notes),
        ]
    return "\n".join(lines) + "\n" + quant.write_markdown(results)
