"""2-D convolution (torch.nn.functional.conv2d) by im2col over strided views and one GEMM per group.

Notation: input x (N, C, H, W), weight w (K, C/G, kh, kw) in G groups, stride s, dilation d, padding
p (top, bottom, left, right), xp = x zero-padded, output y (N, K, OH, OW) with
OH = floor((H + p_top + p_bottom - d·(kh - 1) - 1) / s) + 1 (likewise OW). For k in group g:

    y[n, k, oh, ow] = b[k] + Σ_{c ∈ g, i, j} w[k, c, i, j] · xp[n, c, oh·s + i·d, ow·s + j·d]

With one group's column matrix X[(c, i, j), (n, oh, ow)] = xp[n, c, oh·s + i·d, ow·s + j·d] and
W[k, (c, i, j)] = w[k, c, i, j], that is one GEMM, and so are the gradients:

    forward   Y  = W X
    weight    dW = dY Xᵀ
    input     dX = col2im(Wᵀ dY): each column of Wᵀ dY added back at the pixels its window read
    bias      db = Σ_{n, oh, ow} dY
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import backend
from ..core import Function, Tensor
from ..core.validate import integer, pair
from ..specs import Draw, register_spec
from . import _conv_plan as fused
from . import _gpu
from ._windows import add_windows, output_size, sliding_windows

__all__ = ["conv2d"]


class Conv2d(Function):
    """y = conv2d(x, w, b) by the GEMMs of the module docstring, on the whole batch at once:

    forward   X = im2col(x),  Y = W X + b  (W = w.reshape(G, K/G, C/G·kh·kw); Y reordered to NCHW)
    backward  db = Σ dY,  dW = dY Xᵀ,  dX = col2im(Wᵀ dY)
    Only what backward needs is kept: X for dW, W for dX. While ``backend.fused_enabled()`` (the
    default), ops/_conv_plan.py runs the same steps in batch chunks on worker threads, and on a GPU
    ops/_gpu.py runs each step as one kernel or GEMM."""

    plan: fused.ConvPlan | None = None  # set when forward took the fused CPU path
    gpu: tuple[int, ...] | None = None  # set when forward took the GPU path

    def forward(self, x: Any, weight: Any, bias: Any, stride: tuple[int, int], pads: tuple[int, int, int, int],
                dilation: tuple[int, int], groups: int) -> Any:
        if _gpu.takes(x):
            return _gpu.conv_forward(self, x, weight, bias, stride, pads, dilation, groups)
        if backend.fused_enabled() and backend.device_of(x) == "cpu":
            return fused.forward(self, x, weight, bias, stride, pads, dilation, groups)
        need_x, need_w = self.needs_input_grad[:2]
        self.unbatched = x.ndim == 3
        x = x[None] if self.unbatched else x
        self.x_shape, self.w_shape = x.shape, weight.shape
        self.unfold = Unfold.of(x.shape, weight.shape, stride, pads, dilation, groups)
        columns = self.unfold.im2col(self.xp, x)  # X (G, C/G·kh·kw, N·OH·OW)
        w_matrix = weight.reshape(groups, weight.shape[0] // groups, columns.shape[1])  # W (G, K/G, C/G·kh·kw)
        y = self.unfold.to_nchw(self.xp, w_matrix @ columns)  # Y = W X
        if bias is not None:
            y += bias.reshape(-1, 1, 1)
        self.save_for_backward(columns if need_w else None, w_matrix if need_x else None)
        return y[0] if self.unbatched else y

    def backward(self, grad_output: Any) -> tuple[Any, Any, Any]:
        if self.gpu is not None:
            return _gpu.conv_backward(self, grad_output)
        if self.plan is not None:
            return fused.backward(self, grad_output)
        need_x, need_w, need_b = self.needs_input_grad[:3]
        columns, w_matrix = self.saved
        grad_y = grad_output[None] if self.unbatched else grad_output
        dy = self.unfold.to_matrices(grad_y)  # dY (G, K/G, N·OH·OW)
        grad_b = grad_y.sum(axis=(0, 2, 3)) if need_b else None  # db = Σ dY
        grad_w = (dy @ columns.transpose(0, 2, 1)).reshape(self.w_shape) if need_w else None  # dW = dY Xᵀ
        grad_x = self.unfold.col2im(self.xp, w_matrix.transpose(0, 2, 1) @ dy, self.x_shape) if need_x else None
        if grad_x is not None and self.unbatched:
            grad_x = grad_x[0]
        return grad_x, grad_w, grad_b


class Unfold(NamedTuple):
    """Where conv2d's windows lie, and the moves between NCHW arrays and the matrices of its GEMMs."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]
    groups: int
    out: tuple[int, int]  # OH, OW

    @classmethod
    def of(cls, x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: tuple[int, int],
           pads: tuple[int, int, int, int], dilation: tuple[int, int], groups: int) -> Unfold:
        (h, w), (kh, kw) = x_shape[2:], w_shape[2:]
        out = (output_size(h, kh, stride[0], pads[0] + pads[1], dilation[0]),
               output_size(w, kw, stride[1], pads[2] + pads[3], dilation[1]))
        return cls((kh, kw), stride, pads, dilation, groups, out)

    def im2col(self, xp: Any, x: Any) -> Any:
        """X (G, C/G·kh·kw, N·OH·OW) with X[g, (c, i, j), (n, oh, ow)] = xp[n, g·C/G + c, oh·sh + i·dh, ow·sw + j·dw]."""
        (n, c), (top, bottom, left, right), (kh, kw), (oh, ow) = x.shape[:2], self.pads, self.kernel, self.out
        padded = xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        windows = sliding_windows(xp, padded, self.kernel, self.stride, self.dilation, self.out)  # (N, C, kh, kw, OH, OW)
        columns = xp.ascontiguousarray(windows.transpose(1, 2, 3, 0, 4, 5))  # (C, kh, kw, N, OH, OW)
        return columns.reshape(self.groups, c // self.groups * kh * kw, n * oh * ow)

    def col2im(self, xp: Any, d_columns: Any, x_shape: tuple[int, ...]) -> Any:
        """dX (N, C, H, W): each entry of d_columns added at the pixel its entry of X was read from (im2col's adjoint)."""
        (n, c, h, w), (top, bottom, left, right) = x_shape, self.pads
        grad = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=d_columns.dtype)
        values = d_columns.reshape(c, *self.kernel, n, *self.out).transpose(3, 0, 1, 2, 4, 5)  # (N, C, kh, kw, OH, OW)
        add_windows(xp, grad, values, self.stride, self.dilation)
        return xp.ascontiguousarray(grad[:, :, top:top + h, left:left + w])

    def to_nchw(self, xp: Any, y: Any) -> Any:
        """Y (G, K/G, N·OH·OW) as a new (N, K, OH, OW) array."""
        groups, per_group, columns = y.shape
        n = columns // (self.out[0] * self.out[1])
        return xp.ascontiguousarray(y.reshape(groups * per_group, n, *self.out).transpose(1, 0, 2, 3))

    def to_matrices(self, grad_y: Any) -> Any:
        """dY (N, K, OH, OW) as (G, K/G, N·OH·OW)."""
        n, k = grad_y.shape[:2]
        return grad_y.transpose(1, 0, 2, 3).reshape(self.groups, k // self.groups, n * self.out[0] * self.out[1])


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
    if 0 in weight.shape[2:]:
        raise ValueError(f"conv2d: the kernel must be at least 1x1, got {weight.shape[2]}x{weight.shape[3]} "
                         f"(weight shape {weight.shape})")
    groups = integer("conv2d", "groups", groups, 1)
    stride_hw, dilation_hw = pair("conv2d", "stride", stride, 1), pair("conv2d", "dilation", dilation, 1)
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
    pad_h, pad_w = pair("conv2d", "padding", padding, 0)
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
