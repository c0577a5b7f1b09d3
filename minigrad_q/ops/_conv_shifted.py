"""conv2d's fused CPU path for stride 1 with many channels: kh·kw GEMMs over shifted views of the
padded input ("kn2row"), so that the forward and dX need no column matrix. ops/_conv_plan.py
chooses it (``ConvPlan.shifted``) and runs it over its batch chunks and workers.

A chunk of b images lies channel by channel on its zero-padded grid G (C, R): row c holds channel c
of the b padded images one after another, R = b·Hp·Wp. Output pixel (n, y, x) is column
q = n·Hp·Wp + y·Wp + x, and the pixel that kernel offset (i, j) reads for it is column
q + s_ij, s_ij = i·dh·Wp + j·dw. With W_ij = w[:, :, i, j] (K × C) and G_ij = G shifted left by
s_ij columns (still a matrix: its rows are R apart):

    forward   Y = Σ_ij W_ij G_ij                          (K × Q)
    input     dG, shifted by s_ij, += W_ijᵀ dY  for each (i, j)     (C × Q each)
    weight    dW_i = dY P_iᵀ  for each kernel row i, where P stacks the kw shifts G_0j (rows (j, c),
              copied as kw contiguous blocks: kh times fewer rows than im2col's column matrix)
              and P_i is P shifted by i·dh·Wp columns

over the Q = (b − 1)·Hp·Wp + (OH − 1)·Wp + OW columns up to the last output pixel, so that no
shifted view runs past its row. The other columns of Y (x ≥ OW or y ≥ OH) hold garbage that is
never read; dY is spread on the grid with zeros there, so they add nothing. The sums over (i, j)
accumulate in the BLAS (β = 1, ops/_blas.py).
"""

from __future__ import annotations

from typing import Any


class ShiftedConv:
    """One worker's grids and buffers for the chunks of one convolution (``plan``: a ConvPlan)."""

    def __init__(self, xp: Any, plan: Any, gemm: Any, dtype: Any, backward: bool) -> None:
        self.xp, self.plan, self.gemm = xp, plan, gemm
        self.item = xp.dtype(dtype).itemsize
        self.image = plan.hp * plan.wp
        self.row = plan.batch * self.image  # R
        self.grid = xp.zeros((plan.c, self.row), dtype=dtype)  # the padding stays zero
        self.shifts = [i * plan.dilation[0] * plan.wp + j * plan.dilation[1]
                       for i in range(plan.kh) for j in range(plan.kw)]
        if backward:
            self.grad = xp.zeros((plan.k, self.row), dtype=dtype)  # dY on the grid, zeros off the outputs
            self.grad_grid = xp.empty((plan.c, self.row), dtype=dtype)
            self.stacked = xp.empty((plan.kw, plan.c, self.row), dtype=dtype)
        else:
            self.y = xp.empty((plan.k, self.row), dtype=dtype)

    @staticmethod
    def weights(xp: Any, weight: Any) -> Any:
        """The W_ij as (kh·kw, K, C), C-contiguous."""
        k, c, kh, kw = weight.shape
        return xp.ascontiguousarray(weight.transpose(2, 3, 0, 1)).reshape(kh * kw, k, c)

    def columns(self, b: int) -> int:
        """Q for a chunk of b images."""
        plan = self.plan
        return (b - 1) * self.image + (plan.oh - 1) * plan.wp + plan.ow

    def on_grid(self, array: Any, b: int, rows: int) -> Any:
        """(rows, b, Hp, Wp) view of a grid-shaped buffer's first b images."""
        return array[:, : b * self.image].reshape(rows, b, self.plan.hp, self.plan.wp)

    def load(self, x_chunk: Any) -> None:
        """G's interior = the chunk (b, C, H, W)."""
        plan = self.plan
        self.xp.copyto(plan.interior(self.on_grid(self.grid, x_chunk.shape[0], plan.c).transpose(1, 0, 2, 3)),
                       x_chunk)

    def forward(self, w_shifted: Any, x_chunk: Any, bias: Any, out: Any) -> None:
        """out (b, K, OH, OW) = conv(x_chunk) + bias; w_shifted: the W_ij as (kh·kw, K, C), C-contiguous."""
        xp, plan, item = self.xp, self.plan, self.item
        b = x_chunk.shape[0]
        self.load(x_chunk)
        q, grid, w_at, y_at = self.columns(b), self.grid.ctypes.data, w_shifted.ctypes.data, self.y.ctypes.data
        for index, shift in enumerate(self.shifts):
            self.gemm(plan.k, q, plan.c, (w_at + index * plan.k * plan.c * item, False, plan.c),
                      (grid + shift * item, False, self.row), (y_at, self.row), 1.0 if index else 0.0)
        y = self.on_grid(self.y, b, plan.k)[:, :, : plan.oh, : plan.ow].transpose(1, 0, 2, 3)
        if bias is None:
            xp.copyto(out, y)
        else:
            xp.add(y, bias.reshape(plan.k, 1, 1), out=out)

    def backward(self, w_shifted: Any, x_chunk: Any, grad_chunk: Any, grad_w: Any, grad_x: Any) -> Any:
        """Adds the chunk's dW into grad_w ((kh·kw·C, K), or None), writes dX into grad_x ((b, C, H, W),
        or None); returns db (K,)."""
        xp, plan, item = self.xp, self.plan, self.item
        b = grad_chunk.shape[0]
        q = self.columns(b)
        xp.copyto(self.on_grid(self.grad, b, plan.k)[:, :, : plan.oh, : plan.ow], grad_chunk.transpose(1, 0, 2, 3))
        grad_at = self.grad.ctypes.data
        if grad_w is not None:
            self.load(x_chunk)
            row_shift = plan.dilation[0] * plan.wp
            span = q + (plan.kh - 1) * row_shift
            stride = self.grid.strides
            shifted = xp.lib.stride_tricks.as_strided(self.grid, (plan.kw, plan.c, span),
                                                      (plan.dilation[1] * item, stride[0], stride[1]))
            xp.copyto(self.stacked[:, :, :span], shifted)
            block = plan.kw * plan.c
            stacked_at, w_at = self.stacked.ctypes.data, grad_w.ctypes.data
            for i in range(plan.kh):
                self.gemm(block, plan.k, q, (stacked_at + i * row_shift * item, False, self.row),
                          (grad_at, True, self.row), (w_at + i * block * plan.k * item, plan.k), 1.0)
        if grad_x is not None:
            self.grad_grid[:, : b * self.image].fill(0)
            w_at, into = w_shifted.ctypes.data, self.grad_grid.ctypes.data
            for index, shift in enumerate(self.shifts):
                self.gemm(plan.c, q, plan.k, (w_at + index * plan.k * plan.c * item, True, plan.c),
                          (grad_at, False, self.row), (into + shift * item, self.row), 1.0)
            xp.copyto(grad_x, plan.interior(self.on_grid(self.grad_grid, b, plan.c).transpose(1, 0, 2, 3)))
        return self.grad[:, : b * self.image].sum(axis=1)
