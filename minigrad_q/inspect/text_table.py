"""Plain-text tables for the command line, the benchmarks and the tape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] = ()) -> str:
    """Columns separated by " | " under a dashed rule; cells are str()-ed; columns in `right` are right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    aligns = list(right) + [False] * (len(header) - len(right))

    def line(cells: Sequence[Any]) -> str:
        parts = [str(c).rjust(w) if a else str(c).ljust(w) for c, w, a in zip(cells, widths, aligns)]
        return " | ".join(parts).rstrip()

    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *(line(row) for row in rows)])
