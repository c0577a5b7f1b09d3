"""An exported model in onnxruntime, against the model it came from.

``run(path, images)``: onnxruntime's output for a (N, C, H, W) float32 array. ``compare(model, path,
images)``: the two side by side, as an ``Agreement``: how often the predicted class agrees, and how far
the logits are apart, absolutely, relative to the largest logit, and for a QAT model in output steps
s_x·s_w (its last quantized layer's input scale times each output's weight scale: one step of that
layer's integer accumulator).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .. import backend, nn
from ..core import Tensor, no_grad
from ..quant import layers_in_order
from .export import ExportError, _grid

_numpy = backend.array_module("cpu")


@dataclass
class Agreement:
    images: int
    class_agreement: float  # fraction of images with the same predicted class
    max_abs_difference: float  # of the logits
    max_relative_difference: float  # max |difference| / max |logit|
    max_steps: float | None  # max |difference| in output steps s_x·s_w (QAT models), else None
    within_step: float | None  # fraction of images whose logits all lie within one output step (QAT models)

    def __str__(self) -> str:
        text = (f"{self.images} images: predicted class agrees on {100 * self.class_agreement:.2f}%; logits differ by "
                f"at most {self.max_abs_difference:.3g} ({self.max_relative_difference:.2g} of the largest logit)")
        if self.within_step is not None:
            text += (f"; on {100 * self.within_step:.2f}% of the images every logit lies within one output step "
                     f"s_x·s_w (at most {self.max_steps:.3g} steps apart)")
        return text


def _session(path: str) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("running an exported model needs onnxruntime: pip install -e '.[onnx]'") from None
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graph as written
    return onnxruntime.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def run(path: str | os.PathLike[str], images: Any) -> Any:
    """onnxruntime's output of the model at `path` for `images` (an array or Tensor (N, C, H, W))."""
    array = backend.asnumpy(images.data if isinstance(images, Tensor) else images).astype(_numpy.float32)
    session = _session(path)
    return session.run(None, {session.get_inputs()[0].name: array})[0]


def output_step(model: nn.Module) -> Any:
    """s_x·s_w (one per output) of the model's last quantized layer, or None if it ends in float."""
    layers = layers_in_order(model)
    path, last = next(((p, layer) for p, layer in reversed(layers) if isinstance(layer, (nn.Conv2d, nn.Linear))),
                      (None, None))
    if last is None or getattr(last, "act_quant", None) is None or getattr(last, "weight_quant", None) is None:
        return None
    input_scale = _grid(path, "activation", last.act_quant)[0].astype(_numpy.float64)
    weight_scale = _grid(path, "weight", last.weight_quant)[0].astype(_numpy.float64)
    return input_scale * weight_scale


def compare(model: nn.Module, path: str | os.PathLike[str], images: Any, batch_size: int = 1000) -> Agreement:
    """`model` (in eval mode; an IntegerModel too) against onnxruntime's run of its export at `path`, on `images`."""
    was_training = model.training
    model.eval()
    try:
        ours, theirs = [], []
        data = images.data if isinstance(images, Tensor) else images
        device = next(iter([*model.parameters(), *model.buffers()])).device
        for start in range(0, data.shape[0], batch_size):
            chunk = data[start:start + batch_size]
            with no_grad():
                ours.append(backend.asnumpy(model(Tensor(backend.to_device(chunk, device))).data).astype(_numpy.float64))
            theirs.append(run(path, chunk).astype(_numpy.float64))
    finally:
        model.train(was_training)
    ours_all, theirs_all = _numpy.concatenate(ours), _numpy.concatenate(theirs)
    difference = _numpy.abs(ours_all - theirs_all)
    step = output_step(model)
    steps = None if step is None else difference / step.reshape(1, -1)
    return Agreement(
        images=int(ours_all.shape[0]),
        class_agreement=float((ours_all.argmax(axis=1) == theirs_all.argmax(axis=1)).mean()),
        max_abs_difference=float(difference.max()),
        max_relative_difference=float(difference.max() / max(_numpy.abs(ours_all).max(), 1e-30)),
        max_steps=None if steps is None else float(steps.max()),
        within_step=None if steps is None else float((steps <= 1).all(axis=1).mean()),
    )
