"""2-D convolution (torch.nn.functional.conv2d) by im2col over strided views and one GEMM per group.

Notation: input x (N, C, H, W), weight w (K, C/G, kh, kw) in G groups, stride s, dilation d, padding
p (top, bottom, left, right), xp = x zero-padded, output y (N, K, OH, OW) with
OH = floor((H + p_top + p_bottom - d·(kh - 1) - 1) / s) + 1 (likewise OW). For k in group g:

    y[n, k, oh, ow] = b[k] + Σ_{c ∈ g, i, j} w[k, c, i, j] · xp[n, c, oh·s + i·d, ow·s + j·d]

With one group's column matrix X[(i, j, c), (n, oh, ow)] = xp[n, c, oh·s + i·d, ow·s + j·d] and
W[k, (i, j, c)] = w[k, c, i, j], that is one GEMM, and so are the gradients:

    forward   Y  = W X
    weight    dW = dY Xᵀ
    input     dX = col2im(Wᵀ dY): each column of Wᵀ dY added back at the pixels its window read
    bias      db = Σ_{n, oh, ow} dY
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..specs import Draw, register_spec
from ._col2im import Col2im, WideCol2im, leading_dim, matmul_groups
from ._windows import output_size, pair, sliding_windows
from .workers import blas_threads, equal_chunks, run_in_workers

__all__ = ["conv2d"]

# Tuning (measured on a 2-core AVX-512 machine, see Conv2d's docstring); tests shrink them to reach every path.
CHUNK_BYTES = {"cpu": 1 << 21, "cuda": 1 << 28}  # column matrix of one batch chunk: about L2-sized on CPU
SAVE_COLUMNS_BYTES = {"cpu": 32 << 20, "cuda": 1 << 30}  # keep X for dW up to this size, else recompute it
WIDE_MAX_WASTE = 2.5  # stride-1 dX by the wide col2im while padded image area / output area is at most this
PER_IMAGE_AREA = 256  # from this many output pixels on, one GEMM per image writes NCHW directly
THREADS: int | None = None  # worker threads over batch chunks; None: as many as the BLAS uses


def _threads(device: str) -> int:
    if device != "cpu":
        return 1
    return max(1, THREADS if THREADS is not None else blas_threads())


class _Geometry:
    """Sizes of one convolution, its batch chunks, and the moves between NCHW arrays and column matrices."""

    def __init__(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: tuple[int, int],
                 pads: tuple[int, int, int, int], dilation: tuple[int, int], groups: int, itemsize: int,
                 chunk_bytes: int, need_x: bool, threads: int) -> None:
        self.n, self.c, self.h, self.w = x_shape
        self.k, self.cg, self.kh, self.kw = w_shape
        self.groups, self.kg = groups, self.k // groups
        self.stride, self.dilation, self.pads = stride, dilation, pads
        top, bottom, left, right = pads
        self.hp, self.wp = self.h + top + bottom, self.w + left + right
        self.oh = output_size(self.h, self.kh, stride[0], top + bottom, dilation[0])
        self.ow = output_size(self.w, self.kw, stride[1], left + right, dilation[1])
        self.area = self.oh * self.ow
        self.rows = self.kh * self.kw * self.cg  # rows of one group's column matrix
        self.wide = need_x and stride == (1, 1) and self.hp * self.wp <= WIDE_MAX_WASTE * self.area
        columns = self.hp * self.wp if self.wide else self.area  # the wide col2im's matrices are the largest
        image_bytes = max(1, groups * self.rows * columns * itemsize)
        self.chunks, self.workers = equal_chunks(self.n, chunk_bytes // image_bytes, threads)
        self.batch = max([stop - start for start, stop in self.chunks], default=1)  # images in the largest chunk
        self.ld = leading_dim(self.batch * self.area)
        self.column_bytes = len(self.chunks) * groups * self.rows * self.ld * itemsize
        self.per_image = self.area >= PER_IMAGE_AREA

    def pad_buffer(self, xp: Any, dtype: Any) -> Any:
        """Zeroed (batch, C, Hp, Wp) buffer whose interior each chunk overwrites; None without padding."""
        return xp.zeros((self.batch, self.c, self.hp, self.wp), dtype=dtype) if any(self.pads) else None

    def interior(self, padded: Any) -> Any:
        top, _, left, _ = self.pads
        return padded[:, :, top:top + self.h, left:left + self.w]

    def columns(self, xp: Any, x: Any, start: int, stop: int, buffer: Any, pad_buffer: Any) -> Any:
        """The chunk's column matrices X (G, kh·kw·C/G, b·OH·OW), written into ``buffer`` (G, rows, ld)."""
        source = x[start:stop]
        if pad_buffer is not None:
            source = pad_buffer[: stop - start]
            xp.copyto(self.interior(source), x[start:stop])
        b = stop - start
        windows = sliding_windows(xp, source, (self.kh, self.kw), self.stride, self.dilation, (self.oh, self.ow))
        windows = windows.reshape(b, self.groups, self.cg, self.kh, self.kw, self.oh, self.ow)
        columns = buffer[:, :, : b * self.area]
        target = columns.reshape(self.groups, self.kh, self.kw, self.cg, b, self.oh, self.ow)
        xp.copyto(target, windows.transpose(1, 3, 4, 2, 0, 5, 6))
        return columns

    def by_image(self, matrices: Any, b: int) -> Any:
        """(G, X, b·OH·OW) matrices as (b, G, X, OH·OW): one (X, OH·OW) matrix per image and group (a view)."""
        return matrices.reshape(matrices.shape[0], matrices.shape[1], b, self.area).transpose(2, 0, 1, 3)

    def output(self, xp: Any, w_matrix: Any, columns: Any, bias: Any, out: Any, y_buffer: Any) -> None:
        """out (b, K, OH, OW) = W X + bias. Per image, the GEMMs write NCHW directly; else one GEMM for the
        chunk and a reorder, which pays when images are small."""
        b = out.shape[0]
        if self.per_image:
            y = out.reshape(b, self.groups, self.kg, self.area)
            xp.matmul(w_matrix, self.by_image(columns, b), out=y)
            if bias is not None:
                y += bias.reshape(self.groups, self.kg, 1)
            return
        y = y_buffer[:, :, : columns.shape[2]]
        matmul_groups(xp, w_matrix, columns, y)
        y = y.reshape(self.k, b, self.oh, self.ow).transpose(1, 0, 2, 3)
        if bias is None:
            xp.copyto(out, y)
        else:
            xp.add(y, bias.reshape(self.k, 1, 1), out=out)

    def grad_matrices(self, xp: Any, grad_chunk: Any, buffer: Any) -> Any:
        """dY of a chunk for the GEMMs: per image the view (b, G, K/G, OH·OW) of the (C-contiguous)
        gradient, else gathered into ``buffer`` as (G, K/G, b·OH·OW)."""
        b = grad_chunk.shape[0]
        if self.per_image:
            return grad_chunk.reshape(b, self.groups, self.kg, self.area)
        matrices = buffer[:, :, : b * self.area]
        xp.copyto(matrices.reshape(self.k, b, self.oh, self.ow), grad_chunk.transpose(1, 0, 2, 3))
        return matrices

    def times_grad(self, xp: Any, a: Any, dy: Any, b: int, out_buffer: Any) -> Any:
        """a (G, X, K/G) @ dY: the chunk's (G, X, b·OH·OW) matrices, written into ``out_buffer``."""
        out = out_buffer[:, :, : b * self.area]
        if self.per_image:
            xp.matmul(a, dy, out=self.by_image(out, b))
        else:
            matmul_groups(xp, a, dy, out)
        return out

    def weight_grad(self, xp: Any, columns: Any, dy: Any, b: int, part: Any) -> Any:
        """X dYᵀ (G, rows, K/G) of one chunk (``part`` holds the per-image products)."""
        if self.per_image:
            xp.matmul(self.by_image(columns, b), dy.transpose(0, 1, 3, 2), out=part[:b])
            return part[0] if b == 1 else part[:b].sum(axis=0)
        matmul_groups(xp, columns, dy.transpose(0, 2, 1), part[0])
        return part[0]

    def bias_grad(self, dy: Any) -> Any:
        return (dy.sum(axis=(0, 3)) if self.per_image else dy.sum(axis=2)).reshape(self.k)

    def as_kbhw(self, dy: Any, b: int) -> Any:
        """dY of a chunk as (K, b, OH, OW) (a view)."""
        if self.per_image:
            return dy.reshape(b, self.k, self.oh, self.ow).transpose(1, 0, 2, 3)
        return dy.reshape(self.k, b, self.oh, self.ow)


class Conv2d(Function):
    """y = conv2d(x, w, b) as in the module docstring;  dW = dY Xᵀ,  dX = col2im(Wᵀ dY),  db = Σ dY.

    How it is computed (the choices were measured against torch on a 2-core AVX-512 machine):
    - The batch goes in equal chunks, as many for each worker, whose column matrix X is at most
      CHUNK_BYTES (one image at least): im2col copies a strided window view of the (padded) chunk
      into a reused buffer; the GEMMs then run on cache-resident data. Rows of X are ordered
      (i, j, c). With >= PER_IMAGE_AREA output pixels, one GEMM per image writes y in NCHW directly
      and reads dY in place; smaller images take one GEMM per chunk and a reorder (tiny per-image
      GEMMs cost more than the copy).
    - X is kept for dW when all chunks together fit SAVE_COLUMNS_BYTES, else recomputed chunk by
      chunk in backward: an in-cache copy beats writing and re-reading 75 MB through DRAM (measured
      59 vs 67 ms for N=64 C=K=32 32x32). Only what backward needs is kept: X or the input for dW,
      the weight matrix for dX, nothing for a bias-only backward.
    - dW = X dYᵀ, (kh·kw·C/G) x (K/G): 1.5x faster in OpenBLAS than dY Xᵀ. Matrices get a row length
      off multiples of 1 KiB (leading_dim): aliasing rows made the GEMMs 1.4x slower.
    - dX = col2im(Wᵀ dY). Stride 1: WideCol2im, whose kh·kw adds are contiguous runs (numpy's
      strided adds cost 4x more per element), at the price of a GEMM over the padded grid (up to
      WIDE_MAX_WASTE). Other strides: kh·kw strided adds (Col2im). dX as a transposed convolution
      (im2col of the padded dY, then a GEMM) measured equal for C = K = 32 and 1.4-1.6x slower for
      the small-C layers (its column matrix is K/C times larger), so it is not used. No dX at all
      when the input needs no gradient (a network's first layer).
    - BLAS runs single-threaded inside conv2d. With T BLAS threads (or THREADS) and two or more chunks,
      T workers split the chunks (run_in_workers), so the copies run in parallel too: N=64 C=K=32
      32x32 takes 31 ms on 2 cores against 42 ms with OpenBLAS's threads, and a LeNet-5 step (batch
      128) 9 ms against 12.5 ms on one worker, in steady state (steps back to back).
    The Python loops run over batch chunks and kernel offsets, never over pixels.
    """

    def forward(self, x: Any, weight: Any, bias: Any, stride: tuple[int, int], pads: tuple[int, int, int, int],
                dilation: tuple[int, int], groups: int) -> Any:
        xp = self.xp
        self.unbatched = x.ndim == 3
        if self.unbatched:
            x = x[None]
        device = "cpu" if backend.device_of(x) == "cpu" else "cuda"
        geo = self.geometry = _Geometry(x.shape, weight.shape, stride, pads, dilation, groups, x.itemsize,
                                        CHUNK_BYTES[device], self.needs_input_grad[0], _threads(device))
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        w_matrix = xp.ascontiguousarray(
            weight.reshape(groups, geo.kg, geo.cg, geo.kh, geo.kw).transpose(0, 1, 3, 4, 2)
        ).reshape(groups, geo.kg, geo.rows)
        chunks = geo.chunks
        keep = need_w and geo.column_bytes <= SAVE_COLUMNS_BYTES[device]
        kept = xp.empty((len(chunks), groups, geo.rows, geo.ld), dtype=x.dtype) if keep else None
        out = xp.empty((geo.n, geo.k, geo.oh, geo.ow), dtype=x.dtype)

        def work(indices: list[int]) -> None:
            scratch = None if keep else xp.empty((groups, geo.rows, geo.ld), dtype=x.dtype)
            pad_buffer = geo.pad_buffer(xp, x.dtype)
            y_buffer = None if geo.per_image else xp.empty((groups, geo.kg, geo.ld), dtype=x.dtype)
            for index in indices:
                start, stop = chunks[index]
                columns = geo.columns(xp, x, start, stop, kept[index] if kept is not None else scratch, pad_buffer)
                geo.output(xp, w_matrix, columns, bias, out[start:stop], y_buffer)

        run_in_workers(work, len(chunks), geo.workers)
        self.save_for_backward(x if need_w and not keep else None, w_matrix if need_x else None, kept)
        return out[0] if self.unbatched else out

    def backward(self, grad_output: Any) -> tuple[Any, Any, Any]:
        xp, geo = self.xp, self.geometry
        need_x, need_w, need_b = self.needs_input_grad[:3]
        grad_y = grad_output[None] if self.unbatched else grad_output
        if not (need_x or need_w):
            return None, None, grad_y.sum(axis=(0, 2, 3))
        if geo.per_image and not grad_y.flags.c_contiguous:
            grad_y = xp.ascontiguousarray(grad_y)  # per-image GEMMs read it in place
        x, w_matrix, kept = self.saved
        dtype = grad_y.dtype
        chunks = geo.chunks
        grad_x: Any = xp.empty((geo.n, geo.c, geo.h, geo.w), dtype=dtype) if need_x else None

        def work(indices: list[int]) -> tuple[Any, Any]:
            g_buffer = None if geo.per_image else xp.empty((geo.groups, geo.kg, geo.ld), dtype=dtype)
            grad_w = xp.zeros((geo.groups, geo.rows, geo.kg), dtype=dtype) if need_w else None
            grad_b = xp.zeros(geo.k, dtype=dtype) if need_b else None
            if need_w:
                part = xp.empty((geo.batch if geo.per_image else 1, geo.groups, geo.rows, geo.kg), dtype=dtype)
                scratch = xp.empty((geo.groups, geo.rows, geo.ld), dtype=dtype) if kept is None else None
                pad_buffer = geo.pad_buffer(xp, dtype) if kept is None else None
            if need_x:
                col2im = (WideCol2im if geo.wide else Col2im)(xp, geo, dtype)
            for index in indices:
                start, stop = chunks[index]
                dy = geo.grad_matrices(xp, grad_y[start:stop], g_buffer)
                if grad_b is not None:
                    grad_b += geo.bias_grad(dy)
                if grad_w is not None:
                    if kept is not None:
                        columns = kept[index][:, :, : (stop - start) * geo.area]
                    else:
                        columns = geo.columns(xp, x, start, stop, scratch, pad_buffer)
                    grad_w += geo.weight_grad(xp, columns, dy, stop - start, part)
                if need_x:
                    col2im(w_matrix, dy, grad_x[start:stop])
            return grad_w, grad_b

        sums = run_in_workers(work, len(chunks), geo.workers)
        grad_w, grad_b = sums[0]
        for more_w, more_b in sums[1:]:
            if grad_w is not None:
                grad_w += more_w
            if grad_b is not None:
                grad_b += more_b
        if grad_w is not None:
            grad_w = xp.ascontiguousarray(
                grad_w.reshape(geo.groups, geo.kh, geo.kw, geo.cg, geo.kg).transpose(0, 4, 3, 1, 2)
            ).reshape(geo.k, geo.cg, geo.kh, geo.kw)
        if grad_x is not None and self.unbatched:
            grad_x = grad_x[0]
        return grad_x, grad_w, grad_b


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """torch.nn.functional.conv2d: NCHW (or unbatched CHW) input, (out, in/groups, kh, kw) weight.

    stride, dilation: an int or a pair (>= 1). padding: an int or a pair (zeros added on both sides),
    "valid" (none) or "same" (output as large as the input; stride 1 only; an odd total puts the extra
    row/column at the bottom/right, as torch does)."""
    stride_hw, dilation_hw, groups = _check_arguments(input, weight, bias, stride, dilation, groups)
    kernel = weight.shape[2:]
    pads = _pads(padding, kernel, stride_hw, dilation_hw)
    height, width = input.shape[-2:]
    out_h = output_size(height, kernel[0], stride_hw[0], pads[0] + pads[1], dilation_hw[0])
    out_w = output_size(width, kernel[1], stride_hw[1], pads[2] + pads[3], dilation_hw[1])
    if out_h <= 0 or out_w <= 0:
        span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation_hw))
        dilated = f" (dilated {span[0]}x{span[1]})" if dilation_hw != (1, 1) else ""
        raise ValueError(
            f"conv2d: kernel {kernel[0]}x{kernel[1]}{dilated} is larger than the padded input "
            f"{height + pads[0] + pads[1]}x{width + pads[2] + pads[3]} (input shape {input.shape}, padding {padding!r})"
        )
    return Conv2d.apply(input, weight, bias, stride_hw, pads, dilation_hw, groups)


def _check_arguments(input: Any, weight: Any, bias: Any, stride: Any, dilation: Any,
                     groups: Any) -> tuple[tuple[int, int], tuple[int, int], int]:
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor) or not (bias is None or isinstance(bias, Tensor)):
        raise TypeError(
            f"conv2d: expected Tensors for input, weight and bias (or None), got {type(input).__name__}, "
            f"{type(weight).__name__} and {type(bias).__name__}"
        )
    if input.ndim not in (3, 4):
        raise ValueError(f"conv2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {input.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D weight (out_channels, in_channels/groups, kH, kW), got shape {weight.shape}")
    tensors = [("input", input), ("weight", weight)] + ([("bias", bias)] if bias is not None else [])
    for name, tensor in tensors[1:]:
        if tensor.device != input.device:
            raise RuntimeError(f"conv2d: input is on {input.device} but {name} is on {tensor.device}; move them with .to(device)")
        if tensor.dtype != input.dtype:
            raise RuntimeError(f"conv2d: input is {input.dtype} but {name} is {tensor.dtype}; convert one with .to(dtype)")
    if not backend.is_floating(input.dtype):
        raise TypeError(f"conv2d: expected floating-point tensors, got {input.dtype}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    stride_hw, dilation_hw = pair("conv2d", "stride", stride), pair("conv2d", "dilation", dilation)
    if min(stride_hw) < 1:
        raise ValueError(f"conv2d: stride must be >= 1, got {stride!r}")
    if min(dilation_hw) < 1:
        raise ValueError(f"conv2d: dilation must be >= 1, got {dilation!r}")
    out_channels, group_channels = weight.shape[:2]
    channels = input.shape[-3]
    if channels != group_channels * groups:
        raise ValueError(
            f"conv2d: input has {channels} channels but weight expects {group_channels}*groups={group_channels * groups} "
            f"(input shape {input.shape}, weight shape {weight.shape}, groups={groups})"
        )
    if out_channels % groups:
        raise ValueError(
            f"conv2d: groups={groups} does not divide the weight's {out_channels} output channels (weight shape {weight.shape})"
        )
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"conv2d: expected a bias of shape ({out_channels},) for weight {weight.shape}, got {bias.shape}")
    return stride_hw, dilation_hw, groups


def _pads(padding: Any, kernel: tuple[int, ...], stride: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zeros for torch's padding argument."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"conv2d: padding='same' is not supported for strided convolutions (stride={stride})")
        total_h, total_w = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
    pad_h, pad_w = pair("conv2d", "padding", padding)
    if min(pad_h, pad_w) < 0:
        raise ValueError(f"conv2d: padding must be >= 0, got {padding!r}")
    return (pad_h, pad_h, pad_w, pad_w)


def _sample_conv2d(d: Draw) -> tuple[Any, ...]:
    """Tiny random convolutions: batch 1-3 (or unbatched), groups dividing the channels, kernel 1-5,
    stride 1-3, padding 0-2 / pairs / "same" / "valid", dilation 1-2, non-square inputs; <= 150 input elements."""
    budget = 150
    groups = d.choice([1, 1, 2, 3])
    kernel = (d.integers(1, 5), d.integers(1, 5))
    in_per_group = d.integers(1, 2) if kernel[0] * kernel[1] <= 12 else 1
    out_per_group = d.integers(1, 2)
    dilation = (d.integers(1, 2), d.integers(1, 2))
    stride: Any = d.choice([1, (d.integers(1, 3), d.integers(1, 3))])
    stride_hw = stride if isinstance(stride, tuple) else (stride, stride)
    padding: Any = d.choice(["valid", d.integers(0, 2), (d.integers(0, 2), d.integers(0, 2))]
                            + (["same"] if stride_hw == (1, 1) else []))
    pads = _pads(padding, kernel, stride_hw, dilation)
    height = max(1, dilation[0] * (kernel[0] - 1) + 1 - pads[0] - pads[1])  # the least that gives an output
    width = max(1, dilation[1] * (kernel[1] - 1) + 1 - pads[2] - pads[3])
    if groups * in_per_group * height * width > budget:
        groups, in_per_group = 1, 1
    channels = groups * in_per_group
    extra_h, extra_w = d.integers(0, 3), d.integers(0, 3)
    while channels * (height + extra_h) * (width + extra_w) > budget:
        extra_h, extra_w = max(0, extra_h - 1), max(0, extra_w - (extra_h == 0))
    height, width = height + extra_h, width + extra_w
    batch = d.integers(1, 3)
    while batch > 1 and batch * channels * height * width > budget:
        batch -= 1
    shape = (batch, channels, height, width) if batch > 1 or d.boolean() else (channels, height, width)
    x = d.tensor(shape)
    weight = d.tensor((groups * out_per_group, in_per_group) + kernel)
    bias = d.tensor((groups * out_per_group,)) if d.boolean() else None
    return x, weight, bias, stride, padding, dilation, groups


register_spec(Conv2d, sample=_sample_conv2d, call=conv2d)
