"""On paper: the data-parallel step time of LeNet-5 and the toy CNN on N nodes, from a measured single-node
step time and the ring all-reduce's cost, for docs/distributed.md (never typed by hand).

    step(N) = compute(N) + 2(N - 1)·α + 2(N - 1)/N · gradient bytes / bandwidth

The ring all-reduce sends 2(N - 1)/N of the gradient through each node's link, in 2(N - 1) messages of
latency α each; it does not overlap the compute here (minigrad_q averages after backward).
- CPU nodes, strong scaling: the global batch B stays 64, so compute(N) = compute(1)/N.
- GPU nodes, weak scaling: each GPU keeps its batch of 128 (the global batch grows N-fold); a GPU step
  at toy scale is launch-bound, so compute(N) = compute(1) whatever the batch.

    python scripts/scaling_model.py            # the Markdown tables
"""

from __future__ import annotations

import argparse

from minigrad_q.models import build_model

NODES = (1, 2, 4, 8, 16, 32, 64)
LINKS = {  # bandwidth (bytes/s) and per-message latency α (s)
    "10 GbE": (1.1e9, 30e-6),
    "NVLink (H100/H200 class)": (350e9, 8e-6),
}


def gradient_bytes(name: str) -> int:
    options = {"lenet5": {"in_channels": 1, "num_classes": 10, "input_size": 28},
               "toycnn": {"in_channels": 3, "num_classes": 10, "input_size": 32}}[name]
    return 4 * sum(p.numel() for p in build_model(name, **options).parameters())  # float32


def allreduce(nodes: int, size: int, link: str) -> float:
    bandwidth, latency = LINKS[link]
    return 0.0 if nodes == 1 else 2 * (nodes - 1) * latency + 2 * (nodes - 1) / nodes * size / bandwidth


def table(title: str, rows: list[tuple[str, float, bool]], link: str, batch: int) -> list[str]:
    """rows: (model, one node's step time in s, strong scaling?)."""
    lines = [f"### {title}", "", "| model | gradient | " + " | ".join(f"N={n}" for n in NODES) + " |",
             "|---|---:|" + "---:|" * len(NODES)]
    for model, step, strong in rows:
        size = gradient_bytes(model)
        cells = []
        for nodes in NODES:
            compute = step / nodes if strong else step
            total = compute + allreduce(nodes, size, link)
            images = batch * (1 if strong else nodes) / total
            cells.append(f"{1e3 * total:.2f} ms, {images / (batch / step):.1f}x")
        lines.append(f"| {model} | {size / 1024:.0f} KiB | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-lenet5-ms", type=float, default=7.27,
                        help="one LeNet-5 step at batch 64 on one 2-core CPU node (default: 64 images / 8,806 images/s, "
                             "docs/benchmarks/distributed-intel-xeon.md's 1 rank x 2 threads)")
    parser.add_argument("--cpu-toycnn-ms", type=float, default=79.56,
                        help="one toy CNN step at batch 64 on one CPU node (default: docs/benchmarks/intel-xeon.md)")
    parser.add_argument("--cpu", default="a 2-core Intel Xeon", help="the CPU the CPU steps were measured on")
    parser.add_argument("--gpu-lenet5-ms", type=float, default=3.58,
                        help="one LeNet-5 step at batch 128 on one GPU (default: docs/benchmarks-gpu.md, an H200)")
    parser.add_argument("--gpu-toycnn-ms", type=float, default=4.09,
                        help="one toy CNN step at batch 64 on one GPU (default: docs/benchmarks-gpu.md, an H200)")
    parser.add_argument("--gpu", default="an NVIDIA H200 (docs/benchmarks-gpu.md, 2026-12-04)",
                        help="the GPU the GPU steps were measured on")
    args = parser.parse_args()
    lines = ["Each cell: the step time, and the throughput (images/s) relative to one node. Inputs: "
             f"CPU steps {args.cpu_lenet5_ms} ms (LeNet-5) and {args.cpu_toycnn_ms} ms (toy CNN) at batch 64, measured "
             f"on {args.cpu}; GPU steps {args.gpu_lenet5_ms} ms (LeNet-5, batch 128) and {args.gpu_toycnn_ms} ms "
             f"(toy CNN, batch 64), measured on {args.gpu}; links, assumed: "
             + "; ".join(f"{link} {bandwidth / 1e9:g} GB/s, α = {1e6 * latency:g} µs"
                         for link, (bandwidth, latency) in LINKS.items()) + ".", ""]
    lines += table("CPU nodes on 10 GbE, global batch 64 (strong scaling)",
                   [("lenet5", args.cpu_lenet5_ms / 1e3, True), ("toycnn", args.cpu_toycnn_ms / 1e3, True)],
                   "10 GbE", 64)
    lines += table("GPUs on NVLink, each GPU its own batch (weak scaling)",
                   [("lenet5", args.gpu_lenet5_ms / 1e3, False), ("toycnn", args.gpu_toycnn_ms / 1e3, False)],
                   "NVLink (H100/H200 class)", 128)
    lines += table("GPUs on 10 GbE, each GPU its own batch (weak scaling)",
                   [("lenet5", args.gpu_lenet5_ms / 1e3, False), ("toycnn", args.gpu_toycnn_ms / 1e3, False)],
                   "10 GbE", 128)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
