"""Deployment: ONNX export of float and QAT (QDQ) models, and their check in onnxruntime.

    mq.onnx.export(model, example_input, "model.onnx")     # float, or QDQ for a QAT model
    mq.onnx.export_integer(mq.quant.convert(model), example_input, "int.onnx")   # integer operators
    mq.onnx.compare(model, "model.onnx", images)            # what onnxruntime computes against the model

``minigrad-q export CHECKPOINT --onnx PATH`` does both from a checkpoint; see docs/deploy.md. Needs
``pip install -e '.[onnx]'`` (onnx and onnxruntime); nothing here imports them until used.
"""

from .export import OPSET, ExportError, export
from .integer import export_integer
from .runtime import Agreement, compare, run

__all__ = ["export", "export_integer", "ExportError", "OPSET", "run", "compare", "Agreement"]
