"""``minigrad-q info``: versions, devices, BLAS and thread pools, and what importing minigrad_q changed."""

from __future__ import annotations

import argparse
import platform
import sys
from typing import Any

from .. import __version__, backend
from ..bench import gpu_report, thread_report
from ..idle_polling import idle_report
from ..inspect import format_table


def run(args: argparse.Namespace) -> int:
    versions = backend.versions()
    gpus, why_none = gpu_report()
    rows = [
        ("minigrad_q", __version__),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("numpy", versions["numpy"]),
        ("cupy", versions["cupy"]),
        ("devices", ", ".join(["cpu", *gpus]) + (f"; cuda: {why_none}" if why_none else "")),
        ("BLAS", backend.blas_info()),
        ("threads", thread_report()),
        ("idle CPUs", idle_report()),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("\nwhat importing minigrad_q changed in this process, and how to turn it off:")
    print(format_table(["effect", "on", "off-switch"], [list(effect) for effect in backend.import_effects()]))
    return 0


def add_command(commands: Any) -> None:
    info = commands.add_parser("info", help="versions, devices, BLAS, and what importing minigrad_q changes")
    info.set_defaults(run=run)
