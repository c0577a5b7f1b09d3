"""The softmax family: logsumexp, softmax, log_softmax.

Each subtracts the maximum m along the reduced dims before exponentiating (exp(x - m) <= 1), so large
inputs neither overflow nor lose the answer; rows of -inf keep m = 0 and stay -inf. ``dim`` follows
torch as in reduce.py: logsumexp takes an int or a tuple, softmax and log_softmax a single int.
"""

from __future__ import annotations

from typing import Any

from ..core import Function, Tensor
from ..specs import register_spec
from . import _dims

__all__ = ["logsumexp", "softmax", "log_softmax"]


class LogSumExp(Function):
    """y = log Σ exp(x) = m + log Σ exp(x - m), m = max x (stable);  ∂y/∂x = exp(x - y), the softmax.

    Over an empty dim y = log 0 = -inf (torch)."""

    def forward(self, x: Any, axes: tuple[int, ...], keepdim: bool) -> Any:
        xp = self.xp
        self.input_shape = x.shape
        out_shape = _dims.out_shape(x.shape, axes, keepdim)
        x, self.axes = _dims.lift(x, axes)
        shift = _dims.shift(xp, x, self.axes)
        exps = x - shift
        xp.exp(exps, out=exps)
        with _dims.quiet(xp):
            out = xp.log(exps.sum(axis=self.axes, keepdims=True))
        out += shift
        if self.needs_input_grad[0]:
            self.save_for_backward(x, out)
        return out.reshape(out_shape)

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        x, y = self.saved
        grad = x - y
        xp.exp(grad, out=grad)
        xp.multiply(grad, grad_output.reshape(y.shape), out=grad)
        return _dims.unlift(grad, self.input_shape)


def _shifted(fn: Any, x: Any, axes: tuple[int, ...]) -> Any:
    """x - max x over `axes` (the stable start of softmax and log_softmax); records the
    input shape and the (lifted) axes on `fn` for its backward."""
    fn.input_shape = x.shape
    x, fn.axes = _dims.lift(x, axes)
    return x - _dims.shift(fn.xp, x, fn.axes)


class Softmax(Function):
    """y = exp(x - m) / Σ exp(x - m) along dim, m = max x (stable);  dx = y ⊙ (grad_output - Σ grad_output ⊙ y)."""

    input_shape: tuple[int, ...]
    axes: tuple[int, ...]

    def forward(self, x: Any, axes: tuple[int, ...]) -> Any:
        xp = self.xp
        y = _shifted(self, x, axes)
        xp.exp(y, out=y)
        with _dims.quiet(xp):
            y /= y.sum(axis=self.axes, keepdims=True)
        self.save_for_backward(y)
        return y.reshape(self.input_shape)

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        (y,) = self.saved
        grad_output = grad_output.reshape(y.shape)
        grad = grad_output * y
        dot = grad.sum(axis=self.axes, keepdims=True)
        xp.subtract(grad_output, dot, out=grad)
        xp.multiply(grad, y, out=grad)
        return _dims.unlift(grad, self.input_shape)


class LogSoftmax(Function):
    """y = x - m - log Σ exp(x - m) along dim, m = max x (stable);  dx = grad_output - exp(y) Σ grad_output."""

    input_shape: tuple[int, ...]
    axes: tuple[int, ...]

    def forward(self, x: Any, axes: tuple[int, ...]) -> Any:
        xp = self.xp
        y = _shifted(self, x, axes)
        with _dims.quiet(xp):
            y -= xp.log(xp.exp(y).sum(axis=self.axes, keepdims=True))
        self.save_for_backward(y)
        return y.reshape(self.input_shape)

    def backward(self, grad_output: Any) -> Any:
        xp = self.xp
        (y,) = self.saved
        grad_output = grad_output.reshape(y.shape)
        grad = xp.exp(y)
        grad *= grad_output.sum(axis=self.axes, keepdims=True)
        xp.subtract(grad_output, grad, out=grad)
        return _dims.unlift(grad, self.input_shape)


# ---------------------------------------------------------------- public functions (torch names)
def logsumexp(input: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    """torch.logsumexp: log Σ exp(x) over `dim` (int or tuple), computed stably; -inf over an empty dim."""
    _dims.require_float("logsumexp", input)
    return LogSumExp.apply(input, _dims.axes("logsumexp", input, dim), keepdim)


def softmax(input: Tensor, dim: int) -> Tensor:
    """torch.softmax along `dim` (an int, required): exp(x) / Σ exp(x), computed stably."""
    _dims.require_float("softmax", input)
    return Softmax.apply(input, _dims.single_axis("softmax", input, dim))


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """torch.log_softmax along `dim` (an int, required): x - logsumexp(x, dim), computed stably."""
    _dims.require_float("log_softmax", input)
    return LogSoftmax.apply(input, _dims.single_axis("log_softmax", input, dim))


# ---------------------------------------------------------------- gradient specs
register_spec(LogSumExp, sample=_dims.sample_reduction, call=logsumexp)
register_spec(Softmax, sample=lambda d: _dims.sample_reduction(d, single=True)[:2], call=softmax)
register_spec(LogSoftmax, sample=lambda d: _dims.sample_reduction(d, single=True)[:2], call=log_softmax)
