"""Finite-difference gradient checks: PyTorch's ``gradcheck`` for minigrad_q Functions.

``gradcheck(fn, inputs)`` builds the analytic Jacobian of ``fn`` row by row
(one backward pass per output element, upstream gradient one-hot) and its
numerical Jacobian column by column (central differences in float64 on a copy
of one input element at a time), and requires, entry by entry,

    |analytic - numerical| <= atol + rtol * |numerical|.

``fast_mode=True`` compares one random directional derivative v^T J u instead.
It also checks what every backward must get right besides the values: each
gradient's shape, dtype and device; a zero upstream gradient gives zero
gradients; two backward passes agree; the inputs are left untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import backend
from .core import Function, Tensor, enable_grad, no_grad, topological_order
from .core import backward as run_backward

__all__ = ["GradcheckError", "GradcheckReport", "gradcheck", "gradcheck_report"]

_SEED = 20240531  # random directions and upstream gradients are reproducible


class GradcheckError(AssertionError):
    """A gradient check failed; the message names the op, the output, the input, the element and both values."""


@dataclass
class GradcheckReport:
    """What ``gradcheck_report`` found. ``functions``: the Function classes in the checked graph."""

    passed: bool
    max_abs_error: float
    message: str
    functions: tuple[type, ...] = ()


class _Failed(Exception):
    def __init__(self, message: str, max_abs_error: float):
        super().__init__(message)
        self.max_abs_error = max_abs_error


def gradcheck(
    fn: Callable[..., Any],
    inputs: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    fast_mode: bool = False,
    nondet_tol: float = 0.0,
    reference: Callable[..., Any] | None = None,
) -> bool:
    """True when the backward of ``fn`` matches finite differences at ``inputs``.

    ``inputs``: a Tensor or a tuple of arguments (Tensors and plain values),
    passed as ``fn(*inputs)``; every Tensor that requires grad must be float64.
    ``reference``: take the numerical Jacobian of this function instead of
    ``fn`` (for surrogate gradients: the function whose exact derivative the
    backward must equal). On failure raises ``GradcheckError``, or returns
    False when ``raise_exception=False``.
    """
    report = gradcheck_report(
        fn, inputs, eps=eps, atol=atol, rtol=rtol, fast_mode=fast_mode, nondet_tol=nondet_tol, reference=reference
    )
    if not report.passed and raise_exception:
        raise GradcheckError(report.message)
    return report.passed


def gradcheck_report(
    fn: Callable[..., Any],
    inputs: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    fast_mode: bool = False,
    nondet_tol: float = 0.0,
    reference: Callable[..., Any] | None = None,
) -> GradcheckReport:
    """Run the checks of ``gradcheck`` and say what was found instead of raising."""
    check = _Check(fn, _as_args(inputs), eps, atol, rtol, nondet_tol, reference)
    try:
        check.run(fast_mode)
    except _Failed as failure:
        return GradcheckReport(False, failure.max_abs_error, str(failure), check.functions)
    finally:
        check.restore()
    mode = "fast mode, " if fast_mode else ""
    message = (
        f"gradcheck passed for {check.graph_names()}: {len(check.wrt)} input(s), {len(check.outputs)} output(s), "
        f"{mode}max |analytic - numerical| = {check.max_abs_error:.3g}"
    )
    return GradcheckReport(True, check.max_abs_error, message, check.functions)


def _as_args(inputs: Any) -> tuple[Any, ...]:
    if isinstance(inputs, Tensor):
        return (inputs,)
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs)
    raise TypeError(f"gradcheck: inputs must be a Tensor or a tuple of arguments, got {type(inputs).__name__}")


def _as_outputs(result: Any, who: str) -> tuple[Tensor, ...]:
    outputs = result if isinstance(result, (tuple, list)) else (result,)
    for k, out in enumerate(outputs):
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: {who} must return a Tensor or a tuple of Tensors; output {k} is {type(out).__name__}")
    return tuple(outputs)


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for side in reversed(shape):
        flat, rest = divmod(flat, side)
        index.append(rest)
    return tuple(reversed(index))


def _text(index: tuple[int, ...]) -> str:
    return f"[{', '.join(map(str, index))}]" if index else ""


def _problem_with(grad: Any, shape: tuple[int, ...], dtype: Any, xp: Any) -> str | None:
    """Why `grad` cannot be the gradient of an input with this shape and dtype on this array module, if it can't."""
    if not hasattr(grad, "dtype") or not hasattr(grad, "shape"):
        return f"a {type(grad).__name__}, not an array"
    if backend.get_array_module(grad) is not xp:
        return f"a gradient from {backend.get_array_module(grad).__name__} for an input held by {xp.__name__}"
    if grad.dtype.kind != "f":
        return f"a {grad.dtype} gradient for a {dtype} input"
    if backend.result_type(grad.dtype, dtype) != grad.dtype:
        return f"a {grad.dtype} gradient for a {dtype} input (precision lost)"
    lead = grad.ndim - len(shape)
    if lead < 0 or any(s != 1 and s != g for s, g in zip(shape, grad.shape[lead:])):
        return f"a gradient of shape {tuple(grad.shape)} for an input of shape {shape}"
    return None


def _checked_inputs(args: tuple[Any, ...]) -> list[int]:
    """Positions of the Tensors that require grad; refuses what finite differences cannot check."""
    wrt = [k for k, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
    for k in wrt:
        if args[k].dtype != backend.float64:
            raise TypeError(
                f"gradcheck: input {k} has dtype {args[k].dtype}; finite differences need float64 — "
                "pass tensors made with dtype=mq.float64"
            )
    if not wrt:
        nested = [k for k, a in enumerate(args)
                  if isinstance(a, (list, tuple)) and any(isinstance(t, Tensor) and t.requires_grad for t in a)]
        if nested:
            raise ValueError(
                f"gradcheck: argument(s) {nested} hold Tensors inside a list or tuple; pass the Tensors to check "
                "as separate arguments (say fn=lambda *ts: cat(ts[:-1], ts[-1]))"
            )
        raise ValueError("gradcheck: no input requires grad; make the tensors to check with requires_grad=True")
    return wrt


class _Check:
    """One gradcheck: the graph of fn at the inputs, and the checks run on it (the first failure stops it)."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], eps: float, atol: float, rtol: float,
                 nondet_tol: float, reference: Callable[..., Any] | None):
        self.fn, self.args, self.eps, self.atol, self.rtol = fn, args, eps, atol, rtol
        self.nondet_tol, self.reference = nondet_tol, reference
        self.wrt = _checked_inputs(args)
        # Fresh leaves sharing the inputs' arrays (and strides): the caller's tensors and .grad stay untouched.
        self.leaves = {k: Tensor(args[k].data, requires_grad=True) for k in self.wrt}
        self.snapshots = {k: a.data.copy() for k, a in enumerate(args) if isinstance(a, Tensor)}
        self.functions: tuple[type, ...] = ()
        self.nodes: list[Function] = []
        self.outside_grads: list[tuple[Tensor, Any, Any]] = []
        self.outputs: dict[int, Tensor] = {}
        self.node_problem: str | None = None
        self.max_abs_error = 0.0

    # ------------------------------------------------------------ running
    def run(self, fast_mode: bool) -> None:
        with enable_grad():
            result = self.fn(*[self.leaves.get(k, a) for k, a in enumerate(self.args)])
        self.outputs = {k: o for k, o in enumerate(_as_outputs(result, "fn")) if o.dtype.kind == "f"}
        if not self.outputs:
            raise TypeError("gradcheck: fn returned no floating-point output; there is nothing to check")
        self._collect_graph()
        self._check_not_mutated("forward")
        for node in self.nodes:
            node.backward = self._checked(node, node.backward)  # type: ignore[method-assign]
        if fast_mode:
            self._check_directional()
        else:
            self._check_jacobian()
        self._check_not_mutated("backward")
        self._check_zero_upstream()
        self._check_repeatable()
        self._check_not_mutated("the numerical evaluations")

    def _collect_graph(self) -> None:
        nodes: dict[Function, None] = {}
        for out in self.outputs.values():
            if out.creator is not None:
                nodes.update(dict.fromkeys(topological_order(out.creator)))
        self.nodes = list(nodes)
        self.functions = tuple(dict.fromkeys(type(node) for node in self.nodes))
        # Leaves that fn reached on its own (not our inputs) get gradients too: put theirs back afterwards.
        ours = {id(leaf) for leaf in self.leaves.values()}
        outside = {id(e): e for n in self.nodes for e in n.next_edges if isinstance(e, Tensor) and id(e) not in ours}
        self.outside_grads = [(t, t.grad, None if t.grad is None else t.grad.data.copy()) for t in outside.values()]

    def restore(self) -> None:
        """Undo what checking did to the graph: wrapped backwards, gradients of leaves outside the inputs."""
        for node in self.nodes:
            node.__dict__.pop("backward", None)
        for tensor, grad, data in self.outside_grads:
            tensor.grad = grad
            if grad is not None:
                grad.data[...] = data

    def graph_names(self) -> str:
        names = [f.__name__ for f in self.functions]
        return ", ".join(names) if names else "fn (no op recorded)"

    def _fail(self, position: int | None, message: str, max_abs_error: float = math.nan) -> None:
        where = ""
        if position is not None:
            creator = self.outputs[position].creator
            where = f" (output {position} made by {creator.name if creator is not None else 'no op: it is an input'})"
        odd = [k for k, o in self.outputs.items() if o.dtype != backend.float64]
        hint = f"\n  note: output(s) {odd} are not float64, so finite differences lose precision" if odd else ""
        raise _Failed(f"gradcheck failed for {self.graph_names()}{where}: {message}{hint}", max_abs_error)

    # ------------------------------------------------------------ analytic side
    def _checked(self, node: Function, original: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap node.backward to check each gradient it returns against the input it is for."""

        def backward(*grad_outputs: Any) -> Any:
            result = original(*grad_outputs)
            for i, (grad, edge) in enumerate(zip(result if type(result) is tuple else (result,), node.next_edges)):
                if grad is None or edge is None:
                    continue
                if isinstance(edge, Tensor):
                    shape, dtype, xp = edge.shape, edge.dtype, edge.xp
                else:
                    (shape, dtype), xp = edge[0].output_meta[edge[1]], edge[0].xp
                problem = _problem_with(grad, shape, dtype, xp)
                if problem is not None and self.node_problem is None:
                    self.node_problem = f"{node.name}.backward, for its input {i}, returned {problem}"
            return result

        return backward

    def _backward(self, position: int, upstream: Any) -> list[Any]:
        """Gradients of every checked input (None: no gradient reached it) for one upstream gradient."""
        for leaf in self.leaves.values():
            leaf.grad = None
        out = self.outputs[position]
        if not out.requires_grad:
            return [None] * len(self.wrt)
        try:
            run_backward(out, Tensor(upstream), retain_graph=True)
        except Exception as error:  # noqa: BLE001  (any error in a backward is a failed check)
            self._fail(position, self.node_problem or f"backward raised {type(error).__name__}: {error}")
        if self.node_problem is not None:
            self._fail(position, self.node_problem)
        grads: list[Any] = []
        for k in self.wrt:
            leaf = self.leaves[k]
            grad = None if leaf.grad is None else leaf.grad.data
            if grad is not None and (grad.shape != leaf.shape or grad.dtype != leaf.dtype
                                     or backend.device_of(grad) != leaf.device):
                self._fail(
                    position,
                    f"the gradient of input {k} is {grad.dtype} {tuple(grad.shape)} on {backend.device_of(grad)}, "
                    f"but the input is {leaf.dtype} {leaf.shape} on {leaf.device}",
                )
            grads.append(None if grad is None else grad.copy())
        return grads

    def _check_jacobian(self) -> None:
        for position, out in self.outputs.items():
            xp, rows = out.xp, out.data.size
            analytic = [xp.zeros((rows, self.args[k].data.size), dtype=backend.float64) for k in self.wrt]
            for row in range(rows):
                one_hot = xp.zeros(rows, dtype=out.dtype)
                one_hot[row] = 1
                for jacobian, grad in zip(analytic, self._backward(position, one_hot.reshape(out.shape))):
                    if grad is not None:
                        jacobian[row] = grad.reshape(-1)
            if rows == 0:
                self._backward(position, xp.zeros(out.shape, dtype=out.dtype))  # still checks the gradients' shapes
            for jacobian, k in zip(analytic, self.wrt):
                self._compare(position, k, jacobian, self._numerical_jacobian(position, k))

    def _compare(self, position: int, k: int, analytic: Any, numerical: Any) -> None:
        if analytic.size == 0:
            return
        xp = backend.get_array_module(analytic)
        difference = xp.abs(analytic - numerical)
        allowed = self.atol + self.rtol * xp.abs(numerical)
        bad = ~(difference <= allowed)
        finite = difference[~xp.isnan(difference)]
        if finite.size:
            self.max_abs_error = max(self.max_abs_error, float(finite.max()))
        if not bool(bad.any()):
            return
        excess = xp.where(bad, xp.nan_to_num(difference - allowed, nan=math.inf), -math.inf)
        row, col = divmod(int(excess.argmax()), analytic.shape[1])
        out_index, in_index = _unravel(row, self.outputs[position].shape), _unravel(col, self.args[k].shape)
        self._fail(
            position,
            f"Jacobian mismatch for output {position} w.r.t. input {k} at element "
            f"d out{_text(out_index)} / d in{_text(in_index)}:\n"
            f"  numerical {float(numerical[row, col]):.6g}, analytic {float(analytic[row, col]):.6g}, "
            f"difference {float(difference[row, col]):.3g} (allowed {float(allowed[row, col]):.3g} = "
            f"atol {self.atol:g} + rtol {self.rtol:g} * |numerical|); {int(bad.sum())} of {bad.size} entries differ",
            self.max_abs_error if finite.size == difference.size else math.nan,
        )

    # ------------------------------------------------------------ numerical side
    def _evaluate(self, replaced: dict[int, Any]) -> dict[int, Any]:
        """float64 copies of the float outputs of reference-or-fn at the arguments, some arrays replaced."""
        target, who = (self.fn, "fn") if self.reference is None else (self.reference, "reference")
        args = [Tensor(replaced[k]) if k in replaced else (Tensor(a.data) if k in self.leaves else a)
                for k, a in enumerate(self.args)]
        with no_grad():
            outputs = _as_outputs(target(*args), who)
        if any(p >= len(outputs) or outputs[p].shape != out.shape for p, out in self.outputs.items()):
            self._fail(None, f"{who} returned outputs of shapes {[o.shape for o in outputs]} at the perturbed inputs; "
                             f"fn returned {[o.shape for o in self.outputs.values()]} at the inputs")
        return {p: outputs[p].data.astype(backend.float64) for p in self.outputs}

    def _numerical_jacobian(self, position: int, k: int) -> Any:
        base = self.args[k].data
        xp = backend.get_array_module(base)
        jacobian = xp.empty((self.outputs[position].data.size, base.size), dtype=backend.float64)
        work = base.copy()
        flat = work.reshape(-1)
        for col in range(base.size):
            value = flat[col].item()
            flat[col] = value + self.eps
            plus = self._evaluate({k: work})[position]
            flat[col] = value - self.eps
            minus = self._evaluate({k: work})[position]
            flat[col] = value
            jacobian[:, col] = (plus - minus).reshape(-1) / (2 * self.eps)
        return jacobian

    # ------------------------------------------------------------ fast mode
    def _random(self, like: Any, salt: int) -> Any:
        values = backend.array_module("cpu").random.default_rng(_SEED + salt).standard_normal(like.shape)
        return backend.asarray(values, dtype=like.dtype, device=backend.device_of(like))

    def _directional(self, directions: dict[int, Any], upstreams: dict[int, Any]) -> dict[int, float]:
        """v^T J u by central differences along u (one direction per moved input), for each output."""
        plus = self._evaluate({k: self.args[k].data + self.eps * u for k, u in directions.items()})
        minus = self._evaluate({k: self.args[k].data - self.eps * u for k, u in directions.items()})
        return {p: float((v * (plus[p] - minus[p])).sum()) / (2 * self.eps) for p, v in upstreams.items()}

    def _check_directional(self) -> None:
        directions = {k: self._random(self.args[k].data, k) for k in self.wrt}
        upstreams = {p: self._random(out.data, 1000 + p) for p, out in self.outputs.items()}
        numerical = self._directional(directions, {p: v.astype(backend.float64) for p, v in upstreams.items()})
        for position, v in upstreams.items():
            grads = self._backward(position, v)
            analytic = {k: float((g * directions[k]).sum()) if g is not None else 0.0 for k, g in zip(self.wrt, grads)}
            difference = abs(sum(analytic.values()) - numerical[position])
            self.max_abs_error = max(self.max_abs_error, difference)
            if difference <= self.atol + self.rtol * abs(numerical[position]):
                continue
            # Name the input: the same derivative with one input moved at a time; the worst one is reported.
            v64 = {position: v.astype(backend.float64)}
            per_input = {k: self._directional({k: directions[k]}, v64)[position] for k in self.wrt}
            k = max(self.wrt, key=lambda k: abs(analytic[k] - per_input[k]) - self.rtol * abs(per_input[k]))
            self._fail(
                position,
                f"directional derivative v^T J u mismatch for output {position} w.r.t. input {k} (random u, v):\n"
                f"  numerical {per_input[k]:.6g}, analytic {analytic[k]:.6g}, difference "
                f"{abs(analytic[k] - per_input[k]):.3g} (atol {self.atol:g}, rtol {self.rtol:g}); "
                "run with fast_mode=False to find the element",
                difference,
            )

    # ------------------------------------------------------------ other checks
    def _check_zero_upstream(self) -> None:
        for position, out in self.outputs.items():
            grads = self._backward(position, out.xp.zeros(out.shape, dtype=out.dtype))
            for k, grad in zip(self.wrt, grads):
                if grad is not None and bool((grad != 0).any()):
                    self._fail(
                        position,
                        f"a zero upstream gradient for output {position} gave a nonzero gradient for input {k} "
                        f"(max |grad| = {float(out.xp.abs(grad).max()):.3g}): does backward ignore its grad_output?",
                    )

    def _check_repeatable(self) -> None:
        for position, out in self.outputs.items():
            upstream = self._random(out.data, 2000 + position)
            kept = upstream.copy()
            first = self._backward(position, upstream)
            if not bool((upstream == kept).all()):
                self._fail(position, "backward modified the upstream gradient it was given in place")
            second = self._backward(position, upstream)
            for k, a, b in zip(self.wrt, first, second):
                if (a is None) != (b is None):
                    self._fail(position, f"input {k} got a gradient in one backward pass and none in the other")
                if a is None:
                    continue
                xp = backend.get_array_module(a)
                gap = xp.abs(a - b).reshape(-1)
                differ = ~(gap <= self.nondet_tol) & ~(xp.isnan(a) & xp.isnan(b)).reshape(-1)
                if bool(differ.any()):
                    where = int(xp.where(differ, gap, -1.0).argmax())
                    self._fail(
                        position,
                        f"backward is not reproducible: two passes with the same upstream gradient give input {k} "
                        f"gradients differing by {float(gap[where]):.3g} at in{_text(_unravel(where, a.shape))} "
                        f"(nondet_tol {self.nondet_tol:g})",
                    )

    def _check_not_mutated(self, during: str) -> None:
        for k, before in self.snapshots.items():
            now = self.args[k].data
            xp = backend.get_array_module(now)
            floating = now.dtype.kind in "fc"
            if now.shape != before.shape or not bool(xp.array_equal(now, before, equal_nan=True) if floating
                                                     else xp.array_equal(now, before)):
                self._fail(None, f"input {k} was modified in place during {during}")
