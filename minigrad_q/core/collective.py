"""Reductions over the processes of a data-parallel job, for state that is computed from the data each
process sees: quantization observers' min/max, LSQ's initial step, synchronised BatchNorm statistics.

In one process every function returns its input. ``minigrad_q.distributed.init()`` installs its
communicator with ``set_group``; then ``all_sum(a)`` is the sum of `a` over the processes (and
``all_min`` / ``all_max`` alike), the same array on every process, so that each process computes the
state the whole batch gives, as one process given the whole batch would.
"""

from __future__ import annotations

from typing import Any, Protocol


class Group(Protocol):
    """What the reductions need from a communicator: an all-reduce that returns a new array."""

    size: int

    def allreduce(self, array: Any, op: str) -> Any: ...

    def allreduce_count(self, count: int) -> int: ...


_group: Group | None = None


def set_group(group: Group | None) -> None:
    """Reduce over `group` from now on (None: one process again)."""
    global _group
    _group = group


def group() -> Group | None:
    return _group


def _reduce(array: Any, op: str) -> Any:
    if _group is None or _group.size == 1:
        return array
    return _group.allreduce(array, op)


def all_sum(array: Any) -> Any:
    """The elementwise sum of `array` over the processes (a new array; `array` itself is left alone)."""
    return _reduce(array, "sum")


def all_count(count: int) -> int:
    """The sum of a Python int over the processes (how many items all of them hold)."""
    if _group is None or _group.size == 1:
        return count
    return _group.allreduce_count(count)


def all_min(array: Any) -> Any:
    return _reduce(array, "min")


def all_max(array: Any) -> Any:
    return _reduce(array, "max")
