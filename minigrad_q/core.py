"""Tensor and Function: the two classes the whole engine is made of.

A Tensor holds an array (`data`, NumPy or CuPy) and, when it was made by a
differentiable op while grad mode was on, the `creator` Function that made it.
A Function runs `forward` on arrays and, in `backward`, maps the gradients of
its outputs to the gradients of its inputs. `Function.apply` records the graph;
`engine.backward` walks it.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from . import backend
from .grad_mode import state

_numpy = backend.array_module("cpu")
_ndarray = backend.ndarray
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

# The functional ops (minigrad_q.ops) sit above this module; they bind
# themselves here on import so that Tensor's methods can call them.
F: Any = None


def bind_ops(ops_module: Any) -> None:
    global F
    F = ops_module


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
    saved: tuple[Any, ...] | None = ()
    next_edges: tuple[Any, ...] = ()
    output_meta: tuple[tuple[tuple[int, ...], Any], ...] = ()
    output_hooks: dict[int, list[Callable[..., Any]]] | None = None
    retained_outputs: dict[int, Any] | None = None
    created_at: str | None = None
    input_shapes: tuple[tuple[int, ...] | None, ...] = ()

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
        fn = cls()
        arrays = []
        edges = []
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
        fn.xp = _numpy if on_cpu else _check_same_device(cls.__name__, args)
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
            if state.anomaly:
                _check_finite(fn, [o.data for o in outputs], "forward output")
            return outputs
        output = _output(out, fn, 0, record)
        if record:
            fn.output_meta = ((output.data.shape, output.data.dtype),)
        if state.anomaly:
            _check_finite(fn, [output.data], "forward output")
        return output


def _output(array: Any, fn: Function, index: int, record: bool) -> Tensor:
    if type(array) is not _ndarray:
        array = fn.xp.asarray(array)  # numpy reductions return scalars, not 0-d arrays
    out = Tensor.__new__(Tensor)
    out.data = array
    out.grad = None
    out.name = None
    out._hooks = None
    out._output_index = index
    if record and array.dtype.kind == "f":
        out._requires_grad = True
        out.creator = fn
    else:
        out._requires_grad = False
        out.creator = None
    return out


def _check_same_device(op: str, args: Sequence[Any]) -> Any:
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


def _check_finite(fn: Function, arrays: Sequence[Any], what: str) -> None:
    for i, array in enumerate(arrays):
        if array is not None and array.dtype.kind == "f" and not backend.is_finite_all(array):
            shapes = ", ".join(str(s) for s in fn.input_shapes if s is not None)
            raise FloatingPointError(
                f"anomaly: {fn.name} produced NaN/inf in its {what} {i} "
                f"(input shapes {shapes}); the op was created at {fn.created_at}"
            )


class RemovableHandle:
    """Returned by register_hook; `.remove()` takes the hook out again."""

    def __init__(self, hooks: list[Callable[..., Any]], hook: Callable[..., Any]):
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``data`` is the NumPy/CuPy array; ``grad`` the accumulated gradient (a
    Tensor) of leaves that require grad; ``creator`` the Function that made a
    non-leaf tensor (``grad_fn`` in PyTorch's words).
    """

    __slots__ = ("data", "grad", "_requires_grad", "creator", "_output_index", "name", "_hooks", "__weakref__")
    __array_ufunc__ = None  # make numpy scalars defer to our reflected operators

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None):
        if not backend.is_array(data):
            data = backend.asarray(data, dtype=backend.infer_dtype(data))
        self.data = data
        self.grad: Tensor | None = None
        self.creator: Function | None = None
        self._output_index = 0
        self.name = name
        self._hooks: list[Callable[..., Any]] | None = None
        self._requires_grad = False
        if requires_grad:
            self.requires_grad = True

    # ------------------------------------------------------------ autograd state
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if self.creator is not None:
            raise RuntimeError(
                f"requires_grad can only be changed on leaf tensors; this one was made by {self.creator.name} "
                "(use .detach() to get a leaf)"
            )
        if value and self.data.dtype.kind != "f":
            raise RuntimeError(f"only floating point tensors can require gradients, got dtype {self.dtype}")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    @property
    def grad_fn(self) -> Function | None:
        return self.creator

    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (see engine.backward)."""
        from .engine import backward

        backward(self, gradient, retain_graph)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor replaces it."""
        if not self._requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
        if self.creator is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            if self.creator.output_hooks is None:
                self.creator.output_hooks = {}
            hooks = self.creator.output_hooks.setdefault(self._output_index, [])
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    def retain_grad(self) -> None:
        """Keep the gradient of this non-leaf tensor in ``.grad`` after backward."""
        import weakref

        if not self._requires_grad:
            raise RuntimeError("retain_grad: cannot retain the gradient of a tensor that does not require grad")
        if self.creator is None:
            return
        if self.creator.retained_outputs is None:
            self.creator.retained_outputs = {}
        self.creator.retained_outputs[self._output_index] = weakref.ref(self)

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut off from the graph."""
        return Tensor(self.data)

    def detach_(self) -> Tensor:
        self.creator = None
        self._requires_grad = False
        return self

    def zero_(self) -> Tensor:
        self.data[...] = 0
        return self

    # ------------------------------------------------------------ array facts
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def xp(self) -> Any:
        return backend.get_array_module(self.data)

    def size(self, dim: int | None = None) -> Any:
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def item(self) -> Any:
        if self.data.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted to Python scalars, got shape {self.shape}")
        return self.data.item()

    def numpy(self) -> Any:
        """A host (NumPy) array; refuses tensors that require grad, like torch."""
        if self._requires_grad:
            raise RuntimeError("numpy(): call .detach().numpy() on a tensor that requires grad")
        return backend.asnumpy(self.data)

    def tolist(self) -> Any:
        return backend.asnumpy(self.data).tolist()

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        body = _numpy.array2string(
            backend.asnumpy(self.data), separator=", ", prefix="tensor(", precision=4, threshold=1000,
        )
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype not in (backend.get_default_dtype(), backend.int64, backend.bool_) or self.data.size == 0:
            extras.append(f"dtype=mq.{self.dtype}")
        if self.creator is not None:
            extras.append(f"grad_fn={self.creator!r}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    # ------------------------------------------------------------ conversion
    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``; differentiable."""
        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"to(): unexpected arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, str) and (arg == "cpu" or arg.startswith("cuda")):
                device = arg
            else:
                dtype = arg
        out = self
        if device is not None:
            out = F.to_device(out, device)
        if dtype is not None:
            out = F.cast(out, dtype)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: int | None = None) -> Tensor:
        return self.to("cuda" if device is None else f"cuda:{device}")

    def float(self) -> Tensor:
        return F.cast(self, backend.float32)

    def double(self) -> Tensor:
        return F.cast(self, backend.float64)

    def half(self) -> Tensor:
        return F.cast(self, backend.float16)

    def long(self) -> Tensor:
        return F.cast(self, backend.int64)

    def int(self) -> Tensor:
        return F.cast(self, backend.int32)

    def bool(self) -> Tensor:
        return F.cast(self, backend.bool_)

    def type(self, dtype: Any) -> Tensor:
        return F.cast(self, dtype)

    def clone(self) -> Tensor:
        return F.clone(self)

    # ------------------------------------------------------------ operators
    def __add__(self, other: Any) -> Tensor:
        return F.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return F.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return F.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return F.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return F.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return F.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return F.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return F.div(other, self)

    def __pow__(self, exponent: Any) -> Tensor:
        return F.pow(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return F.pow(base, self)

    def __neg__(self) -> Tensor:
        return F.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return F.abs(self)

    def __matmul__(self, other: Any) -> Tensor:
        return F.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return F.matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return F.getitem(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        if self._requires_grad and state.grad_enabled:
            raise RuntimeError(
                "in-place assignment into a tensor that requires grad is not supported; "
                "use mq.where / mq.cat, or assign under mq.no_grad()"
            )
        self.data[index] = value.data if isinstance(value, Tensor) else value

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.eq(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return F.ne(self, other)

    def __lt__(self, other: Any) -> Tensor:
        return F.lt(self, other)

    def __le__(self, other: Any) -> Tensor:
        return F.le(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return F.gt(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return F.ge(self, other)

    # ------------------------------------------------------------ methods (torch names)
    def add(self, other: Any) -> Tensor:
        return F.add(self, other)

    def sub(self, other: Any) -> Tensor:
        return F.sub(self, other)

    def mul(self, other: Any) -> Tensor:
        return F.mul(self, other)

    def div(self, other: Any) -> Tensor:
        return F.div(self, other)

    def pow(self, exponent: Any) -> Tensor:
        return F.pow(self, exponent)

    def neg(self) -> Tensor:
        return F.neg(self)

    def exp(self) -> Tensor:
        return F.exp(self)

    def log(self) -> Tensor:
        return F.log(self)

    def sqrt(self) -> Tensor:
        return F.sqrt(self)

    def abs(self) -> Tensor:
        return F.abs(self)

    def sign(self) -> Tensor:
        return F.sign(self)

    def sin(self) -> Tensor:
        return F.sin(self)

    def cos(self) -> Tensor:
        return F.cos(self)

    def tanh(self) -> Tensor:
        return F.tanh(self)

    def sigmoid(self) -> Tensor:
        return F.sigmoid(self)

    def relu(self) -> Tensor:
        return F.relu(self)

    def maximum(self, other: Any) -> Tensor:
        return F.maximum(self, other)

    def minimum(self, other: Any) -> Tensor:
        return F.minimum(self, other)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        return F.clamp(self, min, max)

    clip = clamp

    def sum(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return F.sum(self, dim, keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return F.mean(self, dim, keepdim)

    def var(self, dim: Any = None, *, correction: float = 1, keepdim: bool = False) -> Tensor:
        return F.var(self, dim, correction=correction, keepdim=keepdim)

    def std(self, dim: Any = None, *, correction: float = 1, keepdim: bool = False) -> Tensor:
        return F.std(self, dim, correction=correction, keepdim=keepdim)

    def max(self, dim: Any = None, keepdim: bool = False) -> Any:
        return F.max(self, dim, keepdim)

    def min(self, dim: Any = None, keepdim: bool = False) -> Any:
        return F.min(self, dim, keepdim)

    def amax(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return F.amax(self, dim, keepdim)

    def amin(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return F.amin(self, dim, keepdim)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return F.argmax(self, dim, keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return F.argmin(self, dim, keepdim)

    def logsumexp(self, dim: Any, keepdim: bool = False) -> Tensor:
        return F.logsumexp(self, dim, keepdim)

    def softmax(self, dim: int) -> Tensor:
        return F.softmax(self, dim)

    def log_softmax(self, dim: int) -> Tensor:
        return F.log_softmax(self, dim)

    def matmul(self, other: Tensor) -> Tensor:
        return F.matmul(self, other)

    def reshape(self, *shape: Any) -> Tensor:
        return F.reshape(self, _sizes(shape))

    def view(self, *shape: Any) -> Tensor:
        return F.reshape(self, _sizes(shape))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return F.flatten(self, start_dim, end_dim)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return F.transpose(self, dim0, dim1)

    def permute(self, *dims: Any) -> Tensor:
        return F.permute(self, _sizes(dims))

    @property
    def T(self) -> Tensor:
        return F.permute(self, tuple(reversed(range(self.data.ndim))))

    def squeeze(self, dim: Any = None) -> Tensor:
        return F.squeeze(self, dim)

    def unsqueeze(self, dim: int) -> Tensor:
        return F.unsqueeze(self, dim)

    def expand(self, *sizes: Any) -> Tensor:
        return F.expand(self, _sizes(sizes))

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return F.broadcast_to(self, tuple(shape))

    def split(self, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
        return F.split(self, split_size_or_sections, dim)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        return F.chunk(self, chunks, dim)


def _sizes(args: Sequence[Any]) -> tuple[int, ...]:
    """Accept both f(2, 3) and f((2, 3)), as torch does."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)
