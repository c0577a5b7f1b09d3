"""What handing work to a worker thread costs on this machine, and what it costs the LeNet-5 training step.

conv2d's and max_pool2d's fused CPU paths split a batch between the calling thread and worker threads
(ops/workers.py). Each split wakes a worker and later the caller, and on some virtual machines waking
an idle CPU takes far longer than the work between wake-ups. This script measures:

- a lock ping-pong between two threads pinned to the same CPU and to two different CPUs (round trip);
- ``run_in_workers`` with no work, on two workers;
- in the LeNet-5 training step of ``minigrad-q bench --lenet``: each call that used two workers, its
  time beyond its slower thread's work (the hand-off's cost), and the step with the workers and with
  everything on the calling thread;
- the guest's idle settings where Linux shows them (``guest_halt_poll_ns`` 0: an idle CPU halts at once).

    python scripts/thread_handoff.py [--markdown docs/benchmarks/thread-handoff-intel-xeon.md]
    (the page's name: "thread-handoff-" + the CPU type's, as minigrad_q.bench.machine.cpu_page names it)
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable

import minigrad_q as mq
from minigrad_q import optim
from minigrad_q.bench import machine
from minigrad_q.bench.cnn import MODEL_CASES
from minigrad_q.bench.timing import time_median
from minigrad_q.idle_polling import idle_report
from minigrad_q.models import build_model
from minigrad_q.ops import _conv_plan, _pool_plan, cross_entropy, workers


def ping_pong(first_cpu: int, second_cpu: int, rounds: int = 2000) -> float:
    """Median round trip (s) of a lock handed to a thread on `second_cpu` and back to one on `first_cpu`."""
    there, back = threading.Lock(), threading.Lock()
    there.acquire()
    back.acquire()

    def partner() -> None:
        os.sched_setaffinity(0, {second_cpu})
        for _ in range(rounds):
            there.acquire()
            back.release()

    home = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {first_cpu})
    thread = threading.Thread(target=partner)
    thread.start()
    trips = []
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            there.release()
            back.acquire()
            trips.append(time.perf_counter() - start)
    finally:
        thread.join()
        os.sched_setaffinity(0, home)
    return statistics.median(trips)


def median_call(call: Callable[[], object]) -> float:
    return time_median(call, 15)[0]


def lenet_step() -> Callable[[], object]:
    _, channels, side, batch = MODEL_CASES["lenet"]
    mq.manual_seed(0)
    model = build_model("lenet5", in_channels=channels, input_size=side)
    images = mq.randn(batch, channels, side, side)
    labels = mq.tensor(mq.randint(0, 10, (batch,)).numpy())
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad()
        cross_entropy(model(images), labels).backward()
        optimizer.step()

    return step


def step_handoffs(step: Callable[[], object], steps: int = 50) -> tuple[int, float]:
    """(calls with two or more workers per step, median time (s) such a call took beyond its slower thread's work)."""
    extra: list[float] = []

    def timed(run_in_workers: Callable[..., list]) -> Callable[..., list]:
        def run(work: Callable[[list[int]], object], chunks: int, count: int, **options: bool) -> list:
            spans: list[float] = []

            def timed_work(indices: list[int]) -> object:
                start = time.perf_counter()
                try:
                    return work(indices)
                finally:
                    spans.append(time.perf_counter() - start)

            start = time.perf_counter()
            results = run_in_workers(timed_work, chunks, count, **options)
            if count > 1:
                extra.append(time.perf_counter() - start - max(spans))
            return results
        return run

    modules = [_conv_plan, _pool_plan]
    originals = [module.run_in_workers for module in modules]
    for module, original in zip(modules, originals):
        module.run_in_workers = timed(original)
    try:
        for _ in range(5):
            step()
        extra.clear()
        for _ in range(steps):
            step()
    finally:
        for module, original in zip(modules, originals):
            module.run_in_workers = original
    return len(extra) // steps, statistics.median(extra) if extra else 0.0


def one_thread_step(step: Callable[[], object]) -> float:
    """Median step time (s) with the conv and pool workers off: everything on the calling thread."""
    saved = _conv_plan.THREADS, _pool_plan.PARALLEL_MIN_BYTES
    _conv_plan.THREADS, _pool_plan.PARALLEL_MIN_BYTES = 1, 1 << 62
    try:
        return median_call(step)
    finally:
        _conv_plan.THREADS, _pool_plan.PARALLEL_MIN_BYTES = saved


def measure(step: Callable[[], object], cpus: list[int]) -> list[tuple[str, str]]:
    """(what, value) of each measurement in the module's docstring, under the current idle settings."""
    calls, handoff = step_handoffs(step)
    rows = [("lock round trip, both threads on one CPU", f"{ping_pong(cpus[0], cpus[0]) * 1e6:.1f} us")]
    if len(cpus) > 1:
        rows.append(("lock round trip, threads on two CPUs", f"{ping_pong(cpus[0], cpus[1]) * 1e6:.1f} us"))
    return rows + [
        ("run_in_workers, no work, 2 workers",
         f"{median_call(lambda: workers.run_in_workers(lambda indices: None, 2, 2)) * 1e6:.1f} us"),
        ("LeNet-5 step: calls on two workers", f"{calls} per step"),
        ("... each call's time beyond its slower thread's work", f"{handoff * 1e6:.0f} us (median)"),
        ("... that, times the calls", f"{calls * handoff * 1e3:.2f} ms per step"),
        ("LeNet-5 step with the workers", f"{median_call(step) * 1e3:.2f} ms (median)"),
        ("LeNet-5 step on the calling thread only", f"{one_thread_step(step) * 1e3:.2f} ms (median)")]


def main() -> None:
    parser = machine.page_parser(__doc__)
    args = parser.parse_args()
    facts = machine.describe_machine("cpu")
    cpus = sorted(os.sched_getaffinity(0))
    step = lenet_step()
    columns = {"idle CPUs as the system sets them": measure(step, cpus)}
    try:
        with mq.poll_idle_cpus():
            columns["idle CPUs poll (minigrad_q.poll_idle_cpus)"] = measure(step, cpus)
    except RuntimeError as error:
        print(f"only the system's idle settings measured: {error}")
    names = [name for name, _ in next(iter(columns.values()))]
    lines = [f"| measured | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|",
             *[f"| {name} | {' | '.join(dict(rows)[name] for rows in columns.values())} |" for name in names], "",
             f"Machine: {facts['cpu']}, {len(cpus)} usable cores; NumPy {facts['numpy']} ({facts['blas']}); "
             f"idle CPUs: {idle_report()}; `python scripts/thread_handoff.py`."]
    machine.print_page(lines, args.markdown)


if __name__ == "__main__":
    main()
