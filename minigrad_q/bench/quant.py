"""``minigrad-q bench --quant``: the quantizers' forward + backward against PyTorch and a memory copy.

Every case quantizes one float32 tensor of ``QUANT_SIZE`` (16M) elements, then
back-propagates a given output gradient (the gradients of x and of every
learnable parameter):

- fake_quant vs ``torch.fake_quantize_per_tensor_affine`` (a fused op): target <= 0.5x;
- dsq vs the MQBench DSQ formula in eager torch ops (clamp into the range,
  floor, the tanh soft curve with S = 1/(1-α), k = log(2/α - 1), round with
  an STE by the detach trick): target <= 0.2x;
- quant_noise vs ``w + (mask·(q(w) - w)).detach()`` in eager torch ops (q from
  w's min/max, a Bernoulli(p) mask drawn by each engine inside the step):
  target <= 0.2x; a second row passes the same fixed mask to both;
- lsq vs ``torch._fake_quantize_learnable_per_tensor_affine`` (fused; learnable
  step) and pact vs the PACT formula in eager torch ops (learnable alpha):
  reported, no target.

Every case is also timed against ``copyto`` of a tensor of the same size (one
read and one write of 64 MiB) in the same rounds: target within 5x. PyTorch
(when installed) runs with NumPy's BLAS thread count (or ``--threads``). The
engines take turns in rounds (minigrad_q, torch, copy, each warming up before
its timed calls, see timing.time_rounds); times are medians over the rounds and
minima over every timed call; ratios are medians of the rounds' ratios and
ratios of the minima ("best").
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable
from typing import Any, NamedTuple

from .. import backend
from ..inspect import format_table
from ..quant import FLOAT32_EPS, dsq, fake_quant, lsq, pact, qrange, quant_noise
from .timing import WARMUP_S, blas_threads, ms, synchronizer, time_rounds, torch_or_reason, torch_threads

QUANT_SIZE = 1 << 24  # 16M float32 elements: 64 MiB, far beyond any cache
COPY_TARGET = 5.0  # quantizer forward + backward time / copy time
BITS = 4
SCALE, ZERO_POINT, QMIN, QMAX = 0.4, 8, 0, 15  # unsigned 4-bit grid covering [-3.2, 2.8]: x ~ N(0, 1)
DSQ_ALPHA = 0.2
NOISE_P = 0.5  # the fixed-mask row's mask is the sign of the N(0, 1) output gradient: Bernoulli(1/2)
LSQ_QMIN, LSQ_QMAX = -8, 7  # signed 4-bit, no zero point
PACT_ALPHA = 2.0
MISMATCH_TOLERANCE = 1e-4  # elements differing by more than this x max |torch's| count as mismatches

Built = tuple[Callable[[], Any], dict[str, Any]]  # (forward, learnable parameters by name)


class QuantCase(NamedTuple):
    """One quantizer: its settings, its torch baseline and target, and how to build both forwards.

    ``ours(x, grad_out)`` and ``theirs(torch, x, grad_out)`` return (forward, parameters): forward()
    quantizes x and returns the output; parameters are the learnable tensors besides x, by name."""

    name: str
    settings: str
    torch_baseline: str
    target: float | None  # minigrad_q time / torch time; None: reported only
    ours: Callable[..., Built]
    theirs: Callable[..., Built]


# ---------------------------------------------------------------- the cases
def _learnable(value: float, like: Any) -> Any:
    """A one-element float32 parameter that requires grad, made on x's device: a leaf there (moved with
    .to(), it would be the output of a ToDevice op, whose saved arrays the first backward frees)."""
    import minigrad_q as mq

    return mq.tensor([value], device=like.device, requires_grad=True)


def _ours_fake_quant(x: Any, grad_out: Any) -> Built:
    return functools.partial(fake_quant, x, SCALE, ZERO_POINT, QMIN, QMAX), {}


def _torch_fake_quant(torch: Any, x: Any, grad_out: Any) -> Built:
    return functools.partial(torch.fake_quantize_per_tensor_affine, x, SCALE, ZERO_POINT, QMIN, QMAX), {}


def _ours_dsq(x: Any, grad_out: Any) -> Built:
    return functools.partial(dsq, x, SCALE, ZERO_POINT, QMIN, QMAX, DSQ_ALPHA), {}


def torch_dsq(torch: Any, x: Any, scale: float, zero_point: float, qmin: int, qmax: int, alpha: float) -> Any:
    """MQBench's DSQ in eager torch ops (alpha and scale fixed): u = clamp(x/s + z, qmin, qmax),
    f = floor(u), soft = f + 0.5 + 0.5·S·tanh(k·(u - f - 0.5)), round by the detach trick, back to float."""
    tanh_scale = 1 / (1 - alpha)
    tanh_k = math.log(2 / alpha - 1)
    u = torch.clamp(x / scale + zero_point, qmin, qmax)
    floor = u.floor()
    soft = floor + 0.5 * tanh_scale * torch.tanh(tanh_k * (u - floor - 0.5)) + 0.5
    rounded = (soft.round() - soft).detach() + soft
    return (rounded - zero_point) * scale


def _torch_dsq(torch: Any, x: Any, grad_out: Any) -> Built:
    return functools.partial(torch_dsq, torch, x, SCALE, ZERO_POINT, QMIN, QMAX, DSQ_ALPHA), {}


def _ours_quant_noise(x: Any, grad_out: Any, fixed_mask: bool = False) -> Built:
    import minigrad_q as mq

    mask = mq.tensor(grad_out.data > 0) if fixed_mask else None  # see _torch_quant_noise
    return functools.partial(quant_noise, x, NOISE_P, BITS, mask=mask), {}


def torch_quant_noise(torch: Any, w: Any, p: float, qmin: int, qmax: int, mask: Any = None) -> Any:
    """QuantNoise in eager torch ops: q(w) fake-quantizes w with the (scale, zero point) of its min/max
    (torch's MinMaxObserver rule), the mask is Bernoulli(p) per element unless given, and
    w + (mask·(q(w) - w)).detach() keeps the identity gradient."""
    with torch.no_grad():
        low, high = torch.aminmax(w)
        low, high = torch.clamp(low, max=0), torch.clamp(high, min=0)
        scale = torch.clamp((high - low) / (qmax - qmin), min=FLOAT32_EPS)
        zero_point = torch.clamp(qmin - torch.round(low / scale), qmin, qmax)
        quantized = (torch.clamp(torch.round(w / scale) + zero_point, qmin, qmax) - zero_point) * scale
        if mask is None:
            mask = torch.empty_like(w).bernoulli_(p)
        noise = mask * (quantized - w)
    return w + noise


def _torch_quant_noise(torch: Any, x: Any, grad_out: Any, fixed_mask: bool = False) -> Built:
    # The fixed mask: the output gradient is N(0, 1) and independent of x, its sign is Bernoulli(1/2) = NOISE_P.
    mask = (grad_out > 0).to(x.dtype) if fixed_mask else None
    return functools.partial(torch_quant_noise, torch, x, NOISE_P, *qrange(BITS, signed=False), mask), {}


def _lsq_init(x_abs_mean: float) -> float:
    return 2 * x_abs_mean / math.sqrt(LSQ_QMAX)  # LSQ's s0 = 2·mean|x|/sqrt(Qp)


def _ours_lsq(x: Any, grad_out: Any) -> Built:
    step_size = _learnable(_lsq_init(float(abs(x.data).mean())), x)
    return functools.partial(lsq, x, step_size, LSQ_QMIN, LSQ_QMAX), {"step": step_size}


def _torch_lsq(torch: Any, x: Any, grad_out: Any) -> Built:
    step_size = torch.tensor([_lsq_init(float(x.detach().abs().mean()))], device=x.device, requires_grad=True)
    zero_point = torch.zeros(1, device=x.device)
    grad_factor = 1 / math.sqrt(x.numel() * LSQ_QMAX)  # lsq's default grad_scale, 1/sqrt(N·Qp)
    return functools.partial(torch._fake_quantize_learnable_per_tensor_affine, x, step_size, zero_point,
                             LSQ_QMIN, LSQ_QMAX, grad_factor), {"step": step_size}


def _ours_pact(x: Any, grad_out: Any) -> Built:
    alpha = _learnable(PACT_ALPHA, x)
    return functools.partial(pact, x, alpha, BITS), {"alpha": alpha}


def torch_pact(torch: Any, x: Any, alpha: Any, bits: int) -> Any:
    """PACT in eager torch ops: y = clamp(x, 0, alpha) (dy/dalpha = 1[x >= alpha]), then
    round(y·n/alpha)·alpha/n with n = 2^bits - 1 and an STE by the detach trick."""
    levels = 2**bits - 1
    clipped = torch.where(x < alpha, torch.clamp(x, min=0), alpha)
    quantized = torch.round(clipped * (levels / alpha)) * (alpha / levels)
    return clipped + (quantized - clipped).detach()


def _torch_pact(torch: Any, x: Any, grad_out: Any) -> Built:
    alpha = torch.tensor([PACT_ALPHA], device=x.device, requires_grad=True)
    return functools.partial(torch_pact, torch, x, alpha, BITS), {"alpha": alpha}


_GRID = f"{BITS}-bit [{QMIN}, {QMAX}], scale {SCALE}, zero point {ZERO_POINT}"
_NOISE = f"p {NOISE_P}, {BITS}-bit unsigned, min/max qparams"
_NOISE_TORCH = "w + (mask·(q(w) - w)).detach(), eager ops"
CASES: tuple[QuantCase, ...] = (
    QuantCase("fake_quant", _GRID, "torch.fake_quantize_per_tensor_affine (fused)", 0.5,
              _ours_fake_quant, _torch_fake_quant),
    QuantCase("dsq", f"{_GRID}, alpha {DSQ_ALPHA}", "MQBench formula, eager ops", 0.2, _ours_dsq, _torch_dsq),
    QuantCase("quant_noise", f"{_NOISE}, mask drawn each step", f"{_NOISE_TORCH}, bernoulli_ mask", 0.2,
              _ours_quant_noise, _torch_quant_noise),
    QuantCase("quant_noise (mask given)", f"{_NOISE}, the same fixed mask", _NOISE_TORCH, 0.2,
              functools.partial(_ours_quant_noise, fixed_mask=True), functools.partial(_torch_quant_noise, fixed_mask=True)),
    QuantCase("lsq", f"{BITS}-bit [{LSQ_QMIN}, {LSQ_QMAX}], learnable step (init 2·mean|x|/sqrt(Qp))",
              "torch._fake_quantize_learnable_per_tensor_affine (fused)", None, _ours_lsq, _torch_lsq),
    QuantCase("pact", f"{BITS}-bit, learnable alpha {PACT_ALPHA}", "PACT formula, eager ops", None,
              _ours_pact, _torch_pact),
)


def _stepper(forward: Callable[[], Any], grad_out: Any, leaves: dict[str, Any]) -> Callable[[], Any]:
    """One timed call: clear the leaves' gradients, forward, back-propagate grad_out; returns the output."""

    def step() -> Any:
        for leaf in leaves.values():
            leaf.grad = None
        output = forward()
        output.backward(grad_out)
        return output

    return step


# ---------------------------------------------------------------- timing
def _summary(times: dict[str, list[list[float]]], name: str) -> dict[str, float]:
    """name_s: median over the rounds of each round's median; name_min_s: the best call; name_spread."""
    medians = [statistics.median(round_times) for round_times in times[name]]
    median = statistics.median(medians)
    return {f"{name}_s": median, f"{name}_min_s": min(min(t) for t in times[name]),
            f"{name}_spread": (max(medians) - min(medians)) / median if median else 0.0}


def _ratios(times: dict[str, list[list[float]]], ours: str, theirs: str) -> tuple[float, float]:
    """(median over rounds of the rounds' median ratios, ratio of the minima)."""
    per_round = [statistics.median(a) / statistics.median(b) for a, b in zip(times[ours], times[theirs])]
    best = min(min(t) for t in times[ours]) / min(min(t) for t in times[theirs])
    return statistics.median(per_round), best


# ---------------------------------------------------------------- agreement
def _mismatch(ours: Any, theirs: Any) -> float:
    """Elementwise arrays: the fraction of elements differing by more than MISMATCH_TOLERANCE x max |theirs|
    (a near-tie rounded the other way is one element). One element: the relative difference."""
    ours = backend.asnumpy(ours).astype("float64").ravel()
    theirs = theirs.detach().cpu().double().numpy().ravel()
    difference = abs(ours - theirs)
    if theirs.size == 1:
        return float(difference[0] / max(abs(theirs[0]), 1e-30))
    return float((difference > MISMATCH_TOLERANCE * max(float(abs(theirs).max()), 1e-30)).mean())


def _agreement(output: Any, torch_output: Any, leaves: dict[str, Any], torch_leaves: dict[str, Any]) -> dict[str, float]:
    found = {"output": _mismatch(output.data, torch_output)}
    for name, leaf in leaves.items():
        if leaf.grad is not None and torch_leaves[name].grad is not None:
            found[f"{name}.grad"] = _mismatch(leaf.grad.data, torch_leaves[name].grad)
    return found


# ---------------------------------------------------------------- running
def run_quant(device: str = "cpu", repeat: int = 7, threads: int | None = None, size: int = QUANT_SIZE,
              cases: tuple[QuantCase, ...] | None = None, warmup: float | None = None,
              **unused: Any) -> dict[str, Any]:
    """Forward + backward of every quantizer in `cases` (default CASES) on `size` float32 elements,
    against torch (when installed) and a copy of the same size, timed in the same rounds
    (each engine runs `warmup` seconds before its timed calls in each round, default WARMUP_S)."""
    import minigrad_q as mq

    if size < 1:
        raise ValueError(f"bench --quant: size must be at least 1, got {size}")
    device = backend.parse_device(device)  # "cuda" -> "cuda:0": the name backend's helpers and torch take
    torch, missing = torch_or_reason(device)
    count = threads or blas_threads()
    sync = synchronizer(device)
    torch_sync = (lambda: None) if torch is None or device == "cpu" else torch.cuda.synchronize
    xp = backend.array_module(device)
    gen = backend.generator(device)
    x_data = gen.standard_normal(size, dtype=backend.float32)
    grad_data = gen.standard_normal(size, dtype=backend.float32)
    copy_source = xp.ones(size, dtype=backend.float32)
    copy_target = xp.zeros_like(copy_source)  # touched once: the timed copies pay no page faults
    copy = lambda: xp.copyto(copy_target, copy_source)  # noqa: E731
    results = []
    for case in cases or CASES:
        x = mq.tensor(x_data.copy(), requires_grad=True)
        grad_out = mq.tensor(grad_data)
        forward, parameters = case.ours(x, grad_out)
        leaves = {"x": x, **parameters}
        step = _stepper(forward, grad_out, leaves)
        engines = {"minigrad": (step, sync, False)}
        torch_step = torch_leaves = None
        if torch is not None:
            tx = torch.from_numpy(backend.asnumpy(x_data).copy()).to(device).requires_grad_()
            tg = torch.from_numpy(backend.asnumpy(grad_data).copy()).to(device)
            with torch_threads(torch, count):
                forward, parameters = case.theirs(torch, tx, tg)
            torch_leaves = {"x": tx, **parameters}
            torch_step = _stepper(forward, tg, torch_leaves)
            engines["torch"] = (torch_step, torch_sync, True)
        engines["copy"] = (copy, sync, False)
        times = time_rounds(engines, repeat, WARMUP_S if warmup is None else warmup, torch, count)
        result: dict[str, Any] = {"name": case.name, "settings": case.settings, "elements": size,
                                  "target_ratio": case.target, "copy_target": COPY_TARGET,
                                  "rounds": len(times["minigrad"]), "repeats_per_round": len(times["minigrad"][0])}
        result.update(_summary(times, "minigrad"))
        result.update(_summary(times, "copy"))
        result["copy_ratio"], result["copy_ratio_best"] = _ratios(times, "minigrad", "copy")
        if torch_step is not None and torch_leaves is not None:
            result["torch_baseline"] = case.torch_baseline
            result.update(_summary(times, "torch"))
            result["ratio"], result["ratio_best"] = _ratios(times, "minigrad", "torch")
            with torch_threads(torch, count):
                result["mismatch"] = _agreement(step(), torch_step(), leaves, torch_leaves)
        results.append(result)
        del step, torch_step, leaves, torch_leaves, engines
    return {"cases": results, "elements": size, "dtype": "float32", "device": device,
            "torch_threads": count if torch is not None else None, "torch_missing": missing or None,
            "blas_threads": blas_threads(), "mismatch_tolerance": MISMATCH_TOLERANCE}


# ---------------------------------------------------------------- reporting
def _verdict(value: float | None, target: float | None) -> str:
    if target is None:
        return "-"
    if value is None:
        return f"<= {target:g}x (no torch)"
    return f"<= {target:g}x {'met' if value <= target else 'MISSED'}"


def _elements(size: int) -> str:
    return f"{size / (1 << 20):g}M" if size % (1 << 18) == 0 else f"{size:,}"


HEADER = ["quantizer", "minigrad_q", "best", "torch", "best", "ratio", "best", "target", "x copy", "best", "target"]


def table(quant: dict[str, Any]) -> tuple[str, list[str], list[list[str]], list[str]]:
    """(title, header, rows, notes) of a --quant run."""
    rows = []
    for case in quant["cases"]:
        ratio = case.get("ratio")
        rows.append([
            case["name"], ms(case["minigrad_s"]), ms(case["minigrad_min_s"]), ms(case.get("torch_s")),
            ms(case.get("torch_min_s")), "-" if ratio is None else f"{ratio:.2f}x",
            "-" if ratio is None else f"{case['ratio_best']:.2f}x", _verdict(ratio, case["target_ratio"]),
            f"{case['copy_ratio']:.1f}x", f"{case['copy_ratio_best']:.1f}x", _verdict(case["copy_ratio"], COPY_TARGET),
        ])
    first = quant["cases"][0]
    copy_gbps = 2 * 4 * quant["elements"] / first["copy_min_s"] / 1e9
    notes = [
        f"forward + backward on {quant['elements']:,} {quant['dtype']} elements (x ~ N(0, 1), output gradient "
        f"given); times: median over {first['rounds']} rounds of {first['repeats_per_round']} calls, "
        "and the best call; ratios: median of the rounds' ratios, and the ratio of the best calls",
        f"x copy = time / the time of copyto on {quant['elements']:,} float32 elements, timed in the same rounds "
        f"(best: {ms(first['copy_min_s'])}, {copy_gbps:.1f} GB/s read + written)",
        "settings: " + "; ".join(f"{case['name']}: {case['settings']}" for case in quant["cases"]),
        "run-to-run spread (slowest - fastest round) / median: " + "; ".join(
            f"{case['name']}: minigrad_q {case['minigrad_spread']:.0%}"
            + (f", torch {case['torch_spread']:.0%}" if "torch_spread" in case else "") for case in quant["cases"]),
    ]
    if quant["torch_missing"]:
        notes.append(f"no PyTorch comparison: {quant['torch_missing']}")
    else:
        notes.append("torch baselines: " + "; ".join(f"{case['name']}: {case['torch_baseline']}"
                                                     for case in quant["cases"]))
        notes.append(f"threads: NumPy's BLAS {quant['blas_threads']}, torch.set_num_threads({quant['torch_threads']}); "
                     "engines take turns in each round (minigrad_q, torch, copy), each after 0.2 s of warm-up calls")
        notes.append(f"agreement with torch (fraction of elements differing by more than {quant['mismatch_tolerance']:g} "
                     "x max |torch's|; relative difference for one-element gradients): " + "; ".join(
                         f"{case['name']}: " + ", ".join(f"{key} {value:.1e}" for key, value in case["mismatch"].items())
                         for case in quant["cases"]))
        notes.append("quant_noise with a drawn mask: the engines draw different masks, so the outputs differ "
                     "where one noised an element and the other did not")
    title = f"quantizers: forward + backward on {_elements(quant['elements'])} float32 elements"
    return title, HEADER, rows, notes


def format_results(results: dict[str, Any]) -> str:
    """The --quant table as text (printed after suite.format_results's)."""
    if "quant" not in results:
        return ""
    title, header, rows, notes = table(results["quant"])
    return "\n\n" + "\n".join([title, format_table(header, rows), *("  " + note for note in notes)])


def write_markdown(results: dict[str, Any]) -> str:
    """The --quant section of docs/benchmarks.md (appended to suite.write_markdown's text)."""
    if "quant" not in results:
        return ""
    title, header, rows, notes = table(results["quant"])
    return "\n".join([
        "", f"## {title[0].upper()}{title[1:]}", "",
        "`minigrad-q bench --quant`. Targets: fake_quant at most 0.5x PyTorch's fused "
        "`fake_quantize_per_tensor_affine`, DSQ and QuantNoise at most 0.2x the same formula in eager PyTorch, "
        f"each within {COPY_TARGET:g}x of a memory copy of the tensor; LSQ and PACT reported.", "",
        "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows), "", *("- " + note for note in notes),
    ]) + "\n"
