"""conv2d's fused CPU path: the steps of Conv2d's plain forward and backward (ops/conv.py), run over
batch chunks on worker threads, with buffers reused from chunk to chunk (the GPU's: ops/_gpu.py).

Per chunk of images, with the chunk's column matrices X (rows ordered (i, j, c) here):

    forward   X = im2col(chunk) (into a reused buffer),  Y = W X + b
    backward  db += Σ dY,  dW += X dYᵀ (X kept from forward or recomputed),  dX = col2im(Wᵀ dY)

- ``ConvPlan``: the sizes, the batch chunks and their workers, and the choices below.
- ``forward(fn, ...)`` / ``backward(fn, grad_output)``: what Conv2d calls on the CPU when ``backend.fused_enabled()``.
- ``Col2im``: kh·kw strided adds into a zeroed padded buffer (any stride).
- ``WideCol2im``: stride 1, each add one contiguous 1-D run (dY spread on the padded grid).
- ``accumulating_forward`` / ``accumulating_backward``: stride 1 with many channels, by kh·kw GEMMs over shifted
  views of the padded grid (ops/_conv_shifted.py), without column matrices for Y and dX; or stride 1
  with a tall kernel, by kh GEMMs over a kernel-row matrix kh times smaller than X (ops/_conv_rows.py).

Choices (the tuning constants below; tests shrink them to reach every path):
- chunks: equal batch chunks whose column matrices take at most CHUNK_BYTES (one image at least),
  and at most an equal share of the batch per worker unless that share is under SPLIT_MIN_BYTES, as
  many for each of the workers (THREADS, or the BLAS's thread count);
- X is kept from forward for dW while all chunks' matrices fit SAVE_COLUMNS_BYTES, else recomputed;
- with PER_IMAGE_AREA output pixels or more, one GEMM per image writes Y in NCHW and reads dY in
  place; below, one GEMM per chunk and a reorder;
- stride-1 dX by the wide col2im while the padded image area is at most WIDE_MAX_WASTE x the
  output area, else by strided adds;
- on that grid, stride-1 ungrouped convs with SHIFTED_MIN_CHANNELS input and output channels or more
  take the shifted GEMMs where ops/_blas.py found NumPy's BLAS GEMM, in chunks of as many images as
  an im2col column matrix over the grid would hold in SHIFTED_CHUNK_BYTES; other stride-1 ungrouped
  convs with ROWS_MIN_KERNEL_ROWS kernel rows and kw·C of ROWS_MIN_DEPTH or more (ROWS_MIN_DEPTH_DX
  where the input needs a gradient) take the kernel-row GEMMs, in chunks whose kernel-row matrix
  takes at most CHUNK_BYTES;
- matrix rows get ``leading_dim`` columns: 16 more where rows would be a multiple of 1 KiB apart.
Why these choices, and what they measured: docs/benchmarks.md, "Notes: conv2d and max_pool2d",
"Notes: conv2d by shifted and kernel-row GEMMs" and "Notes: ReLU before MaxPool2d, chunk sizes, BLAS
threads across threads".
"""

from __future__ import annotations

from typing import Any

from . import _blas
from ._conv_rows import RowConv
from ._conv_shifted import ShiftedConv
from ._windows import add_windows, output_size, sliding_windows
from .workers import blas_threads, equal_chunks, run_in_workers

CHUNK_BYTES = 8 << 20  # column matrices of one batch chunk
SPLIT_MIN_BYTES = 512 << 10  # ... and no smaller to give each worker a chunk: a hand-off costs ~0.1 ms
SAVE_COLUMNS_BYTES = 32 << 20  # keep X for dW up to this size, else recompute it
WIDE_MAX_WASTE = 2.5  # stride-1 dX by the wide col2im while padded image area / output area is at most this
PER_IMAGE_AREA = 256  # from this many output pixels on, one GEMM per image writes NCHW directly
SHIFTED_MIN_CHANNELS = 16  # shifted GEMMs (ops/_conv_shifted.py) from this many input and output channels on
SHIFTED_CHUNK_BYTES = 4 << 20  # their batch chunks, in bytes of an im2col column matrix over the grid
ROWS_MIN_KERNEL_ROWS, ROWS_MIN_DEPTH = 5, 24  # kernel-row GEMMs (ops/_conv_rows.py) from kh and kw·C this large
ROWS_MIN_DEPTH_DX = 20  # ... and from this kw·C where the input needs a gradient (their dX beats col2im's)
THREADS: int | None = None  # worker threads over batch chunks; None: as many as the BLAS uses


def leading_dim(columns: int) -> int:
    """Row length for a matrix of `columns` columns: 16 more when rows would be a multiple of 1 KiB apart."""
    return columns + 16 if columns and columns % 256 == 0 else columns


def matmul_groups(xp: Any, a: Any, b: Any, out: Any) -> None:
    """out = a @ b for stacks of G matrices (G = 1: one plain GEMM)."""
    if a.shape[0] == 1:
        xp.matmul(a[0], b[0], out=out[0])
    else:
        xp.matmul(a, b, out=out)


def forward(fn: Any, x: Any, weight: Any, bias: Any, stride: tuple[int, int], pads: tuple[int, int, int, int],
            dilation: tuple[int, int], groups: int) -> Any:
    """Conv2d's forward in batch chunks; sets ``fn.plan`` and saves (x or None, W or None, kept X or None)."""
    xp = fn.xp
    fn.unbatched = x.ndim == 3
    if fn.unbatched:
        x = x[None]
    need_x, need_w = fn.needs_input_grad[0], fn.needs_input_grad[1]
    plan = fn.plan = ConvPlan(x.shape, weight.shape, stride, pads, dilation, groups, x.dtype, need_x)
    if plan.method != "columns":
        return accumulating_forward(fn, plan, x, weight, bias)
    w_matrix = xp.ascontiguousarray(
        weight.reshape(groups, plan.kg, plan.cg, plan.kh, plan.kw).transpose(0, 1, 3, 4, 2)
    ).reshape(groups, plan.kg, plan.rows)
    chunks = plan.chunks
    keep = need_w and plan.column_bytes <= SAVE_COLUMNS_BYTES
    kept = xp.empty((len(chunks), groups, plan.rows, plan.ld), dtype=x.dtype) if keep else None
    out = xp.empty((plan.n, plan.k, plan.oh, plan.ow), dtype=x.dtype)

    def work(indices: list[int]) -> None:
        scratch = None if keep else xp.empty((groups, plan.rows, plan.ld), dtype=x.dtype)
        pad_buffer = plan.pad_buffer(xp, x.dtype)
        y_buffer = None if plan.per_image else xp.empty((groups, plan.kg, plan.ld), dtype=x.dtype)
        for index in indices:
            start, stop = chunks[index]
            columns = plan.columns(xp, x, start, stop, kept[index] if kept is not None else scratch, pad_buffer)
            plan.output(xp, w_matrix, columns, bias, out[start:stop], y_buffer)

    run_in_workers(work, len(chunks), plan.workers)
    fn.save_for_backward(x if need_w and not keep else None, w_matrix if need_x else None, kept)
    return out[0] if fn.unbatched else out


def backward(fn: Any, grad_output: Any) -> tuple[Any, Any, Any]:
    """Conv2d's backward in the chunks of ``fn.plan``: (dX, dW, db), None where not needed."""
    xp, plan = fn.xp, fn.plan
    need_x, need_w, need_b = fn.needs_input_grad[:3]
    grad_y = grad_output[None] if fn.unbatched else grad_output
    if not (need_x or need_w):
        return None, None, grad_y.sum(axis=(0, 2, 3))
    if plan.method != "columns":
        return accumulating_backward(fn, plan, grad_y)
    if plan.per_image and not grad_y.flags.c_contiguous:
        grad_y = xp.ascontiguousarray(grad_y)  # per-image GEMMs read it in place
    x, w_matrix, kept = fn.saved
    dtype = grad_y.dtype
    chunks = plan.chunks
    grad_x: Any = xp.empty((plan.n, plan.c, plan.h, plan.w), dtype=dtype) if need_x else None

    def work(indices: list[int]) -> tuple[Any, Any]:
        g_buffer = None if plan.per_image else xp.empty((plan.groups, plan.kg, plan.ld), dtype=dtype)
        grad_w = xp.zeros((plan.groups, plan.rows, plan.kg), dtype=dtype) if need_w else None
        grad_b = xp.zeros(plan.k, dtype=dtype) if need_b else None
        if need_w:
            part = xp.empty((plan.batch if plan.per_image else 1, plan.groups, plan.rows, plan.kg), dtype=dtype)
            scratch = xp.empty((plan.groups, plan.rows, plan.ld), dtype=dtype) if kept is None else None
            pad_buffer = plan.pad_buffer(xp, dtype) if kept is None else None
        if need_x:
            col2im = (WideCol2im if plan.wide else Col2im)(xp, plan, dtype)
        for index in indices:
            start, stop = chunks[index]
            dy = plan.grad_matrices(xp, grad_y[start:stop], g_buffer)
            if grad_b is not None:
                grad_b += plan.bias_grad(dy)
            if grad_w is not None:
                if kept is not None:
                    columns = kept[index][:, :, : (stop - start) * plan.area]
                else:
                    columns = plan.columns(xp, x, start, stop, scratch, pad_buffer)
                grad_w += plan.weight_grad(xp, columns, dy, stop - start, part)
            if need_x:
                col2im(w_matrix, dy, grad_x[start:stop])
        return grad_w, grad_b

    return _finish(fn, plan, run_in_workers(work, len(chunks), plan.workers), grad_x, need_b)


def _finish(fn: Any, plan: ConvPlan, sums: list[tuple[Any, Any]], grad_x: Any, need_b: bool) -> tuple[Any, Any, Any]:
    """(dX, dW, db) from the workers' partial sums of dW (G, rows (i, j, c), K/G) and db, in worker order."""
    grad_w, grad_b = sums[0]
    for more_w, more_b in sums[1:]:
        if grad_w is not None:
            grad_w += more_w
        if grad_b is not None:
            grad_b += more_b
    if grad_w is not None:
        grad_w = fn.xp.ascontiguousarray(
            grad_w.reshape(plan.groups, plan.kh, plan.kw, plan.cg, plan.kg).transpose(0, 4, 3, 1, 2)
        ).reshape(plan.k, plan.cg, plan.kh, plan.kw)
    if grad_x is not None and fn.unbatched:
        grad_x = grad_x[0]
    return grad_x, grad_w, grad_b if need_b else None


ACCUMULATING = {"shifted": ShiftedConv, "rows": RowConv}  # plan.method: the class that runs its chunks


def accumulating_forward(fn: Any, plan: ConvPlan, x: Any, weight: Any, bias: Any) -> Any:
    """Conv2d's forward by GEMMs that accumulate in the BLAS: shifted (ops/_conv_shifted.py) or kernel rows
    (ops/_conv_rows.py); saves (x or None, the weight in their layout or None, None)."""
    xp, conv_class = fn.xp, ACCUMULATING[plan.method]
    need_x, need_w = fn.needs_input_grad[0], fn.needs_input_grad[1]
    w_arranged = conv_class.weights(xp, weight)
    out = xp.empty((plan.n, plan.k, plan.oh, plan.ow), dtype=x.dtype)

    def work(indices: list[int]) -> None:
        conv = conv_class(xp, plan, plan.gemm, x.dtype, backward=False)
        for index in indices:
            start, stop = plan.chunks[index]
            conv.forward(w_arranged, x[start:stop], bias, out[start:stop])

    run_in_workers(work, len(plan.chunks), plan.workers)
    fn.save_for_backward(x if need_w else None, w_arranged if need_x else None, None)
    return out[0] if fn.unbatched else out


def accumulating_backward(fn: Any, plan: ConvPlan, grad_y: Any) -> tuple[Any, Any, Any]:
    """Conv2d's backward by the GEMMs of ``accumulating_forward``: (dX, dW, db), None where not needed."""
    xp, conv_class = fn.xp, ACCUMULATING[plan.method]
    need_x, need_w, need_b = fn.needs_input_grad[:3]
    x, w_arranged, _ = fn.saved
    dtype = grad_y.dtype
    grad_x = xp.empty((plan.n, plan.c, plan.h, plan.w), dtype=dtype) if need_x else None

    def work(indices: list[int]) -> tuple[Any, Any]:
        conv = conv_class(xp, plan, plan.gemm, dtype, backward=True)
        grad_w = xp.zeros((1, plan.rows, plan.k), dtype=dtype) if need_w else None
        grad_b = xp.zeros(plan.k, dtype=dtype)
        for index in indices:
            start, stop = plan.chunks[index]
            grad_b += conv.backward(w_arranged, x[start:stop] if need_w else None, grad_y[start:stop],
                                    grad_w[0] if need_w else None, grad_x[start:stop] if need_x else None)
        return grad_w, grad_b

    return _finish(fn, plan, run_in_workers(work, len(plan.chunks), plan.workers), grad_x, need_b)


class ConvPlan:
    """Sizes of one convolution, its batch chunks and workers, and the moves between NCHW arrays and
    the chunks' column matrices X (G, kh·kw·C/G, b·OH·OW), rows ordered (i, j, c)."""

    def __init__(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: tuple[int, int],
                 pads: tuple[int, int, int, int], dilation: tuple[int, int], groups: int, dtype: Any,
                 need_x: bool) -> None:
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
        grid_fits = stride == (1, 1) and self.hp * self.wp <= WIDE_MAX_WASTE * self.area
        self.wide = need_x and grid_fits
        self.gemm = _blas.gemm(dtype) if stride == (1, 1) and groups == 1 else None
        self.method = "columns"  # or "shifted" / "rows": ACCUMULATING's GEMMs, by self.gemm
        if self.gemm is not None and grid_fits and min(self.c, self.k) >= SHIFTED_MIN_CHANNELS:
            self.method = "shifted"
        elif (self.gemm is not None and self.kh >= ROWS_MIN_KERNEL_ROWS
              and self.kw * self.c >= (ROWS_MIN_DEPTH_DX if need_x else ROWS_MIN_DEPTH)):
            self.method = "rows"
        itemsize, budget = dtype.itemsize, SHIFTED_CHUNK_BYTES if self.method == "shifted" else CHUNK_BYTES
        if self.method == "rows":  # chunks of the kernel-row matrix
            image_bytes = self.kw * self.c * self.hp * self.ow * itemsize
        else:  # of the column matrices, over the padded grid where the wide col2im or the shifted GEMMs use it
            columns = self.hp * self.wp if self.wide or self.method == "shifted" else self.area
            image_bytes = max(1, groups * self.rows * columns * itemsize)
        threads = max(1, THREADS if THREADS is not None else blas_threads())
        share = max(-(-self.n // threads), SPLIT_MIN_BYTES // image_bytes)  # every worker a chunk, not a tiny one
        self.chunks, self.workers = equal_chunks(self.n, min(budget // image_bytes, share), threads)
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
        """out (b, K, OH, OW) = W X + bias: per image, GEMMs that write NCHW; else one GEMM and a reorder."""
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


class Col2im:
    """dX = col2im(Wᵀ dY) for a chunk, by kh·kw strided adds into a zeroed padded buffer (any stride)."""

    def __init__(self, xp: Any, plan: ConvPlan, dtype: Any) -> None:
        self.xp, self.plan = xp, plan
        self.d_columns = xp.empty((plan.groups, plan.rows, plan.ld), dtype=dtype)
        self.pad_buffer = plan.pad_buffer(xp, dtype)

    def __call__(self, w_matrix: Any, dy: Any, grad_x: Any) -> None:
        xp, plan = self.xp, self.plan
        b = grad_x.shape[0]
        d_columns = plan.times_grad(xp, w_matrix.transpose(0, 2, 1), dy, b, self.d_columns)
        target = grad_x if self.pad_buffer is None else self.pad_buffer[:b]
        target.fill(0)
        for group in range(plan.groups):
            values = d_columns[group].reshape(plan.kh, plan.kw, plan.cg, b, plan.oh, plan.ow).transpose(3, 2, 0, 1, 4, 5)
            add_windows(xp, target[:, group * plan.cg:(group + 1) * plan.cg], values, plan.stride, plan.dilation)
        if self.pad_buffer is not None:
            xp.copyto(grad_x, plan.interior(target))


class WideCol2im:
    """dX = col2im(Wᵀ dY) for stride 1 with every add a contiguous 1-D run.

    dY is spread on the padded input's grid ("wide": zeros at the Hp·Wp - OH·OW pixels that are not
    outputs), so column (n, y, x) of Wᵀ dY lands at flat pixel n·Hp·Wp + y·Wp + x + i·d·Wp + j·d of
    its channel. Rows of Wᵀ dY are ordered (i, j, c) and as long as one channel's flat buffer, so for
    each kernel offset (i, j) the C/G rows of a group add to the buffer in one contiguous run. The
    zeros make the runs' overhang harmless; the price is a GEMM over Hp·Wp instead of OH·OW columns
    (OH·Wp with per-image GEMMs), hence WIDE_MAX_WASTE."""

    def __init__(self, xp: Any, plan: ConvPlan, dtype: Any) -> None:
        self.xp, self.plan = xp, plan
        self.image = plan.hp * plan.wp
        self.row = leading_dim(plan.batch * self.image)
        reach = (plan.kh - 1) * plan.dilation[0] * plan.wp + (plan.kw - 1) * plan.dilation[1]
        self.flat = xp.zeros(plan.c * self.row + reach, dtype=dtype)  # its tail past C rows only ever gets zeros
        self.grad_wide = xp.zeros((plan.groups, plan.kg, self.row), dtype=dtype)
        self.d_columns = xp.zeros((plan.groups, plan.rows, self.row), dtype=dtype)
        self.filled = plan.batch * self.image

    def __call__(self, w_matrix: Any, dy: Any, grad_x: Any) -> None:
        xp, plan = self.xp, self.plan
        b = grad_x.shape[0]
        used = b * self.image
        if used < self.filled:  # a shorter last chunk: clear what the previous chunk left there
            self.grad_wide[:, :, used:].fill(0)
            self.d_columns[:, :, used:].fill(0)
            self.filled = used
        grid = self.grad_wide[:, :, :used].reshape(plan.k, b, plan.hp, plan.wp)[:, :, : plan.oh, : plan.ow]
        xp.copyto(grid, plan.as_kbhw(dy, b))
        w_t = w_matrix.transpose(0, 2, 1)
        if plan.per_image:  # GEMMs over each image's first OH rows only: the rest of d_columns stays zero
            reach = plan.oh * plan.wp
            grads = self.grad_wide[:, :, :used].reshape(plan.groups, plan.kg, b, self.image)[..., :reach]
            d_cols = self.d_columns[:, :, :used].reshape(plan.groups, plan.rows, b, self.image)[..., :reach]
            xp.matmul(w_t, grads.transpose(2, 0, 1, 3), out=d_cols.transpose(2, 0, 1, 3))
        else:
            matmul_groups(xp, w_t, self.grad_wide, self.d_columns)
        span = plan.cg * self.row
        for group in range(plan.groups):
            rows = self.d_columns[group]
            for i in range(plan.kh):
                for j in range(plan.kw):
                    first = (i * plan.kw + j) * plan.cg
                    start = group * span + i * plan.dilation[0] * plan.wp + j * plan.dilation[1]
                    run, values = self.flat[start:start + span], rows[first:first + plan.cg].reshape(-1)
                    if first == 0:  # offset (0, 0) covers the group's whole span: it sets instead of adding
                        xp.copyto(run, values)
                    else:
                        xp.add(run, values, out=run)
        images = self.flat[: plan.c * self.row].reshape(plan.c, self.row)[:, :used].reshape(plan.c, b, plan.hp, plan.wp)
        xp.copyto(grad_x, plan.interior(images).transpose(1, 0, 2, 3))
