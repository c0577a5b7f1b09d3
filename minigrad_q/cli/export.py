"""``minigrad-q export CHECKPOINT --onnx PATH``: a trained model as an ONNX file (float, or QDQ for a QAT
run; with ``--integer`` the integer model of ``quant.convert``), then the file checked in onnxruntime
against the model on the run's test set."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .. import checkpoint, data, onnx, quant
from ..core import Tensor
from ..train import model_from_checkpoint
from .usage import UsageError

FORMATS = ("float", "qdq")


def run(args: argparse.Namespace) -> int:
    folder = os.path.dirname(os.path.abspath(args.onnx))
    if not os.path.isdir(folder):
        raise UsageError(f"export: cannot write {args.onnx}: its folder {folder} does not exist")
    try:
        model, _, config = model_from_checkpoint(args.checkpoint)
    except (checkpoint.CheckpointError, OSError) as error:
        raise UsageError(f"export: {error}") from None
    trained_as = "qdq" if config.quant else "float"
    wanted = "integer" if args.integer else args.format
    if wanted is not None and wanted != trained_as and not (wanted == "integer" and config.quant):
        why = (f"it was trained quantized (--quant {config.quant}); its float weights alone are not the model it "
               "became" if config.quant else "it was trained in float: there are no quantization grids to export")
        raise UsageError(f"export: {args.checkpoint} cannot be exported as {wanted}: {why}")
    try:
        test_set = data.load_dataset(config.dataset, split="test", data_dir=config.data_dir)
    except (ValueError, OSError, RuntimeError) as error:
        raise UsageError(f"export: the run's test set: {error}") from None
    example = Tensor(test_set.images[:1])
    try:
        if args.integer:
            model = quant.convert(model)
            onnx.export_integer(model, example, args.onnx)
        else:
            onnx.export(model, example, args.onnx)
    except (onnx.ExportError, quant.RequantizationOverflow) as error:
        raise UsageError(str(error)) from None
    kind = "integer operators" if args.integer else "QDQ" if config.quant else "float"
    quantized = f" with {config.quant} W{config.wbits}A{config.abits}" if config.quant else ""
    print(f"wrote {args.onnx}: {config.model} on {config.dataset}, {kind}{quantized}")
    if not args.no_check:
        try:
            agreement = onnx.compare(model, args.onnx, test_set.images)
        except onnx.ExportError as error:
            print(f"not checked: {error}")
            return 0
        against = "the integer model of quant.convert" if args.integer else "minigrad_q"
        print(f"onnxruntime against {against} on the {config.dataset} test set: {agreement}")
    return 0


def add_command(commands: Any) -> None:
    command = commands.add_parser(
        "export", help="export a trained checkpoint to ONNX (float, or QDQ for a QAT run)",
        description="Write the model of a `minigrad-q train --save` checkpoint as an ONNX file (opset 13): Conv, Gemm, "
                    "Relu, MaxPool, ... for a float run; with QuantizeLinear/DequantizeLinear around every quantized "
                    "layer's input and weight for a QAT run. Then run it in onnxruntime on the run's test set and "
                    "print how well it agrees with the model. Needs pip install -e '.[onnx]'.",
    )
    command.add_argument("checkpoint", help="a .safetensors checkpoint written by minigrad-q train --save")
    command.add_argument("--onnx", metavar="PATH", required=True, help="the ONNX file to write")
    command.add_argument("--format", choices=FORMATS, help="refuse unless the checkpoint is this kind (default: as trained)")
    command.add_argument("--integer", action="store_true",
                         help="a QAT run's integer model (quant.convert): ConvInteger / MatMulInteger and integer "
                              "requantization, no float Conv on the quantized path")
    command.add_argument("--no-check", action="store_true", help="do not run the file in onnxruntime")
    command.set_defaults(run=run)
