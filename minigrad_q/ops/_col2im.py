"""col2im for conv2d's input gradient: dX = col2im(Wᵀ dY), each column of Wᵀ dY added back at the
pixels its window read (see ops/conv.py for the notation and the _Geometry these classes read).

- ``Col2im``: kh·kw strided adds into a zeroed padded buffer, any stride.
- ``WideCol2im``: stride 1, every add one contiguous 1-D run (dY spread on the padded grid).
- ``leading_dim`` and ``matmul_groups``: the GEMM layout both use, shared with conv.py.
"""

from __future__ import annotations

from typing import Any

from ._windows import add_windows


def leading_dim(columns: int) -> int:
    """Row length for a matrix of `columns` columns: 16 more when rows would be a multiple of 1 KiB apart,
    which makes OpenBLAS's panels alias in the cache (a 1.4x slower GEMM)."""
    return columns + 16 if columns and columns % 256 == 0 else columns


def matmul_groups(xp: Any, a: Any, b: Any, out: Any) -> None:
    """out = a @ b for stacks of G matrices (G = 1: one plain GEMM)."""
    if a.shape[0] == 1:
        xp.matmul(a[0], b[0], out=out[0])
    else:
        xp.matmul(a, b, out=out)


class Col2im:
    """dX = col2im(Wᵀ dY) for a chunk, by kh·kw strided adds into a zeroed padded buffer (any stride)."""

    def __init__(self, xp: Any, geo: Any, dtype: Any) -> None:
        self.xp, self.geo = xp, geo
        self.d_columns = xp.empty((geo.groups, geo.rows, geo.ld), dtype=dtype)
        self.pad_buffer = geo.pad_buffer(xp, dtype)

    def __call__(self, w_matrix: Any, dy: Any, grad_x: Any) -> None:
        xp, geo = self.xp, self.geo
        b = grad_x.shape[0]
        d_columns = geo.times_grad(xp, w_matrix.transpose(0, 2, 1), dy, b, self.d_columns)
        target = grad_x if self.pad_buffer is None else self.pad_buffer[:b]
        target.fill(0)
        for group in range(geo.groups):
            values = d_columns[group].reshape(geo.kh, geo.kw, geo.cg, b, geo.oh, geo.ow).transpose(3, 2, 0, 1, 4, 5)
            add_windows(xp, target[:, group * geo.cg:(group + 1) * geo.cg], values, geo.stride, geo.dilation)
        if self.pad_buffer is not None:
            xp.copyto(grad_x, geo.interior(target))


class WideCol2im:
    """dX = col2im(Wᵀ dY) for stride 1 with every add a contiguous 1-D run.

    dY is spread on the padded input's grid ("wide": zeros at the Hp·Wp - OH·OW pixels that are not
    outputs), so column (n, y, x) of Wᵀ dY lands at flat pixel n·Hp·Wp + y·Wp + x + i·d·Wp + j·d of
    its channel. Rows of Wᵀ dY are ordered (i, j, c) and as long as one channel's flat buffer, so for
    each kernel offset (i, j) the C/G rows of a group add to the buffer in one contiguous run (numpy's
    strided adds are 4x slower per element). The zeros make the runs' overhang harmless; the price is a
    GEMM over Hp·Wp instead of OH·OW columns (OH·Wp with per-image GEMMs), hence WIDE_MAX_WASTE."""

    def __init__(self, xp: Any, geo: Any, dtype: Any) -> None:
        self.xp, self.geo = xp, geo
        self.image = geo.hp * geo.wp
        self.row = leading_dim(geo.batch * self.image)
        reach = (geo.kh - 1) * geo.dilation[0] * geo.wp + (geo.kw - 1) * geo.dilation[1]
        self.flat = xp.zeros(geo.c * self.row + reach, dtype=dtype)  # its tail past C rows only ever gets zeros
        self.grad_wide = xp.zeros((geo.groups, geo.kg, self.row), dtype=dtype)
        self.d_columns = xp.zeros((geo.groups, geo.rows, self.row), dtype=dtype)
        self.filled = geo.batch * self.image

    def __call__(self, w_matrix: Any, dy: Any, grad_x: Any) -> None:
        xp, geo = self.xp, self.geo
        b = grad_x.shape[0]
        used = b * self.image
        if used < self.filled:  # a shorter last chunk: clear what the previous chunk left there
            self.grad_wide[:, :, used:].fill(0)
            self.d_columns[:, :, used:].fill(0)
            self.filled = used
        grid = self.grad_wide[:, :, :used].reshape(geo.k, b, geo.hp, geo.wp)[:, :, : geo.oh, : geo.ow]
        xp.copyto(grid, geo.as_kbhw(dy, b))
        w_t = w_matrix.transpose(0, 2, 1)
        if geo.per_image:  # GEMMs over each image's first OH rows only: the rest of d_columns stays zero
            reach = geo.oh * geo.wp
            grads = self.grad_wide[:, :, :used].reshape(geo.groups, geo.kg, b, self.image)[..., :reach]
            d_cols = self.d_columns[:, :, :used].reshape(geo.groups, geo.rows, b, self.image)[..., :reach]
            xp.matmul(w_t, grads.transpose(2, 0, 1, 3), out=d_cols.transpose(2, 0, 1, 3))
        else:
            matmul_groups(xp, w_t, self.grad_wide, self.d_columns)
        span = geo.cg * self.row
        for group in range(geo.groups):
            rows = self.d_columns[group]
            for i in range(geo.kh):
                for j in range(geo.kw):
                    first = (i * geo.kw + j) * geo.cg
                    start = group * span + i * geo.dilation[0] * geo.wp + j * geo.dilation[1]
                    run, values = self.flat[start:start + span], rows[first:first + geo.cg].reshape(-1)
                    if first == 0:  # offset (0, 0) covers the group's whole span: it sets instead of adding
                        xp.copyto(run, values)
                    else:
                        xp.add(run, values, out=run)
        images = self.flat[: geo.c * self.row].reshape(geo.c, self.row)[:, :used].reshape(geo.c, b, geo.hp, geo.wp)
        xp.copyto(grad_x, geo.interior(images).transpose(1, 0, 2, 3))
