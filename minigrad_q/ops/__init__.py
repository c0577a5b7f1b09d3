"""Differentiable operations, one family per file; each op is a Function with an explicit backward."""

import sys

from .. import core
from .convert import *
from .elementwise import *
from .index import *
from .linalg import *
from .reduce import *
from .selection import *
from .shape import *
from .softmaxes import *
from .unary import *

core.bind_ops(sys.modules[__name__])
