"""profile_step: the tape of one training step, for `minigrad-q bench --profile`."""

import pytest

import minigrad_q as mq
from minigrad_q.bench import profile_step


def test_profile_step_records_one_training_step_of_lenet5():
    tape = profile_step("lenet5", batch=4, warmup=0)
    forward = [(c.op, c.module) for c in tape.calls if c.phase == "forward"]
    # each ReLU + MaxPool2d pair runs pool first (nn.Sequential's pools_first)
    assert forward == [("Conv2d", "0"), ("MaxPool2d", "2"), ("Relu", "1"), ("Conv2d", "3"), ("MaxPool2d", "5"),
                       ("Relu", "4"), ("Reshape", "6"), ("Linear", "7"), ("Relu", "8"), ("Linear", "9"),
                       ("Relu", "10"), ("Linear", "11"), ("CrossEntropy", "")]
    assert tape.calls[0].input_shapes[0] == (4, 1, 28, 28)
    assert len(tape.calls) == 26  # every op's backward ran inside the block too
    assert "Conv2d" in tape.table(by="op")


def test_profile_step_takes_a_module_and_its_input_shape():
    model = mq.nn.Sequential(mq.nn.Flatten(), mq.nn.Linear(12, 3))
    tape = profile_step(model, batch=2, input_shape=(3, 2, 2), num_classes=3, warmup=0, stats=True)
    assert [c.op for c in tape.calls if c.phase == "forward"] == ["Reshape", "Linear", "CrossEntropy"]
    assert tape.calls[-1].grad_stats is not None
    with pytest.raises(ValueError, match="input_shape"):
        profile_step(model, batch=2)
