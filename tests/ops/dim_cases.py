"""Shared by the reduction and softmax tests: one input, every kind of `dim`, and small helpers."""

import numpy as np
from helpers import const, leaf

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4))

# (dim, keepdim) combinations, with NumPy's axis for each dim
DIMS = [
    (None, None), (0, 0), (1, 1), (-1, 2), (-3, 0), ((0, 2), (0, 2)), ((-1, 0), (0, 2)), ((2, -2), (1, 2)),
    ((0, 1, 2), (0, 1, 2)), ((), None),
]
DIM_CASES = [(dim, axis, keepdim) for dim, axis in DIMS for keepdim in (False, True)]


def grad_of(fn, array, grad_output, device):
    """d(sum(fn(x) * grad_output))/dx, through fn's backward."""
    x = leaf(array, device)
    fn(x).backward(const(grad_output, device))
    return x.grad.numpy()


def kept(array, axis):
    """`array` (a reduced result) with the reduced axes put back as size 1."""
    axes = tuple(range(X.ndim)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    return np.expand_dims(array, axes)


def output_like(reference):
    return rng.standard_normal(np.shape(reference))
