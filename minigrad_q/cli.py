"""The ``minigrad-q`` command: ``info``, ``gradcheck``, ``bench``.

Every subcommand is a function ``run_<name>(args) -> exit code``. A mistake by
the user (unknown op, missing GPU, bad path) is a ``UsageError``: one line on
stderr, exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__, backend


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line, exit code 2."""


# ---------------------------------------------------------------- info
def gpu_report() -> tuple[list[str], str]:
    """(["cuda:0 (NVIDIA H100)", ...], reason there are none or "")."""
    if backend.versions()["cupy"] == "not installed":
        return [], "CuPy not installed (pip install 'minigrad-q[cuda12]')"
    if not backend.cuda_is_available():
        return [], "no GPU found"
    cupy = backend.array_module("cuda:0")
    gpus = []
    for index in range(backend.cuda_device_count()):
        name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
        gpus.append(f"cuda:{index} ({name.decode() if isinstance(name, bytes) else name})")
    return gpus, ""


def thread_report() -> str:
    """Thread pools of the native libraries, when threadpoolctl is installed."""
    try:
        import threadpoolctl
    except ImportError:
        return "not known (threadpoolctl not installed)"
    pools = threadpoolctl.threadpool_info()
    if not pools:
        return "no native thread pools loaded"
    return ", ".join(f"{pool['internal_api']} {pool['num_threads']}" for pool in pools)


def run_info(args: argparse.Namespace) -> int:
    versions = backend.versions()
    gpus, why_none = gpu_report()
    rows = [
        ("minigrad_q", __version__),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("numpy", versions["numpy"]),
        ("cupy", versions["cupy"]),
        ("devices", ", ".join(["cpu", *gpus]) + (f"; cuda: {why_none}" if why_none else "")),
        ("BLAS", backend.blas_info()),
        ("threads", thread_report()),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


# ---------------------------------------------------------------- gradcheck
def _device(name: str) -> str:
    try:
        return backend.parse_device(name)
    except backend.DeviceError as error:
        raise UsageError(str(error)) from None


def _select_specs(op: str | None) -> list[Any]:
    from . import ops  # noqa: F401  (importing the ops registers their specs)
    from .specs import SPECS

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
    from .core import Tensor

    flat = [item for arg in args for item in (arg if isinstance(arg, (list, tuple)) else (arg,))]
    shapes = [str(tuple(arg.shape)) for arg in flat if isinstance(arg, Tensor)]
    return ", ".join(shapes) if shapes else "-"


def _check_one(spec: Any, device: str, seed: int, cases: int) -> tuple[str, float, bool, str]:
    """(input shapes of the first case, worst error, passed, failure message) over `cases` draws.

    Case i draws from RandomDraw(seed + i), so a failure is reproduced by its seed alone.
    """
    from .gradcheck import GradcheckError
    from .testing import RandomDraw, check_spec

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


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] = ()) -> str:
    """A plain-text table; columns in `right` are right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    aligns = list(right) + [False] * (len(header) - len(right))

    def line(cells: Sequence[str]) -> str:
        parts = [str(c).rjust(w) if a else str(c).ljust(w) for c, w, a in zip(cells, widths, aligns)]
        return " | ".join(parts).rstrip()

    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *(line(row) for row in rows)])


def run_gradcheck(args: argparse.Namespace) -> int:
    if args.cases < 1:
        raise UsageError(f"gradcheck: --cases must be at least 1, got {args.cases}")
    device = _device(args.device)
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


# ---------------------------------------------------------------- bench
BENCH_MODES = ("overhead",)


def run_bench(args: argparse.Namespace) -> int:
    from . import bench

    modes = [mode for mode in BENCH_MODES if getattr(args, mode)]
    if not modes:
        raise UsageError("bench: choose what to measure: " + ", ".join(f"--{mode}" for mode in BENCH_MODES))
    if args.repeat < 1:
        raise UsageError(f"bench: --repeat must be at least 1, got {args.repeat}")
    if args.threads < 1:
        raise UsageError(f"bench: --threads must be at least 1, got {args.threads}")
    for path in (args.json, args.markdown):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise UsageError(f"bench: cannot write {path}: its folder does not exist")
    device = _device(args.device)
    results = bench.run(modes, device=device, repeat=args.repeat, threads=args.threads, large_size=args.large_size)
    print(bench.format_results(results))
    if args.json:
        try:
            bench.write_json(results, args.json)
        except OSError as error:
            raise UsageError(f"bench: cannot write {args.json}: {error.strerror or error}") from None
        print(f"\nresults written to {args.json}")
    if args.markdown:
        try:
            with open(args.markdown, "w", encoding="utf-8") as file:
                file.write(bench.write_markdown(results))
        except OSError as error:
            raise UsageError(f"bench: cannot write {args.markdown}: {error.strerror or error}") from None
        print(f"markdown written to {args.markdown}")
    return 0


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigrad-q", description="A small autograd engine for transparent quantization-aware training."
    )
    parser.add_argument("--version", action="version", version=f"minigrad-q {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = commands.add_parser("info", help="versions, devices, BLAS")
    info.set_defaults(run=run_info)

    check = commands.add_parser("gradcheck", help="check every op's backward against finite differences")
    check.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    check.add_argument("--op", help="only this op (Function class name, case-insensitive)")
    check.add_argument("--seed", type=int, default=0, help="seed of the first case (default 0)")
    check.add_argument("--cases", type=int, default=3, help="random cases per op (default 3)")
    check.set_defaults(run=run_gradcheck)

    bench = commands.add_parser("bench", help="speed against PyTorch and the machine's limits")
    modes = bench.add_argument_group("what to measure")
    modes.add_argument("--overhead", action="store_true", help="100-op elementwise chain, tiny and 1M elements")
    bench.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    bench.add_argument("--repeat", type=int, default=7, help="timed runs per case; the median is reported (default 7)")
    bench.add_argument("--threads", type=int, default=1, help="PyTorch intra-op threads for the matched run (default 1)")
    bench.add_argument("--large-size", type=int, default=1_000_000, help="elements of the large case (default 1M)")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.add_argument("--markdown", metavar="PATH", help="also write the results as Markdown (docs/benchmarks.md)")
    bench.set_defaults(run=run_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except UsageError as error:
        print(f"minigrad-q: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minigrad-q: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
