"""Pooling over 2-D windows: max_pool2d, avg_pool2d, adaptive_avg_pool2d (NCHW, or unbatched CHW, as torch).

Windows are strided views. For a kernel offset (i, j), the view
``x[..., i : i + sh·(oh-1) + 1 : sh, j : j + sw·(ow-1) + 1 : sw]`` holds the element at offset
(i, j) of every window, so a pool is kh·kw vectorised steps over output-sized arrays, never a
loop over pixels. Backward writes each offset's share into the same views of the input
gradient: plain writes when windows do not overlap (stride >= kernel), slice-adds when they do.
Max pooling keeps, per window, the kernel offset of its first maximum for the backward; its fused
path (ops/_pool_plan.py) runs on chunks of the leading axis on worker threads.
Windows bigger than 3x3 that tile the input (global average pooling, say) are averaged by two
GEMMs with averaging matrices instead, and spread back by one broadcast copy. Padding is -inf
for max (never chosen) and 0 for avg; torch's rule padding <= kernel/2 keeps a real element in
every window. Output size: floor((H + 2p - k) / s) + 1 (ceil_mode=False).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import backend
from ..core import Function, Tensor
from ..core.validate import pair
from ..specs import Draw, register_spec
from . import _gpu
from . import _pool_plan as fused

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]

Pair = tuple[int, int]
_FEW_OFFSETS = 9  # windows of up to 3x3: strided adds per offset; bigger tiling windows: GEMMs / one broadcast copy


class Windows(NamedTuple):
    """Where a pool's windows lie on the (padded) input: sizes in (rows, columns)."""

    kernel: Pair
    stride: Pair
    padding: Pair
    out: Pair

    @property
    def offsets(self) -> list[Pair]:
        return [(i, j) for i in range(self.kernel[0]) for j in range(self.kernel[1])]

    @property
    def disjoint(self) -> bool:
        """No two windows share an element, so backward may write instead of add."""
        return self.stride[0] >= self.kernel[0] and self.stride[1] >= self.kernel[1]

    def view(self, array: Any, i: int, j: int) -> Any:
        """The element at kernel offset (i, j) of every window, shaped (..., oh, ow)."""
        (sh, sw), (oh, ow) = self.stride, self.out
        return array[..., i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]

    def tiles(self, shape: tuple[int, ...]) -> bool:
        """The windows cover every element of an array of `shape` exactly once."""
        return self.stride == self.kernel and shape[-2:] == (self.out[0] * self.kernel[0], self.out[1] * self.kernel[1])


# ---------------------------------------------------------------- window arithmetic (shared by the pools)
def _padded(xp: Any, x: Any, padding: Pair, fill: float) -> Any:
    if padding == (0, 0):
        return x
    (ph, pw), (h, w) = padding, x.shape[-2:]
    source = xp.full(x.shape[:-2] + (h + 2 * ph, w + 2 * pw), fill, dtype=x.dtype)
    source[..., ph : ph + h, pw : pw + w] = x
    return source


def _unpadded(xp: Any, grad: Any, padding: Pair, shape: tuple[int, ...]) -> Any:
    if padding == (0, 0):
        return grad
    (ph, pw), (h, w) = padding, shape[-2:]
    return xp.ascontiguousarray(grad[..., ph : ph + h, pw : pw + w])


def _window_mean(xp: Any, source: Any, windows: Windows) -> Any:
    """The mean of every window: the sum of the kh·kw offset views over kh·kw, or, for big windows
    that tile the input, averaging matrices (two GEMMs instead of many small strided adds)."""
    kernel = windows.kernel
    if windows.tiles(source.shape) and kernel[0] * kernel[1] > _FEW_OFFSETS:
        h, w = source.shape[-2:]
        rows = _averaging_matrix(xp, h, windows.out[0], source.dtype)
        columns = _averaging_matrix(xp, w, windows.out[1], source.dtype)
        return _matrix_mean(xp, source, rows, columns)
    (first, *rest) = [windows.view(source, i, j) for i, j in windows.offsets]
    out = first.copy()
    for view in rest:
        out += view
    out *= 1 / len(windows.offsets)
    return out


def _spread_mean(xp: Any, grad_output: Any, windows: Windows, source_shape: tuple[int, ...]) -> Any:
    """Backward of `_window_mean`: each window element gets grad_output / (kh·kw)."""
    (kh, kw), (oh, ow) = windows.kernel, windows.out
    share = grad_output * (1 / (kh * kw))
    tiles = windows.tiles(source_shape)
    grad = (xp.empty if tiles else xp.zeros)(source_shape, dtype=share.dtype)
    if tiles and kh * kw > _FEW_OFFSETS:  # one broadcast copy: (.., oh, 1, ow, 1) into (.., oh, kh, ow, kw)
        grad.reshape(source_shape[:-2] + (oh, kh, ow, kw))[...] = share[..., :, None, :, None]
        return grad
    for i, j in windows.offsets:
        view = windows.view(grad, i, j)
        if windows.disjoint:
            view[...] = share
        else:
            view += share
    return grad


def _averaging_matrix(xp: Any, size: int, out: int, dtype: Any) -> Any:
    """A (out, size) matrix whose row i averages [floor(i·size/out), ceil((i+1)·size/out)) (torch's rule)."""
    rows = xp.arange(out)[:, None]
    start = (rows * size) // out
    end = -((-(rows + 1) * size) // out)
    columns = xp.arange(size)[None, :]
    inside = (columns >= start) & (columns < end)
    return (inside / (end - start)).astype(dtype)


def _matrix_mean(xp: Any, x: Any, rows: Any, columns: Any) -> Any:
    """y = rows · x · columnsᵀ over the last two dims, as two GEMMs with the leading dims folded in;
    only the smaller intermediate and the output are transposed."""
    (h, w), oh, ow = x.shape[-2:], rows.shape[0], columns.shape[0]
    half = (x.reshape(-1, w) @ columns.T).reshape(-1, h, ow)
    out = xp.ascontiguousarray(half.swapaxes(1, 2)).reshape(-1, h) @ rows.T
    return xp.ascontiguousarray(out.reshape(-1, ow, oh).swapaxes(1, 2)).reshape(x.shape[:-2] + (oh, ow))


def _matrix_mean_backward(xp: Any, grad_output: Any, rows: Any, columns: Any, shape: tuple[int, ...]) -> Any:
    """dx = rowsᵀ · grad_output · columns, the same way round: the last GEMM writes dx in place."""
    h, oh, ow = shape[-2], rows.shape[0], columns.shape[0]
    half = xp.ascontiguousarray(grad_output.reshape(-1, oh, ow).swapaxes(1, 2)).reshape(-1, oh) @ rows
    half = xp.ascontiguousarray(half.reshape(-1, ow, h).swapaxes(1, 2)).reshape(-1, ow)
    grad = xp.empty(shape, dtype=half.dtype)
    xp.matmul(half, columns, out=grad.reshape(half.shape[0], columns.shape[1]))
    return grad


# ---------------------------------------------------------------- max_pool2d
class MaxPool2d(Function):
    """y = max of x over each kh×kw window (padding -inf);  dx = grad_output at the window's argmax, 0 elsewhere.

    With x_k the view of every window's element at offset k = i·kw + j (row-major):

        forward   y = max_k x_k,  k* = the first k with x_k = y (torch's tie rule; NaN in a window gives NaN)
        backward  dx_k += grad_output · [k = k*] for every k (views of dx: windows that overlap add up)

    While ``backend.fused_enabled()`` (the default), ops/_pool_plan.py runs the same steps in chunks
    on worker threads, one offset at a time, and on a GPU ops/_gpu.py runs each direction as one kernel."""

    plan: Any = None  # (chunks, workers) when forward took the fused CPU path
    gpu: tuple[int, ...] | None = None  # set when forward took the GPU path

    def forward(self, x: Any, windows: Windows) -> Any:
        xp = self.xp
        self.windows, self.input_shape = windows, x.shape
        if _gpu.takes(x):
            return _gpu.max_pool_forward(self, x, windows)
        source = _padded(xp, x, windows.padding, -float("inf"))
        self.source_shape = source.shape
        if backend.fused_enabled() and backend.device_of(x) == "cpu":
            return fused.forward(self, source, windows)
        stacked = xp.stack([windows.view(source, i, j) for i, j in windows.offsets])  # x_k: (kh·kw, ..., OH, OW)
        self.save_for_backward(stacked.argmax(axis=0) if self.needs_input_grad[0] else None)  # k*: the first max
        return stacked.max(axis=0)

    def backward(self, grad_output: Any) -> Any:
        xp, windows = self.xp, self.windows
        if self.gpu is not None:
            return _gpu.max_pool_backward(self, grad_output)
        if self.plan is not None:
            grad = fused.backward(self, grad_output, windows, self.source_shape)
        else:
            (argmax,) = self.saved
            grad = xp.zeros(self.source_shape, dtype=grad_output.dtype)
            for k, (i, j) in enumerate(windows.offsets):
                view = windows.view(grad, i, j)
                view += xp.where(argmax == k, grad_output, 0)
        return _unpadded(xp, grad, windows.padding, self.input_shape)


# ---------------------------------------------------------------- avg_pool2d
class AvgPool2d(Function):
    """y = (1/(kh·kw)) Σ x over each window, zero padding counted (count_include_pad=True, torch's default);
    dx = Σ over the windows holding x of grad_output / (kh·kw)."""

    def forward(self, x: Any, windows: Windows) -> Any:
        xp = self.xp
        self.windows, self.input_shape = windows, x.shape
        source = _padded(xp, x, windows.padding, 0.0)
        self.source_shape = source.shape
        return _window_mean(xp, source, windows)

    def backward(self, grad_output: Any) -> Any:
        grad = _spread_mean(self.xp, grad_output, self.windows, self.source_shape)
        return _unpadded(self.xp, grad, self.windows.padding, self.input_shape)


# ---------------------------------------------------------------- adaptive_avg_pool2d
class AdaptiveAvgPool2d(Function):
    """y[..., i, j] = mean of x over rows [floor(i·H/oh), ceil((i+1)·H/oh)) and columns
    [floor(j·W/ow), ceil((j+1)·W/ow)) (torch's rule). The mean is separable: y = Ph x Pwᵀ with
    Ph[i, r] = 1/len(row range i) inside it, so dx = Phᵀ grad_output Pw. When oh divides H and ow divides W
    the windows tile the input and the avg_pool2d path (kernel = stride = H/oh, W/ow) is used."""

    def forward(self, x: Any, out_size: Pair) -> Any:
        xp = self.xp
        (h, w), (oh, ow) = x.shape[-2:], out_size
        self.input_shape = x.shape
        if h % oh == 0 and w % ow == 0:
            kernel = (h // oh, w // ow)
            self.windows: Windows | None = Windows(kernel, kernel, (0, 0), out_size)
            return _window_mean(xp, x, self.windows)
        self.windows = None
        rows, columns = _averaging_matrix(xp, h, oh, x.dtype), _averaging_matrix(xp, w, ow, x.dtype)
        self.save_for_backward(rows, columns)
        return _matrix_mean(xp, x, rows, columns)

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        if self.windows is not None:
            return _spread_mean(xp, grad_output, self.windows, self.input_shape)
        rows, columns = self.saved
        return _matrix_mean_backward(xp, grad_output, rows, columns, self.input_shape)


# ---------------------------------------------------------------- argument checks
def _check_input(op: str, input: Any) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(input).__name__}")
    shape = input.shape
    if input.ndim not in (3, 4) or 0 in shape[-3:]:
        raise RuntimeError(
            f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input with non-zero C, H, W, got shape {shape}"
        )
    if input.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point input, got dtype {input.dtype}; convert it with .float()")


def _windows(op: str, input: Any, kernel_size: Any, stride: Any, padding: Any) -> Windows:
    _check_input(op, input)
    kernel = pair(op, "kernel_size", kernel_size, 1)
    strides = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else pair(op, "stride", stride, 1)
    pads = pair(op, "padding", padding, 0)
    if pads[0] > kernel[0] // 2 or pads[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {pads} must be at most half the kernel size {kernel} (torch's rule)")
    h, w = input.shape[-2:]
    out = ((h + 2 * pads[0] - kernel[0]) // strides[0] + 1, (w + 2 * pads[1] - kernel[1]) // strides[1] + 1)
    if min(out) < 1:
        raise RuntimeError(
            f"{op}: kernel {kernel} with padding {pads} does not fit the input of shape {input.shape} "
            f"(spatial size {(h, w)}): output size would be {out}"
        )
    return Windows(kernel, strides, pads, out)


# ---------------------------------------------------------------- public functions (torch names)
def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """torch.nn.functional.max_pool2d (dilation 1, ceil_mode=False): the max of each window; stride
    defaults to kernel_size; padding (<= kernel/2) is -inf. Input (N, C, H, W) or (C, H, W)."""
    return MaxPool2d.apply(input, _windows("max_pool2d", input, kernel_size, stride, padding))


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """torch.nn.functional.avg_pool2d (ceil_mode=False, count_include_pad=True): the mean of each
    window, zero padding included in the count. Input (N, C, H, W) or (C, H, W)."""
    return AvgPool2d.apply(input, _windows("avg_pool2d", input, kernel_size, stride, padding))


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """torch.nn.functional.adaptive_avg_pool2d: mean over windows chosen so that the output has
    `output_size` (an int, or a pair whose None entries keep the input's size)."""
    _check_input("adaptive_avg_pool2d", input)
    h, w = input.shape[-2:]
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    if len(sizes) == 2:
        sizes = (h if sizes[0] is None else sizes[0], w if sizes[1] is None else sizes[1])
    out = pair("adaptive_avg_pool2d", "output_size", sizes, 1)
    return AdaptiveAvgPool2d.apply(input, out)


# ---------------------------------------------------------------- gradient specs
_LEADING = [(1,), (2,), (1, 1), (1, 2), (2, 1)]  # (C,) unbatched or (N, C): at most 40 elements
def _sample_pool(d: Draw, distinct: bool = False) -> tuple[Any, ...]:
    """Kernel 1-3, stride 1-3 (or None), padding up to kernel/2, on inputs big enough for one window."""
    kernel = (d.integers(1, 3), d.integers(1, 3))
    stride = d.choice([None, (d.integers(1, 3), d.integers(1, 3))])
    padding = (d.integers(0, kernel[0] // 2), d.integers(0, kernel[1] // 2))
    h = d.integers(max(1, kernel[0] - 2 * padding[0]), 5)
    w = d.integers(max(1, kernel[1] - 2 * padding[1]), 4)
    x = d.tensor(d.choice(_LEADING) + (h, w), distinct=distinct)
    return x, kernel, stride, padding


def _sample_adaptive(d: Draw) -> tuple[Any, ...]:
    h, w = d.integers(1, 5), d.integers(1, 4)
    x = d.tensor(d.choice(_LEADING) + (h, w))
    return x, (d.integers(1, h + 1), d.choice([None, d.integers(1, w + 1)]))


register_spec(MaxPool2d, sample=lambda d: _sample_pool(d, distinct=True), call=max_pool2d, note="no ties: distinct values")
register_spec(AvgPool2d, sample=_sample_pool, call=avg_pool2d)
register_spec(AdaptiveAvgPool2d, sample=_sample_adaptive, call=adaptive_avg_pool2d)
