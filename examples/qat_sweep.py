"""Quantization-aware training sweep: writes docs/results.md and docs/img/results.png (never typed by hand).

LeNet-5 on the bundled digits and on Fashion-MNIST (when its files are installed), as the QAT papers
train: a float model first, then each method (round + STE, DSQ, LSQ, QuantNoise, PACT) fine-tunes
it at W8A8, W4A4, W3A3 and W2A2 with its own recipe (`minigrad-q train --init-from ... --quant M`),
for seeds 0-2. Every quantized model is converted to an integer model, whose accuracy and agreement
with the fake-quant model are reported beside it. One block of W2A2 runs trained quantized from
scratch shows what the warm start is worth.

Runs go to `--jobs` worker processes (default: the usable cores), each on one thread, so a parallel
sweep computes exactly what a serial one (`--jobs 1`) does. Under `mpiexec -n K` (pip install -e
'.[mpi]') the runs are dealt round-robin to the K ranks instead, on as many machines as the job spans,
each run on one thread; rank 0 gathers them and writes the same page. A run that fails is listed on
the page with its error, not lost.

The full sweep (156 runs) took 33.4 minutes on a 2-core Intel Xeon with 2 worker processes (the last
line of docs/results.md). `--quick` takes about 2 s there; its 200 images and 1-2 epochs leave every
model near chance (about 10%), so its page shows that the sweep runs, not how the methods compare.

    python examples/qat_sweep.py                 # the full sweep
    python examples/qat_sweep.py --quick --out /tmp/results.md   # a smoke run (digits, one seed)
    mpiexec -n 8 python examples/qat_sweep.py    # over MPI ranks
"""

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time

from minigrad_q import data, distributed
from minigrad_q.bench.machine import cpu_model
from minigrad_q.quant import METHODS
from minigrad_q.train import TrainConfig, TrainingDiverged, train

BITS = (8, 4, 3, 2)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
DEFAULT_OUT = os.path.join(ROOT, "docs", "results.md")
DEFAULT_FIGURE = os.path.join(ROOT, "docs", "img", "results.png")
# dataset: (float epochs, fine-tune epochs); quantized from scratch trains as long as the float model
RECIPES = {"digits": (40, 10), "fashion-mnist": (10, 2)}
QUICK = {"digits": (2, 1)}
DATASET_TITLES = {"digits": "LeNet-5 on digits (8x8)", "fashion-mnist": "LeNet-5 on Fashion-MNIST (28x28)"}


# ---------------------------------------------------------------- one run, in a worker process
def _one_thread() -> None:
    """Each run on one BLAS thread (and so one conv2d worker): the same arithmetic however many run at once."""
    import threadpoolctl

    threadpoolctl.threadpool_limits(1)


def run(task: dict) -> dict:
    """One training run described by `task` (TrainConfig fields plus its "label"); returns what the page needs."""
    settings = {name: value for name, value in task.items() if name != "label"}
    start = time.perf_counter()
    try:
        summary = train(TrainConfig(verbose=False, progress=False, **settings))
    except TrainingDiverged:
        return {**task, "accuracy": None, "integer": None, "agreement": None, "seconds": time.perf_counter() - start}
    except Exception as error:  # noqa: BLE001  (reported on the page, not lost with the rest of the sweep)
        return {**task, "accuracy": None, "integer": None, "agreement": None, "seconds": time.perf_counter() - start,
                "failed": f"{type(error).__name__}: {error}"}
    return {**task, "accuracy": summary["test_accuracy"], "integer": summary.get("integer_test_accuracy"),
            "agreement": summary.get("integer_agreement"), "seconds": summary["wall_time_s"]}


def report(result: dict, done: list[int], total: int, where: str = "") -> None:
    """One progress line for a finished run."""
    done[0] += 1
    outcome = result.get("failed") or ("diverged" if result["accuracy"] is None else f"{100 * result['accuracy']:.2f}%")
    if result.get("integer") is not None:
        outcome += f" (integer model {100 * result['integer']:.2f}%, agreement {100 * result['agreement']:.2f}%)"
    print(f"{where}[{done[0]}/{total}] {result['label']}: {outcome} in {result['seconds']:.1f} s", flush=True)


def run_all(tasks: list[dict], pool: concurrent.futures.Executor, done: list[int], total: int) -> list[dict]:
    """`tasks` on the pool, a progress line as each finishes; results in the order of `tasks`."""
    futures = {pool.submit(run, task): index for index, task in enumerate(tasks)}
    results: list = [None] * len(tasks)
    for future in concurrent.futures.as_completed(futures):
        result = results[futures[future]] = future.result()
        report(result, done, total)
    return results


def run_on_ranks(tasks: list[dict], comm: distributed.Communicator, done: list[int], total: int) -> list[dict]:
    """`tasks` dealt round-robin to the MPI ranks, each run on one thread; every rank gets every result,
    in the order of `tasks`."""
    mine = []
    for index in range(comm.rank, len(tasks), comm.size):
        mine.append((index, run(tasks[index])))
        report(mine[-1][1], done, total, f"rank {comm.rank}: ")
    results: list = [None] * len(tasks)
    for index, result in (pair for part in comm.allgather_object(mine) for pair in part):
        results[index] = result
    return results


# ---------------------------------------------------------------- the tasks
def tasks_for(dataset: str, seeds: int, recipes: dict, folder: str, train_size: int | None) -> tuple[list, list]:
    """(float runs, quantized runs) of one dataset."""
    float_epochs, tune_epochs = recipes[dataset]
    base = {"dataset": dataset, "train_size": train_size}
    floats, quantized = [], []
    for seed in range(seeds):
        checkpoint = os.path.join(folder, f"{dataset}-{seed}.safetensors")
        floats.append({**base, "seed": seed, "epochs": float_epochs, "save": checkpoint,
                       "label": f"{dataset} float32 seed {seed}"})
        for method in METHODS:
            for bits in BITS:
                quantized.append({**base, "seed": seed, "epochs": tune_epochs, "quant": method, "wbits": bits,
                                  "abits": bits, "init_from": checkpoint, "convert": True,
                                  "label": f"{dataset} {method} W{bits}A{bits} seed {seed} (fine-tuned)"})
            quantized.append({**base, "seed": seed, "epochs": float_epochs, "quant": method, "wbits": 2, "abits": 2,
                              "convert": True, "label": f"{dataset} {method} W2A2 seed {seed} (from scratch)"})
    return floats, quantized


# ---------------------------------------------------------------- the page
def stats(values: list) -> tuple[float, float, int] | None:
    """(mean %, standard deviation %, runs) over the values that exist (None: a diverged run)."""
    finite = [100 * v for v in values if v is not None]
    if not finite:
        return None
    return statistics.mean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0, len(finite)


def accuracy_text(found: tuple[float, float, int]) -> str:
    """"mean ± std" over two or more runs; one run has no spread, so only its value."""
    return f"{found[0]:.2f} ± {found[1]:.2f}" if found[2] > 1 else f"{found[0]:.2f}"


def cell(values: list, missing: str = "diverged") -> str:
    found = stats(values)
    absent = len(values) - (found[2] if found else 0)
    note = f" ({absent} of {len(values)} {missing})" if absent else ""
    return (missing if found is None else accuracy_text(found)) + note


def select(results: list, dataset: str, method=None, bits=None, scratch: bool = False) -> list:
    """The runs of one table cell (a run that failed is listed apart, not counted)."""
    return [r for r in results if r["dataset"] == dataset and r.get("quant") == method and "failed" not in r
            and (method is None or (r["wbits"] == bits and (r.get("init_from") is None) == scratch))]


def seconds_cell(runs: list) -> str:
    return f"{statistics.mean(r['seconds'] for r in runs):.1f}" if runs else "—"


def table_rows(results: list, dataset: str) -> list[list[str]]:
    """One row per block of runs; a block whose runs all failed shows "—" (they are listed below the tables)."""
    rows = []
    floats = select(results, dataset)
    rows.append(["float32", "32", "", cell([r["accuracy"] for r in floats]) if floats else "—", "—", "—",
                 seconds_cell(floats)])
    blocks = [(method, bits, False) for method in METHODS for bits in BITS] + [(m, 2, True) for m in METHODS]
    for method, bits, scratch in blocks:
        runs = select(results, dataset, method, bits, scratch)
        trained = [r for r in runs if r["accuracy"] is not None]
        agreements = [r["agreement"] for r in trained if r["agreement"] is not None]
        rows.append([method, f"W{bits}A{bits}", "from scratch" if scratch else "fine-tuned",
                     cell([r["accuracy"] for r in runs]) if runs else "—",
                     cell([r["integer"] for r in trained], "not convertible") if trained else "—",
                     f"{100 * min(agreements):.2f}" if agreements else "—", seconds_cell(runs)])
    return rows


def verdict(results: list, dataset: str) -> str:
    """The answer to "does DSQ beat the STE at low bits?" on `dataset`, in words from its numbers."""
    base = stats([r["accuracy"] for r in select(results, dataset)])
    sentences = []
    for bits in (2, 3):
        dsq = stats([r["accuracy"] for r in select(results, dataset, "dsq", bits)])
        ste = stats([r["accuracy"] for r in select(results, dataset, "ste", bits)])
        if dsq is None or ste is None:
            sentences.append(f"At W{bits}A{bits} every DSQ or every STE run diverged or failed, so there is no comparison.")
            continue
        difference, spread = dsq[0] - ste[0], max(dsq[1], ste[1])
        if min(dsq[2], ste[2]) < 2:
            word, judged = "differs from", "one run each: no spread to judge it by"
        else:
            word = "beats" if difference > spread else "trails" if -difference > spread else "is level with"
            judged = f"the seeds spread by up to {spread:.2f}"
        sentences.append(f"At W{bits}A{bits} DSQ {word} the STE: {accuracy_text(dsq)}% against {accuracy_text(ste)}%, "
                         f"a difference of {difference:+.2f} points ({judged}).")
    start = f"Fine-tuned from a float LeNet-5 ({accuracy_text(base)}%), on {dataset}: " if base else ""
    return start + " ".join(sentences)


def markdown(results: list, datasets: list[str], seeds: int, recipes: dict, seconds: float, workers: str,
             train_size: int | None = None) -> str:
    answer_on = "fashion-mnist" if "fashion-mnist" in datasets else datasets[0]
    header = ("method", "bits", "start", "test accuracy % (fake quant)", "integer model %", "min agreement %", "s / run")
    runs = (f"seeds 0-{seeds - 1}, mean ± standard deviation of the test accuracy" if seeds > 1
            else "seed 0 only, one run per cell: the test accuracy, with no spread to show")
    lines = [
        "# QAT results", "",
        "Does DSQ's soft gradient beat the straight-through estimator at low bits? " + verdict(results, answer_on), "",
    ]
    if train_size is not None:
        best = max((r["accuracy"] for r in results if r.get("accuracy") is not None), default=0.0)
        lines += [f"A smoke run (`--quick`): {train_size} training images and a few epochs; the best test accuracy is "
                  f"{100 * best:.2f}% (chance: 10%). It shows that the sweep runs, not how the methods compare.", ""]
    lines += [
        f"Written by `python examples/qat_sweep.py`; do not edit by hand. LeNet-5, {runs}. Each method starts from "
        "the float model of its seed and fine-tunes it with its own defaults (`minigrad-q train --init-from FLOAT --quant M`; "
        "[quantization.md](quantization.md) gives each recipe and its paper's reason); the first conv and the "
        "last linear layer stay at 8 bits. \"from scratch\" rows train quantized from random weights as long as "
        "the float model trained. Every quantized model is converted to an integer model (`mq.quant.convert`): its "
        "accuracy, and the lowest fraction of test images (over the seeds) on which it predicts what the "
        "fake-quant model predicts. A run whose loss or weights became NaN or inf counts as diverged; "
        "\"not convertible\": weights grew too large for the integer format.", "",
        "![accuracy against bits](img/results.png)", "",
    ]
    for dataset in datasets:
        float_epochs, tune_epochs = recipes[dataset]
        lines += [f"## {DATASET_TITLES[dataset]}", "",
                  f"Float: {float_epochs} epochs of `minigrad-q train --dataset {dataset}` (SGD, lr 0.05, cosine). "
                  f"Fine-tuning: {tune_epochs} epoch{'s' * (tune_epochs != 1)} at lr 0.005 (cosine).", "",
                  "| " + " | ".join(header) + " |", "|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in table_rows(results, dataset)]
        lines.append("")
    failed = [r for r in results if "failed" in r]
    if failed:
        lines += ["## Runs that failed", ""] + [f"- {r['label']}: {r['failed']}" for r in failed] + [""]
    took = f"{seconds / 60:.1f} minutes" if seconds >= 60 else f"{seconds:.1f} s"
    lines.append(f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
                 f"{len(results)} runs on {workers} took {took} of wall time.")
    return "\n".join(lines) + "\n"


def figure(results: list, datasets: list[str], path: str) -> bool:
    """Accuracy against bits, one line per method with the seeds' standard deviation as error bars."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('no figure: matplotlib is not installed (pip install -e ".[plot]")')
        return False
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        base = stats([r["accuracy"] for r in select(results, dataset)])
        if base:
            ax.axhline(base[0], color="black", linestyle="--", label=f"float32 {base[0]:.1f}%")
        for method in METHODS:
            points = [(bits, stats([r["accuracy"] for r in select(results, dataset, method, bits)])) for bits in BITS]
            points = [(bits, found) for bits, found in points if found]
            ax.errorbar([b for b, _ in points], [f[0] for _, f in points], yerr=[f[1] for _, f in points],
                        marker="o", capsize=3, label=method)
        ax.set(title=DATASET_TITLES[dataset], xlabel="bits (weights and activations)", ylabel="test accuracy %",
               xticks=BITS)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)
    return True


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(path + ".tmp", path)


def fashion_mnist_installed() -> bool:
    try:
        data.load_dataset("fashion-mnist", split="test")
    except (OSError, ValueError):
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="the Markdown page (default docs/results.md)")
    parser.add_argument("--figure", default=None, help="the PNG (default docs/img/results.png beside the page)")
    parser.add_argument("--json", help="also write every run's result as JSON here")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="worker processes (default: cores)")
    parser.add_argument("--quick", action="store_true", help="digits only, one seed, 200 images, 1-2 epochs: a smoke run")
    args = parser.parse_args()
    if args.jobs < 1 or args.seeds < 1:
        parser.error("--jobs and --seeds must be at least 1")
    start = time.perf_counter()
    seeds = 1 if args.quick else args.seeds
    recipes = QUICK if args.quick else RECIPES
    datasets = ["digits"] if args.quick or not fashion_mnist_installed() else ["digits", "fashion-mnist"]
    comm = distributed.init(data_parallel=False) if distributed.under_launcher() else None
    folder = tempfile.mkdtemp(prefix="qat-sweep-") if comm is None or comm.rank == 0 else None
    if comm is not None:
        folder = comm.bcast_object(folder)  # float checkpoints go where every rank reads them (one file system)
    train_size = 200 if args.quick else None
    plan = [tasks_for(dataset, seeds, recipes, folder, train_size) for dataset in datasets]
    floats = [task for first, _ in plan for task in first]
    quantized = [task for _, rest in plan for task in rest]
    done, total = [0], len(floats) + len(quantized)
    if comm is not None:
        _one_thread()
        results = run_on_ranks(floats, comm, done, total) + run_on_ranks(quantized, comm, done, total)
        workers = f"{comm.size} MPI ranks"
        if comm.rank != 0:
            return
    else:
        context = multiprocessing.get_context("fork")  # the workers inherit this module as it is, also under runpy
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context, initializer=_one_thread) as pool:
            results = run_all(floats, pool, done, total)
            results += run_all(quantized, pool, done, total)
        workers = f"{args.jobs} worker process(es)"
    seconds = time.perf_counter() - start
    write(args.out, markdown(results, datasets, seeds, recipes, seconds, workers, train_size))
    print(f"wrote {args.out}")
    figure_path = args.figure or os.path.join(os.path.dirname(os.path.abspath(args.out)), "img", "results.png")
    os.makedirs(os.path.dirname(figure_path), exist_ok=True)
    if figure(results, datasets, figure_path):
        print(f"wrote {figure_path}")
    if args.json:
        write(args.json, json.dumps([{k: v for k, v in r.items() if k not in ("save", "init_from")} for r in results],
                                    indent=1))


if __name__ == "__main__":
    main()
