"""Function, the base of every differentiable op, and the recording of the graph.

A Tensor (core/tensor.py) holds an array and, when a differentiable op made it
while grad mode was on, the `creator` Function that made it. A Function runs
`forward` on arrays and, in `backward`, maps the gradients of its outputs to
the gradients of its inputs. `Function.apply` records the graph;
`engine.backward` walks it.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .. import backend
from .grad_mode import state
from .tensor import Tensor

_numpy = backend.array_module("cpu")
_ndarray = backend.ndarray
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Function:
    """Base class of every differentiable operation.

    Subclass it and write two methods on plain arrays:

    - ``forward(*args)``: the arguments of ``apply``, Tensors replaced by their
      arrays; returns an array or a tuple of arrays. Keep what backward needs
      with ``self.save_for_backward(...)``; ``self.xp`` is numpy or cupy.
    - ``backward(*grad_outputs)``: one gradient array per output; returns one
      gradient (or None) per argument of ``apply``, in order (trailing
      non-tensor arguments may be left out). Skip the inputs whose
      ``self.needs_input_grad[i]`` is False.

    Gradients may have the broadcast shape of an input: the engine sums them
    back to the input's shape and casts them to its dtype.
    """

    xp: Any
    needs_input_grad: tuple[bool, ...]
    saved: Any = ()  # the arrays backward needs; None once a backward has freed them
    next_edges: tuple[Any, ...] = ()
    output_meta: tuple[tuple[tuple[int, ...], Any], ...] = ()
    output_hooks: dict[int, list[Callable[..., Any]]] | None = None
    retained_outputs: dict[int, Any] | None = None
    created_at: str | None = None
    input_shapes: tuple[tuple[int, ...] | None, ...] = ()
    # (version counter, version at forward, "input" or "output", position) of each tensor whose array was saved
    saved_versions: tuple[tuple[list[int], int, str, int], ...] = ()

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def backward(self, *grad_outputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.backward is not written")

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved = arrays

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"

    @classmethod
    def apply(cls, *args: Any) -> Any:
        """Run forward on the arrays of `args`; record the graph when needed."""
        if state.recorder is not None:  # inside inspect.record(): it times this call and describes it
            return state.recorder.forward(cls, args)
        fn = cls()
        arrays: list[Any] = []
        edges: list[Any] = []
        first = None
        on_cpu = True
        requires = False
        for arg in args:
            if isinstance(arg, Tensor):
                data = arg.data
                arrays.append(data)
                if first is None:
                    first = arg
                if type(data) is not _ndarray:
                    on_cpu = False
                if arg._requires_grad:
                    requires = True
                    edges.append(arg if arg.creator is None else (arg.creator, arg._output_index))
                else:
                    edges.append(None)
            else:
                arrays.append(arg)
                edges.append(None)
        if first is None:
            raise TypeError(f"{cls.__name__}.apply: expected at least one Tensor argument")
        fn.xp = _numpy if on_cpu else check_same_device(cls.__name__, args)
        record = requires and state.grad_enabled
        if record:
            fn.next_edges = tuple(edges)
            fn.needs_input_grad = tuple([edge is not None for edge in edges])
        else:
            fn.needs_input_grad = (False,) * len(args)
        if state.anomaly:
            fn.created_at = _user_frame()
            fn.input_shapes = tuple(a.shape if isinstance(a, Tensor) else None for a in args)
        out = fn.forward(*arrays)
        if type(out) is tuple:
            outputs = tuple(_output(o, fn, i, record) for i, o in enumerate(out))
            if record:
                fn.output_meta = tuple((o.shape, o.dtype) for o in outputs)
                _watch_saved(fn, args, outputs)
            if state.anomaly:
                check_finite(fn, [o.data for o in outputs], "forward output")
            return outputs
        output = _output(out, fn, 0, record)
        if record:
            fn.output_meta = ((output.data.shape, output.data.dtype),)
            if fn.saved:
                _watch_saved(fn, args, (output,))
        if state.anomaly:
            check_finite(fn, [output.data], "forward output")
        return output


def _watch_saved(fn: Function, args: Sequence[Any], outputs: Sequence[Tensor]) -> None:
    """Remember the versions of the inputs and outputs whose arrays (or views of them) `fn` saved."""
    watched = None
    for array in fn.saved:
        if array is None or not hasattr(array, "base"):
            continue
        base = array.base
        for position, tensor in enumerate(args if type(args) is tuple else tuple(args)):
            if type(tensor) is Tensor and (tensor.data is array or tensor.data is base):
                watched = (watched or []) + [(tensor._versions, tensor._versions[0], "input", position)]
        for position, tensor in enumerate(outputs):
            if tensor.data is array or tensor.data is base:
                watched = (watched or []) + [(tensor._versions, 0, "output", position)]
    if watched:
        fn.saved_versions = tuple(watched)


def check_saved_versions(fn: Function) -> None:
    """Raise when a tensor `fn` saved for backward was changed in place since (torch's version check)."""
    for counter, version, kind, position in fn.saved_versions:
        if counter[0] != version:
            raise RuntimeError(
                f"one of the tensors needed for the gradient was changed by an in-place operation: {kind} {position} of "
                f"{fn.name} is at version {counter[0]}, and {fn.name} saved it at version {version} for its backward; "
                "change a copy (x.clone()) or do the in-place change after backward"
            )


def _output(array: Any, fn: Function, index: int, record: bool) -> Tensor:
    if type(array) is not _ndarray and fn.xp is _numpy:
        array = _numpy.asarray(array)  # numpy reductions return scalars, not 0-d arrays
    out = Tensor.__new__(Tensor)
    out.data = array
    out.grad = None
    out.name = None
    out._hooks = None
    out._versions = [0]
    out._output_index = index
    if record and array.dtype.kind == "f":
        out._requires_grad = True
        out.creator = fn
    else:
        out._requires_grad = False
        out.creator = None
    return out


def check_same_device(op: str, args: Sequence[Any]) -> Any:
    tensors = [a for a in args if isinstance(a, Tensor)]
    devices = [t.device for t in tensors]
    if len(set(devices)) > 1:
        described = ", ".join(f"{d} {t.shape}" for d, t in zip(devices, tensors))
        raise RuntimeError(
            f"{op}: expected all tensors on one device, got {described}; move them with .to(device)"
        )
    return backend.get_array_module(tensors[0].data)


def _user_frame() -> str:
    """The innermost stack frame outside this package: where user code made the op."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f'File "{frame.filename}", line {frame.lineno}, in {frame.name}: {frame.line}'
    return "unknown location"


def check_finite(fn: Function, arrays: Sequence[Any], what: str) -> None:
    for i, array in enumerate(arrays):
        if array is not None and array.dtype.kind == "f" and not backend.is_finite_all(array):
            shapes = ", ".join(str(s) for s in fn.input_shapes if s is not None)
            raise FloatingPointError(
                f"anomaly: {fn.name} produced NaN/inf in its {what} {i} "
                f"(input shapes {shapes}); the op was created at {fn.created_at}"
            )


