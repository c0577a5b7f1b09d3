"""The ``minigrad-q`` command: ``info``, ``gradcheck``, ``train``, ``plot``, ``export``, ``bench``, ``inspect``,
``plot-quantizer``.

Each command is a module here with ``add_command(commands)``, which registers its options and its
``run(args) -> exit code``. A mistake by the user (unknown op, missing GPU, bad path) is a
``UsageError`` (or the backend's ``DeviceError``): one line on stderr, exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__, backend
from . import bench, export, gradcheck, info, inspect, plot, train
from .usage import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigrad-q", description="A small autograd engine for transparent quantization-aware training."
    )
    parser.add_argument("--version", action="version", version=f"minigrad-q {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    for command in (info, gradcheck, train, plot, export, bench, inspect):
        command.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except (UsageError, backend.DeviceError) as error:
        print(f"minigrad-q: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minigrad-q: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
