"""The multi-tensor GPU path of SGD, Adam and AdamW: one launch of an optim/_cuda.py kernel updates up to
SLOTS (8) parameters of a group, so a step costs ⌈N/8⌉ launches for N parameters instead of several per
parameter, with no copy or sync between host and device.

A group takes this path while ``takes(arrays)``: fused kernels on (backend.fused_enabled()) and its
parameters and gradients C-contiguous CuPy arrays of one device and one dtype, float32 or float64. The
state is what the per-parameter ``_update`` keeps (``"momentum_buffer"``; ``"step"``, ``"exp_avg"``,
``"exp_avg_sq"``), created the same way, so state_dict, checkpoints and switching paths mid-run are
unaffected. The code is array-module generic: tests/optim/test_multi_tensor.py runs it on NumPy arrays
with the kernels compiled for the CPU (``run_kernel`` swapped), against the per-parameter path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from .. import backend
from ..core import Tensor
from ._cuda import KERNELS, SLOTS

KERNEL_DTYPES = (backend.float32, backend.float64)


def takes(arrays: list[Any]) -> bool:
    """Whether a group with these parameter and gradient arrays takes the multi-tensor GPU path."""
    if not backend.fused_enabled() or not arrays:
        return False
    first = arrays[0]
    device = backend.device_of(first)
    return device != "cpu" and first.dtype in KERNEL_DTYPES and all(
        backend.device_of(a) == device and a.dtype == first.dtype and a.flags.c_contiguous for a in arrays
    )


def run_kernel(name: str, items: int, *args: Any, dtype: Any) -> None:
    """Launch optim/_cuda.py's kernel `name` over `items` items (T = dtype)."""
    backend.launch(backend.raw_kernel(KERNELS[name], name, dtype), items, *args, dtype=dtype)


def sgd(params: list[Any], grads: list[Any], states: list[dict[str, Any]], group: dict[str, Any]) -> None:
    """SGD's update (optim/sgd.py) of every parameter array in `params`, in place, SLOTS per launch."""
    momentum = float(group["momentum"])
    options = (float(group["lr"]), float(group["weight_decay"]), momentum, 1 - float(group["dampening"]),
               bool(group["nesterov"]))
    for chunk in _chunks(list(zip(params, grads, states))):
        slots = []
        for param, grad, state in chunk:
            buffer, first = param, False  # without momentum the kernel leaves the buffer alone
            if momentum != 0:
                first = "momentum_buffer" not in state
                if first:
                    state["momentum_buffer"] = Tensor(backend.get_array_module(param).empty_like(param))
                buffer = _contiguous(state, "momentum_buffer")
            slots.append((param, grad, buffer, first))
        _launch("minigrad_q_sgd", slots, (params[0], params[0], params[0], False), options)


def adam(params: list[Any], grads: list[Any], states: list[dict[str, Any]], group: dict[str, Any],
         decoupled: bool) -> None:
    """Adam's (AdamW's when `decoupled`) update (optim/adam.py) of every array in `params`, SLOTS per launch."""
    beta1, beta2 = (float(beta) for beta in group["betas"])
    lr, weight_decay = float(group["lr"]), float(group["weight_decay"])
    options = (1 - beta1, beta2, 1 - beta2, float(group["eps"]), weight_decay, 1 - lr * weight_decay, decoupled)
    for chunk in _chunks(list(zip(params, grads, states))):
        slots = []
        for param, grad, state in chunk:
            if not state:
                xp = backend.get_array_module(param)
                state["step"] = 0
                state["exp_avg"] = Tensor(xp.zeros_like(param))
                state["exp_avg_sq"] = Tensor(xp.zeros_like(param))
            step = state["step"] = int(state["step"]) + 1
            slots.append((param, grad, _contiguous(state, "exp_avg"), _contiguous(state, "exp_avg_sq"),
                          lr / (1 - beta1**step), math.sqrt(1 - beta2**step)))
        _launch("minigrad_q_adam", slots, (params[0],) * 4 + (0.0, 1.0), options)


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), SLOTS):
        yield items[start:start + SLOTS]


def _contiguous(state: dict[str, Any], key: str) -> Any:
    """The array of the state Tensor `key`, first made C-contiguous where it is not (a loaded state)."""
    array = state[key].data
    if not array.flags.c_contiguous:
        array = backend.get_array_module(array).ascontiguousarray(array)
        state[key] = Tensor(array)
    return array


def _launch(name: str, slots: list[tuple[Any, ...]], unused: tuple[Any, ...], options: tuple[Any, ...]) -> None:
    """One launch of `name` over `slots` (each its arguments but the size), the rest filled with `unused`
    (size 0), then the group's `options`."""
    args: list[Any] = []
    for slot in slots:
        args += [*slot, int(slot[0].size)]
    for _ in range(SLOTS - len(slots)):
        args += [*unused, 0]
    total = sum(int(slot[0].size) for slot in slots)
    run_kernel(name, total, *args, *options, dtype=slots[0][0].dtype)
