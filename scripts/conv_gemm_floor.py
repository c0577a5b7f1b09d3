"""How much of conv2d's CPU time is GEMM, and how fast the same GEMMs run in torch: the floor that
NumPy's BLAS sets for the fused conv2d path's column matrices (ops/_conv_plan.py), on one thread.

For each convolution of the benchmarks (`minigrad-q bench --conv`, and the convs of its LeNet-5 and
toy CNN steps), one forward + backward of minigrad_q's conv2d on the column-matrix path (the shifted
and kernel-row GEMMs turned off) runs with numpy.matmul recorded; each recorded call is then timed
again on its own arrays (same shapes, strides and transposes) by NumPy and by torch.matmul on the
same memory. Also timed: the whole conv2d forward + backward in minigrad_q, on that path and as it
ships (the shifted or kernel-row GEMMs of ops/_conv_shifted.py and ops/_conv_rows.py where they
apply), and in torch. Everything runs on one thread (NumPy's BLAS and torch), so the numbers compare
the engines' kernels, not their threading.

    python scripts/conv_gemm_floor.py [--markdown docs/benchmarks/conv-gemm-floor-intel-xeon.md] [--repeat 7]
    (the page's name: "conv-gemm-floor-" + the CPU type's, as minigrad_q.bench.machine.cpu_page names it)

Needs torch (`pip install torch==2.13.0`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import numpy as np
import threadpoolctl
import torch

import minigrad_q as mq
from minigrad_q.bench import machine
from minigrad_q.bench.cnn import conv_step
from minigrad_q.ops import _conv_plan

# (name, N, C, K, H=W, kernel, padding, input needs a gradient)
CASES = [
    ("bench conv N64 C32 K32 32x32 3x3 p1", 64, 32, 32, 32, 3, 1, True),
    ("bench conv N128 C1 K6 28x28 5x5 p2", 128, 1, 6, 28, 5, 2, True),
    ("LeNet-5 conv1 N128 C1 K6 28x28 5x5 p2", 128, 1, 6, 28, 5, 2, False),
    ("LeNet-5 conv2 N128 C6 K16 14x14 5x5", 128, 6, 16, 14, 5, 0, True),
    ("toy CNN conv1 N64 C3 K32 32x32 3x3 p1", 64, 3, 32, 32, 3, 1, False),
    ("toy CNN conv2 N64 C32 K32 32x32 3x3 p1", 64, 32, 32, 32, 3, 1, True),
    ("toy CNN conv3 N64 C32 K64 16x16 3x3 p1", 64, 32, 64, 16, 3, 1, True),
]


def best_time(call: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` timed calls after two warm-up calls, in seconds."""
    call()
    call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def one_case(batch: int, channels: int, out_channels: int, size: int, kernel: int, padding: int, input_grad: bool,
             repeat: int) -> dict:
    """Best times (s) of minigrad_q's conv2d forward + backward as it ships ("shipped") and on the column-
    matrix path ("ours"), of the latter's recorded GEMMs in NumPy and in torch, and of torch's conv2d;
    the number of GEMM calls and their FLOPs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, channels, size, size), dtype=np.float32)
    w = rng.standard_normal((out_channels, channels, kernel, kernel), dtype=np.float32) * 0.1
    side = size + 2 * padding - kernel + 1
    g = rng.standard_normal((batch, out_channels, side, side), dtype=np.float32)

    ours_step = conv_step(mq.nn.functional.conv2d, mq.tensor(x, requires_grad=input_grad),
                          mq.tensor(w, requires_grad=True), mq.tensor(np.zeros(out_channels, np.float32), requires_grad=True),
                          mq.tensor(g), padding)
    torch_step = conv_step(torch.nn.functional.conv2d, torch.tensor(x, requires_grad=input_grad),
                           torch.tensor(w, requires_grad=True), torch.zeros(out_channels, requires_grad=True),
                           torch.tensor(g), padding)

    shipped = best_time(ours_step, repeat)
    shipped_settings = {name: getattr(_conv_plan, name) for name in ("SHIFTED_MIN_CHANNELS", "ROWS_MIN_KERNEL_ROWS")}
    for name in shipped_settings:
        setattr(_conv_plan, name, 1 << 62)  # the column-matrix path
    calls = []
    numpy_matmul = np.matmul

    def recording_matmul(a, b, out=None, **options):
        calls.append((a, b, out))
        return numpy_matmul(a, b, out=out, **options)

    np.matmul = recording_matmul
    try:
        ours_step()
    finally:
        np.matmul = numpy_matmul

    numpy_gemm = torch_gemm = 0.0
    for a, b, out in calls:
        numpy_gemm += best_time(functools.partial(numpy_matmul, a, b, out=out), repeat)
        torch_gemm += best_time(functools.partial(torch.matmul, torch.from_numpy(a), torch.from_numpy(b),
                                                  out=torch.from_numpy(out)), repeat)
    ours = best_time(ours_step, repeat)
    for name, value in shipped_settings.items():
        setattr(_conv_plan, name, value)
    return {"shipped": shipped, "ours": ours, "numpy_gemm": numpy_gemm, "torch_gemm": torch_gemm,
            "torch": best_time(torch_step, repeat), "calls": len(calls),
            "gemm_flops": sum(2 * out.size * a.shape[-1] for a, _, out in calls)}


def table(results: list[tuple[str, dict]]) -> list[str]:
    lines = ["| convolution, forward + backward | minigrad_q | / torch | column-matrix path | its GEMMs (NumPy) "
             "| same GEMMs in torch | torch conv2d | path / torch | GEMMs alone / torch conv2d | GEMMs: NumPy / torch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results:
        lines.append(f"| {name} | {r['shipped'] * 1e3:.2f} ms | {r['shipped'] / r['torch']:.2f}x | "
                     f"{r['ours'] * 1e3:.2f} ms | {r['numpy_gemm'] * 1e3:.2f} ms ({r['calls']} calls) | "
                     f"{r['torch_gemm'] * 1e3:.2f} ms | {r['torch'] * 1e3:.2f} ms | {r['ours'] / r['torch']:.2f}x | "
                     f"{r['numpy_gemm'] / r['torch']:.2f}x | {r['numpy_gemm'] / r['torch_gemm']:.2f}x |")
    return lines


def main() -> None:
    parser = machine.page_parser(__doc__)
    parser.add_argument("--repeat", type=int, default=7, help="timed calls of each; the fastest counts (default 7)")
    args = parser.parse_args()
    facts = machine.describe_machine("cpu")
    _conv_plan.THREADS = 1
    torch.set_num_threads(1)
    with threadpoolctl.threadpool_limits(1):
        results = [(case[0], one_case(*case[1:], repeat=args.repeat)) for case in CASES]
    lines = [*table(results), "",
             f"Machine: {facts['cpu']}; NumPy {facts['numpy']} ({facts['blas']}); torch {facts['torch']}; one thread "
             f"each; times: the fastest of {args.repeat} calls; `python scripts/conv_gemm_floor.py`."]
    machine.print_page(lines, args.markdown)


if __name__ == "__main__":
    main()
