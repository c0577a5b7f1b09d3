"""Indexing and joining: getitem (x[index]), cat, stack, split, chunk, pad."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend
from ..core import Function, Tensor
from ..core.validate import normalize_dim
from ..specs import register_spec

__all__ = ["cat", "chunk", "getitem", "split", "stack"]


def _along(dim: int, index: Any) -> tuple[Any, ...]:
    """The basic index that applies `index` (a slice or int) to axis `dim`."""
    return (slice(None),) * dim + (index,)


# ---------------------------------------------------------------- getitem
class GetItem(Function):
    """y = x[index] with NumPy's rules, which are torch's: ints, slices, None, ...,
    integer arrays and bool masks, in any combination (slices may also step backwards,
    which NumPy allows and torch refuses).

    gx = zeros shaped like x, with grad_output added at the positions x[index] read. Basic
    indexing and bool masks read each position at most once, so grad_output is assigned there;
    integer arrays may repeat a position, so grad_output is summed per position (bincount over
    flat positions, never np.add.at).
    """

    def forward(self, x: Any, index: tuple[Any, ...]) -> Any:
        self.input_shape = x.shape
        self.may_repeat = any(backend.is_array(i) and i.dtype.kind != "b" for i in index)
        self.save_for_backward(*index)
        return x[index]

    def backward(self, grad_output: Any) -> Any:
        xp, index = self.xp, self.saved
        if not self.may_repeat or grad_output.size == 0:  # (cupy.bincount fails on no positions)
            g = xp.zeros(self.input_shape, dtype=grad_output.dtype)
            g[index] = grad_output
            return g
        size = 1
        for s in self.input_shape:
            size *= s
        positions = xp.arange(size).reshape(self.input_shape)[index]  # the flat position each output read
        g = xp.bincount(positions.reshape(-1), weights=grad_output.reshape(-1), minlength=size)
        return g.astype(grad_output.dtype, copy=False).reshape(self.input_shape)


def _getitem_sample(d: Any) -> tuple[Any, ...]:
    x = d.tensor(d.shape(min_dims=1, max_dims=3, min_side=1, max_side=4))
    n = x.shape[0]
    kind = d.choice(["int", "slices", "array", "mask", "mixed"])
    if kind == "int":
        return x, d.integers(-n, n - 1)
    if kind == "slices":
        step = d.choice([None, 1, 2, -1, -2])
        return x, (slice(d.choice([None, 0, 1, -1]), d.choice([None, 2, -1, -n - 1]), step), Ellipsis, None)
    if kind == "array":  # few positions, so repeats are common
        return x, [d.integers(-n, n - 1) for _ in range(d.integers(0, 5))]
    if kind == "mask":
        return x, [d.boolean() for _ in range(n)]
    last = x.shape[-1]
    return x, (Ellipsis, None, [d.integers(0, last - 1) for _ in range(3)])


register_spec(GetItem, sample=_getitem_sample, call=lambda x, index: getitem(x, index))


def getitem(input: Tensor, index: Any) -> Tensor:
    """input[index]; Tensor/list indices become arrays on input's device."""
    prepared = _prepare_index(input, index)
    if input.device != "cpu":  # CuPy wraps out-of-range integer arrays around instead of raising
        _check_array_bounds(input, index, prepared)
    try:
        return GetItem.apply(input, prepared)
    except (IndexError, ValueError) as error:
        raise IndexError(f"getitem: invalid index {_describe(index)} for a tensor of shape {input.shape}: {error}") from None


def _prepare_index(input: Tensor, index: Any) -> tuple[Any, ...]:
    items = index if isinstance(index, tuple) else (index,)
    prepared: list[Any] = []
    for item in items:
        if isinstance(item, Tensor):
            item = item.data
        if item is None or item is Ellipsis or isinstance(item, (slice, bool, int)):
            prepared.append(item)
            continue
        if not (isinstance(item, (list, tuple)) or backend.is_array(item) or hasattr(item, "dtype")):
            raise TypeError(
                f"getitem: unsupported index {item!r} ({type(item).__name__}) in {_describe(index)}; "
                "expected ints, slices, None, ..., or integer/bool arrays, lists or Tensors"
            )
        array = backend.asarray(item, device=input.device)
        if array.size == 0 and array.dtype.kind == "f":  # [] means "no positions", as in NumPy
            array = array.astype(backend.int64)
        kind = array.dtype.kind
        if kind not in "iub":
            raise TypeError(f"getitem: index arrays must be integer or bool, got dtype {array.dtype} in {_describe(index)}")
        if array.ndim == 0:  # a scalar array indexes like a Python scalar (and keeps basic indexing a view)
            prepared.append(bool(array) if kind == "b" else int(array))
        else:
            prepared.append(array)
    return tuple(prepared)


def _check_array_bounds(input: Tensor, index: Any, prepared: tuple[Any, ...]) -> None:
    """Raise for integer-array entries outside [-size, size) of the axis they index."""
    shape = input.shape
    consumed = sum(i.ndim if backend.is_array(i) and i.dtype.kind == "b" else 1
                   for i in prepared if i is not None and i is not Ellipsis and not isinstance(i, bool))
    axis = 0
    for item in prepared:
        if item is Ellipsis:
            axis += max(len(shape) - consumed, 0)
        elif item is None or isinstance(item, bool):
            continue
        elif backend.is_array(item) and item.dtype.kind == "b":
            axis += item.ndim
        else:
            if backend.is_array(item) and axis < len(shape) and item.size:
                low, high = int(item.min()), int(item.max())
                bad = low if low < -shape[axis] else high if high >= shape[axis] else None
                if bad is not None:
                    raise IndexError(
                        f"getitem: invalid index {_describe(index)} for a tensor of shape {shape}: "
                        f"index {bad} is out of bounds for axis {axis} with size {shape[axis]}"
                    )
            axis += 1


def _describe(index: Any) -> str:
    text = repr(index).replace("\n", "")
    return text if len(text) <= 120 else text[:117] + "..."


# ---------------------------------------------------------------- cat / stack
class Cat(Function):
    """y = [x_1, ..., x_n] joined along dim; gx_i = the slice of grad_output that x_i became."""

    def forward(self, *args: Any) -> Any:
        *arrays, dim = args
        self.dim = dim
        self.sizes = [a.shape[dim] for a in arrays]
        return self.xp.concatenate(arrays, axis=dim)

    def backward(self, grad_output: Any) -> Any:
        grads = []
        start = 0
        for size, needed in zip(self.sizes, self.needs_input_grad):
            grads.append(grad_output[_along(self.dim, slice(start, start + size))] if needed else None)
            start += size
        return tuple(grads)


def _cat_sample(d: Any) -> tuple[Any, ...]:
    shape = d.shape(min_dims=1, max_dims=3, min_side=1, max_side=3)
    dim = d.integers(-len(shape), len(shape) - 1)
    sizes = [d.integers(0, 3) for _ in range(d.integers(1, 3))]
    axis = dim % len(shape)
    return (*(d.tensor(shape[:axis] + (s,) + shape[axis + 1:]) for s in sizes), dim)


register_spec(Cat, sample=_cat_sample, call=lambda *args: cat(args[:-1], args[-1]))


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """torch.cat: join tensors of equal shape except along `dim` (dtypes are promoted)."""
    tensors = _check_tensors("cat", tensors)
    first = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise ValueError(f"cat: zero-dimensional tensor (at position {i}) cannot be concatenated")
    axis = normalize_dim("cat", dim, len(first))
    for i, t in enumerate(tensors):
        shape = t.shape
        if len(shape) != len(first) or shape[:axis] + shape[axis + 1:] != first[:axis] + first[axis + 1:]:
            expected = "(" + ", ".join("*" if k == axis else str(s) for k, s in enumerate(first)) + ")"
            raise ValueError(
                f"cat: tensors must have equal sizes except in dim {dim}: tensor 0 has shape {first} "
                f"(so expected {expected}), tensor {i} has shape {shape}"
            )
    return Cat.apply(*tensors, axis)


class Stack(Function):
    """y = [x_1, ..., x_n] stacked along a new dim; gx_i = grad_output[..., i, ...] at that dim."""

    def forward(self, *args: Any) -> Any:
        *arrays, dim = args
        self.dim = dim
        return self.xp.stack(arrays, axis=dim)

    def backward(self, grad_output: Any) -> Any:
        return tuple(grad_output[_along(self.dim, i)] if needed else None for i, needed in enumerate(self.needs_input_grad))


def _stack_sample(d: Any) -> tuple[Any, ...]:
    shape = d.shape(min_dims=0, max_dims=2, min_side=0, max_side=3)
    count = d.integers(1, 3)
    return (*(d.tensor(shape) for _ in range(count)), d.integers(-len(shape) - 1, len(shape)))


register_spec(Stack, sample=_stack_sample, call=lambda *args: stack(args[:-1], args[-1]))


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """torch.stack: join tensors of one shape along a new dim `dim` in [-ndim-1, ndim]."""
    tensors = _check_tensors("stack", tensors)
    first = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.shape != first:
            raise ValueError(f"stack: expected all tensors to have one shape, got {first} at 0 and {t.shape} at {i}")
    return Stack.apply(*tensors, normalize_dim("stack", dim, len(first) + 1))


def _check_tensors(op: str, tensors: Any) -> list[Tensor]:
    if isinstance(tensors, Tensor) or not isinstance(tensors, Sequence):
        raise TypeError(f"{op}: expected a sequence (list or tuple) of Tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected Tensors, got {type(t).__name__} at position {i}")
    return list(tensors)


# ---------------------------------------------------------------- split / chunk
class Split(Function):
    """(y_1, ..., y_n) = consecutive slices of x along dim with the given sizes (views);
    gx = the output gradients joined along dim."""

    def forward(self, x: Any, sizes: tuple[int, ...], dim: int) -> Any:
        self.dim = dim
        outputs, start = [], 0
        for size in sizes:
            outputs.append(x[_along(dim, slice(start, start + size))])
            start += size
        return tuple(outputs)

    def backward(self, *grads: Any) -> Any:
        return self.xp.concatenate(grads, axis=self.dim)


def _split_sample(d: Any) -> tuple[Any, ...]:
    x = d.tensor(d.shape(min_dims=1, max_dims=3, min_side=0, max_side=4))
    dim = d.integers(-x.ndim, x.ndim - 1)
    n = x.shape[dim]
    if d.boolean():
        return x, d.integers(0 if n == 0 else 1, 3), dim
    cut = d.integers(0, n)
    return x, [cut, n - cut], dim


register_spec(Split, sample=_split_sample, call=lambda x, sections, dim: split(x, sections, dim))


def split(input: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """torch.split: chunks of split_size (the last may be smaller), or the given section sizes."""
    if input.ndim == 0:
        raise ValueError("split: expected a tensor with at least one dim, got a 0-d tensor")
    axis = normalize_dim("split", dim, input.ndim)
    n = input.shape[axis]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size < 0 or (size == 0 and n > 0):
            raise ValueError(f"split: split_size must be positive (0 only for an empty dim), got {size} for dim size {n}")
        count = max(-(-n // size), 1) if size else 1
        sizes = (size,) * (count - 1) + (n - size * (count - 1),)
    else:
        sizes = tuple(split_size_or_sections)
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError(
                f"split: section sizes {list(sizes)} must be >= 0 and sum to the size {n} of dim {dim} "
                f"of shape {input.shape}, but sum to {sum(sizes)}"
            )
    return Split.apply(input, sizes, axis)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """torch.chunk: chunks of ceil(n / chunks) along dim (the last smaller; possibly fewer chunks)."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    if input.ndim == 0:
        raise ValueError("chunk: expected a tensor with at least one dim, got a 0-d tensor")
    n = input.shape[normalize_dim("chunk", dim, input.ndim)]
    if n == 0:
        return split(input, [0] * chunks, dim)
    return split(input, -(-n // chunks), dim)


# ---------------------------------------------------------------- pad
