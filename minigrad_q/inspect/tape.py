"""The tape: a record of every Function call in a block, forward and backward, with gradient statistics.

    with mq.inspect.record() as tape:
        loss = cross_entropy(model(images), labels)
        loss.backward()
    print(tape.table(by="op"))

Each forward call gives a ``CallRecord``: the op (its Function class name), the
module path it ran under ("features.3"; "" outside any module and in the
top-level module itself), the shapes and dtypes of its Tensor inputs and
outputs, and its wall time. Each node's backward, when backward runs inside the
block, gives a record too, with the statistics (``STAT_NAMES``) of the gradients
that flow into the op's outputs and out to its Tensor inputs. Times on a GPU
are taken with the stream synchronised before and after, so they are the op's
own time (and the run is slower than an unrecorded one).

How: ``record()`` sets ``minigrad_q.core.state.recorder``; ``Function.apply``, the
engine's backward loop and ``Module.__call__`` check it once per call and, when
it is set, let it time the call (Module.__call__ keeps the module-path stack).
When it is None (outside the block) nothing else happens: no hooks are
installed, and the block leaves nothing behind. Blocks cannot be nested.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import backend
from ..core import Function, Tensor, state, sum_to_shape
from .text_table import format_table

__all__ = ["CallRecord", "STAT_NAMES", "Tape", "gradient_statistics", "record"]

_CPU = backend.array_module("cpu")
STAT_NAMES = ("norm", "mean", "std", "min", "max", "zero_fraction", "nan_count", "inf_count")
"""Per gradient g with n elements: ‖g‖₂, mean, std (population, ddof 0), min, max, #(g == 0)/n,
#NaN, #±inf; in float64. NaN and inf propagate into norm, mean, std, min and max."""


@dataclass
class CallRecord:
    """One Function call. phase "forward" or "backward"; shapes and dtypes are those of the op's
    Tensor inputs and its outputs (the same in both phases); seconds is wall time; grad_stats (backward
    only, when statistics are on) is {"grad_outputs": [...], "grad_inputs": [...]}, one
    {stat name: value} dict per output / Tensor input, None where no gradient flows;
    forward_index: the index of the forward record of this call (backward records)."""

    index: int
    op: str
    module: str
    phase: str
    input_shapes: list[tuple[int, ...]]
    input_dtypes: list[str]
    output_shapes: list[tuple[int, ...]]
    output_dtypes: list[str]
    seconds: float
    grad_stats: dict[str, list[dict[str, float] | None]] | None = None
    forward_index: int | None = None


@dataclass
class Tape:
    """What a ``record()`` block saw: ``calls`` in the order they ran, ``seconds`` the block's wall time."""

    calls: list[CallRecord] = field(default_factory=list)
    seconds: float = 0.0

    def table(self, by: str | None = None) -> str:
        """A text table: one row per call (by=None), or per op type (by="op", slowest first) or per module
        path (by="module", in order of first use) with calls and milliseconds, forward and backward."""
        if by is None:
            return format_table(_CALL_HEADER, [_call_row(call) for call in self.calls], right=(True,))
        if by not in ("op", "module"):
            raise ValueError(f'Tape.table: by must be None, "op" or "module", got {by!r}')
        totals: dict[str, list[float]] = {}  # key -> [forward calls, forward s, backward calls, backward s]
        for call in self.calls:
            entry = totals.setdefault(call.op if by == "op" else call.module or "(top level)", [0, 0.0, 0, 0.0])
            slot = 0 if call.phase == "forward" else 2
            entry[slot] += 1
            entry[slot + 1] += call.seconds
        keys = sorted(totals, key=lambda k: -(totals[k][1] + totals[k][3])) if by == "op" else list(totals)
        op_seconds = sum(call.seconds for call in self.calls)
        rows = [_total_row(key, totals[key], op_seconds) for key in keys]
        rows.append(_total_row("all ops", [sum(totals[k][i] for k in keys) for i in range(4)], op_seconds))
        text = format_table([by, "fwd calls", "fwd ms", "bwd calls", "bwd ms", "total ms", "share"], rows,
                       right=(False, True, True, True, True, True, True))
        if self.seconds > 0:
            text += (f"\nops: {op_seconds * 1e3:.3f} ms of the block's {self.seconds * 1e3:.3f} ms "
                     "(the rest: Python, the engine, statistics, and work outside Functions)")
        return text

    def to_json(self) -> str:
        """{"seconds": ..., "calls": [record, ...]} as JSON; non-finite statistics are written as null."""
        return json.dumps({"seconds": self.seconds, "calls": [_finite(asdict(call)) for call in self.calls]})

    def to_csv(self) -> str:
        """One row per call; shapes as 2x3, lists joined with ";"; one column per statistic for the
        gradients of the outputs (grad_output_*) and inputs (grad_input_*), joined with ";" (empty: none)."""
        stat_columns = [f"grad_{side}_{name}" for side in ("output", "input") for name in STAT_NAMES]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["index", "phase", "op", "module", "input_shapes", "input_dtypes", "output_shapes",
                         "output_dtypes", "seconds", "forward_index", *stat_columns])
        for call in self.calls:
            stats = call.grad_stats or {}
            cells = [";".join("" if s is None else repr(s[name]) for s in stats.get(f"grad_{side}s", []))
                     for side in ("output", "input") for name in STAT_NAMES]
            writer.writerow([call.index, call.phase, call.op, call.module, _shapes(call.input_shapes),
                             ";".join(call.input_dtypes), _shapes(call.output_shapes), ";".join(call.output_dtypes),
                             repr(call.seconds), "" if call.forward_index is None else call.forward_index, *cells])
        return buffer.getvalue()


@contextlib.contextmanager
def record(stats: bool = True) -> Iterator[Tape]:
    """Record every Function call inside the block into the yielded Tape (see the module docstring).

    stats=False skips the gradient statistics (times only, as a profiler wants). The
    statistics are computed on the gradients' device and read back when the block ends.
    Nesting record() blocks is an error.
    """
    if state.recorder is not None:
        raise RuntimeError("inspect.record(): a record() block is already active; blocks cannot be nested")
    tape = Tape()
    recorder = _Recorder(tape, stats)
    state.recorder = recorder
    start = time.perf_counter()
    try:
        yield tape
    finally:
        state.recorder = None
        tape.seconds = time.perf_counter() - start
        recorder.finish()


class _Recorder:
    """Set as state.recorder inside a record() block: Function.apply, the engine and Module.__call__
    call its forward / backward / enter_module / exit_module."""

    def __init__(self, tape: Tape, stats: bool):
        self.tape = tape
        self.stats = stats
        self.module_stack: list[tuple[Any, str]] = []  # (module, its path) of the calls in progress
        self.forward_records: weakref.WeakKeyDictionary[Function, tuple[int, tuple[int, ...]]] = (
            weakref.WeakKeyDictionary())  # Function -> (its forward record, positions of its Tensor args)
        self.pending: list[tuple[CallRecord, list[Any], list[Any]]] = []  # statistics still on the device

    def enter_module(self, module: Any) -> None:
        path = ""
        if self.module_stack:
            parent, parent_path = self.module_stack[-1]
            name = next((n for n, child in parent._modules.items() if child is module), type(module).__name__)
            path = f"{parent_path}.{name}" if parent_path else name
        self.module_stack.append((module, path))

    def exit_module(self) -> None:
        self.module_stack.pop()

    def forward(self, cls: type[Function], args: tuple[Any, ...]) -> Any:
        """Run ``cls.apply(*args)`` with recording switched off for the call itself, timed."""
        positions = tuple(i for i, arg in enumerate(args) if isinstance(arg, Tensor))
        device_array = args[positions[0]].data if positions else None
        state.recorder = None
        try:
            _synchronize(device_array)
            start = time.perf_counter()
            out = cls.apply(*args)
            _synchronize(device_array)
            seconds = time.perf_counter() - start
        finally:
            state.recorder = self
        outputs = out if type(out) is tuple else (out,)
        call = CallRecord(
            index=len(self.tape.calls), op=cls.__name__,
            module=self.module_stack[-1][1] if self.module_stack else "", phase="forward",
            input_shapes=[args[i].shape for i in positions], input_dtypes=[str(args[i].dtype) for i in positions],
            output_shapes=[o.shape for o in outputs], output_dtypes=[str(o.dtype) for o in outputs], seconds=seconds,
        )
        self.tape.calls.append(call)
        creator = next((o.creator for o in outputs if o.creator is not None), None)
        if creator is not None:
            self.forward_records[creator] = (call.index, positions)
        return out

    def backward(self, node: Function, grads: list[Any]) -> Any:
        """Run ``node.backward(*grads)``, timed; keep the statistics of `grads` and of the input gradients."""
        _synchronize(grads[0])
        start = time.perf_counter()
        input_grads = node.backward(*grads)
        _synchronize(grads[0])
        seconds = time.perf_counter() - start
        known = self.forward_records.get(node)
        forward = self.tape.calls[known[0]] if known is not None else None
        positions = known[1] if known is not None else tuple(i for i, e in enumerate(node.next_edges) if e is not None)
        call = CallRecord(
            index=len(self.tape.calls), op=node.name, module=forward.module if forward else "", phase="backward",
            input_shapes=forward.input_shapes if forward else [_edge_shape(node.next_edges[i]) for i in positions],
            input_dtypes=forward.input_dtypes if forward else [str(_edge_dtype(node.next_edges[i])) for i in positions],
            output_shapes=[shape for shape, _ in node.output_meta],
            output_dtypes=[str(dtype) for _, dtype in node.output_meta],
            seconds=seconds, forward_index=forward.index if forward else None,
        )
        self.tape.calls.append(call)
        if self.stats:
            returned = input_grads if type(input_grads) is tuple else (input_grads,)
            self.pending.append((call, [_statistics_on_device(g) for g in grads],
                                 [self._input_statistics(node, returned, i) for i in positions]))
        return input_grads

    @staticmethod
    def _input_statistics(node: Function, returned: tuple[Any, ...], i: int) -> Any:
        """Statistics of the gradient input `i` receives (summed back to its shape), None if it gets none."""
        edge = node.next_edges[i] if i < len(node.next_edges) else None
        grad = returned[i] if i < len(returned) else None
        if edge is None or grad is None:
            return None
        shape = _edge_shape(edge)
        return _statistics_on_device(grad if grad.shape == shape else sum_to_shape(node, i, grad, shape))

    def finish(self) -> None:
        """Read the statistics back (one transfer per gradient) and drop every reference to the graph."""
        for call, outputs, inputs in self.pending:
            call.grad_stats = {"grad_outputs": [_read(s) for s in outputs], "grad_inputs": [_read(s) for s in inputs]}
        self.pending.clear()
        self.forward_records.clear()
        self.module_stack.clear()


# ---------------------------------------------------------------- statistics
def _statistics_on_device(grad: Any) -> Any:
    """The STAT_NAMES of array `grad` as one float64 array on its device (no host transfer)."""
    xp = backend.get_array_module(grad)
    if grad.size == 0:
        return xp.asarray([0.0, math.nan, math.nan, math.nan, math.nan, 0.0, 0.0, 0.0])
    g = grad.astype(backend.float64).reshape(-1)
    values = [xp.sqrt(xp.dot(g, g)), g.mean(), g.std(), g.min(), g.max(),
              xp.count_nonzero(g == 0) / g.size, xp.count_nonzero(xp.isnan(g)), xp.count_nonzero(xp.isinf(g))]
    return xp.stack([xp.asarray(v, dtype=backend.float64) for v in values])


def _read(statistics: Any) -> dict[str, float] | None:
    if statistics is None:
        return None
    values = backend.asnumpy(statistics).tolist()
    return {name: int(v) if name.endswith("_count") else v for name, v in zip(STAT_NAMES, values)}


def gradient_statistics(grad: Any) -> dict[str, float]:
    """The STAT_NAMES of a gradient (Tensor or array), as the tape computes them."""
    result = _read(_statistics_on_device(grad.data if isinstance(grad, Tensor) else grad))
    assert result is not None
    return result


def _synchronize(array: Any) -> None:
    """Wait for the GPU stream that `array` lives on (nothing on the CPU)."""
    if array is not None and type(array) is not backend.ndarray:
        xp = backend.get_array_module(array)
        if xp is not _CPU:
            xp.cuda.get_current_stream().synchronize()


def _edge_shape(edge: Any) -> tuple[int, ...]:
    return edge[0].output_meta[edge[1]][0] if type(edge) is tuple else edge.data.shape


def _edge_dtype(edge: Any) -> Any:
    return edge[0].output_meta[edge[1]][1] if type(edge) is tuple else edge.data.dtype


# ---------------------------------------------------------------- text
_CALL_HEADER = ["#", "phase", "op", "module", "input shapes", "output shapes", "dtype", "ms", "|grad out|", "|grad in|"]


def _shapes(shapes: Sequence[tuple[int, ...]]) -> str:
    return ";".join("x".join(map(str, shape)) or "scalar" for shape in shapes)


def _norms(stats: Sequence[dict[str, float] | None]) -> str:
    return ", ".join("-" if s is None else f"{s['norm']:.4g}" for s in stats)


def _call_row(call: CallRecord) -> list[str]:
    stats = call.grad_stats or {}
    dtypes = ", ".join(dict.fromkeys(call.output_dtypes))
    return [str(call.index), call.phase, call.op, call.module or "-", _shapes(call.input_shapes).replace(";", ", "),
            _shapes(call.output_shapes).replace(";", ", "), dtypes, f"{call.seconds * 1e3:.3f}",
            _norms(stats.get("grad_outputs", [])), _norms(stats.get("grad_inputs", []))]


def _total_row(key: str, entry: Sequence[float], op_seconds: float) -> list[str]:
    total = entry[1] + entry[3]
    share = f"{total / op_seconds:.1%}" if op_seconds > 0 else "-"
    return [key, str(int(entry[0])), f"{entry[1] * 1e3:.3f}", str(int(entry[2])), f"{entry[3] * 1e3:.3f}",
            f"{total * 1e3:.3f}", share]


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (JSON has no NaN or inf)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ---------------------------------------------------------------- profiling
