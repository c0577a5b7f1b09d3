"""What the benchmarks run on: the machine's description and its own limits (GEMM rate, copy bandwidth), and
the pages that name it (``cpu_page``; ``page_parser`` and ``print_page`` for the benchmark scripts)."""

from __future__ import annotations

import argparse
import os
import platform
import re
from typing import Any

from .. import backend
from ..storage import write_atomic
from .timing import synchronizer, time_median

GEMM_SIZE = 1024
COPY_ELEMENTS = 1 << 26  # float32: 256 MiB, far beyond any cache


def machine_limits(device: str = "cpu", repeat: int = 5) -> dict[str, Any]:
    """float32 GEMM GFLOP/s (GEMM_SIZE²) and memory copy GB/s, measured through the backend."""
    xp = backend.array_module(device)
    sync = synchronizer(device)
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


def cpu_page(cpu: str) -> str:
    """The name of a CPU type's page under docs/benchmarks/: "Intel(R) Xeon(R) Processor" -> "intel-xeon".
    Speed ratios differ between CPU types, so each type seen keeps a page of its own."""
    words = re.sub(r"\((r|tm)\)|\b(processor|cpu)\b|@.*", " ", cpu.lower())
    return "-".join(re.findall(r"[a-z0-9]+", words)) or "unknown-cpu"


def page_parser(docstring: str) -> argparse.ArgumentParser:
    """A benchmark script's command line: its docstring's first paragraph, and --markdown for print_page."""
    parser = argparse.ArgumentParser(description=docstring.split("\n\n")[0])
    parser.add_argument("--markdown", help="also write the table, with the machine, to this file")
    return parser


def print_page(lines: list[str], markdown: str | None) -> None:
    """Print a benchmark script's page and, where `markdown` names a file, write it there (atomically)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if markdown:
        write_atomic(markdown, text.encode("utf-8"))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_report() -> tuple[list[str], str]:
    """(["cuda:0 (NVIDIA H100)", ...], reason there are none or "")."""
    if backend.versions()["cupy"] == "not installed":
        return [], "CuPy not installed (pip install -e \".[cuda12]\")"
    if not backend.cuda_is_available():
        return [], "no GPU found"
    cupy = backend.array_module("cuda:0")
    gpus = []
    for index in range(backend.cuda_device_count()):
        name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
        gpus.append(f"cuda:{index} ({name.decode() if isinstance(name, bytes) else name})")
    return gpus, ""


def thread_report() -> str:
    """Thread pools of the native libraries, when threadpoolctl is installed."""
    try:
        import threadpoolctl
    except ImportError:
        return "not known (threadpoolctl not installed)"
    pools = threadpoolctl.threadpool_info()
    if not pools:
        return "no native thread pools loaded"
    return ", ".join(f"{pool['internal_api']} {pool['num_threads']}" for pool in pools)


def describe_machine(device: str = "cpu") -> dict[str, Any]:
    try:
        import torch

        torch_version: str | None = torch.__version__
    except ImportError:
        torch_version = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
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
