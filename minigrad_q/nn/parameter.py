"""Parameter: a Tensor that a Module registers as one of its learnable weights."""

from __future__ import annotations

from typing import Any

from .. import backend
from ..core import Tensor


class Parameter(Tensor):
    """A leaf Tensor that, assigned to a Module attribute, joins ``module.parameters()``.

    ``Parameter(tensor)`` shares the tensor's array (no copy), as torch.nn.Parameter does;
    it requires grad unless ``requires_grad=False``. Ops on a Parameter give plain Tensors.
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True):
        if data is None:
            data = backend.asarray([], dtype=backend.get_default_dtype())
        elif isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
