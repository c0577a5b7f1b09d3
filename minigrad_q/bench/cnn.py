"""``minigrad-q bench --conv --lenet --toycnn --rss``: CNN speed against PyTorch and the machine's GEMM rate.

- conv: ``conv2d`` forward + backward (input, weight and bias gradients) for
  the shapes in ``CONV_CASES``, the output gradient given.
- lenet / toycnn: one SGD training step (momentum 0.9): zero_grad, forward,
  cross-entropy, backward, update; LeNet-5 on 1x28x28 (batch 128) and the toy
  CNN on 3x32x32 (batch 64), random inputs and labels.
- rss: peak resident memory over a 200-step LeNet run, in a fresh process,
  sampled after warm-up and at the end: it must stay flat.

PyTorch (when installed) gets the same weights, inputs and float32, and the
same number of threads as NumPy's BLAS uses (threadpoolctl's count, else the
usable cores) unless ``--threads`` says otherwise. The two are timed in
alternating rounds (``time_both``) so that a shared machine's drift does not
land in the ratio; in each round an engine first runs back to back for
WARMUP_S, as in training (after an idle pause, this 2-vCPU VM takes several
milliseconds to wake worker threads). GFLOP/s counts the GEMM
work of convolutions and linear layers only (forward 2·MACs, backward 2·MACs
for each of the weight and input gradients; the first layer's input gradient
is not computed in a training step, so not counted there).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from .. import backend
from .timing import WARMUP_S, blas_threads, ms, synchronizer, time_both, torch_or_reason, torch_threads

TARGET_RATIO = 1.5
CONV_CASES = (  # name, N, C, K, H=W, kernel, padding
    ("N64 C32 K32 32x32 3x3 p1", 64, 32, 32, 32, 3, 1),
    ("N128 C1 K6 28x28 5x5 p2", 128, 1, 6, 28, 5, 2),
)
MODEL_CASES = {"lenet": ("lenet5", 1, 28, 128), "toycnn": ("toycnn", 3, 32, 64)}  # model, channels, side, batch
DISPLAY_NAMES = {"lenet5": "LeNet-5", "toycnn": "toy CNN"}
RSS_STEPS, RSS_WARMUP = 200, 20
LR, MOMENTUM = 0.01, 0.9


def _with_torch(device: str, threads: int | None) -> tuple[Any, str, int]:
    """(torch or None, why not, threads it is to run with)."""
    torch, missing = torch_or_reason(device)
    return torch, missing, threads or blas_threads()


def _compare(result: dict[str, Any], timing: dict[str, Any], flops: float, gemm_gflops: float) -> None:
    result.update(timing)
    result["gflops"] = flops / timing["minigrad_s"] / 1e9
    result["gemm_fraction"] = result["gflops"] / gemm_gflops if gemm_gflops else None
    result["target_ratio"] = TARGET_RATIO
    if "torch_s" in timing:
        result["torch_gflops"] = flops / timing["torch_s"] / 1e9


def _max_relative(ours: Any, theirs: Any) -> float:
    xp = backend.array_module("cpu")
    ours = backend.asnumpy(ours).astype("float64")
    theirs = theirs.detach().cpu().double().numpy()
    return float(xp.abs(ours - theirs).max() / max(float(xp.abs(theirs).max()), 1e-30))


# ---------------------------------------------------------------- conv2d
def conv_step(conv2d: Callable[..., Any], x: Any, w: Any, b: Any, grad_out: Any, padding: int) -> Callable[[], None]:
    """Forward + backward of one convolution (minigrad_q's or torch's: the same code drives both)."""

    def step() -> None:
        x.grad = w.grad = b.grad = None
        conv2d(x, w, b, padding=padding).backward(grad_out)

    return step


def run_conv(device: str = "cpu", repeat: int = 7, threads: int | None = None, gemm_gflops: float = 0.0,
             cases: tuple[tuple[Any, ...], ...] | None = None, **unused: Any) -> dict[str, Any]:
    """conv2d forward + backward for each case (default CONV_CASES), in minigrad_q and PyTorch."""
    import minigrad_q as mq
    from minigrad_q import ops

    device = backend.parse_device(device)  # "cuda" -> "cuda:0": the name backend's helpers and torch take
    torch, missing, count = _with_torch(device, threads)
    sync = synchronizer(device)
    torch_sync = (lambda: None) if torch is None or device == "cpu" else torch.cuda.synchronize
    gen = backend.generator(device)
    results = []
    for name, n, c, k, side, kernel, padding in cases or CONV_CASES:
        x = mq.tensor(gen.standard_normal((n, c, side, side), dtype=backend.float32), requires_grad=True)
        w = mq.tensor(gen.standard_normal((k, c, kernel, kernel), dtype=backend.float32) * 0.1, requires_grad=True)
        b = mq.tensor(gen.standard_normal((k,), dtype=backend.float32), requires_grad=True)
        out_side = side + 2 * padding - kernel + 1
        grad_out = mq.tensor(gen.standard_normal((n, k, out_side, out_side), dtype=backend.float32))
        step = conv_step(ops.conv2d, x, w, b, grad_out, padding)
        flops = 6 * n * k * c * kernel * kernel * out_side * out_side
        case: dict[str, Any] = {"name": name, "shape": [n, c, k, side, kernel, padding], "flops": flops}
        torch_step = None
        if torch is not None:
            tx, tw, tb, tg = (torch.from_numpy(backend.asnumpy(t.data).copy()).to(device) for t in (x, w, b, grad_out))
            for leaf in (tx, tw, tb):
                leaf.requires_grad_()
            torch_step = conv_step(torch.nn.functional.conv2d, tx, tw, tb, tg, padding)
        _compare(case, time_both(step, sync, torch_step, torch_sync, torch, count, repeat), flops, gemm_gflops)
        if torch is not None:
            pairs = ((x, tx), (w, tw), (b, tb))
            case["grad_relative_difference"] = max(
                _max_relative(ours.grad.data, theirs.grad) for ours, theirs in pairs if ours.grad is not None
            )
        results.append(case)
    return {"cases": results, "torch_threads": count if torch is not None else None, "torch_missing": missing or None,
            "dtype": "float32", "blas_threads": blas_threads(), "rounds": results[0]["rounds"],
            "repeats_per_round": results[0]["repeats_per_round"]}


# ---------------------------------------------------------------- training steps
def _layer_flops(model: Any, images: Any) -> float:
    """GEMM FLOPs of one training step: 3x forward for every conv/linear, minus the first layer's input gradient."""
    from minigrad_q import nn
    from minigrad_q.core import no_grad

    forward: list[float] = []

    def record(module: Any, inputs: Any, output: Any) -> None:
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        else:
            per_output = module.in_features
        forward.append(2.0 * output.numel() * per_output)

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    return 3 * sum(forward) - forward[0]


def _torch_twin(torch: Any, model: Any, device: str) -> Any:
    """The same layers in torch.nn, holding copies of `model`'s weights (state-dict names match)."""
    from minigrad_q import nn

    layers = []
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            layers.append(torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, padding=layer.padding))
        elif isinstance(layer, nn.Linear):
            layers.append(torch.nn.Linear(layer.in_features, layer.out_features))
        elif isinstance(layer, nn.ReLU):
            layers.append(torch.nn.ReLU())
        elif isinstance(layer, nn.MaxPool2d):
            layers.append(torch.nn.MaxPool2d(layer.kernel_size))
        elif isinstance(layer, nn.Flatten):
            layers.append(torch.nn.Flatten())
        else:
            raise TypeError(f"bench: no torch twin for {type(layer).__name__}")
    twin = torch.nn.Sequential(*layers)
    twin.load_state_dict({k: torch.from_numpy(backend.asnumpy(v.data).copy()) for k, v in model.state_dict().items()})
    return twin.to(device)


def _training_step(model: Any, optimizer: Any, images: Any, labels: Any, loss_fn: Callable[..., Any]) -> Callable[[], Any]:
    def step() -> Any:
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _model_inputs(name: str, device: str, batch: int | None = None) -> tuple[Any, Any, Any, int]:
    import minigrad_q as mq
    from minigrad_q.models import build_model

    model_name, channels, side, default_batch = MODEL_CASES[name]
    batch = batch or default_batch
    backend.manual_seed(0)
    model = build_model(model_name, in_channels=channels, input_size=side).to(device)
    gen = backend.generator(device)
    images = mq.tensor(gen.standard_normal((batch, channels, side, side), dtype=backend.float32))
    labels = mq.tensor(gen.integers(0, 10, size=(batch,)).astype(backend.int64))
    return model, images, labels, batch


def run_model(name: str, device: str = "cpu", repeat: int = 7, threads: int | None = None, gemm_gflops: float = 0.0,
              batch: int | None = None, **unused: Any) -> dict[str, Any]:
    """One SGD training step of MODEL_CASES[name], in minigrad_q and PyTorch."""
    from minigrad_q import optim
    from minigrad_q.ops import cross_entropy

    device = backend.parse_device(device)  # "cuda" -> "cuda:0": the name backend's helpers and torch take
    torch, missing, count = _with_torch(device, threads)
    model, images, labels, batch = _model_inputs(name, device, batch)
    flops = _layer_flops(model, images)
    result: dict[str, Any] = {"model": MODEL_CASES[name][0], "input": list(images.shape), "batch": batch,
                              "optimizer": f"SGD(lr={LR}, momentum={MOMENTUM})", "flops": flops, "dtype": "float32",
                              "torch_threads": count if torch is not None else None, "torch_missing": missing or None,
                              "blas_threads": blas_threads()}
    twin = _torch_twin(torch, model, device) if torch is not None else None
    step = _training_step(model, optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM), images, labels, cross_entropy)
    first_loss = float(step().item())
    torch_step = None
    torch_sync: Callable[[], None] = lambda: None
    if twin is not None:
        timages = torch.from_numpy(backend.asnumpy(images.data).copy()).to(device)
        tlabels = torch.from_numpy(backend.asnumpy(labels.data).copy()).to(device)
        torch_step = _training_step(twin, torch.optim.SGD(twin.parameters(), lr=LR, momentum=MOMENTUM), timages,
                                    tlabels, torch.nn.functional.cross_entropy)
        if device != "cpu":
            torch_sync = torch.cuda.synchronize
        with torch_threads(torch, count):
            result["first_loss_difference"] = abs(first_loss - float(torch_step().item()))
    timing = time_both(step, synchronizer(device), torch_step, torch_sync, torch, count, repeat)
    _compare(result, timing, flops, gemm_gflops)
    result["images_per_s"] = batch / timing["minigrad_s"]
    return result


def run_lenet(**kwargs: Any) -> dict[str, Any]:
    return run_model("lenet", **kwargs)


def run_toycnn(**kwargs: Any) -> dict[str, Any]:
    return run_model("toycnn", **kwargs)


# ---------------------------------------------------------------- memory
def _rss_kib() -> tuple[int, int]:
    """(current, peak) resident set size of this process in KiB, from /proc/self/status."""
    values = {}
    with open("/proc/self/status", encoding="utf-8") as file:
        for line in file:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line[:5]] = int(line.split()[1])
    return values["VmRSS"], values["VmHWM"]


def rss_run(steps: int = RSS_STEPS, warmup: int = RSS_WARMUP, device: str = "cpu") -> dict[str, Any]:
    """The LeNet training step `steps` times; RSS after import, after `warmup` steps, every 10 steps, at the end."""
    from minigrad_q import optim
    from minigrad_q.ops import cross_entropy

    start_rss, _ = _rss_kib()
    model, images, labels, batch = _model_inputs("lenet", device)
    step = _training_step(model, optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM), images, labels, cross_entropy)
    samples = []
    warm_rss = warm_peak = 0
    for index in range(1, steps + 1):
        step().item()
        if index == warmup:
            warm_rss, warm_peak = _rss_kib()
        if index >= warmup and index % 10 == 0:
            samples.append(_rss_kib()[0])
    end_rss, end_peak = _rss_kib()
    return {"steps": steps, "warmup_steps": warmup, "batch": batch, "start_rss_mib": start_rss / 1024,
            "warm_rss_mib": warm_rss / 1024, "warm_peak_mib": warm_peak / 1024, "end_rss_mib": end_rss / 1024,
            "peak_rss_mib": end_peak / 1024, "growth_after_warmup_mib": (end_peak - warm_peak) / 1024,
            "samples_mib": [s / 1024 for s in samples]}


def run_rss(device: str = "cpu", rss_steps: int = RSS_STEPS, **unused: Any) -> dict[str, Any]:
    """rss_run in a fresh Python process, so other benchmarks' memory does not count."""
    code = (f"import json; from minigrad_q.bench.cnn import rss_run; "
            f"print(json.dumps(rss_run({int(rss_steps)}, {min(RSS_WARMUP, int(rss_steps))}, {device!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench --rss: the measuring process failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


MODES: dict[str, Callable[..., dict[str, Any]]] = {"conv": run_conv, "lenet": run_lenet, "toycnn": run_toycnn, "rss": run_rss}


# ---------------------------------------------------------------- reporting


def _verdict(case: dict[str, Any]) -> str:
    if "ratio" not in case:
        return f"<= {case['target_ratio']}x (no torch)"
    return f"<= {case['target_ratio']}x {'met' if case['ratio'] <= case['target_ratio'] else 'MISSED'}"


def _speed_cells(case: dict[str, Any]) -> list[str]:
    fraction = case.get("gemm_fraction")
    return [
        ms(case["minigrad_s"]), ms(case.get("torch_s")),
        "-" if "ratio" not in case else f"{case['ratio']:.2f}x", _verdict(case),
        f"{case['gflops']:.1f}", "-" if fraction is None else f"{fraction:.0%}",
        "-" if "torch_gflops" not in case else f"{case['torch_gflops']:.1f}",
    ]


SPEED_HEADER = ["minigrad_q", "torch", "ratio", "target", "GFLOP/s", "of GEMM", "torch GFLOP/s"]


def tables(results: dict[str, Any]) -> list[tuple[str, str, list[str], list[list[str]], list[str]]]:
    """(mode, title, header, rows, notes) for every CNN mode present in `results`."""
    found = []
    gemm = results["limits"]["gemm_gflops"]
    if "conv" in results:
        conv = results["conv"]
        rows = [[case["name"], *_speed_cells(case)] for case in conv["cases"]]
        notes = [f"forward + backward (input, weight and bias gradients), output gradient given; "
                 f"GFLOP/s = 6·N·K·C·kh·kw·Ho·Wo / time; 'of GEMM' = that rate / this machine's "
                 f"float32 GEMM rate ({gemm:.1f} GFLOP/s)"]
        notes += _torch_notes(conv, [case.get("grad_relative_difference") for case in conv["cases"]], "gradients")
        found.append(("conv", "conv2d forward + backward", ["case", *SPEED_HEADER], rows, notes))
    for mode in ("lenet", "toycnn"):
        if mode in results:
            run = results[mode]
            title = (f"{DISPLAY_NAMES[run['model']]}: one training step, input {'x'.join(map(str, run['input'][1:]))}, "
                     f"batch {run['batch']}")
            rows = [[run["model"], *_speed_cells(run), f"{run['images_per_s']:,.0f}"]]
            notes = [f"zero_grad, forward, cross_entropy, backward, {run['optimizer']} update; GFLOP/s counts "
                     f"conv/linear GEMM work only ({run['flops'] / 1e6:.1f} MFLOP per step)"]
            notes += _torch_notes(run, [run.get("first_loss_difference")], "first-step losses")
            found.append((mode, title, ["model", *SPEED_HEADER, "images/s"], rows, notes))
    if "rss" in results:
        rss = results["rss"]
        rows = [[str(rss["steps"]), f"{rss['start_rss_mib']:.1f}", f"{rss['warm_peak_mib']:.1f}", f"{rss['peak_rss_mib']:.1f}",
                 f"{rss['end_rss_mib']:.1f}", f"{rss['growth_after_warmup_mib']:+.1f}"]]
        notes = [f"LeNet-5 training steps (batch {rss['batch']}) in a fresh process; peak = VmHWM, current = VmRSS; "
                 f"growth = peak at the end - peak after {rss['warmup_steps']} warm-up steps (flat means no leak)",
                 "RSS every 10 steps after warm-up (MiB): " + ", ".join(f"{s:.0f}" for s in rss["samples_mib"])]
        found.append(("rss", "memory: peak RSS over a LeNet-5 run",
                      ["steps", "after import MiB", "peak after warm-up MiB", "peak at end MiB", "RSS at end MiB",
                       "growth MiB"], rows, notes))
    return found


def _spreads(cases: list[dict[str, Any]]) -> str:
    return "; ".join(
        (f"{case['name']}: " if "name" in case else "") + f"minigrad_q {case['minigrad_spread']:.0%}"
        + (f", torch {case['torch_spread']:.0%}" if "torch_spread" in case else "")
        for case in cases
    )


def _torch_notes(run: dict[str, Any], differences: list[Any], what: str) -> list[str]:
    cases = run.get("cases", [run])
    spread = "run-to-run spread (slowest - fastest round) / median: " + _spreads(cases)
    if run.get("torch_missing"):
        return [spread, f"no PyTorch comparison: {run['torch_missing']}"]
    worst = max((d for d in differences if d is not None), default=None)
    notes = [f"threads: NumPy's BLAS {run['blas_threads']}, torch.set_num_threads({run['torch_threads']}); "
             f"timed in {run['rounds']} alternating rounds (minigrad_q, then torch) of {WARMUP_S:g} s of warm-up "
             f"calls and {run['repeats_per_round']} timed repeats: times are medians over the rounds, the ratio "
             "the median of the rounds' ratios", spread]
    if worst is not None:
        notes.append(f"{what} agree with torch's to {worst:.1e}" + (" (max abs difference / max abs value)"
                                                                   if what == "gradients" else " (abs difference)"))
    return notes
