"""``minigrad-q bench``: speed against PyTorch and the machine's limits (the programs are in minigrad_q.bench)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .. import backend, bench, storage
from .usage import UsageError, check_at_least, poll_idle_if

BENCH_MODES = (*bench.MODES, "profile")


def run(args: argparse.Namespace) -> int:
    modes = [mode for mode in BENCH_MODES if getattr(args, mode)]
    check_at_least("bench", {"--repeat": args.repeat, "--threads": args.threads, "--rss-steps": args.rss_steps,
                             "--large-size": args.large_size, "--quant-size": args.quant_size}, 1)
    for path in (args.json, args.markdown):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise UsageError(f"bench: cannot write {path}: its folder does not exist")
    device = backend.parse_device(args.device)
    with poll_idle_if(args.poll_idle, "bench"):
        return _measure(args, modes, device)


def _measure(args: argparse.Namespace, modes: list[str], device: str) -> int:
    if not modes:
        modes = ["lenet"]
        print("no mode given: measuring --lenet, one LeNet-5 training step against PyTorch (the others: "
              + ", ".join(f"--{mode}" for mode in BENCH_MODES if mode != "lenet") + ")")
    if "profile" in modes:
        print(f"where one LeNet-5 training step (batch 128, 1x28x28, SGD) spends its time on {device}:")
        print(bench.profile_step("lenet5", device=device).table(by="op") + "\n")
        modes.remove("profile")
        if not modes:
            return 0
    results = bench.run(modes, device=device, repeat=args.repeat, threads=args.threads, large_size=args.large_size,
                        rss_steps=args.rss_steps, quant_size=args.quant_size, idle_cpus_poll=args.poll_idle)
    print(bench.format_results(results))
    if args.json:
        try:
            bench.write_json(results, args.json)
        except OSError as error:
            raise UsageError(f"bench: cannot write {args.json}: {error.strerror or error}") from None
        print(f"\nresults written to {args.json}")
    if args.markdown:
        try:
            storage.write_atomic(args.markdown, bench.write_markdown(results).encode("utf-8"))
        except OSError as error:
            raise UsageError(f"bench: cannot write {args.markdown}: {error.strerror or error}") from None
        print(f"markdown written to {args.markdown}")
    return 0


def add_command(commands: Any) -> None:
    command = commands.add_parser("bench", help="speed against PyTorch and the machine's limits")
    modes = command.add_argument_group("what to measure")
    modes.add_argument("--overhead", action="store_true", help="100-op elementwise chain, tiny and 1M elements")
    modes.add_argument("--conv", action="store_true", help="conv2d forward+backward, two LeNet/CIFAR-sized shapes")
    modes.add_argument("--lenet", action="store_true", help="LeNet-5 training step, 1x28x28, batch 128")
    modes.add_argument("--toycnn", action="store_true", help="toy CNN training step, 3x32x32, batch 64")
    modes.add_argument("--rss", action="store_true", help="peak RSS over a 200-step LeNet-5 run (fresh process)")
    modes.add_argument("--quant", action="store_true", help="quantizers forward+backward, 16M elements, vs torch and a copy")
    modes.add_argument("--profile", action="store_true", help="time per op type of one LeNet-5 training step (the tape)")
    command.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    command.add_argument("--repeat", type=int, default=7,
                         help="timed runs per case; the median is reported (default 7)")
    command.add_argument("--threads", type=int,
                         help="PyTorch intra-op threads for the matched run (default: 1 for "
                              "--overhead, NumPy's BLAS thread count for the CNN modes and --quant)")
    command.add_argument("--rss-steps", type=int, default=200, help="training steps of --rss (default 200)")
    command.add_argument("--large-size", type=int, default=1_000_000,
                         help="elements of the large case (default 1M)")
    command.add_argument("--quant-size", type=int, default=1 << 24,
                         help="elements of --quant's tensor (default 16M)")
    command.add_argument("--poll-idle", action="store_true",
                         help="idle CPUs poll instead of halting while it measures (Linux, root; see minigrad_q.poll_idle_cpus)")
    command.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    command.add_argument("--markdown", metavar="PATH", help="also write the results as Markdown (docs/benchmarks.md)")
    command.set_defaults(run=run)
