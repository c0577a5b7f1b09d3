"""pad (torch.nn.functional.pad): constant, reflect, replicate and circular padding of the last dims, each
mode a Function whose backward folds the padded strips' gradients back onto their sources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core import Function, Tensor
from ..specs import register_spec
from .index import _along

__all__ = ["pad"]


class Pad(Function):
    """y = x with `before`/`after` entries of `value` added per dim (negative amounts crop).

    gx = grad_output over the region that holds x (zeros where x was cropped away).
    """

    def forward(self, x: Any, widths: tuple[tuple[int, int], ...], value: Any) -> Any:
        xp = self.xp
        shape = tuple(n + before + after for n, (before, after) in zip(x.shape, widths))
        self.input_shape = x.shape
        # x[source] lands in y[target]; both are empty when the crops eat all of a dim
        self.source = tuple(_inner(n, -before, -after) for n, (before, after) in zip(x.shape, widths))
        self.target = tuple(_inner(m, before, after) for m, (before, after) in zip(shape, widths))
        self.crops = any(before < 0 or after < 0 for before, after in widths)
        y = xp.empty(shape, dtype=x.dtype)
        for dim, (before, after) in enumerate(widths):  # fill only the borders, then copy x once
            if before > 0:
                y[_along(dim, slice(0, before))] = value
            if after > 0:
                y[_along(dim, slice(max(shape[dim] - after, 0), shape[dim]))] = value
        y[self.target] = x[self.source]
        return y

    def backward(self, grad_output: Any) -> Any:
        inner = grad_output[self.target]
        if not self.crops:
            return inner
        g = self.xp.zeros(self.input_shape, dtype=grad_output.dtype)
        g[self.source] = inner
        return g


def _inner(size: int, before: int, after: int) -> slice:
    """The slice of a dim of `size` left after dropping `before` and `after` entries (when positive)."""
    start = max(before, 0)
    return slice(start, max(size - max(after, 0), start))


# reflect / replicate / circular: each padded dim in turn, its border strips copied from x (forward) and
# their gradients added back onto the entries they copied (backward), by slices; no scatter-add.
class ReflectionPad(Function):
    """mode="reflect", per padded dim of size n with amounts (b, a): y = x mirrored about its edges
    without repeating them, [x_b, ..., x_1, x_0, ..., x_{n-1}, x_{n-2}, ..., x_{n-1-a}] (b, a < n);
    negative amounts then crop that result's ends (torch).

    gx = the gradient of the middle, plus each strip's gradient flipped and added onto its source:
    gx[1 : b+1] += flip(g[:b]),  gx[n-1-a : n-1] += flip(g[b+n:])."""

    def forward(self, x: Any, widths: tuple[tuple[int, int], ...]) -> Any:
        self.widths = widths
        return _pad_each_dim(self.xp, x, widths, _reflect_strips, crop_first=False)

    def backward(self, grad_output: Any) -> Any:
        return _fold_each_dim(self.xp, grad_output, self.widths, _reflect_fold, crop_first=False)


def _reflect_strips(xp: Any, x: Any, dim: int, before: int, after: int) -> tuple[Any, Any]:
    n = x.shape[dim]
    return xp.flip(x[_along(dim, slice(1, before + 1))], dim), xp.flip(x[_along(dim, slice(n - 1 - after, n - 1))], dim)


def _reflect_fold(xp: Any, g: Any, g_before: Any, g_after: Any, dim: int) -> None:
    n = g.shape[dim]
    g[_along(dim, slice(1, g_before.shape[dim] + 1))] += xp.flip(g_before, dim)
    g[_along(dim, slice(n - 1 - g_after.shape[dim], n - 1))] += xp.flip(g_after, dim)


class ReplicationPad(Function):
    """mode="replicate", per padded dim of size n with amounts (b, a): y = [x_0 (b times), x_0, ..., x_{n-1},
    x_{n-1} (a times)]; negative amounts then crop that result's ends (torch).

    gx = the gradient of the middle, plus each strip's gradient summed onto its edge:
    gx[0] += Σ g[:b],  gx[n-1] += Σ g[b+n:]."""

    def forward(self, x: Any, widths: tuple[tuple[int, int], ...]) -> Any:
        self.widths = widths
        return _pad_each_dim(self.xp, x, widths, _replicate_strips, crop_first=False)

    def backward(self, grad_output: Any) -> Any:
        return _fold_each_dim(self.xp, grad_output, self.widths, _replicate_fold, crop_first=False)


def _replicate_strips(xp: Any, x: Any, dim: int, before: int, after: int) -> tuple[Any, Any]:
    n = x.shape[dim]
    return xp.repeat(x[_along(dim, slice(0, 1))], before, dim), xp.repeat(x[_along(dim, slice(n - 1, n))], after, dim)


def _replicate_fold(xp: Any, g: Any, g_before: Any, g_after: Any, dim: int) -> None:
    n = g.shape[dim]
    g[_along(dim, slice(0, 1))] += g_before.sum(axis=dim, keepdims=True)
    g[_along(dim, slice(n - 1, n))] += g_after.sum(axis=dim, keepdims=True)


class CircularPad(Function):
    """mode="circular": negative amounts first crop x's ends (torch); then per padded dim of size n (after
    the crops) with amounts (b, a) <= n: y = [x_{n-b}, ..., x_{n-1}, x_0, ..., x_{n-1}, x_0, ..., x_{a-1}]
    (x wrapped around once at most).

    gx = the gradient of the middle, plus each strip's gradient added onto the entries it copied:
    gx[n-b:] += g[:b],  gx[:a] += g[b+n:]; zeros where x was cropped away."""

    def forward(self, x: Any, widths: tuple[tuple[int, int], ...]) -> Any:
        self.widths = widths
        return _pad_each_dim(self.xp, x, widths, _circular_strips, crop_first=True)

    def backward(self, grad_output: Any) -> Any:
        return _fold_each_dim(self.xp, grad_output, self.widths, _circular_fold, crop_first=True)


def _circular_strips(xp: Any, x: Any, dim: int, before: int, after: int) -> tuple[Any, Any]:
    n = x.shape[dim]
    return x[_along(dim, slice(n - before, n))], x[_along(dim, slice(0, after))]


def _circular_fold(xp: Any, g: Any, g_before: Any, g_after: Any, dim: int) -> None:
    n = g.shape[dim]
    g[_along(dim, slice(n - g_before.shape[dim], n))] += g_before
    g[_along(dim, slice(0, g_after.shape[dim]))] += g_after


def _pad_each_dim(xp: Any, x: Any, widths: tuple[tuple[int, int], ...], strips: Any, crop_first: bool) -> Any:
    """Pad dim by dim: [strip before, x, strip after] for the positive amounts; the negative amounts crop,
    before the strips are taken (circular) or after (reflect, replicate)."""
    for dim, (before, after) in enumerate(widths):
        if before == after == 0:
            continue
        if crop_first:
            x = x[_along(dim, _inner(x.shape[dim], -before, -after))]
        head, tail = strips(xp, x, dim, max(before, 0), max(after, 0))
        x = xp.concatenate((head, x, tail), axis=dim)
        if not crop_first:
            x = x[_along(dim, _inner(x.shape[dim], -before, -after))]
    return x


def _fold_each_dim(xp: Any, g: Any, widths: tuple[tuple[int, int], ...], fold: Any, crop_first: bool) -> Any:
    """Undo `_pad_each_dim` dim by dim, last dim first: the middle's gradient, with the strips' added on."""
    for dim in reversed(range(len(widths))):
        before, after = widths[dim]
        if before == after == 0:
            continue
        pad_before, pad_after = max(before, 0), max(after, 0)
        if not crop_first and (before < 0 or after < 0):  # put the cropped output back into the uncropped one
            g = _uncrop(xp, g, dim, g.shape[dim] - min(before, 0) - min(after, 0), -before, -after)
        n = g.shape[dim] - pad_before - pad_after
        middle = g[_along(dim, slice(pad_before, pad_before + n))].copy()
        fold(xp, middle, g[_along(dim, slice(0, pad_before))], g[_along(dim, slice(pad_before + n, None))], dim)
        g = middle
        if crop_first and (before < 0 or after < 0):
            g = _uncrop(xp, g, dim, n - min(before, 0) - min(after, 0), -before, -after)
    return g


def _uncrop(xp: Any, g: Any, dim: int, size: int, before: int, after: int) -> Any:
    """Zeros with `size` entries along `dim`, holding g where a crop of `before`/`after` entries (when positive) left it."""
    shape = g.shape[:dim] + (size,) + g.shape[dim + 1:]
    full = xp.zeros(shape, dtype=g.dtype)
    full[_along(dim, _inner(size, before, after))] = g
    return full


def _pad_sample(d: Any) -> tuple[Any, ...]:
    x = d.tensor(d.shape(min_dims=1, max_dims=3, min_side=1, max_side=4))
    amounts: list[int] = []
    for n in reversed(x.shape[x.ndim - d.integers(1, x.ndim):]):
        amounts += [d.integers(-(n // 2), 2), d.integers(-(n - n // 2), 2)]
    return x, tuple(amounts), d.floats(-1.0, 1.0)


def _mode_pad_sample(mode: str) -> Any:
    """(x, pad amounts) valid for `mode`: 1 to 3 padded dims, with 1 or 2 more dims before them; some crops."""

    def amounts_for(d: Any, n: int) -> tuple[int, int]:
        if mode == "circular":  # crops leave kept = n + negative parts entries; positive parts <= kept
            before = d.integers(1 - n, n)
            return before, d.integers(abs(before) - n, n + min(before, 0))
        largest = n - 1 if mode == "reflect" else 3  # reflect: < n; replicate: any
        before = d.integers(1 - n, largest)
        return before, d.integers(max(1 - n, 1 - n - before), largest)  # at least one entry left

    def sample(d: Any) -> tuple[Any, ...]:
        padded = d.integers(1, 3)
        shape = tuple(d.integers(1, 2) for _ in range(d.integers(1, 2))) + tuple(
            d.integers(1, 4 if padded < 3 else 3) for _ in range(padded))
        amounts: list[int] = []
        for n in reversed(shape[-padded:]):
            amounts += amounts_for(d, n)
        return d.tensor(shape), tuple(amounts)

    return sample


register_spec(Pad, sample=_pad_sample, call=lambda x, amounts, value: pad(x, amounts, value=value))
register_spec(ReflectionPad, sample=_mode_pad_sample("reflect"), call=lambda x, amounts: pad(x, amounts, "reflect"))
register_spec(ReplicationPad, sample=_mode_pad_sample("replicate"), call=lambda x, amounts: pad(x, amounts, "replicate"))
register_spec(CircularPad, sample=_mode_pad_sample("circular"), call=lambda x, amounts: pad(x, amounts, "circular"))

_MODES = {"constant": Pad, "reflect": ReflectionPad, "replicate": ReplicationPad, "circular": CircularPad}


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: Any = None) -> Tensor:
    """torch.nn.functional.pad: pad = (left, right) for the last dim, then (top, bottom) for the one before,
    and so on; negative amounts crop.

    mode "constant" fills with `value` (default 0) on any number of dims; "reflect", "replicate" and
    "circular" pad the last 1, 2 or 3 dims of a tensor with one more or two more dims (2 amounts on a 2-d or
    3-d tensor, 4 on 3-d or 4-d, 6 on 4-d or 5-d), as torch; reflect needs amounts < the dim's size,
    circular amounts <= its size."""
    if mode not in _MODES:
        raise NotImplementedError(f"pad: unrecognised padding mode {mode!r}; the modes are {', '.join(map(repr, _MODES))}")
    amounts = tuple(pad)
    ndim = input.ndim
    if len(amounts) % 2 or len(amounts) // 2 > ndim:
        raise ValueError(
            f"pad: expected an even number of pad sizes, at most 2 per dim ({2 * ndim} for shape {input.shape}), "
            f"got {amounts}"
        )
    widths = [(0, 0)] * ndim
    for k in range(len(amounts) // 2):
        widths[ndim - 1 - k] = (amounts[2 * k], amounts[2 * k + 1])
    if mode == "constant":
        for dim, (before, after) in enumerate(widths):
            if input.shape[dim] + before + after < 0:
                raise ValueError(
                    f"pad: pad {(before, after)} makes dim {dim} of shape {input.shape} negative "
                    f"({input.shape[dim] + before + after})"
                )
        return Pad.apply(input, tuple(widths), 0.0 if value is None else value)
    _check_mode_pad(mode, input.shape, amounts, widths, value)
    return _MODES[mode].apply(input, tuple(widths))


def _check_mode_pad(mode: str, shape: tuple[int, ...], amounts: tuple[int, ...], widths: list[tuple[int, int]],
                    value: Any) -> None:
    """torch's rules for the non-constant modes, with its error types."""
    if value is not None and value != 0:
        raise RuntimeError(f"pad: padding mode {mode!r} doesn't take a value argument, got value={value!r}")
    padded = len(amounts) // 2
    if padded not in (1, 2, 3) or len(shape) not in (padded + 1, padded + 2):
        raise NotImplementedError(
            f"pad: mode {mode!r} pads the last 1, 2 or 3 dims of a tensor with 1 or 2 more dims "
            f"(2 pad sizes for a 2-d or 3-d input, 4 for 3-d or 4-d, 6 for 4-d or 5-d); got {len(amounts)} pad sizes "
            f"{amounts} for a {len(shape)}-d input of shape {shape}"
        )
    for dim in range(len(shape) - padded, len(shape)):
        (before, after), n = widths[dim], shape[dim]
        if mode == "circular":
            kept = n + min(before, 0) + min(after, 0)
            if kept < 0 or max(before, after) > kept:
                raise RuntimeError(
                    f"pad: circular padding {(before, after)} of dim {dim} (size {n}, {max(kept, 0)} after the crops) "
                    f"of shape {shape} wraps around more than once; amounts must be <= the size left after the crops"
                )
            continue
        if n == 0:
            raise RuntimeError(f"pad: {mode} padding needs entries to copy, but dim {dim} of shape {shape} is empty")
        if mode == "reflect" and max(before, after) >= n:
            raise RuntimeError(
                f"pad: reflect padding {(before, after)} of dim {dim} of shape {shape} must be less than the "
                f"dim's size {n}"
            )
        if n + before + after < 0:
            raise RuntimeError(f"pad: {mode} padding {(before, after)} makes dim {dim} of shape {shape} negative "
                               f"({n + before + after})")
    sizes = [shape[dim] + sum(widths[dim]) for dim in range(len(shape) - padded, len(shape))]
    if mode != "circular" and max(sizes) < 1:
        raise RuntimeError(f"pad: {mode} padding {amounts} leaves no entry in any padded dim of shape {shape} "
                           f"(sizes {tuple(sizes)}); torch needs at least one")
