"""Argument checks shared by the layers."""

from __future__ import annotations

from typing import Any


def check_size(layer: str, **sizes: Any) -> None:
    """Each size a non-negative int, else a ValueError naming the layer and the argument."""
    for name, size in sizes.items():
        if not _is_int(size) or size < 0:
            raise ValueError(f"{layer}: {name} must be a non-negative integer, got {size!r}")


def pair(layer: str, name: str, value: Any) -> tuple[int, int]:
    """(value, value) for an int, the pair itself for a pair of ints."""
    if _is_int(value):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return (value[0], value[1])
    raise ValueError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
