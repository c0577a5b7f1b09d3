"""The recording tape: which calls it sees, in what order, with which shapes, module paths and gradient
statistics; its tables and exports; that it leaves nothing behind."""

import csv
import gc
import io
import json
import math
import weakref

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import core
from minigrad_q.inspect.tape import STAT_NAMES, gradient_statistics, record
from minigrad_q.nn.functional import cross_entropy


def numpy_statistics(grad):
    """The tape's statistics written out in NumPy, straight from their definitions."""
    g = np.asarray(grad.detach().numpy() if isinstance(grad, mq.Tensor) else grad, dtype=np.float64).ravel()
    return {"norm": math.sqrt(float((g * g).sum())), "mean": g.mean(), "std": g.std(), "min": g.min(),
            "max": g.max(), "zero_fraction": float((g == 0).sum()) / g.size, "nan_count": int(np.isnan(g).sum()),
            "inf_count": int(np.isinf(g).sum())}


def assert_statistics_equal(recorded, expected):
    assert set(recorded) == set(STAT_NAMES)
    for name in STAT_NAMES:
        assert recorded[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-15, nan_ok=True), name


def small_network(device="cpu"):
    """Linear(4, 3) - ReLU - Linear(3, 2), in a module named "net" inside a wrapper (paths "net.0" ...)."""

    class Wrapper(mq.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mq.nn.Sequential(mq.nn.Linear(4, 3), mq.nn.ReLU(), mq.nn.Linear(3, 2))

        def forward(self, x):
            return self.net(x)

    return Wrapper().to(device)


def run_small_network(model, device="cpu"):
    x = mq.randn(5, 4, device=device)
    labels = mq.tensor([0, 1, 0, 1, 1], device=device)
    loss = cross_entropy(model(x), labels)
    loss.backward()
    return loss


# ---------------------------------------------------------------- what is recorded
def test_records_exactly_the_ops_of_a_known_network_in_order():
    model = small_network()
    with record() as tape:
        run_small_network(model)
    described = [(c.index, c.phase, c.op, c.module, c.input_shapes, c.output_shapes) for c in tape.calls]
    assert described == [
        (0, "forward", "Linear", "net.0", [(5, 4), (3, 4), (3,)], [(5, 3)]),
        (1, "forward", "Relu", "net.1", [(5, 3)], [(5, 3)]),
        (2, "forward", "Linear", "net.2", [(5, 3), (2, 3), (2,)], [(5, 2)]),
        (3, "forward", "CrossEntropy", "", [(5, 2), (5,)], [()]),
        (4, "backward", "CrossEntropy", "", [(5, 2), (5,)], [()]),
        (5, "backward", "Linear", "net.2", [(5, 3), (2, 3), (2,)], [(5, 2)]),
        (6, "backward", "Relu", "net.1", [(5, 3)], [(5, 3)]),
        (7, "backward", "Linear", "net.0", [(5, 4), (3, 4), (3,)], [(5, 3)]),
    ]
    assert [c.forward_index for c in tape.calls[4:]] == [3, 2, 1, 0]
    assert tape.calls[3].input_dtypes == ["float32", "int64"]
    assert all(c.output_dtypes == ["float32"] for c in tape.calls)
    assert all(c.seconds > 0 for c in tape.calls) and tape.seconds >= sum(c.seconds for c in tape.calls)
    assert all(c.grad_stats is None for c in tape.calls[:4])


def test_a_module_called_outside_its_parent_is_named_by_its_class():
    outer, stray = mq.nn.Sequential(mq.nn.ReLU()), mq.nn.Tanh()

    class Caller(mq.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = outer

        def forward(self, x):
            return stray(self.inner(x))  # `stray` is not a submodule of Caller

    with record() as tape:
        Caller()(mq.randn(2))
    assert [(c.op, c.module) for c in tape.calls] == [("Relu", "inner.0"), ("Tanh", "Tanh")]


def test_statistics_equal_those_computed_directly_from_the_gradients(device):
    model = small_network(device)
    x = mq.randn(5, 4, device=device, requires_grad=True)
    labels = mq.tensor([0, 1, 0, 1, 1], device=device)
    with record() as tape:
        hidden = model.net[0](x)
        hidden.retain_grad()
        activated = model.net[1](hidden)
        activated.retain_grad()
        logits = model.net[2](activated)
        logits.retain_grad()
        cross_entropy(logits, labels).backward()
    first, relu, last = model.net[0], tape.calls[6], tape.calls[5]
    assert (relu.op, last.op) == ("Relu", "Linear")
    assert_statistics_equal(last.grad_stats["grad_outputs"][0], numpy_statistics(logits.grad))
    for stats, grad in zip(last.grad_stats["grad_inputs"], (activated.grad, model.net[2].weight.grad, model.net[2].bias.grad)):
        assert_statistics_equal(stats, numpy_statistics(grad))
    assert_statistics_equal(relu.grad_stats["grad_inputs"][0], numpy_statistics(hidden.grad))
    assert relu.grad_stats["grad_inputs"][0]["zero_fraction"] > 0  # ReLU zeroes some gradients here
    for stats, grad in zip(tape.calls[7].grad_stats["grad_inputs"], (x.grad, first.weight.grad, first.bias.grad)):
        assert_statistics_equal(stats, numpy_statistics(grad))
    assert tape.calls[4].grad_stats["grad_inputs"][1] is None  # the integer labels get no gradient


def test_input_statistics_are_of_the_gradient_summed_back_to_the_input_shape():
    x = mq.randn(3, 4, requires_grad=True)
    bias = mq.randn(4, requires_grad=True)
    with record() as tape:
        shifted = x + bias
        (shifted * shifted).sum().backward()
    add = next(c for c in tape.calls if c.phase == "backward" and c.op == "Add")
    assert add.input_shapes == [(3, 4), (4,)]
    assert_statistics_equal(add.grad_stats["grad_inputs"][1], numpy_statistics(bias.grad))


def test_nan_and_inf_are_counted():
    x = mq.randn(6, requires_grad=True)
    weight = mq.tensor([1.0, 0.0, np.nan, np.inf, -np.inf, 0.0])
    with record() as tape:
        (x * weight).sum().backward()
    stats = next(c for c in tape.calls if c.phase == "backward" and c.op == "Mul").grad_stats["grad_inputs"][0]
    assert (stats["nan_count"], stats["inf_count"], stats["zero_fraction"]) == (1, 2, pytest.approx(2 / 6))
    assert math.isnan(stats["norm"])
    assert gradient_statistics(weight) == pytest.approx(stats, nan_ok=True)


def test_stats_false_records_times_only():
    with record(stats=False) as tape:
        run_small_network(small_network())
    backward = [c for c in tape.calls if c.phase == "backward"]
    assert len(backward) == 4 and all(c.grad_stats is None for c in backward)


def test_backward_of_a_graph_built_before_the_block_is_recorded_without_a_forward():
    x = mq.randn(3, requires_grad=True)
    y = (x * 2).tanh().sum()
    with record() as tape:
        y.backward()
    assert [(c.phase, c.op, c.module, c.forward_index) for c in tape.calls] == [
        ("backward", "Sum", "", None), ("backward", "Tanh", "", None), ("backward", "Mul", "", None)]
    assert tape.calls[2].input_shapes == [(3,)]
    assert_statistics_equal(tape.calls[2].grad_stats["grad_inputs"][0], numpy_statistics(x.grad))


# ---------------------------------------------------------------- switching off
def test_turning_recording_off_leaves_nothing_behind():
    model = small_network()
    hook_lists = [(m._forward_pre_hooks, m._forward_hooks, m._backward_hooks) for m in model.modules()]
    with record() as tape:
        loss = run_small_network(model)
        made_inside = weakref.ref(loss.creator)
    assert core.state.recorder is None
    assert [(m._forward_pre_hooks, m._forward_hooks, m._backward_hooks) for m in model.modules()] == hook_lists
    assert all(not any(lists) for lists in hook_lists)
    count = len(tape.calls)
    run_small_network(model)  # ops and backward after the block are not recorded
    assert len(tape.calls) == count
    del loss
    gc.collect()
    assert made_inside() is None  # the tape keeps no Function (hence no graph) alive


def test_an_error_inside_the_block_switches_recording_off():
    with pytest.raises(ValueError, match="boom"), record():
        mq.randn(2).exp()
        raise ValueError("boom")
    assert core.state.recorder is None
    with record() as tape:  # and a new block works
        mq.randn(2).exp()
    assert [c.op for c in tape.calls] == ["Exp"]


def test_record_blocks_cannot_be_nested():
    with record(), pytest.raises(RuntimeError, match="cannot be nested"), record():
        pass
    assert core.state.recorder is None


# ---------------------------------------------------------------- tables and exports
def test_table_per_call_and_aggregated():
    with record() as tape:
        run_small_network(small_network())
    per_call = tape.table().splitlines()
    assert len(per_call) == 2 + len(tape.calls) and "net.2" in per_call[4]
    by_op = tape.table(by="op").splitlines()
    linear = next(line for line in by_op if line.startswith("Linear"))
    assert [cell.strip() for cell in linear.split("|")][1:4:2] == ["2", "2"]  # forward and backward calls
    assert by_op[-2].startswith("all ops") and "ms of the block's" in by_op[-1]
    by_module = tape.table(by="module").splitlines()
    assert [line.split("|")[0].strip() for line in by_module[2:6]] == ["net.0", "net.1", "net.2", "(top level)"]
    with pytest.raises(ValueError, match='by must be None, "op" or "module"'):
        tape.table(by="layer")


def test_json_holds_every_call_and_no_nan():
    x = mq.randn(2, requires_grad=True)
    with record() as tape:
        (x * mq.tensor([np.nan, 1.0])).sum().backward()
    text = tape.to_json()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert [c["op"] for c in data["calls"]] == [c.op for c in tape.calls]
    mul = data["calls"][-1]
    assert mul["grad_stats"]["grad_inputs"][0]["norm"] is None and mul["grad_stats"]["grad_inputs"][0]["nan_count"] == 1
    assert mul["input_shapes"] == [[2], [2]]


def test_csv_has_one_row_per_call():
    with record() as tape:
        run_small_network(small_network())
    rows = list(csv.DictReader(io.StringIO(tape.to_csv())))
    assert [row["op"] for row in rows] == [c.op for c in tape.calls]
    last = rows[-1]  # the first Linear's backward: x needs no gradient, weight and bias do
    assert last["input_shapes"] == "5x4;3x4;3"
    norms = last["grad_input_norm"].split(";")
    assert norms[0] == "" and float(norms[1]) == pytest.approx(tape.calls[-1].grad_stats["grad_inputs"][1]["norm"])
