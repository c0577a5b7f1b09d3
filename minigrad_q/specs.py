"""The gradient-spec registry: how to gradient-check every Function.

Each differentiable op registers a ``GradSpec`` next to its definition. A spec
says how to draw valid inputs (through a ``Draw``, so the same spec drives
hypothesis in the tests and a seeded generator in ``minigrad-q gradcheck``),
how to call the op from Tensors, and, for ops whose backward is a surrogate
(STE, DSQ, ...), the *reference* function whose exact derivative the backward
must equal. A meta-test fails for any Function subclass without a spec.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Draw(Protocol):
    """Source of choices for a spec's sampler (see minigrad_q.testing for the drivers)."""

    device: str

    def integers(self, low: int, high: int) -> int:
        """An int in [low, high], both included."""

    def floats(self, low: float, high: float) -> float: ...

    def boolean(self) -> bool: ...

    def choice(self, options: Sequence[Any]) -> Any: ...

    def shape(self, min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> tuple[int, ...]: ...

    def broadcastable_shape(self, shape: tuple[int, ...], min_side: int = 1) -> tuple[int, ...]:
        """A shape that broadcasts with `shape` (dims dropped or set to 1, possibly extra leading dims)."""

    def tensor(
        self,
        shape: tuple[int, ...],
        low: float = -2.0,
        high: float = 2.0,
        avoid: Sequence[float] = (),
        margin: float = 0.1,
        distinct: bool = False,
        requires_grad: bool = True,
        dtype: Any = None,
    ) -> Any:
        """A float64 Tensor (unless dtype says otherwise) with values in [low, high],
        at least `margin` from each point in `avoid` (kinks), pairwise at least `margin`
        apart if `distinct` (no ties), possibly a non-contiguous view."""


@dataclass(frozen=True)
class GradSpec:
    """How to gradient-check one Function subclass.

    sample(draw) -> tuple of arguments for `call` (Tensors and plain values).
    call(*args) -> Tensor or tuple of Tensors; must run `function` somewhere.
    reference(*args): for surrogate-gradient ops, the differentiable function
        whose exact derivative the backward must equal (gradcheck takes finite
        differences of it instead of `call`).
    eps: finite-difference step, when an op cannot use gradcheck's default
        (say why in `note`).
    """

    function: type
    sample: Callable[[Draw], tuple[Any, ...]]
    call: Callable[..., Any]
    reference: Callable[..., Any] | None = None
    eps: float | None = None
    note: str = ""
    devices: tuple[str, ...] = field(default=("cpu", "cuda"))


SPECS: dict[type, GradSpec] = {}


def register_spec(function: type, sample: Callable[[Draw], tuple[Any, ...]], call: Callable[..., Any], **options: Any) -> None:
    if function in SPECS:
        raise ValueError(f"a gradient spec for {function.__name__} is already registered")
    SPECS[function] = GradSpec(function, sample, call, **options)


def spec_for(function: type) -> GradSpec:
    try:
        return SPECS[function]
    except KeyError:
        raise KeyError(f"{function.__name__} has no gradient spec; register one with minigrad_q.specs.register_spec") from None
