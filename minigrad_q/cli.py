"""The ``minigrad-q`` command: ``info``, ``gradcheck``, ``train``, ``bench``.

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

from . import __version__, backend, cli_inspect
from .text_table import format_table


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


# ---------------------------------------------------------------- train
TRAIN_OPTIONS = ("model", "dataset", "data_dir", "epochs", "batch_size", "lr", "optimizer", "momentum",
                 "weight_decay", "schedule", "label_smoothing", "device", "seed", "save", "resume", "json_path", "train_size",
                 "quant", "wbits", "abits", "qnoise_p", "dsq_alpha", "learn_alpha", "convert")


def train_config(args: argparse.Namespace) -> Any:
    """The TrainConfig for the options given: defaults, then (with --resume) the checkpoint's settings,
    then the options on the command line."""
    from .checkpoint import CheckpointError, read_metadata
    from .train import RUN_FIELDS, TrainConfig

    settings: dict[str, Any] = {}
    if args.resume:
        try:
            stored = read_metadata(args.resume).get("config", {})
        except CheckpointError as error:
            raise UsageError(str(error)) from None
        settings.update({name: stored[name] for name in (*RUN_FIELDS, "epochs", "data_dir") if name in stored})
    settings.update({name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None})
    if args.no_progress:
        settings["progress"] = False
    return TrainConfig(**settings)


def run_train(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .train import ConfigError, TrainingDiverged, train

    config = train_config(args)
    try:
        train(config)
    except (ConfigError, CheckpointError, TrainingDiverged) as error:
        raise UsageError(f"train: {error}") from None
    except OSError as error:
        raise UsageError(f"train: {error.filename or ''}: {error.strerror or error}") from None
    return 0


# ---------------------------------------------------------------- bench
BENCH_MODES = ("overhead", "conv", "lenet", "toycnn", "rss", "quant", "profile")


def run_bench(args: argparse.Namespace) -> int:
    from . import bench, bench_quant

    modes = [mode for mode in BENCH_MODES if getattr(args, mode)]
    if not modes:
        raise UsageError("bench: choose what to measure: " + ", ".join(f"--{mode}" for mode in BENCH_MODES))
    if args.repeat < 1:
        raise UsageError(f"bench: --repeat must be at least 1, got {args.repeat}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"bench: --threads must be at least 1, got {args.threads}")
    for path in (args.json, args.markdown):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise UsageError(f"bench: cannot write {path}: its folder does not exist")
    device = _device(args.device)
    if args.rss_steps < 1:
        raise UsageError(f"bench: --rss-steps must be at least 1, got {args.rss_steps}")
    if args.quant_size < 1:
        raise UsageError(f"bench: --quant-size must be at least 1, got {args.quant_size}")
    if "profile" in modes:
        from .inspect import profile_step

        print(f"where one LeNet-5 training step (batch 128, 1x28x28, SGD) spends its time on {device}:")
        print(profile_step("lenet5", device=device).table(by="op") + "\n")
        modes.remove("profile")
        if not modes:
            return 0
    results = bench.run([mode for mode in modes if mode != "quant"], device=device, repeat=args.repeat,
                        threads=args.threads, large_size=args.large_size, rss_steps=args.rss_steps)
    if "quant" in modes:
        results["quant"] = bench_quant.run_quant(device=device, repeat=args.repeat, threads=args.threads,
                                                 size=args.quant_size)
    print(bench.format_results(results) + bench_quant.format_results(results))
    if args.json:
        try:
            bench.write_json(results, args.json)
        except OSError as error:
            raise UsageError(f"bench: cannot write {args.json}: {error.strerror or error}") from None
        print(f"\nresults written to {args.json}")
    if args.markdown:
        try:
            with open(args.markdown, "w", encoding="utf-8") as file:
                file.write(bench.write_markdown(results) + bench_quant.write_markdown(results))
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

    train = commands.add_parser(
        "train", help="train a CNN (LeNet-5 on the bundled digits by default)",
        description="Train a model, evaluating on the test split after every epoch. With no options: LeNet-5 on "
                    "the bundled 8x8 digits, on the CPU, in seconds. With --resume the checkpoint's settings are "
                    "the defaults; options that differ from them are refused.",
    )
    train.add_argument("--model", metavar="NAME", help="lenet5 (default) or toycnn")
    train.add_argument("--dataset", metavar="NAME", help="digits (default, bundled), fashion-mnist, mnist or synthetic")
    train.add_argument("--data-dir", metavar="DIR", help="folder of the dataset's files (fashion-mnist, mnist)")
    train.add_argument("--epochs", metavar="N", type=int, help="total epochs (default 40)")
    train.add_argument("--batch-size", metavar="B", type=int, help="training batch size (default 64)")
    train.add_argument("--lr", type=float, help="learning rate (default 0.05)")
    train.add_argument("--optimizer", metavar="NAME", help="sgd (default, momentum 0.9) or adam")
    train.add_argument("--momentum", metavar="M", type=float, help="SGD momentum (default 0.9)")
    train.add_argument("--weight-decay", metavar="WD", type=float, help="L2 weight decay (default 5e-4)")
    train.add_argument("--schedule", metavar="NAME", help="learning-rate schedule: cosine (default, to 0 at the end) or constant")
    train.add_argument("--label-smoothing", metavar="EPS", type=float, help="label smoothing of the training loss (default 0.2)")
    train.add_argument("--device", help="cpu (default), cuda or cuda:N")
    train.add_argument("--seed", metavar="S", type=int, help="seed of initialisation and shuffling (default 0)")
    train.add_argument("--train-size", type=int, metavar="N", help="train on the first N images only (quick runs)")
    train.add_argument("--save", metavar="PATH", help="write a checkpoint (.safetensors) here after every epoch")
    train.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint")
    train.add_argument("--json", dest="json_path", metavar="PATH", help="write the summary as JSON")
    train.add_argument("--no-progress", action="store_true", help="no progress bars (they show only on a terminal anyway)")
    qat = train.add_argument_group("quantization-aware training")
    qat.add_argument("--quant", metavar="METHOD", help="quantize with ste, dsq, lsq, qnoise or pact (default: float)")
    qat.add_argument("--wbits", metavar="B", type=int, help="weight bits (default 4)")
    qat.add_argument("--abits", metavar="B", type=int, help="activation bits (default 4)")
    qat.add_argument("--qnoise-p", metavar="P", type=float,
                     help="QuantNoise: fraction of weights quantized per step (default 0.5)")
    qat.add_argument("--dsq-alpha", metavar="A", type=float, help="DSQ: initial alpha in (0, 1) (default 0.2)")
    qat.add_argument("--learn-alpha", action="store_true", default=None, help="DSQ: learn alpha (default: fixed)")
    qat.add_argument("--convert", action="store_true", default=None,
                     help="after training, convert to an integer model and report its accuracy too")
    train.set_defaults(run=run_train)

    bench = commands.add_parser("bench", help="speed against PyTorch and the machine's limits")
    modes = bench.add_argument_group("what to measure")
    modes.add_argument("--overhead", action="store_true", help="100-op elementwise chain, tiny and 1M elements")
    modes.add_argument("--conv", action="store_true", help="conv2d forward+backward, two LeNet/CIFAR-sized shapes")
    modes.add_argument("--lenet", action="store_true", help="LeNet-5 training step, 1x28x28, batch 128")
    modes.add_argument("--toycnn", action="store_true", help="toy CNN training step, 3x32x32, batch 64")
    modes.add_argument("--rss", action="store_true", help="peak RSS over a 200-step LeNet-5 run (fresh process)")
    modes.add_argument("--quant", action="store_true", help="quantizers forward+backward, 16M elements, vs torch and a copy")
    modes.add_argument("--profile", action="store_true", help="time per op type of one LeNet-5 training step (the tape)")
    bench.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    bench.add_argument("--repeat", type=int, default=7, help="timed runs per case; the median is reported (default 7)")
    bench.add_argument("--threads", type=int, help="PyTorch intra-op threads for the matched run (default: 1 for "
                       "--overhead, NumPy's BLAS thread count for the CNN modes and --quant)")
    bench.add_argument("--rss-steps", type=int, default=200, help="training steps of --rss (default 200)")
    bench.add_argument("--large-size", type=int, default=1_000_000, help="elements of the large case (default 1M)")
    bench.add_argument("--quant-size", type=int, default=1 << 24, help="elements of --quant's tensor (default 16M)")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.add_argument("--markdown", metavar="PATH", help="also write the results as Markdown (docs/benchmarks.md)")
    bench.set_defaults(run=run_bench)
    cli_inspect.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except (UsageError, cli_inspect.InspectError) as error:
        print(f"minigrad-q: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minigrad-q: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
