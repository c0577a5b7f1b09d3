"""Shape ops: reshape/view, flatten, squeeze/unsqueeze, transpose/permute, expand/broadcast_to.

Three Functions do all the work: Reshape (which also serves view, flatten,
squeeze and unsqueeze), Permute (transpose, .T) and Expand (broadcast_to).
Forward returns a view of the input wherever NumPy/CuPy can make one;
backward moves the gradient back to the input's layout. A shape that does not fit the
tensor is a RuntimeError in reshape/view and permute, as in torch.
"""

from __future__ import annotations

from typing import Any

from ..core import Function, Tensor
from ..core.validate import normalize_dim
from ..specs import register_spec

__all__ = [
    "broadcast_to", "expand", "flatten", "permute", "reshape", "squeeze", "transpose", "unsqueeze", "view",
]


def _as_shape(op: str, shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(shape)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        raise TypeError(f"{op}: expected a shape of ints, got {shape!r}")
    return shape


# ---------------------------------------------------------------- reshape
class Reshape(Function):
    """y = x laid out in a new shape with the same elements in row-major order.

    dy/dx is the identity on elements: gx = grad_output reshaped to x's shape.
    Forward is a view when x's strides allow it (always for contiguous x).
    """

    def forward(self, x: Any, shape: tuple[int, ...]) -> Any:
        self.input_shape = x.shape
        return x.reshape(shape)

    def backward(self, grad_output: Any) -> Any:
        return grad_output.reshape(self.input_shape)


def _reshape_sample(d: Any) -> tuple[Any, ...]:
    x = d.tensor(d.shape(min_dims=0, max_dims=3, min_side=0))
    shape = tuple(reversed(x.shape)) if d.boolean() else (x.numel(),)
    if d.boolean() and len(shape) > 0 and x.numel() > 0:
        shape = (-1,) + shape[1:]
    return x, shape


register_spec(Reshape, sample=_reshape_sample, call=lambda x, shape: reshape(x, shape))


def reshape(input: Tensor, shape: Any) -> Tensor:
    """torch.reshape: the same elements in `shape`; one entry may be -1 (inferred)."""
    shape = _as_shape("reshape", shape)
    return Reshape.apply(input, _infer_shape(input.shape, shape))


view = reshape  # NumPy's reshape copies when no view is possible, so view never fails on strides


def _infer_shape(current: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    numel = 1
    for s in current:
        numel *= s
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if len(unknown) > 1 or any(s < -1 for s in shape):
        raise RuntimeError(f"reshape: invalid shape {shape}: sizes must be >= 0, with at most one -1")
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if unknown:
        if known == 0:
            raise RuntimeError(
                f"reshape: cannot reshape tensor of shape {current} ({numel} elements) into {shape}: "
                "the -1 is ambiguous when another size is 0"
            )
        if numel % known == 0:
            inferred = list(shape)
            inferred[unknown[0]] = numel // known
            return tuple(inferred)
    elif known == numel:
        return shape
    raise RuntimeError(f"reshape: cannot reshape tensor of shape {current} ({numel} elements) into {shape}")


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """torch.flatten: merge dims start_dim..end_dim (inclusive) into one; a 0-d tensor becomes 1-d."""
    shape = input.shape
    start = normalize_dim("flatten", start_dim, len(shape))
    end = normalize_dim("flatten", end_dim, len(shape))
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for a tensor of shape {shape}")
    if not shape:
        return Reshape.apply(input, (1,))
    merged = 1
    for s in shape[start:end + 1]:
        merged *= s
    return Reshape.apply(input, shape[:start] + (merged,) + shape[end + 1:])


def squeeze(input: Tensor, dim: Any = None) -> Tensor:
    """torch.squeeze: drop size-1 dims (all of them, or those in `dim`); naming a dim of size != 1 is a no-op."""
    shape = input.shape
    if dim is None:
        dims = set(range(len(shape)))
    else:
        dims = {normalize_dim("squeeze", d, len(shape)) for d in ((dim,) if isinstance(dim, int) else dim)}
    kept = tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1))
    return Reshape.apply(input, kept)


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """torch.unsqueeze: insert a size-1 dim at `dim`, in [-ndim-1, ndim]."""
    shape = input.shape
    at = normalize_dim("unsqueeze", dim, len(shape) + 1)
    return Reshape.apply(input, shape[:at] + (1,) + shape[at:])


# ---------------------------------------------------------------- permute
class Permute(Function):
    """y = x with its axes reordered: y.shape[i] = x.shape[dims[i]].

    gx = grad_output with the inverse permutation applied. Forward is a strided view (no copy).
    """

    def forward(self, x: Any, dims: tuple[int, ...]) -> Any:
        self.dims = dims
        return x.transpose(dims)

    def backward(self, grad_output: Any) -> Any:
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return grad_output.transpose(inverse)


def _permute_sample(d: Any) -> tuple[Any, ...]:
    x = d.tensor(d.shape(min_dims=0, max_dims=4, min_side=0, max_side=3))
    dims = list(range(x.ndim))
    for i in range(len(dims) - 1, 0, -1):  # Fisher-Yates with the Draw's choices
        j = d.integers(0, i)
        dims[i], dims[j] = dims[j], dims[i]
    return x, tuple(dims)


register_spec(Permute, sample=_permute_sample, call=lambda x, dims: permute(x, dims))


def permute(input: Tensor, dims: Any) -> Tensor:
    """torch.permute: output dim i is input dim dims[i]; dims must be a permutation of range(ndim)."""
    dims = _as_shape("permute", dims)
    ndim = input.ndim
    if len(dims) != ndim:
        raise RuntimeError(f"permute: got {len(dims)} dims {dims} for a tensor of shape {input.shape} ({ndim} dims)")
    normalized = tuple(normalize_dim("permute", d, ndim) for d in dims)
    if sorted(normalized) != list(range(ndim)):
        raise RuntimeError(f"permute: dims {dims} are not a permutation of the {ndim} dims of shape {input.shape}")
    return Permute.apply(input, normalized)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """torch.transpose: swap dims dim0 and dim1 (a view)."""
    ndim = input.ndim
    a = normalize_dim("transpose", dim0, ndim)
    b = normalize_dim("transpose", dim1, ndim)
    dims = list(range(ndim))
    if ndim:
        dims[a], dims[b] = dims[b], dims[a]
    return Permute.apply(input, tuple(dims))


# ---------------------------------------------------------------- expand
class Expand(Function):
    """y = x broadcast to `shape` (new leading dims, size-1 dims repeated); a read-only view.

    gx = grad_output summed over the new leading dims and over the dims where x had size 1.
    """

    def forward(self, x: Any, shape: tuple[int, ...]) -> Any:
        self.input_shape = x.shape
        return self.xp.broadcast_to(x, shape)

    def backward(self, grad_output: Any) -> Any:
        lead = grad_output.ndim - len(self.input_shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, s in enumerate(self.input_shape) if s == 1 and grad_output.shape[lead + i] != 1
        )
        if not axes:
            return grad_output.reshape(self.input_shape)
        return grad_output.sum(axis=axes).reshape(self.input_shape)


def _expand_sample(d: Any) -> tuple[Any, ...]:
    target = d.shape(min_dims=0, max_dims=3, min_side=1, max_side=4)
    dropped = d.integers(0, len(target))
    x = d.tensor(tuple(1 if d.boolean() else s for s in target[dropped:]))
    sizes = tuple(-1 if i >= dropped and d.boolean() else s for i, s in enumerate(target))
    return x, sizes


register_spec(Expand, sample=_expand_sample, call=lambda x, sizes: expand(x, sizes))


def expand(input: Tensor, sizes: Any) -> Tensor:
    """torch.expand: broadcast to `sizes`; -1 keeps an existing dim; new dims go in front (and cannot be -1)."""
    sizes = _as_shape("expand", sizes)
    shape = input.shape
    lead = len(sizes) - len(shape)
    if lead < 0:
        raise ValueError(f"expand: cannot expand shape {shape} to {sizes}: fewer dims than the tensor has")
    target = []
    for i, size in enumerate(sizes):
        if i < lead:
            if size < 0:
                raise ValueError(f"expand: size {size} is not allowed for the new leading dim {i} in {sizes}")
            target.append(size)
            continue
        current = shape[i - lead]
        if size == -1:
            size = current
        if size < 0 or (current != 1 and current != size):
            raise ValueError(
                f"expand: cannot expand shape {shape} to {sizes}: dim {i} has size {current}, "
                f"which can only be expanded if it is 1 (or kept with -1)"
            )
        target.append(size)
    return Expand.apply(input, tuple(target))


def broadcast_to(input: Tensor, shape: Any) -> Tensor:
    """torch.broadcast_to: same as expand(input, shape)."""
    return expand(input, shape)
