"""Argument checks that every layer shares: ints, flags, dims and (h, w) pairs.

Each check is called where the argument enters, with the name of the op (or layer) and of the
argument, and fails in one style: ``"{op}: {name} must be ..., got {value!r}"``; a TypeError for a
value of the wrong type, a ValueError (IndexError for a dim) for one of the right type out of range.
Python ints and NumPy integer scalars count as ints; bools do not.
"""

from __future__ import annotations

import operator
from typing import Any


def _as_int(value: Any) -> int | None:
    """`value` as an int when it is one (bools are not), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _bound(minimum: int | None) -> str:
    if minimum is None:
        return "an int"
    return {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")


def integer(op: str, name: str, value: Any, minimum: int | None = None) -> int:
    """`value` as an int, at least `minimum` when given."""
    number = _as_int(value)
    if number is None:
        raise TypeError(f"{op}: {name} must be {_bound(minimum)}, got {type(value).__name__} {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{op}: {name} must be {_bound(minimum)}, got {value!r}")
    return number


def flag(op: str, name: str, value: Any) -> bool:
    """`value`, which must be a bool (not 0 or 1, not None)."""
    if not isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}")
    return value


def pair(op: str, name: str, value: Any, minimum: int | None = None) -> tuple[int, int]:
    """An int, or a sequence of one or two ints (as torch accepts), as ``(h, w)``; each at least `minimum`."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    numbers = [_as_int(v) for v in values]
    if len(numbers) not in (1, 2) or any(number is None for number in numbers):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    height, width = (numbers[0], numbers[0]) if len(numbers) == 1 else numbers
    if minimum is not None and min(height, width) < minimum:  # type: ignore[type-var]
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return height, width  # type: ignore[return-value]


def normalize_dim(op: str, dim: Any, ndim: int, *, bool_hint: str = "") -> int:
    """`dim` in [-ndim, ndim) mapped to [0, ndim); a 0-d tensor accepts 0 and -1, like torch.

    `bool_hint` is added to the error for a bool dim (e.g. what torch's keyword for it would be)."""
    if isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got bool {dim!r}{bool_hint}")
    index = _as_int(dim)
    if index is None:
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__} {dim!r}")
    span = max(ndim, 1)
    if not -span <= index < span:
        raise IndexError(
            f"{op}: dimension {index} is out of range for a tensor of {ndim} dims (expected {-span}..{span - 1})"
        )
    return index % span
