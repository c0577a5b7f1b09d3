"""``minigrad-q bench --overhead``: forward + backward of a chain of ``CHAIN_OPS`` (100)
elementwise ops that look like a small net (scale by a weight, add a bias,
tanh, scale, sigmoid, repeated), then ``.sum().backward()``; once on tiny
tensors (8 elements, where Python overhead is everything) and once on 1M
float32 elements (where memory traffic is everything), and the identical
chain in PyTorch in the same run when it is importable.

Timing: the median over ``repeat`` timed repeats after one warm-up run; a
repeat runs the chain ``number`` times (enough for ~50 ms) and divides, with
the garbage collector off, as ``timeit`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import backend
from .timing import ms, synchronizer, time_median, torch_or_reason

CHAIN_OPS = 100
CHAIN_CYCLE = ("h * w", "h + 0.5", "tanh(h)", "h * 0.9", "sigmoid(h)")
TINY_SIZE = 8
TARGETS = {"tiny": 3.0, "large": 1.3}  # minigrad time / PyTorch time we aim to stay under


def chain(h: Any, w: Any) -> Any:
    """CHAIN_OPS elementwise ops, cycling through CHAIN_CYCLE; works on mq and torch tensors alike."""
    for i in range(CHAIN_OPS):
        step = i % len(CHAIN_CYCLE)
        if step == 0:
            h = h * w
        elif step == 1:
            h = h + 0.5
        elif step == 2:
            h = h.tanh()
        elif step == 3:
            h = h * 0.9
        else:
            h = h.sigmoid()
    return h


def _minigrad_step(size: int, device: str) -> tuple[Callable[[], None], Any, Any]:
    import minigrad_q as mq

    uniform = backend.generator(device).random
    x = mq.tensor(uniform(size, dtype=backend.float32) * 2 - 1, requires_grad=True)  # in [-1, 1)
    w = mq.tensor(uniform(size, dtype=backend.float32) + 0.5, requires_grad=True)  # in [0.5, 1.5)

    def step() -> None:
        x.grad = w.grad = None
        chain(x, w).sum().backward()

    return step, x, w


def _torch_step(torch: Any, x: Any, w: Any, device: str) -> tuple[Callable[[], None], tuple[Any, Any]]:
    tx = torch.from_numpy(backend.asnumpy(x.data).copy()).to(device).requires_grad_()
    tw = torch.from_numpy(backend.asnumpy(w.data).copy()).to(device).requires_grad_()

    def step() -> None:
        tx.grad = tw.grad = None
        chain(tx, tw).sum().backward()

    return step, (tx, tw)


def run_overhead(device: str = "cpu", repeat: int = 7, threads: int = 1, large_size: int = 1_000_000) -> dict[str, Any]:
    """Time the chain on tiny and large tensors, in minigrad_q and (when present) PyTorch."""
    device = backend.parse_device(device)  # "cuda" -> "cuda:0": the name backend's helpers and torch take
    torch, no_torch = torch_or_reason(device)
    sync = synchronizer(device)
    torch_sync = (lambda: None) if torch is None or device == "cpu" else torch.cuda.synchronize
    default_threads = torch.get_num_threads() if torch is not None else None
    cases = []
    for name, size in (("tiny", TINY_SIZE), ("large", large_size)):
        step, x, w = _minigrad_step(size, device)
        seconds, number, spread = time_median(step, repeat, sync)
        case: dict[str, Any] = {
            "name": name, "elements": size, "minigrad_s": seconds, "runs_per_repeat": number, "minigrad_spread": spread,
            "minigrad_per_op_us": seconds / CHAIN_OPS * 1e6, "target_ratio": TARGETS[name],
        }
        if torch is not None:
            torch_step, torch_leaves = _torch_step(torch, x, w, device)
            try:
                torch.set_num_threads(default_threads)
                case["torch_default_threads_s"], _, _ = time_median(torch_step, repeat, torch_sync)
                torch.set_num_threads(threads)
                case["torch_s"], _, case["torch_spread"] = time_median(torch_step, repeat, torch_sync)
            finally:
                torch.set_num_threads(default_threads)
            case["torch_per_op_us"] = case["torch_s"] / CHAIN_OPS * 1e6
            case["ratio"] = seconds / case["torch_s"]
            case["ratio_default_threads"] = seconds / case["torch_default_threads_s"]
            case["grad_relative_difference"] = max(
                _relative_difference(ours.grad.data, theirs.grad.cpu().numpy()) for ours, theirs in zip((x, w), torch_leaves)
            )
        cases.append(case)
    return {
        "chain_ops": CHAIN_OPS,
        "chain": ", ".join(CHAIN_CYCLE) + f" repeated to {CHAIN_OPS} ops, then .sum().backward()",
        "dtype": "float32",
        "torch_threads": threads if torch is not None else None,
        "torch_default_threads": default_threads,
        "torch_missing": no_torch or None,
        "cases": cases,
    }


def _relative_difference(ours: Any, theirs: Any) -> float:
    """max |ours - theirs| / max |theirs|: the chain's gradients shrink to ~1e-24 for x, so absolute is meaningless."""
    xp = backend.array_module("cpu")
    return float(xp.abs(backend.asnumpy(ours) - theirs).max() / xp.abs(theirs).max())


def _ratio(case: dict[str, Any], key: str) -> str:
    return "-" if key not in case else f"{case[key]:.2f}x"


def _verdict(case: dict[str, Any]) -> str:
    if "ratio" not in case:
        return f"<= {case['target_ratio']}x (no torch)"
    met = "met" if case["ratio"] <= case["target_ratio"] else "MISSED"
    return f"<= {case['target_ratio']}x {met}"


def rows(overhead: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = [
        "case", "elements", "minigrad_q", "torch (matched threads)", "ratio", "target",
        "torch (default threads)", "ratio", "minigrad_q per op",
    ]
    rows = []
    for case in overhead["cases"]:
        label = "tiny" if case["name"] == "tiny" else f"{case['elements'] / 1e6:g}M"
        rows.append([
            label, str(case["elements"]), ms(case["minigrad_s"], 3), ms(case.get("torch_s"), 3), _ratio(case, "ratio"),
            _verdict(case), ms(case.get("torch_default_threads_s"), 3), _ratio(case, "ratio_default_threads"),
            f"{case['minigrad_per_op_us']:.2f} us",
        ])
    return header, rows


def notes(overhead: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    large = overhead["cases"][-1]
    copy_s = 2 * 4 * large["elements"] / (limits["copy_gbps"] * 1e9)  # float32: read + write 4 bytes each
    notes = [
        f"chain: {overhead['chain']} ({overhead['dtype']}); times are per forward+backward run, median of the repeats",
        f"per op = run time / {overhead['chain_ops']} chain ops (sum() and backward()'s own work included, "
        "so an upper bound on one op's forward+backward cost)",
        "ratio = minigrad_q time / torch time (lower is better); run-to-run spread (slowest - fastest repeat) / median: "
        + ", ".join(
            f"{case['name']} {case['minigrad_spread']:.0%}"
            + (f" (torch {case['torch_spread']:.0%})" if "torch_spread" in case else "")
            for case in overhead["cases"]
        ),
        f"at {large['elements']} elements one op (forward+backward) costs as much as "
        f"{large['minigrad_s'] / overhead['chain_ops'] / copy_s:.1f} copies of the array at the measured copy bandwidth",
    ]
    if overhead["torch_missing"]:
        notes.append(f"no PyTorch comparison: {overhead['torch_missing']}")
    else:
        notes.append(
            f"matched threads: torch.set_num_threads({overhead['torch_threads']}) (numpy elementwise is single-threaded); "
            f"default threads: torch's own default, {overhead['torch_default_threads']}"
        )
        worst = max(case.get("grad_relative_difference", 0.0) for case in overhead["cases"])
        notes.append(f"gradients of x and w agree with torch's to {worst:.1e} (max abs difference / max abs gradient)")
    return notes
