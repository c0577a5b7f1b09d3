"""``minigrad-q plot SUMMARY.json``: the curves of a ``minigrad-q train --json`` run as PNG files."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .. import inspect
from .usage import UsageError

# file name -> what draws it; quantizers.png only for quantized runs
PLOTS = {"training.png": inspect.plot_training, "grad_norms.png": inspect.plot_grad_norms,
         "quantizers.png": inspect.plot_quantizer_history}


def run(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.summary):
        raise UsageError(f"plot: {args.summary}: no such file")
    if not os.path.isdir(args.out):
        raise UsageError(f"plot: cannot write to {args.out}: the folder does not exist")
    try:
        history = inspect.load_history(args.summary)
    except ValueError as error:  # not JSON, or no per-epoch history in it
        raise UsageError(f"plot: {error}") from None
    quantized = any("quantizers" in record for record in history)
    for name, draw in PLOTS.items():
        if name == "quantizers.png" and not quantized:
            continue
        path = os.path.join(args.out, name)
        try:
            draw(args.summary, out=path)
        except ImportError as error:  # matplotlib missing: the message says how to install it
            raise UsageError(f"plot: {error}") from None
        print(f"wrote {path}")
    return 0


def add_command(commands: Any) -> None:
    command = commands.add_parser(
        "plot", help="draw a training run's curves (loss, accuracy, gradient norms, what the quantizers learned)",
        description="Draw the per-epoch history of a `minigrad-q train --json SUMMARY.json` run: training.png "
                    "(loss and accuracy), grad_norms.png and, for a quantized run, quantizers.png (each "
                    "quantizer's range and alpha).")
    command.add_argument("summary", metavar="SUMMARY.json", help="the JSON written by minigrad-q train --json")
    command.add_argument("--out", default=".", help="folder for the PNG files (default: here)")
    command.set_defaults(run=run)
