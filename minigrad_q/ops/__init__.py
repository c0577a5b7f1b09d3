"""Differentiable operations, one family per file; each op is a Function with an explicit backward.

`__all__` is the union of the families' public functions, so `from minigrad_q.ops import *`
(and `minigrad_q`'s own namespace) gets the ops, not the module names.
"""

from ..core import Tensor
from . import (
    conv,
    convert,
    elementwise,
    index,
    linalg,
    loss,
    norm,
    padding,
    pool,
    reduce,
    selection,
    shape,
    softmaxes,
    stochastic,
    tensor_methods,
    unary,
)
from .conv import *
from .convert import *
from .elementwise import *
from .index import *
from .linalg import *
from .loss import *
from .norm import *
from .padding import *
from .pool import *
from .reduce import *
from .selection import *
from .shape import *
from .softmaxes import *
from .stochastic import *
from .unary import *

__all__ = [
    name
    for family in (
        conv, convert, elementwise, index, linalg, loss, norm, padding, pool, reduce, selection, shape, softmaxes,
        stochastic, unary,
    )
    for name in family.__all__
]

tensor_methods.install(Tensor)
