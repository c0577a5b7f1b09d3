"""Quantization-aware training sweep: writes docs/results.md (never typed by hand).

LeNet-5 on the bundled digits (and on Fashion-MNIST when its files are
installed): float32, then W8A8, W4A4 and W2A2 for each method (round+STE, DSQ,
LSQ, QuantNoise, PACT on the activations), each over several seeds with the
training command's settings. Every quantized run is also converted to an
integer model, whose accuracy and agreement with the fake-quant model are
reported beside it.

    python examples/qat_sweep.py                # the full sweep (about 10 minutes on 2 cores)
    python examples/qat_sweep.py --quick --out /tmp/results.md   # a smoke run
"""

import argparse
import os
import platform
import statistics
import time

from minigrad_q import data
from minigrad_q.quant import METHODS
from minigrad_q.train import TrainConfig, TrainingDiverged, train

BITS = (8, 4, 2)
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs", "results.md")


def run(dataset: str, method, bits, seed: int, settings: dict) -> dict:
    """One training run; method None is float32."""
    quant = {} if method is None else {"quant": method, "wbits": bits, "abits": bits, "convert": True}
    try:
        summary = train(TrainConfig(dataset=dataset, seed=seed, verbose=False, progress=False, **settings, **quant))
    except TrainingDiverged:
        return {"accuracy": None, "integer": None, "agreement": None, "seconds": None}
    return {"accuracy": summary["test_accuracy"], "integer": summary.get("integer_test_accuracy"),
            "agreement": summary.get("integer_agreement"), "seconds": summary["wall_time_s"]}


def mean_std(values, missing: str = "diverged") -> str:
    """Mean ± standard deviation in percent over the runs with a value; the others (None) are counted as `missing`."""
    finite = [100 * v for v in values if v is not None]
    absent = f" ({len(values) - len(finite)} of {len(values)} {missing})" if len(finite) < len(values) else ""
    if not finite:
        return missing + absent
    spread = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return f"{statistics.mean(finite):.2f} ± {spread:.2f}{absent}"


def sweep(dataset: str, seeds: int, settings: dict) -> list[list[str]]:
    """Table rows: method, bits, fake-quant accuracy, integer accuracy, agreement, seconds per run."""
    rows = []
    for method in (None, *METHODS):
        for bits in (None,) if method is None else BITS:
            runs = [run(dataset, method, bits, seed, settings) for seed in range(seeds)]
            label = "float32" if method is None else method
            row = [label, "32" if bits is None else f"W{bits}A{bits}", mean_std([r["accuracy"] for r in runs])]
            if method is None:
                row += ["—", "—"]
            else:
                agreements = [r["agreement"] for r in runs if r["agreement"] is not None]
                trained = [r for r in runs if r["accuracy"] is not None]  # a diverged run has no model to convert
                integer = mean_std([r["integer"] for r in trained], "not convertible") if trained else "—"
                row += [integer, f"{100 * min(agreements):.2f}" if agreements else "—"]
            seconds = [r["seconds"] for r in runs if r["seconds"] is not None]
            row.append(f"{statistics.mean(seconds):.1f}" if seconds else "—")
            rows.append(row)
            print(" | ".join(row), flush=True)
    return rows


def markdown(sections: list[tuple[str, str, list[list[str]]]], seeds: int, seconds: float) -> str:
    header = ("method", "bits", "test accuracy % (fake quant)", "integer model %", "min agreement %", "s / run")
    lines = [
        "# QAT results",
        "",
        "Written by `python examples/qat_sweep.py`; do not edit by hand. Mean ± standard deviation of the",
        f"test accuracy over seeds 0-{seeds - 1}. Each quantized model was also converted to an integer model",
        "(`mq.quant.convert`): its accuracy, and the lowest fraction of test images (over the seeds) on",
        "which it predicts the same class as the fake-quant model. WkAk: k-bit weights (per channel) and",
        "k-bit activations. Methods: `ste` round + straight-through estimator, `dsq` differentiable soft",
        "quantization (alpha 0.2, fixed), `lsq` learned step size, `qnoise` QuantNoise (p = 0.5, STE",
        "activations), `pact` PACT activations with STE weights. A run that diverged (NaN or inf) is counted",
        "as such; \"not convertible\": training left weights so large that a requantization multiplier does",
        "not fit the fixed-point format (`RequantizationOverflow`).",
        "",
    ]
    for title, how, rows in sections:
        lines += [f"## {title}", "", how, "", "| " + " | ".join(header) + " |",
                  "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    lines.append(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}; "
                 f"the sweep took {seconds / 60:.1f} minutes.")
    return "\n".join(lines) + "\n"


def fashion_mnist_installed() -> bool:
    try:
        data.load_dataset("fashion-mnist", split="test")
    except (OSError, ValueError):
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="where the Markdown table goes (default docs/results.md)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fashion-epochs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one seed, one epoch, 200 images: a smoke run")
    args = parser.parse_args()
    start = time.perf_counter()
    seeds = 1 if args.quick else args.seeds
    digits = {"epochs": 1, "train_size": 200} if args.quick else {}
    sections = [("LeNet-5 on digits (8x8)", "`minigrad-q train` settings: 40 epochs, SGD, cosine schedule.",
                 sweep("digits", seeds, digits))]
    if not args.quick and fashion_mnist_installed():
        settings = {"epochs": args.fashion_epochs}
        sections.append(("LeNet-5 on Fashion-MNIST (28x28)",
                         f"`minigrad-q train --dataset fashion-mnist --epochs {args.fashion_epochs}` settings.",
                         sweep("fashion-mnist", seeds, settings)))
    text = markdown(sections, seeds, time.perf_counter() - start)
    temporary = args.out + ".tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
