"""conv2d's fused CPU path for stride-1 convs with few channels and a wide kernel (LeNet-5's second
conv: 6 channels, 5x5): kh GEMMs over a column matrix kh times smaller than im2col's. ops/_conv_plan.py
chooses it (``ConvPlan.method == "rows"``) and runs it over its batch chunks and workers.

A chunk of b images, zero-padded, is copied once into P (kw·C, Hp·b·OW), the kernel-row matrix:

    P[(j, c), (y, n, x)] = xp[n, c, y, x + j·dw]    for every padded row y and output column x

For kernel row i, im2col's rows (i, j, c) over the output pixels (oh, n, ow) are then P's columns
from i·dh·b·OW on: a contiguous block P_i, whose rows are P's, so each is a matrix for the BLAS.
With W_i = w[:, :, i, :] as (K, (j, c)), and Y and dY in the column order (oh, n, ow):

    forward   Y = Σ_i W_i P_i                      (K × OH·b·OW)
    weight    dW_i = P_i dYᵀ                        (rows (j, c) of dW's rows (i, j, c))
    input     dP, shifted by i·dh·b·OW, += W_iᵀ dY for each i;  then dX[n, c, y, x + j·dw] += dP[(j, c), (y, n, x)]

The sums over i accumulate in the BLAS (β = 1, ops/_blas.py). Y and dY are reordered from and to
NCHW once per chunk; P is copied in runs of OW numbers, as im2col's matrix is, but has kh·OH/Hp
times fewer of them.
"""

from __future__ import annotations

from typing import Any


class RowConv:
    """One worker's buffers for the chunks of one convolution (``plan``: a ConvPlan)."""

    def __init__(self, xp: Any, plan: Any, gemm: Any, dtype: Any, backward: bool) -> None:
        self.xp, self.plan, self.gemm = xp, plan, gemm
        self.item = xp.dtype(dtype).itemsize
        self.depth = plan.kw * plan.c  # rows of P
        self.pad_buffer = plan.pad_buffer(xp, dtype)
        self.stacked = xp.empty(self.depth * plan.hp * plan.batch * plan.ow, dtype=dtype)
        self.y = xp.empty(plan.k * plan.oh * plan.batch * plan.ow, dtype=dtype)  # Y or dY
        if backward:
            self.grad_stacked = xp.empty_like(self.stacked)
            self.grad_rows = xp.empty((plan.c, plan.hp, plan.batch, plan.wp), dtype=dtype)  # dX padded, P's order

    @staticmethod
    def weights(xp: Any, weight: Any) -> Any:
        """The W_i as (kh, K, kw·C), C-contiguous."""
        k, c, kh, kw = weight.shape
        return xp.ascontiguousarray(weight.transpose(2, 0, 3, 1)).reshape(kh, k, kw * c)

    def sizes(self, b: int) -> tuple[int, int, int]:
        """(P's row length, the columns of Y, the column offset between kernel rows) for b images."""
        plan = self.plan
        return plan.hp * b * plan.ow, plan.oh * b * plan.ow, plan.dilation[0] * b * plan.ow

    def stack(self, x_chunk: Any) -> Any:
        """P for the chunk (b, C, H, W), as (kw, C, Hp, b, OW)."""
        xp, plan = self.xp, self.plan
        b = x_chunk.shape[0]
        source = x_chunk
        if self.pad_buffer is not None:
            source = self.pad_buffer[:b]
            xp.copyto(plan.interior(source), x_chunk)
        s_n, s_c, s_h, s_w = source.strides
        view = xp.lib.stride_tricks.as_strided(source, (plan.kw, plan.c, plan.hp, b, plan.ow),
                                               (plan.dilation[1] * s_w, s_c, s_h, s_n, s_w))
        stacked = self.stacked[: self.depth * plan.hp * b * plan.ow].reshape(plan.kw, plan.c, plan.hp, b, plan.ow)
        xp.copyto(stacked, view)
        return stacked

    def forward(self, w_rows: Any, x_chunk: Any, bias: Any, out: Any) -> None:
        """out (b, K, OH, OW) = conv(x_chunk) + bias."""
        xp, plan, item = self.xp, self.plan, self.item
        b = x_chunk.shape[0]
        row, columns, shift = self.sizes(b)
        stacked_at, w_at, y_at = self.stack(x_chunk).ctypes.data, w_rows.ctypes.data, self.y.ctypes.data
        for i in range(plan.kh):
            self.gemm(plan.k, columns, self.depth, (w_at + i * plan.k * self.depth * item, False, self.depth),
                      (stacked_at + i * shift * item, False, row), (y_at, columns), 1.0 if i else 0.0)
        y = self.y[: plan.k * columns].reshape(plan.k, plan.oh, b, plan.ow).transpose(2, 0, 1, 3)
        if bias is None:
            xp.copyto(out, y)
        else:
            xp.add(y, bias.reshape(plan.k, 1, 1), out=out)

    def backward(self, w_rows: Any, x_chunk: Any, grad_chunk: Any, grad_w: Any, grad_x: Any) -> Any:
        """Adds the chunk's dW into grad_w ((kh·kw·C, K), rows (i, j, c), or None), writes dX into grad_x
        ((b, C, H, W), or None); returns db (K,)."""
        xp, plan, item = self.xp, self.plan, self.item
        b = grad_chunk.shape[0]
        row, columns, shift = self.sizes(b)
        grad = self.y[: plan.k * columns].reshape(plan.k, plan.oh, b, plan.ow)
        xp.copyto(grad, grad_chunk.transpose(1, 2, 0, 3))
        grad_at = grad.ctypes.data
        if grad_w is not None:
            stacked_at, w_at = self.stack(x_chunk).ctypes.data, grad_w.ctypes.data
            for i in range(plan.kh):
                self.gemm(self.depth, plan.k, columns, (stacked_at + i * shift * item, False, row),
                          (grad_at, True, columns), (w_at + i * self.depth * plan.k * item, plan.k), 1.0)
        if grad_x is not None:
            grad_stacked = self.grad_stacked[: self.depth * row]
            grad_stacked.fill(0)
            into, w_at = grad_stacked.ctypes.data, w_rows.ctypes.data
            for i in range(plan.kh):
                self.gemm(self.depth, columns, plan.k, (w_at + i * plan.k * self.depth * item, True, self.depth),
                          (grad_at, False, columns), (into + i * shift * item, row), 1.0)
            self.unstack(grad_stacked.reshape(plan.kw, plan.c, plan.hp, b, plan.ow), grad_x)
        return grad.sum(axis=(1, 2, 3))

    def unstack(self, grad_stacked: Any, grad_x: Any) -> None:
        """grad_x = P's adjoint applied to dP: kw shifted adds in P's own order (C, Hp, b, Wp), the first
        a copy, then the interior reordered to (b, C, H, W)."""
        xp, plan = self.xp, self.plan
        b = grad_x.shape[0]
        rows = self.grad_rows[:, :, :b]
        xp.copyto(rows[..., : plan.ow], grad_stacked[0])
        rows[..., plan.ow:].fill(0)
        for j in range(1, plan.kw):
            start = j * plan.dilation[1]
            window = rows[..., start:start + plan.ow]
            xp.add(window, grad_stacked[j], out=window)
        top, _, left, _ = plan.pads
        xp.copyto(grad_x, rows[:, top:top + plan.h, :, left:left + plan.w].transpose(2, 0, 1, 3))
