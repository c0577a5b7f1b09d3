"""Write docs/deploy.md: train, convert, export and run in onnxruntime, in five commands, each shown with the
output it printed when this script ran them (never typed by hand).

    python scripts/deploy_page.py            # needs pip install -e '.[onnx]'
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile

from minigrad_q.bench.machine import cpu_model

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
PAGE = os.path.join(ROOT, "docs", "deploy.md")
RUN_IN_ONNXRUNTIME = (
    "import onnxruntime, numpy; from minigrad_q import data; "
    "digits = data.load_dataset('digits', split='test'); "
    "session = onnxruntime.InferenceSession('dsq.onnx'); "
    "logits = session.run(None, {'input': digits.images})[0]; "
    "print(f'onnxruntime: {(logits.argmax(1) == digits.labels).mean():.2%} of the {len(digits)} test digits right')"
)
COMMANDS = [
    ("Install the ONNX extra (onnx and onnxruntime):", "pip install -e '.[onnx]'"),
    ("Train LeNet-5 on the digits with DSQ at W4A4, fine-tuning a float model trained first in the same run, and "
     "convert it to an integer model (written beside the checkpoint):",
     "minigrad-q train --pretrain-epochs 40 --epochs 10 --quant dsq --wbits 4 --abits 4 --convert "
     "--save dsq.safetensors --no-progress"),
    ("Export it as a QDQ graph, and check the file in onnxruntime on the test set:",
     "minigrad-q export dsq.safetensors --onnx dsq.onnx"),
    ("Export the integer model instead (`quant.convert`'s: ConvInteger / MatMulInteger and integer requantization, "
     "no float Conv on the quantized path), and check it against the integer model:",
     "minigrad-q export dsq.safetensors --onnx dsq.int.onnx --integer"),
    ("Run it in onnxruntime, with nothing of minigrad_q but the dataset reader:",
     f"python -c \"{RUN_IN_ONNXRUNTIME}\""),
]


def main() -> None:
    lines = [
        "# Deploying a trained model",
        "",
        "QAT's purpose is a quantized model that runs somewhere else. `minigrad-q export` writes a trained "
        "checkpoint as an ONNX file: a float run as Conv / Gemm / Relu / MaxPool / Flatten, a QAT run as the QDQ "
        "graph that onnxruntime and TensorRT quantize from. Every quantized layer's input passes through "
        "QuantizeLinear → DequantizeLinear with its activation grid. Grids narrower than 8 bits are followed by a "
        "Clip to the grid's ends. Each weight is stored as its integer codes in an int8 initializer and "
        "dequantized per output channel, so that bit widths ONNX has no type for (2 and 3 bits) are exported "
        "exactly. The export then runs the file in onnxruntime on the run's test set and prints how well the two "
        "agree. `mq.onnx.export(model, example_input, path)` and `mq.onnx.compare(model, path, images)` are the "
        "same from Python.",
        "",
        "Written by `python scripts/deploy_page.py`, which ran these five commands in a fresh folder (machine: "
        f"{cpu_model()}, {os.cpu_count()} CPUs); the output shown is what they printed, times included.",
        "",
    ]
    with tempfile.TemporaryDirectory() as folder:
        for number, (what, command) in enumerate(COMMANDS, 1):
            lines += [f"{number}. {what}", "", "```bash", command, "```", ""]
            if command.startswith("pip "):
                continue
            done = subprocess.run(shlex.split(command.replace("minigrad-q", f"{sys.executable} -m minigrad_q", 1)),
                                  cwd=folder, capture_output=True, text=True, check=True,
                                  env={**os.environ, "PYTHONPATH": os.path.abspath(ROOT)})
            output = [line for line in done.stdout.splitlines() if line.strip()]
            if len(output) > 8:
                output = output[:3] + ["..."] + output[-4:]
            lines += ["```", *output, "```", ""]
    lines += [
        "What the agreement figures mean:",
        "- **Predicted class.** How often onnxruntime picks the class minigrad_q's fake-quant model picks.",
        "- **Output step.** One unit of the last quantized layer's integer accumulator, s_x·s_w. Where every "
        "quantization code is the same on both sides, the logits agree to float rounding, far inside one step. "
        "A code can differ only where float rounding in a convolution's sum (onnxruntime sums in its own order) "
        "moves a value across a rounding tie. That is rare, and likeliest at 8 bits, where the steps are finest. "
        "The tests allow it on at most 1% of the images, and require the predicted class to agree on 99.9%.",
        "- **Float export.** The logits of a float model agree to 1e-5 of the largest logit.",
        "",
        "- **Integer export.** `--integer` writes the integer model with integer operators: QuantizeLinear for the "
        "input, ConvInteger / MatMulInteger plus the int32 bias, requantization in int64 (multiply, shift with "
        "rounding half to even, clamp), max-pool on the accumulators, and a float Dequantize at the end. It computes "
        "the integer model's output exactly (the tests require 100% agreement).",
        "",
        "Not exported: layers outside the chain of a Sequential, and ops without an ONNX form here. The export "
        "names such a layer and its path, and writes nothing. A checkpoint is exported as it was trained: "
        "`--format float` for a QAT run, or `--format qdq` or `--integer` for a float one, is refused with the "
        "reason.",
    ]
    partial = PAGE + ".tmp"
    with open(partial, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    os.replace(partial, PAGE)
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
