"""The one switch between a quantizer's plain path and its fused kernels (DESIGN.md, "plain first, fused second").

Each quantizer's class computes its forward and backward in plain array code, as its docstring
writes the math. While ``backend.fused_enabled()`` (the default; ``backend.use_fused(False)`` or
MINIGRAD_Q_FUSED=0 turn it off), its forward hands the work to fused kernels that compute the same
values in fewer passes over memory: on a GPU _fused_gpu's CuPy kernels, on the CPU _fused_cpu's
chunked passes for arrays of at least _fused_cpu.FUSED_MIN elements (on smaller ones either path
takes a few microseconds). The forward keeps its choice in ``self.fused``, and the backward
follows it: the two paths save different things.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from . import _fused_cpu, _fused_gpu

_numpy = backend.array_module("cpu")


def fused_kernels(xp: Any, x: Any) -> Any:
    """The module of fused kernels that an op on x (an xp array) takes, or None: the plain path."""
    if not backend.fused_enabled() or x.size == 0:
        return None
    if xp is _numpy:
        return _fused_cpu if x.size >= _fused_cpu.FUSED_MIN else None
    return _fused_gpu
