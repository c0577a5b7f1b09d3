"""Compare `minigrad-q bench --json` runs of two versions: the Markdown table of each case's median time.

    python scripts/bench_compare.py "before/*.json" "after/*.json"

Each side may hold several runs (alternate the versions' runs on a shared machine); the table gives,
per case, the median over runs of minigrad_q's time, after/before, and the median ratio to PyTorch.
"""

from __future__ import annotations

import glob
import json
import statistics
import sys
from typing import Any


def cases(results: dict[str, Any]) -> dict[str, tuple[float, float | None]]:
    """(minigrad_q seconds, ratio to torch) of every timed case of one run, and the peak RSS in MiB."""
    found: dict[str, tuple[float, float | None]] = {}
    for mode in ("overhead", "conv", "quant"):
        for case in results.get(mode, {}).get("cases", []):
            found[f"{mode} {case['name']}"] = (case["minigrad_s"], case.get("ratio"))
    for mode in ("lenet", "toycnn"):
        if mode in results:
            found[f"{mode} step"] = (results[mode]["minigrad_s"], results[mode].get("ratio"))
    if "rss" in results:
        found["rss peak (MiB)"] = (results["rss"]["peak_rss_mib"], None)
    return found


def table(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    lines = [f"runs: {len(before)} before, {len(after)} after",
             "| case | before (ms) | after (ms) | after / before | ratio to torch, before | after |",
             "|---|---|---|---|---|---|"]
    for name in before[0]:
        old, new = (statistics.median(run[name][0] for run in runs) for runs in (before, after))
        ratios = [[run[name][1] for run in runs if run[name][1] is not None] for runs in (before, after)]
        shown = [f"{statistics.median(r):.2f}x" if r else "-" for r in ratios]
        scale = 1.0 if "rss" in name else 1e3
        lines.append(f"| {name} | {old * scale:.3f} | {new * scale:.3f} | {new / old:.3f} | {shown[0]} | {shown[1]} |")
    return "\n".join(lines)


def main(before_pattern: str, after_pattern: str) -> None:
    runs = [[cases(json.load(open(path, encoding="utf-8"))) for path in sorted(glob.glob(pattern))]
            for pattern in (before_pattern, after_pattern)]
    if not all(runs):
        raise SystemExit("bench_compare: no JSON files match one of the patterns")
    print(table(*runs))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
