"""Write docs/inspect.md from real runs of the inspection commands (needs matplotlib).

    python scripts/make_inspect_docs.py

Runs `minigrad-q inspect --out docs/inspect`, `minigrad-q plot-quantizer` (two pictures) and
`minigrad-q bench --profile`, and puts their tables and pictures into docs/inspect.md between the
hand-written explanations below. Nothing in the tables is typed by hand.
"""

import contextlib
import io
import os

from minigrad_q import cli
from minigrad_q.bench.machine import cpu_model

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs")
OUT = os.path.join(DOCS, "inspect")


def run(*argv: str) -> str:
    """Run a minigrad-q command in this process; its standard output."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli.main(list(argv))
    if code:
        raise SystemExit(f"minigrad-q {' '.join(argv)} failed with exit code {code}")
    return buffer.getvalue()


def section_of(path: str, start: str, stop: str | None = None) -> str:
    text = open(path, encoding="utf-8").read()
    text = text[text.index(start):]
    return text[: text.index(stop)] if stop else text


@contextlib.contextmanager
def without_graphviz():
    """PATH without Graphviz's `dot`, so that `minigrad-q inspect` writes graph.dot, which this page quotes."""
    path = os.environ.get("PATH", "")
    kept = [folder for folder in path.split(os.pathsep) if not os.access(os.path.join(folder, "dot"), os.X_OK)]
    os.environ["PATH"] = os.pathsep.join(kept)
    try:
        yield
    finally:
        os.environ["PATH"] = path


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    with without_graphviz():
        run("inspect", "--out", OUT)
    run("plot-quantizer", "--method", "dsq", "--bits", "2", "--alpha", "0.2,0.5,0.9", "--out", os.path.join(OUT, "dsq_2bit.png"))
    run("plot-quantizer", "--method", "dsq", "--bits", "1", "--range=-1,1", "--alpha", "0.1,0.2,0.5",
        "--out", os.path.join(OUT, "dsq_binary.png"))
    profile = run("bench", "--profile")
    comparison = open(os.path.join(OUT, "comparison.md"), encoding="utf-8").read().strip()
    tape_by_module = section_of(os.path.join(OUT, "tape.md"), "## Per module", "## Every call").split("\n", 1)[1]
    tape_by_module = tape_by_module.strip().removeprefix("```").removesuffix("```").strip()
    dot_head = "\n".join(open(os.path.join(OUT, "graph.dot"), encoding="utf-8").read().splitlines()[:12])
    machine = f"{cpu_model()}, {os.cpu_count()} CPUs"
    text = TEMPLATE.format(comparison=comparison, tape_by_module=tape_by_module, profile=profile.strip(), dot_head=dot_head,
                           machine=machine)
    path = os.path.join(DOCS, "inspect.md")
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(path + ".tmp", path)
    print(f"wrote {path} and the files in {OUT}")


TEMPLATE = """# Inspecting gradients

<!-- Written by `python scripts/make_inspect_docs.py` from real runs: edit the script, not this file. -->

minigrad_q is built so you can see what happens to a gradient, above all what a quantizer does to
it. `mq.inspect` has four tools:

- a **tape** that records every op, forward and backward, with gradient statistics and times;
- **module and tensor hooks**, with PyTorch's semantics;
- a **gradient comparison** of the quantization methods, layer by layer;
- **plots** of quantizers and training runs, and the **graph as DOT**.

The command-line tools write everything on this page:

- `minigrad-q inspect` writes the comparison, the quantizer pictures, the tape of one QAT step and
  the graph to a folder, here [docs/inspect/](inspect/);
- `minigrad-q plot-quantizer` draws a single quantizer;
- `minigrad-q bench --profile` prints where a training step spends its time.

The plots need matplotlib: `pip install -e ".[plot]"`.

## The tape

```python
import minigrad_q as mq
from minigrad_q import nn

mq.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
with mq.inspect.record() as tape:
    model(mq.randn(5, 4)).sum().backward()
print(tape.table())                  # one row per call: op, module, shapes, ms, gradient norms
print(tape.table(by="module"))       # or by="op": where the time goes
first = tape.calls[0]
print(first.op, first.module, first.output_shapes)   # Linear 0 [(5, 3)]
```

The tape lists the ops in the order they ran. One order differs from a model's definition: with the
fused paths on, `nn.Sequential` runs a ReLU followed by a MaxPool2d pool first (the same values and
gradients, from a relu over a quarter of the numbers), so such a pair appears as MaxPool2d, then
Relu on the pooled shape. A hook on either module, or `MINIGRAD_Q_FUSED=0`, keeps the written order.

Each backward record holds statistics for the gradients flowing into the op's outputs and out to
its inputs: norm, mean, std, min, max, the fraction of zeros, and the NaN and inf counts. They are
computed on the device and read once, when the block ends. `tape.to_json()` and `tape.to_csv()`
export the records.

Outside a `record()` block nothing is installed, and an op pays for one `None` check. The 100-op
tiny-tensor chain of `minigrad-q bench --overhead` ran at the same speed before and after the tape
existed (0.637 and 0.633 ms, on the 2-core AMD EPYC this project used then).

## Hooks

```python
seen = []
handle = model[0].register_full_backward_hook(
    lambda module, grad_input, grad_output: seen.append(grad_output[0].shape))
model(mq.randn(5, 4)).sum().backward()
handle.remove()
print(seen)                          # [(5, 3)]: once per call, like PyTorch
```

- `register_full_backward_hook(hook)`: `hook(module, grad_input, grad_output)`. A returned tuple replaces `grad_input`.
- `register_forward_pre_hook` and `register_forward_hook` work as in PyTorch.
- On tensors, `register_hook` and `retain_grad` do the same for a single tensor.

## What each quantizer does to the weight gradient

`mq.inspect.compare_gradients(model, (images, labels), methods, bits)` quantizes the weights of a
float model with each method at each bit width, using `prepare_qat(..., act=None)`. It then compares
every layer's weight gradient with the float model's gradient on the same batch. It does this in two
scopes:

- **quantizer**: the float gradient sent back through each layer's weight quantizer alone. This is
  the seed observation, on a whole model.
- **model**: the gradient of the whole quantized model, as QAT trains it. The quantized forward
  changes the activations and the logits too, so even the STE's gradient moves away from float as
  the bits drop.

For each case it reports the cosine, ‖g_q‖/‖g_fp‖, the share of weights whose gradient changed, and
whether the gradient is the same at every bit width.

Here is the table written by `minigrad-q inspect --out docs/inspect`. The model is LeNet-5, trained 5
epochs in float on the digits, and the batch is 64 training digits:

{comparison}

The STE rows of the quantizer scope read 1 / 1 / 1, "yes": with the min/max scale of the
(narrow, symmetric) weight grid, no weight is clipped, so the mask is all ones and the gradient is
the float one at 8, 4 and 2 bits. DSQ's gradient is the slope of its soft curve at each weight, so
it differs from float and from one bit width to the next. LSQ's step 2·mean|w|/sqrt(Qp) clips the
largest weights at 2 bits only. QuantNoise's backward is the identity.

![cosine to the float gradient, per layer](inspect/comparison.png)

## Quantizer pictures

`minigrad-q plot-quantizer --method dsq --bits 2 --alpha 0.2,0.5,0.9 --out dsq_2bit.png` draws
`mq.inspect.plot_quantizer`. Hard fake quant is on the left; the method's curve (top) and its
backward (bottom) are on the right, both computed by minigrad_q's forward and backward:

![DSQ at 2 bits](inspect/dsq_2bit.png)

The DSQ paper's binary case, `--bits 1 --range=-1,1`:

![DSQ at 1 bit on -1, 1](inspect/dsq_binary.png)

`minigrad-q inspect` draws every method at every bit width (`inspect/quantizer_<method>_<b>bit.png`),
along with the float run's training curves and per-layer gradient norms. Those come from the `--json`
log of `minigrad-q train`, through `mq.inspect.plot_training` and `plot_grad_norms`:

![training curves](inspect/training.png)

![gradient norms per layer](inspect/grad_norms.png)

## The tape of one QAT step

`inspect/tape.md` holds the tape of one training step of LeNet-5, with DSQ weights and STE
activations at 2 bits. Here it is per module; the files also have it per op and per call. The times are
from the run that wrote this page, on {machine}:

```
{tape_by_module}
```

## The graph

`mq.inspect.to_dot(loss, params=dict(model.named_parameters()))` returns DOT text with one node per
op and per tensor, showing shapes and dtypes, and gradient norms after backward.
`mq.inspect.render(loss, "graph.png")` runs Graphviz's `dot` when it is installed (`apt-get install
graphviz`); without it, it writes the `.dot` file and tells you how to render it. This is the start
of [inspect/graph.dot](inspect/graph.dot):

```
{dot_head}
```

## Profiling: `minigrad-q bench --profile`

Measured by the run that wrote this page, on {machine}:

```
{profile}
```
"""

if __name__ == "__main__":
    main()
