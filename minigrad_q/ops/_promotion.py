"""Operands of elementwise ops: PyTorch's dtype promotion, Python numbers, clear errors.

The rules are stated in the docstring of `minigrad_q.ops.elementwise`. These
helpers run inside `forward` on arrays and numbers; the hot path (two arrays of
one dtype, or a float array with a Python number) never reaches `_promote`.
"""

from __future__ import annotations

from typing import Any

from .. import backend

_is_array = backend.is_array
_CATEGORY = {"b": 0, "i": 1, "u": 1, "f": 2}  # bool < integer < floating; anything else ranks above


def _number(op: str, value: Any) -> Any:
    """`value` as a Python bool/int/float (NumPy scalars included), or a clear TypeError."""
    if type(value) in (float, int, bool):
        return value
    if getattr(value, "shape", None) == () and hasattr(value, "item") and not _is_array(value):
        value = value.item()  # a NumPy scalar
    if type(value) in (float, int, bool):
        return value
    raise TypeError(f"{op}: expected a Tensor or a Python number, got {type(value).__name__}")


def _category(dtype: Any) -> int:
    return _CATEGORY.get(dtype.kind, 3)


def _wider(first: Any, second: Any) -> Any:
    """The promoted dtype of two dtypes: the higher category's, else NumPy's wider one."""
    if first is None or first == second:
        return second
    if _category(first) != _category(second):
        return first if _category(first) > _category(second) else second
    return backend.result_type(first, second)


def _result_dtype(values: list[Any]) -> Any:
    """PyTorch's result dtype of arrays and Python numbers (None entries are skipped)."""
    dimensioned = zero_dim = number = None
    for value in values:
        if _is_array(value):
            if value.ndim:
                dimensioned = _wider(dimensioned, value.dtype)
            else:
                zero_dim = _wider(zero_dim, value.dtype)
        elif value is not None:
            kind = backend.bool_ if type(value) is bool else backend.int64 if type(value) is int else None
            number = _wider(number, kind or backend.get_default_dtype())
    result = dimensioned
    for lower in (zero_dim, number):  # each counts only when its category is higher
        if lower is not None and (result is None or _category(lower) > _category(result)):
            result = _wider(result, lower)
    return result


def _promote(op: str, *values: Any, true_division: bool = False) -> list[Any]:
    """Cast the arrays among `values` to their result dtype; numbers stay numbers, None stays None."""
    values = tuple(v if v is None or _is_array(v) else _number(op, v) for v in values)
    target = _result_dtype(list(values))
    if true_division and target.kind != "f":
        target = backend.get_default_dtype()
    return [v.astype(target) if _is_array(v) and v.dtype != target else v for v in values]


def _operands(op: str, a: Any, b: Any, true_division: bool = False) -> Any:
    """(a, b) ready for a binary op whose operands differ in dtype or include a number."""
    if type(b) in (float, int) and a.dtype.kind == "f" or type(a) in (float, int) and b.dtype.kind == "f":
        return a, b  # a float array keeps its dtype against a Python number
    return _promote(op, a, b, true_division=true_division)


def _floating(x: Any) -> Any:
    """x, or x in the default dtype when it is not floating (exp, log, ... of integers)."""
    return x if x.dtype.kind == "f" else x.astype(backend.get_default_dtype())


def _reuse(array: Any) -> Any:
    """`out=` target for in-place arithmetic: the array, or None for a 0-d result (a NumPy scalar)."""
    return array if array.ndim else None


def _describe(value: Any) -> str:
    if _is_array(value):
        return f"{value.dtype} {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"


def _error(op: str, error: Exception, *values: Any) -> Exception:
    """A clear error for a failed array call: shapes that do not broadcast, or the library's reason."""
    shapes = [tuple(v.shape) for v in values if _is_array(v)]
    for dim in range(1, max((len(s) for s in shapes), default=0) + 1):
        sizes = {s[-dim] for s in shapes if len(s) >= dim} - {1}
        if len(sizes) > 1:
            listed = " and ".join(str(s) for s in shapes)
            return ValueError(f"{op}: shapes {listed} cannot be broadcast together (sizes {sorted(sizes)} at dim -{dim})")
    return type(error)(f"{op}: cannot apply to {', '.join(_describe(v) for v in values)}: {error}")
