"""What every command shares: UsageError, a mistake in how a command was called; ``check_at_least``,
the check of every count and seed option (before any work); and ``poll_idle_if``, for --poll-idle."""

from __future__ import annotations

import contextlib
from typing import Any

from ..idle_polling import poll_idle_cpus


class UsageError(Exception):
    """A mistake in how the command was called; ``main`` prints it as one line and exits with code 2."""


def check_at_least(command: str, options: dict[str, Any], low: int) -> None:
    """UsageError unless every given option (name -> value; None: not given) is an integer >= `low`."""
    for name, value in options.items():
        if value is not None and value < low:
            raise UsageError(f"{command}: {name} must be at least {low}, got {value}")


def poll_idle_if(wanted: bool, command: str) -> contextlib.ExitStack:
    """A context holding poll_idle_cpus() open where `wanted` (--poll-idle); opened now, so that a refused
    request is the command's UsageError before any work."""
    stack = contextlib.ExitStack()
    if wanted:
        try:
            stack.enter_context(poll_idle_cpus())
        except RuntimeError as error:
            raise UsageError(f"{command}: {error}") from None
    return stack
