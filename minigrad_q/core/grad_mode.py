"""Grad mode, anomaly mode and the recorder: the switches that Function.apply reads on every call.

Each thread has its own switches, as torch's grad mode is per thread: one thread's ``no_grad`` leaves
another thread's autograd alone, and a new thread starts with grad mode on, anomaly mode off and no
recorder.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


class _Switches(threading.local):
    def __init__(self) -> None:
        self.grad_enabled = True
        self.anomaly = False
        # The active recorder of minigrad_q.inspect.record(), or None (recording off, the default).
        # Function.apply, the engine's backward loop and Module.__call__ each check it once.
        self.recorder: Any = None


state = _Switches()


def is_grad_enabled() -> bool:
    return state.grad_enabled


@contextlib.contextmanager
def set_grad_enabled(mode: bool) -> Iterator[None]:
    previous, state.grad_enabled = state.grad_enabled, bool(mode)
    try:
        yield
    finally:
        state.grad_enabled = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Inside, ops record no graph: outputs have requires_grad=False, nothing is saved."""
    return set_grad_enabled(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    return set_grad_enabled(True)


def is_anomaly_enabled() -> bool:
    return state.anomaly


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Check every op output and every gradient for NaN/inf.

    The error names the op, its input shapes and the line of user code that
    created it. Costs a full pass over each array: use it to debug, not to train.
    """
    previous, state.anomaly = state.anomaly, True
    try:
        yield
    finally:
        state.anomaly = previous
