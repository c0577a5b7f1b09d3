"""The GPU paths of conv2d, max_pool2d, cross_entropy, relu, sigmoid and tanh: the steps of their plain forward and
backward (ops/conv.py, pool.py, loss.py, unary.py), each step one raw kernel of ops/_cuda.py or one
GEMM, so that an op costs a few launches instead of one per kernel offset or per NumPy-style step.

    conv2d forward    X = im2col(x)  ·  P = W X  ·  y = nchw(P) + b                   3 launches
    conv2d backward   dY = matrix(dy)  ·  db = Σ dY  ·  dW = dY Xᵀ  ·  dx = col2im(Wᵀ dY)   5
    max_pool2d        forward: the max and its index per window;  backward: a gather    1 + 1
    cross_entropy     forward: one thread per row (loss and probabilities);  backward   1 + 1
    relu backward     dx = grad_output · [y > 0]                                        1
    sigmoid, tanh     each direction of sigmoid, and tanh's backward                    1 each

An op takes this path while ``takes(x)``: fused kernels on (backend.fused_enabled()) and x a float32 or
float64 CuPy array. The code is array-module generic: tests/ops/test_cuda_kernels.py runs it on NumPy
arrays with the kernels compiled for the CPU (``run_kernel`` swapped), against the plain path.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ._cuda import KERNELS
from ._windows import output_size

KERNEL_DTYPES = (backend.float32, backend.float64)
_ndarray = backend.ndarray


def takes(x: Any) -> bool:
    """Whether an op on the array x takes its GPU path."""
    return type(x) is not _ndarray and backend.fused_enabled() and backend.device_of(x) != "cpu" and x.dtype in KERNEL_DTYPES


def run_kernel(name: str, items: int, *args: Any, dtype: Any) -> None:
    """Launch ops/_cuda.py's kernel `name` over `items` items (T = dtype)."""
    backend.launch(backend.raw_kernel(KERNELS[name], name, dtype), items, *args, dtype=dtype)


# ---------------------------------------------------------------- conv2d
def _gemm(xp: Any, a: Any, b: Any) -> Any:
    """a @ b for stacks of G matrices; with G = 1 one 2-D GEMM, which takes transposed operands in place."""
    return (a[0] @ b[0])[None] if a.shape[0] == 1 else xp.matmul(a, b)


def conv_forward(fn: Any, x: Any, weight: Any, bias: Any, stride: tuple[int, int], pads: tuple[int, int, int, int],
                 dilation: tuple[int, int], groups: int) -> Any:
    """Conv2d's forward; saves (X or None, W or None) and the geometry in ``fn.gpu``."""
    xp, dtype = fn.xp, x.dtype
    need_x, need_w = fn.needs_input_grad[:2]
    fn.unbatched = x.ndim == 3
    x = xp.ascontiguousarray(x[None] if fn.unbatched else x)
    (n, c, h, w), (k, _, kh, kw), (top, bottom, left, right) = x.shape, weight.shape, pads
    oh = output_size(h, kh, stride[0], top + bottom, dilation[0])
    ow = output_size(w, kw, stride[1], left + right, dilation[1])
    geometry = (n, c, h, w, kh, kw, oh, ow, stride[0], stride[1], top, left, dilation[0], dilation[1])
    fn.gpu, fn.groups, fn.w_shape = geometry, groups, weight.shape
    columns = xp.empty((groups, c // groups * kh * kw, n * oh * ow), dtype=dtype)  # X
    run_kernel("minigrad_q_im2col", columns.size, x, columns, *geometry, dtype=dtype)
    w_matrix = xp.ascontiguousarray(weight).reshape(groups, k // groups, columns.shape[1])  # W
    product = _gemm(xp, w_matrix, columns)  # P = W X: (G, K/G, N·OH·OW)
    y = xp.empty((n, k, oh, ow), dtype=dtype)
    bias_or_any = product if bias is None else xp.ascontiguousarray(bias)
    run_kernel("minigrad_q_to_nchw", y.size, product, bias_or_any, y, n, k, oh * ow, bias is not None, dtype=dtype)
    fn.save_for_backward(columns if need_w else None, w_matrix if need_x else None)
    return y[0] if fn.unbatched else y


def conv_backward(fn: Any, grad_output: Any) -> tuple[Any, Any, Any]:
    """Conv2d's backward: (dx, dW, db), None where not needed."""
    xp, dtype = fn.xp, grad_output.dtype
    need_x, need_w, need_b = fn.needs_input_grad[:3]
    columns, w_matrix = fn.saved
    n, c, h, w, _, _, oh, ow = fn.gpu[:8]
    k, groups = fn.w_shape[0], fn.groups
    grad_y = xp.ascontiguousarray(grad_output[None] if fn.unbatched else grad_output)
    dy = xp.empty((groups, k // groups, n * oh * ow), dtype=dtype)  # dY
    run_kernel("minigrad_q_to_matrix", dy.size, grad_y, dy, n, k, oh * ow, dtype=dtype)
    grad_b = dy.reshape(k, -1).sum(axis=1) if need_b else None  # db = Σ dY
    grad_w = _gemm(xp, dy, columns.transpose(0, 2, 1)).reshape(fn.w_shape) if need_w else None  # dW = dY Xᵀ
    grad_x = None
    if need_x:
        d_columns = _gemm(xp, w_matrix.transpose(0, 2, 1), dy)  # Wᵀ dY
        grad_x = xp.empty((n, c, h, w), dtype=dtype)
        run_kernel("minigrad_q_col2im", grad_x.size, d_columns, grad_x, *fn.gpu, dtype=dtype)
        if fn.unbatched:
            grad_x = grad_x[0]
    return grad_x, grad_w, grad_b


# ---------------------------------------------------------------- max_pool2d
def max_pool_forward(fn: Any, x: Any, windows: Any) -> Any:
    """MaxPool2d's forward on the unpadded x; saves each window's index (the flat position of its first
    maximum in the plane, −1 in the padding) when x needs a gradient."""
    xp, dtype = fn.xp, x.dtype
    x = xp.ascontiguousarray(x)
    keep = fn.needs_input_grad[0]
    out = xp.empty(x.shape[:-2] + windows.out, dtype=dtype)
    index = xp.empty(out.shape, dtype=backend.int32) if keep else out  # unused without keep
    fn.gpu = _pool_geometry(x.shape, windows)
    run_kernel("minigrad_q_max_pool_forward", out.size, x, out, index, *fn.gpu, keep, dtype=dtype)
    fn.save_for_backward(index if keep else None)
    return out


def max_pool_backward(fn: Any, grad_output: Any) -> Any:
    """MaxPool2d's backward: the gradient of the unpadded input."""
    xp, dtype = fn.xp, grad_output.dtype
    (index,) = fn.saved
    grad = xp.empty(fn.input_shape, dtype=dtype)
    run_kernel("minigrad_q_max_pool_backward", grad.size, xp.ascontiguousarray(grad_output), index, grad, *fn.gpu,
               dtype=dtype)
    return grad


def _pool_geometry(shape: tuple[int, ...], windows: Any) -> tuple[int, ...]:
    """(planes, h, w, kh, kw, oh, ow, sh, sw, ph, pw), as the pool kernels take them."""
    h, w = shape[-2:]
    planes = 1
    for side in shape[:-2]:
        planes *= side
    return (planes, h, w, *windows.kernel, *windows.out, *windows.stride, *windows.padding)


# ---------------------------------------------------------------- cross_entropy
def cross_entropy_forward(fn: Any, logits: Any, targets: Any, smoothing: float, ignore_index: int) -> tuple[Any, Any]:
    """CrossEntropy's per-row losses of the (M, C) scores, and which rows count (1, or 0 where the target is
    ignore_index: loss 0); saves the softmax when the scores need a gradient. Another target outside [0, C)
    gives its row a NaN loss and is reported at the next read of a result (backend.raise_device_errors), as
    torch reports device-side asserts."""
    xp, dtype = fn.xp, logits.dtype
    logits = xp.ascontiguousarray(logits)
    targets = xp.ascontiguousarray(targets, dtype=backend.int64)
    rows, classes = logits.shape
    keep = fn.needs_input_grad[0]
    losses, kept = xp.empty(rows, dtype=dtype), xp.empty(rows, dtype=dtype)
    probs = xp.empty((rows, classes), dtype=dtype) if keep else losses  # unused without keep
    bad = backend.device_check(backend.device_of(logits), IndexError, BAD_TARGET)
    run_kernel("minigrad_q_cross_entropy_forward", rows, logits, targets, losses, probs, kept, bad, rows, classes,
               float(smoothing), ignore_index, keep, dtype=dtype)
    fn.ignore_index = ignore_index
    fn.save_for_backward(probs if keep else None, targets)
    return losses, kept


BAD_TARGET = "cross_entropy: a target outside [0, C) (C the number of classes) was met on the GPU; its loss is NaN"


def cross_entropy_backward(fn: Any, weights: Any) -> Any:
    """CrossEntropy's (M, C) gradient for the per-row weights dL/dloss_m (a 0-d array: one for every row)."""
    xp = fn.xp
    probs, targets = fn.saved
    rows, classes = probs.shape
    step = 1 if weights.ndim else 0
    weights = xp.ascontiguousarray(weights, dtype=probs.dtype)  # NumPy makes a 0-d array (1,)
    grad = xp.empty_like(probs)
    run_kernel("minigrad_q_cross_entropy_backward", grad.size, probs, targets, weights, grad, rows, classes,
               float(fn.smoothing), step, fn.ignore_index, dtype=probs.dtype)
    return grad


# ---------------------------------------------------------------- elementwise
def elementwise(fn: Any, name: str, *arrays: Any) -> Any:
    """A new array from the kernel `name` over same-shaped arrays (its inputs, in order, then the output)."""
    xp = fn.xp
    shape = arrays[0].shape  # ascontiguousarray makes a 0-d array 1-d
    arrays = tuple(xp.ascontiguousarray(array) for array in arrays)
    out = xp.empty(shape, dtype=arrays[0].dtype)
    run_kernel(name, out.size, *arrays, out, out.size, dtype=out.dtype)
    return out
