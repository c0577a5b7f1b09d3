"""``minigrad-q gradcheck``: every registered op's backward against central differences, on one device."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .. import backend
from ..core import Tensor
from ..gradcheck import GradcheckError
from ..inspect import format_table
from ..specs import SPECS
from ..testing import RandomDraw, check_spec
from .usage import UsageError, check_at_least


def _select_specs(op: str | None) -> list[Any]:
    specs = list(SPECS.values())
    if op is None:
        return specs
    chosen = [spec for spec in specs if spec.function.__name__.lower() == op.lower()]
    if not chosen:
        names = ", ".join(sorted(spec.function.__name__ for spec in specs)) or "(none registered)"
        raise UsageError(f"gradcheck: no op named {op!r}; registered ops: {names}")
    return chosen


def _shapes(args: Sequence[Any]) -> str:
    """The shapes of the Tensor arguments (also inside lists, as for cat/stack)."""
    flat = [item for arg in args for item in (arg if isinstance(arg, (list, tuple)) else (arg,))]
    shapes = [str(tuple(arg.shape)) for arg in flat if isinstance(arg, Tensor)]
    return ", ".join(shapes) if shapes else "-"


def _check_one(spec: Any, device: str, seed: int, cases: int) -> tuple[str, float, bool, str]:
    """(input shapes of the first case, worst error, passed, failure message) over `cases` draws.

    Case i draws from RandomDraw(seed + i), so a failure is reproduced by its seed alone.
    """
    shapes = "?"
    worst = 0.0
    case = 0
    try:
        shapes = _shapes(spec.sample(RandomDraw(seed, device)))
        for case in range(cases):
            report = check_spec(spec, RandomDraw(seed + case, device), raise_exception=False)
            worst = max(worst, float(report.max_abs_error))
            if not report.passed:
                return shapes, worst, False, f"case {case} (--seed {seed + case}): {report.message}"
    except GradcheckError as error:
        return shapes, worst, False, f"case {case} (--seed {seed + case}): {error}"
    except Exception as error:  # noqa: BLE001  (a crashing op is a failed check, reported like one)
        return shapes, worst, False, f"case {case} (--seed {seed + case}): raised {type(error).__name__}: {error}"
    return shapes, worst, True, ""


def run(args: argparse.Namespace) -> int:
    check_at_least("gradcheck", {"--cases": args.cases}, 1)
    check_at_least("gradcheck", {"--seed": args.seed}, 0)
    device = backend.parse_device(args.device)
    specs = _select_specs(args.op)
    rows, failures = [], []
    for spec in specs:
        name = spec.function.__name__
        if device.split(":")[0] not in spec.devices:
            rows.append([name, "-", "-", f"SKIP ({device} not in spec devices)"])
            continue
        shapes, worst, passed, message = _check_one(spec, device, args.seed, args.cases)
        rows.append([name, shapes, f"{worst:.2e}", "PASS" if passed else "FAIL"])
        if not passed:
            failures.append(f"{name}: {message}")
    checked = sum(1 for row in rows if not row[3].startswith("SKIP"))
    print(format_table(["op", "inputs", "max abs error", "result"], rows, right=[False, False, True]))
    print(f"\n{checked} ops, {checked - len(failures)} passed, {len(failures)} failed"
          + (f" ({len(rows) - checked} skipped)" if len(rows) > checked else "")
          + f" [device {device}, seed {args.seed}, {args.cases} case(s) each]")
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


def add_command(commands: Any) -> None:
    check = commands.add_parser("gradcheck", help="check every op's backward against finite differences")
    check.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    check.add_argument("--op", help="only this op (Function class name, case-insensitive)")
    check.add_argument("--seed", type=int, default=0, help="seed of the first case (default 0)")
    check.add_argument("--cases", type=int, default=3, help="random cases per op (default 3)")
    check.set_defaults(run=run)
