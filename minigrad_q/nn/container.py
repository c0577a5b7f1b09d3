"""Containers: Sequential (calls its modules in order) and ModuleList (a registered list of modules)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from .. import backend
from .activation import ReLU
from .module import Module
from .pooling import MaxPool2d

__all__ = ["ModuleList", "Sequential"]


def _index(container: Module, idx: Any) -> int:
    """A non-negative position for int `idx` (negative counts from the end), or IndexError."""
    size = len(container._modules)
    if not isinstance(idx, int) or isinstance(idx, bool):
        raise TypeError(f"{container._get_name()} indices must be integers or slices, not {type(idx).__name__}")
    if not -size <= idx < size:
        raise IndexError(f"index {idx} is out of range for {container._get_name()} of length {size}")
    return idx % size


class _Indexed(Module):
    """Indexing, len and iteration over the submodules of a container, in registration order."""

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._modules.values())

    def __getitem__(self, idx: Any) -> Any:
        return list(self._modules.values())[_index(self, idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[_index(self, idx)]
        self.add_module(key, module)

    def __delitem__(self, idx: Any) -> None:
        keys = list(self._modules)
        for key in keys[idx] if isinstance(idx, slice) else [keys[_index(self, idx)]]:
            del self._modules[key]
        if all(key.isdigit() for key in keys):  # keep the names 0..n-1, as torch does
            remaining = list(self._modules.values())
            self._modules.clear()
            for position, module in enumerate(remaining):
                self._modules[str(position)] = module

    def append(self, module: Module) -> Any:
        """Add `module` at the end (named by its position); returns self."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Any:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules.clear()
        for position, item in enumerate(modules):
            self.add_module(str(position), item)


class Sequential(_Indexed):
    """Calls its modules in order, each on the output of the one before.

    ``Sequential(m0, m1, ...)`` names them "0", "1", ...; ``Sequential(OrderedDict(name=module, ...))``
    uses the given names. Indexing (ints, negative ints, slices), len, iteration and append work as in torch.

    A ReLU followed by a MaxPool2d runs pool first (``pools_first``): the same values and gradients
    from a relu over a quarter of the numbers (2x2 pools).
    """

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for position, module in enumerate(args):
                self.add_module(str(position), module)

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)

    def forward(self, input: Any) -> Any:
        modules = list(self._modules.values())
        position = 0
        while position < len(modules):
            module = modules[position]
            if position + 1 < len(modules) and pools_first(module, modules[position + 1]):
                input = module(modules[position + 1](input))
                position += 2
            else:
                input = module(input)
                position += 1
        return input


def pools_first(first: Module, second: Module) -> bool:
    """Whether Sequential runs ``second`` before ``first``: a ReLU then a MaxPool2d without indices or
    dilation, neither hooked, while ``backend.fused_enabled()`` (off, every module runs in its place).
    (A dilated window can lie wholly in the padding: the written order gives its -inf, pool first 0.)

    relu is non-decreasing, so relu(max(window)) = max(relu(window)). Where the window's maximum is
    positive, it sits at the same first position in x and in relu(x), so the gradient takes the same
    path; where it is not, relu'(0) = 0 stops the gradient in either order. Only a window holding a
    NaN differs: its output is NaN either way, but run first, relu passes it no gradient, where the
    pool would have sent it to the largest number ahead of the NaN; and a zero may come out with the other sign."""
    if type(first) is not ReLU or type(second) is not MaxPool2d or second.return_indices:
        return False
    if second.dilation not in (1, (1, 1)):
        return False
    hooked = any(m._forward_pre_hooks or m._forward_hooks or m._backward_hooks for m in (first, second))
    return not hooked and backend.fused_enabled()


class ModuleList(_Indexed):
    """A list of modules whose parameters belong to the owner; it has no forward of its own."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return super().__getitem__(idx)
