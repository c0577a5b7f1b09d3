"""Elementwise arithmetic (add, sub, mul, div, neg, pow) and comparisons (eq, ne, lt, le, gt, ge).

The rest of the elementwise family lives in `unary` (exp, log, sqrt, abs,
sign, sin, cos, tanh, sigmoid, relu, leaky_relu) and `selection` (maximum,
minimum, clamp, where).

Binary ops broadcast like NumPy/PyTorch; the engine sums each gradient back to
its input's shape, so a backward returns `grad_output * other` in the broadcast
shape. Either argument of a binary op may be a Python number (not both); a
number passes through `apply` as a plain value and gets no gradient.

Result dtype (PyTorch's promotion rules, used by every elementwise op):
- Tensor with Tensor: one dtype stays; across categories (bool < integer <
  floating) the higher category's dtype wins (int64 + float32 -> float32);
  within a category the wider dtype wins (float32 + float64 -> float64). A 0-d
  tensor counts only when its category is higher than that of every tensor
  with dimensions (float32 tensor + 0-d float64 tensor -> float32).
- Tensor with Python number: the number counts only when its category is
  higher: float32 tensor * 2.5 -> float32; int64 tensor * 2.5 -> the default
  dtype (mq.get_default_dtype()); int64 tensor + 1 -> int64; bool tensor + 1
  -> int64. NumPy scalars count as Python numbers.
- `div` is true division: integer and bool operands give the default dtype.
- Float-only math (exp, log, sqrt, sin, cos, tanh, sigmoid, leaky_relu) turns
  integer input into the default dtype.
- Comparisons compare values as they are and give bool tensors without grad.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..core import Function, Tensor, check_same_device
from ..specs import register_spec
from ._promotion import _error, _number, _operands, _promote, _reuse

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "eq", "ne", "lt", "le", "gt", "ge",
]

_ndarray = backend.ndarray


# ---------------------------------------------------------------- arithmetic
class Add(Function):
    """y = a + b;  dy/da = 1, dy/db = 1."""

    def forward(self, a: Any, b: Any) -> Any:
        if type(a) is not type(b) or a.dtype != b.dtype:
            a, b = _operands("add", a, b)
        try:
            return a + b
        except ValueError as error:
            raise _error("add", error, a, b) from None

    def backward(self, grad_output: Any) -> Any:
        return grad_output, grad_output


class Sub(Function):
    """y = a - b;  dy/da = 1, dy/db = -1."""

    def forward(self, a: Any, b: Any) -> Any:
        if type(a) is not type(b) or a.dtype != b.dtype:
            a, b = _operands("sub", a, b)
        try:
            return a - b
        except (ValueError, TypeError) as error:  # TypeError: NumPy refuses bool - bool, as PyTorch does
            raise _error("sub", error, a, b) from None

    def backward(self, grad_output: Any) -> Any:
        return grad_output, (-grad_output if self.needs_input_grad[1] else None)


class Mul(Function):
    """y = a·b;  dy/da = b, dy/db = a."""

    def forward(self, a: Any, b: Any) -> Any:
        if type(a) is not type(b) or a.dtype != b.dtype:
            a, b = _operands("mul", a, b)
        needs = self.needs_input_grad
        self.save_for_backward(a if needs[1] else None, b if needs[0] else None)
        try:
            return a * b
        except ValueError as error:
            raise _error("mul", error, a, b) from None

    def backward(self, grad_output: Any) -> Any:
        a, b = self.saved
        return (None if b is None else grad_output * b), (None if a is None else grad_output * a)


class Div(Function):
    """y = a / b (true division);  dy/da = 1/b, dy/db = -a/b² = -(1/b)·y."""

    def forward(self, a: Any, b: Any) -> Any:
        if type(a) is not type(b) or a.dtype != b.dtype or a.dtype.kind != "f":
            a, b = _operands("div", a, b, true_division=True)
        try:
            y = a / b
        except ValueError as error:
            raise _error("div", error, a, b) from None
        self.save_for_backward(b, y if self.needs_input_grad[1] else None)
        return y

    def backward(self, grad_output: Any) -> Any:
        b, y = self.saved
        ga = grad_output / b  # grad_output/b is also the first factor of gb
        gb = None
        if self.needs_input_grad[1]:
            gb = ga * y
            gb = self.xp.negative(gb, out=_reuse(gb))
        return (ga if self.needs_input_grad[0] else None), gb


class Neg(Function):
    """y = -x;  dy/dx = -1."""

    def forward(self, x: Any) -> Any:
        try:
            return -x
        except TypeError as error:  # NumPy refuses -bool, as PyTorch does
            raise _error("neg", error, x) from None

    def backward(self, grad_output: Any) -> Any:
        return -grad_output


def _sample_pair(d: Any, divisor: bool = False) -> tuple[Any, Any]:
    """Tensor with broadcastable tensor, tensor with number, or number with tensor."""
    shape = d.shape(min_side=0)
    nonzero = {"avoid": (0.0,), "margin": 0.5} if divisor else {}
    kind = d.integers(0, 2)
    if kind == 0:
        return d.tensor(shape), d.tensor(d.broadcastable_shape(shape), **nonzero)
    if kind == 1:
        return d.tensor(shape), d.choice([-1.5, 0.5, 2] if divisor else [-1.5, 0.0, 2])
    return d.choice([-1.5, 0.0, 2]), d.tensor(shape, **nonzero)


register_spec(Add, sample=_sample_pair, call=lambda a, b: add(a, b))
register_spec(Sub, sample=_sample_pair, call=lambda a, b: sub(a, b))
register_spec(Mul, sample=_sample_pair, call=lambda a, b: mul(a, b))
register_spec(Div, sample=lambda d: _sample_pair(d, divisor=True), call=lambda a, b: div(a, b),
              note="divisors at least 0.5 from 0")
register_spec(Neg, sample=lambda d: (d.tensor(d.shape(min_side=0)),), call=lambda x: neg(x))


# ---------------------------------------------------------------- powers
def _kind(value: Any) -> str:
    """The dtype kind of an array, or of a Python number."""
    if hasattr(value, "dtype"):
        return value.dtype.kind
    return "b" if isinstance(value, bool) else "i" if isinstance(value, int) else "f"


def _integer_power(base: Any, exponent: Any) -> Any:
    """base ** exponent, refusing integers to negative integer powers in NumPy's words on every device, as
    NumPy and PyTorch do (CuPy would compute them)."""
    if _kind(base) in "iu" and _kind(exponent) in "iu" and bool((exponent < 0).any() if hasattr(exponent, "any")
                                                                else exponent < 0):
        raise ValueError("Integers to negative integer powers are not allowed.")
    return base ** exponent


def _power(base: Any, exponent: Any) -> Any:
    """base ** exponent for a number exponent; cubes by multiplication (NumPy's pow is slow there)."""
    if exponent == 3 and base.dtype.kind == "f":
        cube = base * base
        cube *= base
        return cube
    return _integer_power(base, exponent)


class PowTensorScalar(Function):
    """y = x^e for a number e;  dy/dx = e·x^(e-1), taken as 0 when e = 0 (PyTorch)."""

    def forward(self, x: Any, exponent: Any) -> Any:
        if type(exponent) not in (float, int) or x.dtype.kind != "f":
            x, exponent = _promote("pow", x, exponent)
        self.save_for_backward(x)
        self.exponent = exponent
        try:
            return _power(x, exponent)
        except ValueError as error:  # NumPy refuses integers to negative integer powers, as PyTorch does
            raise _error("pow", error, x, exponent) from None

    def backward(self, grad_output: Any) -> Any:
        (x,) = self.saved
        exponent = self.exponent
        if exponent == 0:
            return self.xp.zeros_like(grad_output)
        gx = self.xp.multiply(grad_output, exponent)
        gx *= x if exponent == 2 else _power(x, exponent - 1)
        return gx


class Pow(Function):
    """y = a^b for tensors;  dy/da = b·a^(b-1), taken as 0 where b = 0; dy/db = a^b·log(a), taken as 0
    where a = 0 and b >= 0 (both PyTorch). The gradient in b needs a > 0 elsewhere."""

    def forward(self, a: Any, b: Any) -> Any:
        if a.dtype != b.dtype:
            a, b = _promote("pow", a, b)
        try:
            y = _integer_power(a, b)
        except ValueError as error:
            raise _error("pow", error, a, b) from None
        self.save_for_backward(a, b, y if self.needs_input_grad[1] else None)
        return y

    def backward(self, grad_output: Any) -> Any:
        a, b, y = self.saved
        xp = self.xp
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = xp.power(a, b - 1)
            ga *= b
            ga *= grad_output
            ga = xp.where(b == 0, 0, ga)
        if self.needs_input_grad[1]:
            gb = xp.multiply(y, xp.log(a))
            gb *= grad_output
            gb = xp.where((a == 0) & (b >= 0), 0, gb)
        return ga, gb


class PowScalarTensor(Function):
    """y = s^b for a number s;  dy/db = s^b·log(s), taken as 0 where s = 0 and b >= 0 (PyTorch)."""

    def forward(self, base: Any, b: Any) -> Any:
        base, b = _operands("pow", base, b)
        self.log_base = math.log(base) if base > 0 else (-math.inf if base == 0 else math.nan)
        try:
            y = _integer_power(base, b)
        except ValueError as error:
            raise _error("pow", error, base, b) from None
        self.save_for_backward(b if base == 0 else None, y)
        return y

    def backward(self, grad_output: Any) -> Any:
        b, y = self.saved
        gb = self.xp.multiply(y, self.log_base)
        gb *= grad_output
        if b is not None:
            gb = self.xp.where(b >= 0, 0, gb)
        return None, gb


def _sample_pow_scalar(d: Any) -> tuple[Any, Any]:
    exponent = d.choice([2, 3, -2, 0, 1, 0.5, -1.5, 2.5])
    if float(exponent).is_integer():
        return d.tensor(d.shape(min_side=0), avoid=(0.0,), margin=0.3), exponent
    return d.tensor(d.shape(min_side=0), 0.3, 2.0), exponent


def _sample_pow(d: Any) -> tuple[Any, Any]:
    shape = d.shape(min_side=0)
    other = d.broadcastable_shape(shape)
    base_shape, exponent_shape = (shape, other) if d.boolean() else (other, shape)
    return d.tensor(base_shape, 0.3, 2.0), d.tensor(exponent_shape)


register_spec(PowTensorScalar, sample=_sample_pow_scalar, call=lambda x, e: pow(x, e),
              note="bases at least 0.3 from 0; positive bases for non-integer exponents")
register_spec(Pow, sample=_sample_pow, call=lambda a, b: pow(a, b), note="bases in [0.3, 2]: log(a) needs a > 0")
register_spec(PowScalarTensor, sample=lambda d: (d.choice([0.5, 2.0, 3]), d.tensor(d.shape(min_side=0))),
              call=lambda s, b: pow(s, b), note="positive bases: log(s) needs s > 0")


# ---------------------------------------------------------------- public functions
def add(input: Any, other: Any) -> Tensor:
    """input + other, broadcast; either may be a Python number."""
    return Add.apply(input, other)


def sub(input: Any, other: Any) -> Tensor:
    """input - other, broadcast; either may be a Python number."""
    return Sub.apply(input, other)


def mul(input: Any, other: Any) -> Tensor:
    """input * other, broadcast; either may be a Python number."""
    return Mul.apply(input, other)


def div(input: Any, other: Any) -> Tensor:
    """input / other, broadcast (true division: integers give the default dtype)."""
    return Div.apply(input, other)


def neg(input: Tensor) -> Tensor:
    return Neg.apply(input)


def pow(input: Any, exponent: Any) -> Tensor:
    """input ** exponent: tensor ** number, tensor ** tensor (broadcast), or number ** tensor."""
    if not isinstance(exponent, Tensor):
        return PowTensorScalar.apply(input, exponent)
    if isinstance(input, Tensor):
        return Pow.apply(input, exponent)
    return PowScalarTensor.apply(input, exponent)


# ---------------------------------------------------------------- comparisons (bool results, no gradient)
def _compare(op: str, ufunc: str, input: Any, other: Any) -> Tensor:
    tensor = input if isinstance(input, Tensor) else other
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(input).__name__} and {type(other).__name__}")
    a = input.data if isinstance(input, Tensor) else _number(op, input)
    b = other.data if isinstance(other, Tensor) else _number(op, other)
    if isinstance(other, Tensor) and isinstance(input, Tensor) and (type(a) is not _ndarray or type(b) is not _ndarray):
        check_same_device(op, (input, other))
    try:
        return Tensor(getattr(tensor.xp, ufunc)(a, b))
    except ValueError as error:
        raise _error(op, error, a, b) from None


def eq(input: Any, other: Any) -> Tensor:
    """input == other elementwise: a bool Tensor."""
    return _compare("eq", "equal", input, other)


def ne(input: Any, other: Any) -> Tensor:
    """input != other elementwise: a bool Tensor."""
    return _compare("ne", "not_equal", input, other)


def lt(input: Any, other: Any) -> Tensor:
    """input < other elementwise: a bool Tensor."""
    return _compare("lt", "less", input, other)


def le(input: Any, other: Any) -> Tensor:
    """input <= other elementwise: a bool Tensor."""
    return _compare("le", "less_equal", input, other)


def gt(input: Any, other: Any) -> Tensor:
    """input > other elementwise: a bool Tensor."""
    return _compare("gt", "greater", input, other)


def ge(input: Any, other: Any) -> Tensor:
    """input >= other elementwise: a bool Tensor."""
    return _compare("ge", "greater_equal", input, other)
