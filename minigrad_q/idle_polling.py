"""``poll_idle_cpus()``: idle CPUs poll instead of halting while a block runs (Linux; root).

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
from typing import BinaryIO

PM_QOS_FILE = "/dev/cpu_dma_latency"


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
