"""Pooling over 2-D windows: max_pool2d, avg_pool2d, adaptive_avg_pool2d (NCHW, or unbatched CHW, as torch).

Windows are strided views. For a kernel offset (i, j), the view
``x[..., i·dh : i·dh + sh·(oh-1) + 1 : sh, j·dw : j·dw + sw·(ow-1) + 1 : sw]`` (dilation d) holds the
element at offset (i, j) of every window, so a pool is kh·kw vectorised steps over output-sized
arrays, never a loop over pixels. Backward writes each offset's share into the same views of the
input gradient: plain writes when windows do not overlap (stride >= d·(k-1) + 1), slice-adds when they do.
Max pooling keeps, per window, the kernel offset of its first maximum for the backward; its fused
path (ops/_pool_plan.py) runs on chunks of the leading axis on worker threads.
Windows bigger than 3x3 that tile the input (global average pooling, say) are averaged by two
GEMMs with averaging matrices instead, and spread back by one broadcast copy. Padding is -inf
for max (never chosen) and 0 for avg; torch's rule padding <= kernel/2 (dilation aside).

Output size per dim (torch's rule, p the padding on each side):
    floor((H + 2p - d·(k-1) - 1) / s) + 1, or with ceil_mode ceil(...) + 1, less one when that last
    window would start at or past H + p (it must start inside the input or its left padding).
In ceil mode the last window may run past the padded input; that part is read as padding too
(-inf, or 0 that avg_pool2d does not count: its divisor is the window's part inside the padded input).
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
    dilation: Pair = (1, 1)

    @property
    def offsets(self) -> list[Pair]:
        return [(i, j) for i in range(self.kernel[0]) for j in range(self.kernel[1])]

    @property
    def disjoint(self) -> bool:
        """No two windows share an element, so backward may write instead of add."""
        return all(s >= d * (k - 1) + 1 for s, k, d in zip(self.stride, self.kernel, self.dilation))

    def view(self, array: Any, i: int, j: int) -> Any:
        """The element at kernel offset (i, j) of every window, shaped (..., oh, ow)."""
        (sh, sw), (oh, ow), (dh, dw) = self.stride, self.out, self.dilation
        return array[..., i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]

    def tiles(self, shape: tuple[int, ...]) -> bool:
        """The windows cover every element of an array of `shape` exactly once."""
        return (self.dilation == (1, 1) and self.stride == self.kernel
                and shape[-2:] == (self.out[0] * self.kernel[0], self.out[1] * self.kernel[1]))

    def padded_size(self, shape: tuple[int, ...]) -> Pair:
        """(rows, columns) the windows read over an input of `shape`: the input and its padding on both
        sides, and in ceil mode the part of the last window that runs past them."""
        h, w = (max(size + 2 * pad, stride * (out - 1) + dilation * (kernel - 1) + 1)
                for size, pad, stride, out, dilation, kernel
                in zip(shape[-2:], self.padding, self.stride, self.out, self.dilation, self.kernel))
        return h, w

    def runs_past(self, shape: tuple[int, ...]) -> bool:
        """Some window (ceil mode) runs past the padded input of `shape`."""
        return self.padded_size(shape) != (shape[-2] + 2 * self.padding[0], shape[-1] + 2 * self.padding[1])


# ---------------------------------------------------------------- window arithmetic (shared by the pools)
def _padded(xp: Any, x: Any, windows: Windows, fill: float) -> Any:
    """x padded with `fill` to ``windows.padded_size``: padding on both sides, and past the right and bottom
    ones the part of ceil mode's last windows that runs past the padded input."""
    (ph, pw), (h, w) = windows.padding, x.shape[-2:]
    size = windows.padded_size(x.shape)
    if size == (h, w):
        return x
    source = xp.full(x.shape[:-2] + size, fill, dtype=x.dtype)
    source[..., ph : ph + h, pw : pw + w] = x
    return source


def _unpadded(xp: Any, grad: Any, padding: Pair, shape: tuple[int, ...]) -> Any:
    if grad.shape == shape:
        return grad
    (ph, pw), (h, w) = padding, shape[-2:]
    return xp.ascontiguousarray(grad[..., ph : ph + h, pw : pw + w])


def _divisor(xp: Any, windows: Windows, shape: tuple[int, ...], dtype: Any) -> Any:
    """avg_pool2d's divisor (count_include_pad=True, torch's rule) when some window runs past the padded
    input (ceil mode): the (oh, ow) counts of each window's elements inside the padded input. None when
    every window lies inside it: then the divisor is kh·kw."""
    if not windows.runs_past(shape):
        return None
    rows, columns = (xp.minimum(xp.arange(out) * stride + kernel, size + 2 * pad) - xp.arange(out) * stride
                     for out, stride, kernel, size, pad
                     in zip(windows.out, windows.stride, windows.kernel, shape[-2:], windows.padding))
    return (rows[:, None] * columns[None, :]).astype(dtype)


def _window_mean(xp: Any, source: Any, windows: Windows, divisor: Any = None) -> Any:
    """The mean of every window: the sum of the kh·kw offset views over kh·kw (or over `divisor`), or, for
    big windows that tile the input, averaging matrices (two GEMMs instead of many small strided adds)."""
    kernel = windows.kernel
    if divisor is None and windows.tiles(source.shape) and kernel[0] * kernel[1] > _FEW_OFFSETS:
        h, w = source.shape[-2:]
        rows = _averaging_matrix(xp, h, windows.out[0], source.dtype)
        columns = _averaging_matrix(xp, w, windows.out[1], source.dtype)
        return _matrix_mean(xp, source, rows, columns)
    (first, *rest) = [windows.view(source, i, j) for i, j in windows.offsets]
    out = first.copy()
    for view in rest:
        out += view
    if divisor is None:
        out *= 1 / len(windows.offsets)
    else:
        out /= divisor
    return out


def _spread_mean(xp: Any, grad_output: Any, windows: Windows, source_shape: tuple[int, ...], divisor: Any = None) -> Any:
    """Backward of `_window_mean`: each window element gets grad_output / (kh·kw) (or / divisor)."""
    (kh, kw), (oh, ow) = windows.kernel, windows.out
    share = grad_output * (1 / (kh * kw)) if divisor is None else grad_output / divisor
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
        indices   (return_indices) the flat position h·W + w of x_k* in its input plane, with
                  h = oh·sh - ph + i·dh, w = ow·sw - pw + j·dw; not differentiable

    While ``backend.fused_enabled()`` (the default), ops/_pool_plan.py runs the same steps in chunks
    on worker threads, one offset at a time, and on a GPU ops/_gpu.py runs each direction as one kernel
    (dilation 1, windows inside the padded input); return_indices takes these plain steps."""

    plan: Any = None  # (chunks, workers) when forward took the fused CPU path
    gpu: tuple[int, ...] | None = None  # set when forward took the GPU path

    def forward(self, x: Any, windows: Windows, return_indices: bool) -> Any:
        xp = self.xp
        self.windows, self.input_shape = windows, x.shape
        if _gpu.takes(x) and windows.dilation == (1, 1) and not windows.runs_past(x.shape) and not return_indices:
            return _gpu.max_pool_forward(self, x, windows)
        source = _padded(xp, x, windows, -float("inf"))
        self.source_shape = source.shape
        if backend.fused_enabled() and backend.device_of(x) == "cpu" and not return_indices:
            return fused.forward(self, source, windows)
        stacked = xp.stack([windows.view(source, i, j) for i, j in windows.offsets])  # x_k: (kh·kw, ..., OH, OW)
        argmax = stacked.argmax(axis=0) if self.needs_input_grad[0] or return_indices else None  # k*: the first max
        self.save_for_backward(argmax if self.needs_input_grad[0] else None)
        out = stacked.max(axis=0)
        if return_indices:
            return out, _flat_indices(xp, argmax, out, windows, x.shape)
        return out

    def backward(self, grad_output: Any, grad_indices: Any = None) -> Any:
        """grad_indices, the engine's zeros for the (integer) indices when they are returned, is unused."""
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


def _flat_indices(xp: Any, argmax: Any, out: Any, windows: Windows, shape: tuple[int, ...]) -> Any:
    """torch's indices: h·W + w of each window's first maximum k* = i·kw + j, at h = oh·sh - ph + i·dh,
    w = ow·sw - pw + j·dw. A window of -inf only (out = -inf) points, as torch's, at its first element
    inside the input (its first row and column at or past 0), even where k* lies in the padding."""
    kw, (sh, sw), (ph, pw), (dh, dw), (oh, ow) = (windows.kernel[1], windows.stride, windows.padding,
                                                  windows.dilation, windows.out)
    row_start, column_start = xp.arange(oh)[:, None] * sh - ph, xp.arange(ow) * sw - pw
    rows, columns = row_start + (argmax // kw) * dh, column_start + (argmax % kw) * dw
    first_row = row_start + dh * (-(xp.minimum(row_start, 0) // dh))  # start + dh·ceil(max(0, -start) / dh)
    first_column = column_start + dw * (-(xp.minimum(column_start, 0) // dw))
    only_minus_infinity = out == -float("inf")
    rows = xp.where(only_minus_infinity, first_row, rows)
    columns = xp.where(only_minus_infinity, first_column, columns)
    return (rows * shape[-1] + columns).astype(backend.int64)


# ---------------------------------------------------------------- avg_pool2d
class AvgPool2d(Function):
    """y = (1/(kh·kw)) Σ x over each window, zero padding counted (count_include_pad=True, torch's default);
    dx = Σ over the windows holding x of grad_output / (kh·kw).

    In ceil mode a window that runs past the padded input divides by its part inside the padded
    input instead of kh·kw (torch's rule), so the part past it counts neither in the sum nor in the divisor."""

    def forward(self, x: Any, windows: Windows) -> Any:
        xp = self.xp
        self.windows, self.input_shape = windows, x.shape
        source = _padded(xp, x, windows, 0.0)
        self.source_shape = source.shape
        self.divisor = _divisor(xp, windows, x.shape, x.dtype)
        return _window_mean(xp, source, windows, self.divisor)

    def backward(self, grad_output: Any) -> Any:
        grad = _spread_mean(self.xp, grad_output, self.windows, self.source_shape, self.divisor)
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


def _output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """torch's rule: floor((size + 2p - d·(k-1) - 1) / s) + 1, or with ceil_mode ceil(...) + 1, less one
    when that last window would start at or past size + p (past the input and its left padding)."""
    reach = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (reach + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _windows(op: str, input: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1,
             ceil_mode: bool = False) -> Windows:
    _check_input(op, input)
    kernel = pair(op, "kernel_size", kernel_size, 1)
    strides = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else pair(op, "stride", stride, 1)
    pads = pair(op, "padding", padding, 0)
    dilations = pair(op, "dilation", dilation, 1)
    if pads[0] > kernel[0] // 2 or pads[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {pads} must be at most half the kernel size {kernel} (torch's rule)")
    (h, w), ceil_mode = input.shape[-2:], bool(ceil_mode)
    out = (_output_size(h, kernel[0], strides[0], pads[0], dilations[0], ceil_mode),
           _output_size(w, kernel[1], strides[1], pads[1], dilations[1], ceil_mode))
    if min(out) < 1:
        dilated = f" dilation {dilations}" if dilations != (1, 1) else ""
        raise RuntimeError(
            f"{op}: kernel {kernel}{dilated} with padding {pads} does not fit the input of shape {input.shape} "
            f"(spatial size {(h, w)}): output size would be {out}"
        )
    return Windows(kernel, strides, pads, out, dilations)


# ---------------------------------------------------------------- public functions (torch names)
def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """torch.nn.functional.max_pool2d: the max of each window; stride defaults to kernel_size; padding
    (<= kernel/2) is -inf; dilation spaces a window's elements; ceil_mode keeps a last partial window
    (see the module docstring). With return_indices, (output, indices): the int64 flat position h·W + w
    in its input plane of each window's first maximum. Input (N, C, H, W) or (C, H, W)."""
    windows = _windows("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    return MaxPool2d.apply(input, windows, bool(return_indices))


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False) -> Tensor:
    """torch.nn.functional.avg_pool2d (count_include_pad=True): the mean of each window, zero padding
    included in the count; ceil_mode keeps a last partial window, whose part past the padded input
    is not counted. Input (N, C, H, W) or (C, H, W)."""
    return AvgPool2d.apply(input, _windows("avg_pool2d", input, kernel_size, stride, padding, ceil_mode=ceil_mode))


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
_LEADING = [(1,), (2,), (1, 1), (1, 2), (2, 1)]  # (C,) unbatched or (N, C): at most 60 elements
def _sample_pool(d: Draw, distinct: bool = False, dilated: bool = False) -> tuple[Any, ...]:
    """Kernel 1-3, stride 1-3 (or None), padding up to kernel/2, dilation 1-2 (max pool), ceil_mode, on inputs
    big enough for one window and at least as big as the dilation (then every window holds an input element)."""
    kernel = (d.integers(1, 3), d.integers(1, 3))
    stride = d.choice([None, (d.integers(1, 3), d.integers(1, 3))])
    padding = (d.integers(0, kernel[0] // 2), d.integers(0, kernel[1] // 2))
    dilation = (d.integers(1, 2), d.integers(1, 2)) if dilated else (1, 1)
    h, w = (d.integers(max(dil, dil * (k - 1) + 1 - 2 * pad), high)
            for k, pad, dil, high in zip(kernel, padding, dilation, (6, 5)))
    x = d.tensor(d.choice(_LEADING) + (h, w), distinct=distinct)
    ceil_mode = d.boolean()
    if dilated:
        return x, kernel, stride, padding, dilation, ceil_mode, d.boolean()
    return x, kernel, stride, padding, ceil_mode


def _sample_adaptive(d: Draw) -> tuple[Any, ...]:
    h, w = d.integers(1, 5), d.integers(1, 4)
    x = d.tensor(d.choice(_LEADING) + (h, w))
    return x, (d.integers(1, h + 1), d.choice([None, d.integers(1, w + 1)]))


register_spec(MaxPool2d, sample=lambda d: _sample_pool(d, distinct=True, dilated=True), call=max_pool2d,
              note="no ties: distinct values")
register_spec(AvgPool2d, sample=_sample_pool, call=avg_pool2d)
register_spec(AdaptiveAvgPool2d, sample=_sample_adaptive, call=adaptive_avg_pool2d)
