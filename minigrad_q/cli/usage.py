"""What every command shares: UsageError, a mistake in how a command was called, and ``check_at_least``,
the check of every count and seed option (before any work)."""

from __future__ import annotations

from typing import Any


class UsageError(Exception):
    """A mistake in how the command was called; ``main`` prints it as one line and exits with code 2."""


def check_at_least(command: str, options: dict[str, Any], low: int) -> None:
    """UsageError unless every given option (name -> value; None: not given) is an integer >= `low`."""
    for name, value in options.items():
        if value is not None and value < low:
            raise UsageError(f"{command}: {name} must be at least {low}, got {value}")
