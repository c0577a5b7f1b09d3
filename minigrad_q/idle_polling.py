"""``poll_idle_cpus()``: idle CPUs poll instead of halting while a block runs (Linux; root); and
``idle_report()``, how this machine's idle CPUs behave, for ``minigrad-q info``.

The fused CPU paths hand batch chunks to worker threads (ops/workers.py) several times per training
step. A worker, or the caller waiting for it, that finds its CPU halted waits for that CPU to wake: on
virtual machines whose idle CPUs halt at once (``guest_halt_poll_ns`` 0), that took 75 us per round trip
instead of 5 us, about 1.2 ms of a 9.4 ms LeNet-5 step (scripts/thread_handoff.py, docs/benchmarks.md).
PyTorch's OpenMP threads spin between parallel regions instead; Python threads cannot spin without
holding the GIL, which the worker needs. Linux's PM QoS interface lets a process ask for the other way:
while it keeps /dev/cpu_dma_latency open with a 32-bit limit of 0 us written to it, idle CPUs only poll.
Idle CPUs then stay busy, so use it on a machine of your own, for the length of a run.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

PM_QOS_FILE = "/dev/cpu_dma_latency"
IDLE_DRIVER_FILE = "/sys/devices/system/cpu/cpuidle/current_driver"
HALT_POLL_FILE = "/sys/module/haltpoll/parameters/guest_halt_poll_ns"  # haltpoll's longest poll before halting


@contextlib.contextmanager
def poll_idle_cpus(path: str | None = None) -> Iterator[BinaryIO]:
    """Within the block, ask Linux to keep idle CPUs polling (a wake-up latency limit of 0 us); yields the
    open request, which the block's end closes, ending it. RuntimeError if the request cannot be made."""
    path = path or PM_QOS_FILE
    try:
        request = open(path, "wb", buffering=0)  # noqa: SIM115  (held open for the block: the request lasts as long)
    except OSError as error:
        raise RuntimeError(f"poll_idle_cpus: cannot open {path} to ask idle CPUs to poll: {error.strerror or error} "
                           "(Linux only, and it takes root)") from None
    with request:
        request.write(struct.pack("=i", 0))
        yield request


def idle_report() -> str:
    """The idle driver and haltpoll's polling limit where Linux shows them, and what that means here."""
    driver, poll = (_read(path) for path in (IDLE_DRIVER_FILE, HALT_POLL_FILE))
    if driver is None:
        return "not shown by this system"
    if poll is None:
        return f"{driver} driver"
    report = f"{driver} driver, guest_halt_poll_ns {poll}"
    if poll == "0":
        report += " (idle CPUs halt at once, so each hand-off to a worker thread waits for one to wake: try --poll-idle)"
    return report


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None
