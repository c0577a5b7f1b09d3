"""Data-parallel scaling on this machine: one epoch of `minigrad-q train` (LeNet-5 on Fashion-MNIST by default)
as 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1 thread (`mpiexec -n 2 ... --distributed`), each
`--repeat` times, alternating; the Markdown table of the median images/s, the speed-up over 1 x 1, and the
share of the training time rank 0 spent averaging gradients (packing, all-reduce, unpacking).

    python scripts/bench_distributed.py --markdown docs/benchmarks/distributed-intel-xeon.md
    (the page's name: "distributed-" + the CPU type's, as minigrad_q.bench.machine.cpu_page names it)

Needs `pip install -e '.[mpi]'`; Fashion-MNIST from /usr/share/datasets/fashion-mnist (or --dataset digits).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

from minigrad_q.bench import machine

LAYOUTS = [("1 rank x 1 thread", 1, 1), ("1 rank x 2 threads", 1, 2), ("2 ranks x 1 thread", 2, 1)]


def one_epoch(ranks: int, threads: int, dataset: str, batch: int, folder: str) -> dict:
    """The summary of one epoch trained as `ranks` ranks of `threads` threads each."""
    summary_path = os.path.join(folder, f"{ranks}x{threads}.json")
    command = [sys.executable, "-m", "minigrad_q", "train", "--dataset", dataset, "--epochs", "1", "--batch-size",
               str(batch), "--no-progress", "--json", summary_path]
    if ranks > 1:
        command = ["mpiexec", "-n", str(ranks), *command, "--distributed"]
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
                   "MKL_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, capture_output=True, env=environment, timeout=1800)
    with open(summary_path, encoding="utf-8") as file:
        return json.load(file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", help="write the table here too")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in LAYOUTS}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeat):
            for name, ranks, threads in LAYOUTS:
                runs[name].append(one_epoch(ranks, threads, args.dataset, args.batch_size, folder))
    base = statistics.median(s["train_images_per_s"] for s in runs[LAYOUTS[0][0]])
    lines = [f"# Data-parallel scaling on {machine.cpu_model()}", "",
             f"Written by `python scripts/bench_distributed.py`; do not edit by hand. One epoch of `minigrad-q train "
             f"--dataset {args.dataset} --batch-size {args.batch_size}` (LeNet-5, the global batch), median of "
             f"{args.repeat} runs per layout, run alternately. Images/s counts training time only (not the test pass).",
             "", "| layout | images/s | speed-up over 1 x 1 | averaging gradients, share of training time | test accuracy |",
             "|---|---:|---:|---:|---:|"]
    for name, _, _ in LAYOUTS:
        summaries = runs[name]
        speed = statistics.median(s["train_images_per_s"] for s in summaries)
        share = statistics.median(s.get("averaging_s", 0.0) / s["train_time_s"] for s in summaries)
        accuracy = statistics.median(s["test_accuracy"] for s in summaries)
        lines.append(f"| {name} | {speed:,.0f} | {speed / base:.2f}x | {100 * share:.1f}% | {100 * accuracy:.2f}% |")
    lines += ["", f"Machine: {machine.cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        partial = args.markdown + ".tmp"
        with open(partial, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, args.markdown)


if __name__ == "__main__":
    main()
