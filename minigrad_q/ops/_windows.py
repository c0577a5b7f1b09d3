"""Sliding windows over the last two dims of an NCHW array, as strided views (no copies).

Shared by the ops that look at k×k windows (conv.py; pools may use it too). Three helpers:

- ``output_size(size, kernel, stride, padding, dilation)``: torch's
  ``floor((size + padding - dilation·(kernel - 1) - 1) / stride) + 1``, ``padding`` the total of both sides.
- ``sliding_windows(xp, array, kernel, stride, dilation, out_hw)``: the view ``(N, C, kh, kw, OH, OW)`` with
  ``view[n, c, i, j, oh, ow] = array[n, c, oh·sh + i·dh, ow·sw + j·dw]``; works for any strides of ``array``.
- ``add_windows(xp, target, values, stride, dilation)``: the adjoint of ``sliding_windows``:
  ``target[n, c, oh·sh + i·dh, ow·sw + j·dw] += values[n, c, i, j, oh, ow]``, as kh·kw strided adds
  (overlapping windows accumulate; no ``add.at``). ``target`` is modified in place.

Pad first (into a buffer you own) when the op pads: the helpers never read outside ``array``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["output_size", "sliding_windows", "add_windows"]


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Number of window positions along one dim; ``padding`` is the total added on both sides."""
    return (size + padding - dilation * (kernel - 1) - 1) // stride + 1


def sliding_windows(xp: Any, array: Any, kernel: tuple[int, int], stride: tuple[int, int],
                    dilation: tuple[int, int], out_hw: tuple[int, int]) -> Any:
    """The read-only view (N, C, kh, kw, OH, OW) of every window of the 4-D ``array``."""
    s_n, s_c, s_h, s_w = array.strides
    shape = (array.shape[0], array.shape[1], kernel[0], kernel[1], out_hw[0], out_hw[1])
    strides = (s_n, s_c, dilation[0] * s_h, dilation[1] * s_w, stride[0] * s_h, stride[1] * s_w)
    return xp.lib.stride_tricks.as_strided(array, shape, strides)


def add_windows(xp: Any, target: Any, values: Any, stride: tuple[int, int], dilation: tuple[int, int]) -> None:
    """``target`` (N, C, H, W) += every window of ``values`` (N, C, kh, kw, OH, OW) at its place."""
    kh, kw, oh, ow = values.shape[2:]
    for i in range(kh):
        rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (oh - 1) + 1, stride[0])
        for j in range(kw):
            cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (ow - 1) + 1, stride[1])
            window = target[:, :, rows, cols]
            xp.add(window, values[:, :, i, j], out=window)
