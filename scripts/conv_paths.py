"""Which of conv2d's fused CPU paths is fastest for which convolution, on this machine: the column
matrices, the shifted GEMMs (ops/_conv_shifted.py) and the kernel-row GEMMs (ops/_conv_rows.py), each
forced in turn, against the path ops/_conv_plan.py's rules choose. The table says whether the rules
(SHIFTED_MIN_CHANNELS, ROWS_MIN_KERNEL_ROWS, ROWS_MIN_DEPTH, ROWS_MIN_DEPTH_DX) pick the fastest path
here; run it on a new CPU type before trusting them there.

    python scripts/conv_paths.py [--markdown docs/benchmarks/conv-paths-intel-xeon.md] [--rounds 3]

Times: forward + backward (all gradients, or no input gradient for a first layer), float32, median of
alternating rounds (each round's time: bench.timing.time_median), with NumPy's BLAS threads as they
are (the workers follow them).
"""

from __future__ import annotations

import statistics

import numpy as np

import minigrad_q as mq
from minigrad_q.bench import machine
from minigrad_q.bench.cnn import conv_step
from minigrad_q.bench.timing import time_median
from minigrad_q.ops import _conv_plan

# (name, N, C, K, H=W, kernel, padding, input needs a gradient)
CASES = [
    ("LeNet-5 conv1", 128, 1, 6, 28, 5, 2, False),
    ("LeNet-5 conv2", 128, 6, 16, 14, 5, 0, True),
    ("toy CNN conv1", 64, 3, 32, 32, 3, 1, False),
    ("toy CNN conv2", 64, 32, 32, 32, 3, 1, True),
    ("toy CNN conv3", 64, 32, 64, 16, 3, 1, True),
    ("3x3 C8 K16 28x28", 64, 8, 16, 28, 3, 1, True),
    ("5x5 C4 K16 14x14", 128, 4, 16, 14, 5, 0, True),
    ("5x5 C8 K16 28x28", 64, 8, 16, 28, 5, 2, True),
    ("7x7 C8 K16 28x28", 64, 8, 16, 28, 7, 3, True),
    ("5x5 C4 K16 28x28", 64, 4, 16, 28, 5, 2, True),
    ("5x5 C4 K32 14x14", 128, 4, 32, 14, 5, 2, True),
    ("5x5 C3 K16 28x28", 64, 3, 16, 28, 5, 2, True),
    ("7x7 C3 K16 28x28", 64, 3, 16, 28, 7, 3, True),
    ("7x7 C3 K16 28x28, no dX", 64, 3, 16, 28, 7, 3, False),
]
OFF = 1 << 62
PATHS = {  # the constants that force each path (the others stay as they are)
    "columns": {"SHIFTED_MIN_CHANNELS": OFF, "ROWS_MIN_KERNEL_ROWS": OFF},
    "shifted": {"SHIFTED_MIN_CHANNELS": 1, "ROWS_MIN_KERNEL_ROWS": OFF},
    "rows": {"SHIFTED_MIN_CHANNELS": OFF, "ROWS_MIN_KERNEL_ROWS": 1, "ROWS_MIN_DEPTH": 1, "ROWS_MIN_DEPTH_DX": 1},
}


def one_case(batch: int, channels: int, out_channels: int, size: int, kernel: int, padding: int, input_grad: bool,
             rounds: int) -> tuple[dict[str, float], str]:
    """({path: median seconds per forward + backward}, the path the rules choose) for one convolution."""
    rng = np.random.default_rng(0)
    x = mq.tensor(rng.standard_normal((batch, channels, size, size), dtype=np.float32), requires_grad=input_grad)
    w = mq.tensor(rng.standard_normal((out_channels, channels, kernel, kernel), dtype=np.float32) * 0.1,
                  requires_grad=True)
    b = mq.tensor(np.zeros(out_channels, np.float32), requires_grad=True)
    side = size + 2 * padding - kernel + 1
    g = mq.tensor(rng.standard_normal((batch, out_channels, side, side), dtype=np.float32))

    step = conv_step(mq.conv2d, x, w, b, g, padding)
    chosen_method = mq.conv2d(x, w, b, padding=padding).creator.plan.method  # w needs a gradient: an op is recorded
    shipped = {name: getattr(_conv_plan, name) for settings in PATHS.values() for name in settings}
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    try:
        for _ in range(rounds):
            for path, settings in PATHS.items():
                for name, value in {**shipped, **settings}.items():
                    setattr(_conv_plan, name, value)
                taken = mq.conv2d(x, w, b, padding=padding).creator.plan.method
                if taken != path:
                    raise SystemExit(f"conv_paths: forcing the {path} path ran the {taken} path instead (no BLAS GEMM "
                                     "that ops/_blas.py can call?)")
                times[path].append(time_median(step, 3)[0])
    finally:
        for name, value in shipped.items():
            setattr(_conv_plan, name, value)
    return {path: statistics.median(values) for path, values in times.items()}, chosen_method


def table(results: list[tuple[str, dict[str, float], str]]) -> list[str]:
    lines = ["| convolution | columns | shifted | rows | fastest | rules choose |", "|---|---|---|---|---|---|"]
    for name, times, chosen in results:
        fastest = min(times, key=times.get)
        cells = " | ".join(f"{times[path] * 1e3:.2f} ms" for path in PATHS)
        verdict = chosen if chosen == fastest else f"{chosen} ({times[chosen] / times[fastest]:.2f}x the fastest)"
        lines.append(f"| {name} | {cells} | {fastest} | {verdict} |")
    return lines


def main() -> None:
    parser = machine.page_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over the paths (default 3)")
    args = parser.parse_args()
    facts = machine.describe_machine("cpu")
    results = [(case[0], *one_case(*case[1:], rounds=args.rounds)) for case in CASES]
    lines = [*table(results), "",
             f"Machine: {facts['cpu']}, {facts['usable_cores']} usable cores; NumPy {facts['numpy']} ({facts['blas']}); "
             f"forward + backward in float32, median of {args.rounds} alternating rounds; "
             "`python scripts/conv_paths.py`. Stride 1 and no groups everywhere, so every path applies."]
    machine.print_page(lines, args.markdown)


if __name__ == "__main__":
    main()
