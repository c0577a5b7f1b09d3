"""Tensor: an n-dimensional array that remembers how it was computed."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from .. import backend
from .grad_mode import state

_numpy = backend.array_module("cpu")


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

    This class holds the array and the autograd state. The layers above give it
    the rest when they are imported: ``backward()`` is ``core.engine.backward``,
    and the operators and torch-named methods (``x + y``, ``x.sum()``,
    ``x.to("cuda")``) are the ops of ``minigrad_q.ops`` (``ops/tensor_methods.py``).
    """

    __slots__ = ("data", "grad", "_requires_grad", "creator", "_output_index", "name", "_hooks", "_versions",
                 "__weakref__")
    __array_ufunc__ = None  # make numpy scalars defer to our reflected operators

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None):
        if not backend.is_array(data):
            data = backend.asarray(data, dtype=backend.infer_dtype(data))
        self.data = data
        self.grad: Tensor | None = None
        self.creator: Any = None  # a core.function.Function
        self._output_index = 0
        self.name = name
        self._hooks: list[Callable[..., Any]] | None = None
        self._versions = [0]  # in-place changes so far, shared with detach()'s tensors (torch's version counter)
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
    def grad_fn(self) -> Any:
        return self.creator

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
        if not self._requires_grad:
            raise RuntimeError("retain_grad: cannot retain the gradient of a tensor that does not require grad")
        if self.creator is None:
            return
        if self.creator.retained_outputs is None:
            self.creator.retained_outputs = {}
        self.creator.retained_outputs[self._output_index] = weakref.ref(self)

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data (and its version counter), cut off from the graph."""
        detached = Tensor(self.data)
        detached._versions = self._versions
        return detached

    @property
    def version(self) -> int:
        """How many in-place changes this tensor's data has had (torch's ``_version``)."""
        return self._versions[0]

    def detach_(self) -> Tensor:
        self.creator = None
        self._requires_grad = False
        return self

    def zero_(self) -> Tensor:
        return self.fill_(0)

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
        backend.raise_device_errors()
        return self.data.item()

    def numpy(self) -> Any:
        """A host (NumPy) array; refuses tensors that require grad, like torch."""
        if self._requires_grad:
            raise RuntimeError("numpy(): call .detach().numpy() on a tensor that requires grad")
        backend.raise_device_errors()
        return backend.asnumpy(self.data)

    def tolist(self) -> Any:
        backend.raise_device_errors()
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
        values = backend.asnumpy(self.data)
        finite = values[_numpy.isfinite(values)] if values.dtype.kind == "f" else values
        integral = values.dtype.kind != "f" or bool((finite == _numpy.round(finite)).all())
        body = _numpy.array2string(  # torch's style: "1., 2." when integral, else 4 fixed decimals
            values, separator=", ", prefix="tensor(", precision=4, threshold=1000,
            floatmode="maxprec" if integral else "fixed",
        )
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype not in (backend.get_default_dtype(), backend.int64, backend.bool_):
            extras.append(f"dtype=mq.{self.dtype}")
        if self.creator is not None:
            extras.append(f"grad_fn={self.creator!r}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    # ------------------------------------------------------------ in place
    # Every in-place change counts in the tensor's version; a Function that saved the tensor for its
    # backward checks the version there (core/engine.py) and refuses a changed one, as torch does.
    # Outside grad mode, or on tensors that need no gradient, it records nothing (parameter updates
    # under mq.no_grad()). In grad mode, arithmetic on a non-leaf tensor is recorded: the tensor takes
    # the history of the out-of-place result, whose values are written into its memory. A leaf that
    # requires grad is refused, as in torch.
    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace("assignment")
        self.data[index] = value.data if isinstance(value, Tensor) else value
        self._versions[0] += 1

    def _check_inplace(self, what: str) -> None:
        if self._requires_grad and state.grad_enabled:
            if self.creator is None:
                raise RuntimeError(f"in-place {what} on a leaf tensor that requires grad: it would change the value "
                                   "autograd differentiates at; do it under mq.no_grad(), or use the out-of-place op")
            raise RuntimeError(f"in-place {what} on a tensor that requires grad is not recorded by autograd; "
                               "do it under mq.no_grad(), or use the out-of-place op")

    def _inplace(self, what: str, ufunc: str, other: Any, operator: str) -> Tensor:
        if self._requires_grad and state.grad_enabled and self.creator is not None:
            result = getattr(Tensor, operator)(self, other)  # recorded: the ops' Tensor methods (ops/tensor_methods.py)
            self._keep_old_values_for(result.creator)
            self.data[...] = result.data
            self.creator, self._output_index = result.creator, result._output_index
        else:
            self._check_inplace(what)
            getattr(self.xp, ufunc)(self.data, other.data if isinstance(other, Tensor) else other, out=self.data)
        self._versions[0] += 1
        return self

    def _keep_old_values_for(self, node: Any) -> None:
        """Before this tensor's memory takes the result of `node` (the op its in-place change was recorded as):
        what `node` saved of the old values becomes a copy, so its backward still sees them (torch saves the
        original self of an in-place op the same way)."""
        saved = node.saved or ()
        if any(a is self.data or getattr(a, "base", None) is self.data for a in saved if a is not None):
            node.saved = tuple(a.copy() if a is not None and (a is self.data or getattr(a, "base", None) is self.data)
                               else a for a in saved)
            node.saved_versions = tuple(entry for entry in node.saved_versions if entry[0] is not self._versions)

    def add_(self, other: Any) -> Tensor:
        return self._inplace("add_", "add", other, "__add__")

    def sub_(self, other: Any) -> Tensor:
        return self._inplace("sub_", "subtract", other, "__sub__")

    def mul_(self, other: Any) -> Tensor:
        return self._inplace("mul_", "multiply", other, "__mul__")

    def div_(self, other: Any) -> Tensor:
        return self._inplace("div_", "divide", other, "__truediv__")

    def copy_(self, source: Any) -> Tensor:
        """Copy `source`'s values into this tensor, from any device (as torch's copy_)."""
        self._check_inplace("copy_")
        values = source.data if isinstance(source, Tensor) else source
        if not isinstance(values, (bool, int, float)):
            values = backend.asarray(values, device=self.device)  # a host or other-device array moves here first
        self.data[...] = values
        self._versions[0] += 1
        return self

    def fill_(self, value: Any) -> Tensor:
        self._check_inplace("fill_")
        self.data.fill(value)
        self._versions[0] += 1
        return self

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_
