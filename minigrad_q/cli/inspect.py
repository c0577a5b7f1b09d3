"""``minigrad-q inspect`` and ``minigrad-q plot-quantizer``: the inspection tools from the command line.

``inspect`` trains the float model briefly (or loads a ``minigrad-q train --save`` checkpoint) and
writes to ``--out``:

- comparison.md / .csv / .png: ``compare_gradients`` for every method and bit width, in both scopes
  (each weight quantizer's backward alone, and the whole quantized model);
- quantizer_<method>_<b>bit.png: each method's transfer curve and gradient (``plot_quantizer``);
- tape.md / tape.csv: the tape of one QAT training step (per call, per op type, per module);
- graph.dot (graph.png with Graphviz): the graph of that step's loss after backward;
- training.png / grad_norms.png: the float run's curves (when it was trained here);
- report.md: all of it on one page.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

from .. import checkpoint, data, inspect, quant
from ..bench.machine import cpu_model
from ..core import no_grad
from ..models import MODELS, build_model
from ..nn.functional import cross_entropy
from ..quant.qat import WEIGHT_METHODS
from .usage import UsageError, check_at_least


def _names(text: str, valid: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in valid]
    if not names or unknown:
        raise UsageError(f"inspect: unknown {what} {', '.join(unknown) or repr(text)}; expected some of: {', '.join(valid)}")
    return names


def _numbers(text: str, kind: type, what: str) -> tuple[Any, ...]:
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"{what} must be a comma-separated list of numbers, got {text!r}") from None


def _float_model(args: argparse.Namespace, out: str) -> tuple[Any, str | None]:
    """(model, path of the training JSON or None): loaded from --checkpoint, else trained for --epochs."""
    from ..train import TrainConfig, train

    json_path = None if args.checkpoint else os.path.join(out, "training.json")
    with tempfile.TemporaryDirectory() as folder:
        path = args.checkpoint or os.path.join(folder, "float.safetensors")
        if not args.checkpoint:
            train(TrainConfig(model=args.model, dataset=args.dataset, epochs=args.epochs, seed=args.seed, save=path,
                              json_path=json_path, verbose=False, progress=False))
        try:
            saved = checkpoint.load(path)
        except checkpoint.CheckpointError as error:
            raise UsageError(f"inspect: {error}") from None
    if any("_quant." in name for name in saved.model_state):
        raise UsageError(f"inspect: {path} holds a quantized model; give a float one")
    try:
        model = build_model(saved.model["name"], **saved.model.get("options", {}))
        checkpoint.restore(saved, model)
    except (checkpoint.CheckpointError, KeyError, TypeError) as error:
        raise UsageError(f"inspect: {error}") from None
    return model, json_path


def _write(out: str, name: str, text: str) -> str:
    path = os.path.join(out, name)
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    return path


def _tape_of_one_step(model: Any, images: Any, labels: Any, method: str, bits: int) -> tuple[Any, Any, Any]:
    """(tape, loss, quantized model) of one SGD step of `model` quantized with `method` (weights) and STE (activations)."""
    from ..optim import SGD

    qmodel = quant.prepare_qat(model, weight=method, act="ste", wbits=bits, abits=bits)
    qmodel.train()
    optimizer = SGD(qmodel.parameters(), lr=0.01)
    with no_grad():
        qmodel(images)  # the activation grids from one batch, before the recorded step
    with inspect.record() as tape:
        loss = cross_entropy(qmodel(images), labels)
        optimizer.zero_grad()
        loss.backward(retain_graph=True)
        optimizer.step()
    return tape, loss, qmodel


def run_inspect(args: argparse.Namespace) -> int:
    methods = _names(args.methods, WEIGHT_METHODS, "methods")
    check_at_least("inspect", {"--epochs": args.epochs, "--batch-size": args.batch_size}, 1)
    check_at_least("inspect", {"--seed": args.seed}, 0)
    bits = _numbers(args.bits, int, "--bits")
    if not bits or not all(1 <= b <= 8 for b in bits):
        raise UsageError(f"inspect: --bits must list bit widths from 1 to 8, got {args.bits!r}")
    if args.model not in MODELS:
        raise UsageError(f"inspect: unknown model {args.model!r}; known models: {', '.join(sorted(MODELS))}")
    os.makedirs(args.out, exist_ok=True)
    model, json_path = _float_model(args, args.out)
    try:
        train_set = data.load_dataset(args.dataset, split="train")
    except (ValueError, OSError) as error:
        raise UsageError(f"inspect: {error}") from None
    images, labels = next(iter(data.DataLoader(train_set, batch_size=args.batch_size)))

    comparison = inspect.compare_gradients(model, (images, labels), methods=methods, bits=bits,
                                           scope=("quantizer", "model"), seed=args.seed)
    written = [_write(args.out, "comparison.md", comparison.table() + "\n"),
               _write(args.out, "comparison.csv", comparison.to_csv())]
    plots = []
    try:
        comparison.plot(os.path.join(args.out, "comparison.png"))
        plots.append("comparison.png")
        for method in methods:
            for b in bits:
                if method == "lsq" and b == 1:
                    continue
                name = f"quantizer_{method}_{b}bit.png"
                inspect.plot_quantizer(method, b, out=os.path.join(args.out, name))
                plots.append(name)
        if json_path:
            inspect.plot_training(json_path, os.path.join(args.out, "training.png"))
            inspect.plot_grad_norms(json_path, os.path.join(args.out, "grad_norms.png"))
            plots += ["training.png", "grad_norms.png"]
    except ImportError as error:  # matplotlib missing: the tables still come out
        print(f"no plots: {error}")

    method = "dsq" if "dsq" in methods else methods[0]
    step_bits = min(b for b in bits if b > 1 or method != "lsq")
    tape, loss, qmodel = _tape_of_one_step(model, images, labels, method, step_bits)
    title = f"one training step of {args.model} with {method} weights and STE activations at {step_bits} bits"
    timed_on = f"Times measured on {cpu_model()}, {os.cpu_count()} CPUs."
    written.append(_write(args.out, "tape.md", "\n\n".join([
        f"# Tape: {title}", timed_on, "## Per op type", "```\n" + tape.table(by="op") + "\n```",
        "## Per module", "```\n" + tape.table(by="module") + "\n```",
        "## Every call", "```\n" + tape.table() + "\n```"]) + "\n"))
    written.append(_write(args.out, "tape.csv", tape.to_csv()))
    dot = inspect.to_dot(loss, params=dict(qmodel.named_parameters()))
    graph_note = inspect.render(dot, os.path.join(args.out, "graph.png"))

    report = [f"# minigrad-q inspect: {args.model} on {args.dataset}", "",
              f"Weight gradients on a batch of {images.shape[0]} training images, float model "
              + (f"from {args.checkpoint}." if args.checkpoint else f"trained for {args.epochs} epochs (seed {args.seed})."),
              "", "## Gradient comparison", "", comparison.table(), ""]
    report += [f"![{name}]({name})" for name in plots]
    report += ["", f"## Tape of {title}", "", timed_on, "", "```", tape.table(by="op"), "```", "", f"Graph: {graph_note}"]
    written.append(_write(args.out, "report.md", "\n".join(report) + "\n"))
    print(comparison.table())
    print()
    print(tape.table(by="op"))
    print(f"\n{graph_note}")
    print(f"wrote {', '.join(os.path.basename(p) for p in written + plots)} to {args.out}")
    return 0


def run_plot_quantizer(args: argparse.Namespace) -> int:
    check_at_least("plot-quantizer", {"--bits": args.bits}, 1)
    alphas = _numbers(args.alpha, float, "--alpha")
    span = _numbers(args.range, float, "--range") if args.range else None
    if span is not None and len(span) != 2:
        raise UsageError(f"--range must be two numbers LOW,HIGH, got {args.range!r}")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise UsageError(f"plot-quantizer: cannot write {args.out}: its folder does not exist")
    try:
        inspect.plot_quantizer(args.method, args.bits, alphas=alphas, range=span, out=args.out)
    except ImportError as error:
        raise UsageError(f"plot-quantizer: {error}") from None
    except (ValueError, TypeError) as error:
        raise UsageError(f"plot-quantizer: {error}") from None
    print(f"wrote {args.out}")
    return 0


def add_command(commands: Any) -> None:
    """Register ``inspect`` and ``plot-quantizer`` on the CLI's subparsers."""
    look = commands.add_parser(
        "inspect", help="compare what each quantizer does to the weight gradients; tape one QAT step",
        description="Train the float model briefly (or load --checkpoint), then write to --out: the gradient "
                    "comparison of every method and bit width (Markdown, CSV, PNG), each quantizer's curves, the "
                    "tape of one QAT training step, its graph, and report.md.")
    look.add_argument("--model", default="lenet5", help="lenet5 (default) or toycnn")
    look.add_argument("--dataset", default="digits", help="digits (default), fashion-mnist, mnist or synthetic")
    look.add_argument("--methods", default="ste,dsq,lsq,qnoise", help="weight methods (default ste,dsq,lsq,qnoise)")
    look.add_argument("--bits", default="8,4,2", help="bit widths (default 8,4,2)")
    look.add_argument("--checkpoint", metavar="PATH", help="a float model saved by minigrad-q train --save")
    look.add_argument("--epochs", type=int, default=5,
                      help="epochs of the float run without --checkpoint (default 5)")
    look.add_argument("--batch-size", type=int, default=64, help="images in the compared batch (default 64)")
    look.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    look.add_argument("--out", default="inspect-out", help="output folder (default ./inspect-out)")
    look.set_defaults(run=run_inspect)

    plot = commands.add_parser("plot-quantizer", help="draw a quantizer's transfer curve and gradient (PNG)")
    plot.add_argument("--method", default="dsq", help="ste, dsq (default), lsq, pact or qnoise")
    plot.add_argument("--bits", type=int, default=2, help="bits (default 2)")
    plot.add_argument("--alpha", default="0.2,0.5,0.9", help="DSQ alphas (default 0.2,0.5,0.9)")
    plot.add_argument("--range", metavar="LOW,HIGH", help="where the levels lie (default 0 .. 2^b - 1)")
    plot.add_argument("--out", default="quantizer.png", help="the PNG to write (default quantizer.png)")
    plot.set_defaults(run=run_plot_quantizer)
