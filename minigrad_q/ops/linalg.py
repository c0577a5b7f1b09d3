"""Matrix products: matmul, with torch.matmul's rules for 1-D operands and broadcast batch dims, and linear."""

from __future__ import annotations

import math
from typing import Any

from ..core import Function, Tensor, tensor
from ..specs import Draw, register_spec

__all__ = ["matmul", "linear"]


def _reshaped(array: Any, shape: tuple[int, ...]) -> Any:
    """`array` in `shape`; the array itself when it already has it (a fresh array, not a view, for the engine)."""
    return array if array.shape == shape else array.reshape(shape)


class MatMul(Function):
    """C = A @ B (torch.matmul);  dA = gC @ Bᵀ,  dB = Aᵀ @ gC.

    A 1-D A is a (1, k) row and a 1-D B a (k, 1) column, and those dims are removed from C; batch dims
    broadcast, and the engine sums each gradient over the batch dims its input was broadcast along.
    When B has no batch dims, A's batch dims are folded into its rows, so the forward and both
    gradients are single GEMMs and dB needs no sum over the batch."""

    def forward(self, a: Any, b: Any) -> Any:
        self.a_shape, self.b_shape = a.shape, b.shape
        self.fold = a.ndim > 2 and b.ndim <= 2
        need_a, need_b = self.needs_input_grad[:2]
        self.save_for_backward(a if need_b else None, b if need_a else None)
        if self.fold:
            rows = math.prod(a.shape[:-1])
            return (a.reshape(rows, a.shape[-1]) @ b).reshape(a.shape[:-1] + b.shape[1:])
        return self.xp.matmul(a, b)

    def backward(self, grad_output: Any) -> tuple[Any, Any]:
        xp = self.xp
        a, b = self.saved
        need_a, need_b = self.needs_input_grad[:2]
        a_shape, b_shape = self.a_shape, self.b_shape
        k = a_shape[-1]
        columns = b_shape[-1] if len(b_shape) >= 2 else 1
        grad_a = grad_b = None
        if self.fold:
            rows = math.prod(a_shape[:-1])
            g_rows = grad_output.reshape(rows, columns)
            if need_a:
                grad_a = xp.empty(a_shape, dtype=grad_output.dtype)
                xp.matmul(g_rows, _as_column(b).T, out=grad_a.reshape(rows, k))
            if need_b:
                grad_b = _reshaped(a.reshape(rows, k).T @ g_rows, b_shape)
            return grad_a, grad_b
        batch = grad_output.shape[: grad_output.ndim - (len(a_shape) >= 2) - (len(b_shape) >= 2)]
        rows = a_shape[-2] if len(a_shape) >= 2 else 1
        g_mat = grad_output.reshape(batch + (rows, columns))
        if need_a:
            grad_a = xp.matmul(g_mat, _as_column(b).swapaxes(-1, -2))
            if len(a_shape) == 1:
                grad_a = grad_a.reshape(batch + (k,))
        if need_b:
            grad_b = xp.matmul(_as_row(a).swapaxes(-1, -2), g_mat)
            if len(b_shape) == 1:
                grad_b = grad_b.reshape(batch + (k,))
        return grad_a, grad_b


def _as_row(a: Any) -> Any:
    """A as matmul sees it: a 1-D first operand is a (1, k) row."""
    return a if a.ndim >= 2 else a.reshape(1, -1)


def _as_column(b: Any) -> Any:
    """B as matmul sees it: a 1-D second operand is a (k, 1) column."""
    return b if b.ndim >= 2 else b.reshape(-1, 1)


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """torch.matmul: dot product (1-D, 1-D), matrix product (2-D, 2-D), or batched matrix product.

    A 1-D first operand gets a dim prepended and a 1-D second operand one appended, removed again
    from the result; dims before the last two are batch dims and broadcast. Operands that are not
    Tensors (arrays, lists) are made into tensors on the other operand's device."""
    a, b = _operands(input, other)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(
            f"matmul: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape} "
            "(use * to multiply by a scalar)"
        )
    inner_a, inner_b = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise RuntimeError(
            f"matmul: cannot multiply shapes {a.shape} and {b.shape}: inner dimensions {inner_a} and {inner_b} differ"
        )
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    if any(x != y and x != 1 and y != 1 for x, y in zip(reversed(batch_a), reversed(batch_b))):
        raise RuntimeError(
            f"matmul: cannot multiply shapes {a.shape} and {b.shape}: batch dimensions {batch_a} and {batch_b} "
            "do not broadcast"
        )
    if a.dtype != b.dtype:
        raise RuntimeError(
            f"matmul: expected both operands to have the same dtype, got {a.dtype} and {b.dtype}; "
            "convert one with .to(dtype)"
        )
    return MatMul.apply(a, b)


def _operands(input: Any, other: Any) -> tuple[Tensor, Tensor]:
    if isinstance(input, Tensor) and isinstance(other, Tensor):
        return input, other
    if isinstance(input, Tensor):
        return input, tensor(other, device=input.device)
    if isinstance(other, Tensor):
        return tensor(input, device=other.device), other
    raise TypeError(f"matmul: expected Tensors, got {type(input).__name__} and {type(other).__name__}")


def _sample_matmul(d: Draw) -> tuple[Any, Any]:
    """Every rank combination: 1-D and 2-D operands, and batch dims that broadcast (zero sizes included)."""
    rows, inner, columns = d.integers(0, 3), d.integers(0, 3), d.integers(0, 3)
    batch = d.shape(min_dims=1, max_dims=2, min_side=1, max_side=2)
    a_shape = d.choice([(inner,), (rows, inner), batch + (rows, inner)])
    b_batch = d.broadcastable_shape(batch) if len(a_shape) > 2 else d.shape(min_dims=1, max_dims=2, max_side=2)
    b_shape = d.choice([(inner,), (inner, columns), b_batch + (inner, columns)])
    return d.tensor(a_shape), d.tensor(b_shape)


register_spec(MatMul, sample=_sample_matmul, call=matmul)


# ---------------------------------------------------------------- linear
class Linear(Function):
    """y = x Wᵀ + b over the last dim of x (torch.nn.functional.linear), x (..., in), W (out, in), b (out,).

    The leading dims of x are folded into the rows of one (rows, in) matrix X, so the forward and
    every gradient is one GEMM: with G = dL/dY as (rows, out), dX = G W, dW = Gᵀ X, db = Σ_rows G."""

    def forward(self, x: Any, weight: Any, bias: Any) -> Any:
        self.input_shape = x.shape
        rows = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        need_x, need_weight = self.needs_input_grad[:2]
        self.save_for_backward(rows if need_weight else None, weight if need_x else None)
        y = rows @ weight.T
        if bias is not None:
            y += bias
        return y if x.ndim == 2 else y.reshape(x.shape[:-1] + weight.shape[:1])

    def backward(self, grad_output: Any) -> tuple[Any, Any, Any]:
        rows, weight = self.saved
        need_x, need_weight, need_bias = self.needs_input_grad[:3]
        g_rows = grad_output.reshape(-1, grad_output.shape[-1]) if grad_output.ndim != 2 else grad_output
        grad_x = None
        if need_x:  # written through a (rows, in) view of a fresh array: the engine can keep it without a copy
            grad_x = self.xp.empty(self.input_shape, dtype=g_rows.dtype)
            self.xp.matmul(g_rows, weight, out=grad_x.reshape(g_rows.shape[0], weight.shape[1]))
        grad_weight = g_rows.T @ rows if need_weight else None
        grad_bias = g_rows.sum(axis=0) if need_bias else None
        return grad_x, grad_weight, grad_bias


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """torch.nn.functional.linear: y = input @ weightᵀ + bias, input (..., in_features) (1-D included),
    weight (out_features, in_features), bias (out_features,) or None."""
    for name, value in (("input", input), ("weight", weight)):
        if not isinstance(value, Tensor):
            raise TypeError(f"linear: {name} must be a Tensor, got {type(value).__name__}")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"linear: bias must be a Tensor or None, got {type(bias).__name__}")
    if weight.ndim != 2 or input.ndim == 0:
        raise RuntimeError(
            f"linear: expected input (..., in_features) and a 2-D weight (out_features, in_features), "
            f"got shapes {input.shape} and {weight.shape}"
        )
    if input.shape[-1] != weight.shape[1]:
        raise RuntimeError(
            f"linear: input of shape {input.shape} has {input.shape[-1]} features, but weight of shape {weight.shape} "
            f"expects {weight.shape[1]} (in_features)"
        )
    if bias is not None and bias.shape != weight.shape[:1]:
        raise RuntimeError(
            f"linear: bias has shape {bias.shape}, expected ({weight.shape[0]},) for weight of shape {weight.shape}"
        )
    dtypes = {t.dtype for t in (input, weight, bias) if t is not None}
    if len(dtypes) > 1 or input.dtype.kind != "f":
        described = ", ".join(str(t.dtype) for t in (input, weight, bias) if t is not None)
        raise RuntimeError(f"linear: expected input, weight and bias of one floating dtype, got {described}")
    return Linear.apply(input, weight, bias)


def _sample_linear(d: Draw) -> tuple[Any, Any, Any]:
    """Leading dims 0-2 (zero sizes included), with and without bias."""
    in_features, out_features = d.integers(1, 4), d.integers(1, 4)
    input = d.tensor(d.shape(min_dims=0, max_dims=2, min_side=0, max_side=3) + (in_features,))
    bias = d.choice([None, d.tensor((out_features,))])
    return input, d.tensor((out_features, in_features)), bias


register_spec(Linear, sample=_sample_linear, call=linear)
