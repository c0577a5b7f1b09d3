"""In-place changes and autograd, with torch's semantics (issue 15, item 9 and "in-place arithmetic on
non-leaf tensors"): every in-place change counts in the tensor's version; a Function that saved a tensor
for its backward refuses it there if its version changed; arithmetic in place on a non-leaf tensor in
grad mode is recorded; on a leaf that requires grad it is refused."""

import numpy as np
import pytest

import minigrad_q as mq

CHANGED = "changed by an in-place operation: {} of {} is at version 1, and {} saved it at version 0"


def test_a_saved_input_changed_under_no_grad_is_refused_at_backward():
    w = mq.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    with mq.no_grad():
        w -= 1.0
    assert w.version == 1
    with pytest.raises(RuntimeError, match=CHANGED.format("input 0", "Mul", "Mul")):
        loss.backward()


def test_a_saved_output_changed_in_place_is_refused_at_backward():
    x = mq.tensor([0.5, -1.0], requires_grad=True)
    y = x.tanh()  # tanh saves its output
    with mq.no_grad():
        y.mul_(2.0)
    with pytest.raises(RuntimeError, match=CHANGED.format("output 0", "Tanh", "Tanh")):
        y.sum().backward()


def test_a_change_through_detach_counts_too():
    w = mq.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    w.detach().add_(1.0)  # detach shares the data, and so the version counter
    with pytest.raises(RuntimeError, match="input 0 of Mul is at version 1"):
        loss.backward()


def test_changes_that_no_backward_depends_on_are_fine():
    x = mq.tensor([1.0, 2.0], requires_grad=True)
    loss = (x + 1.0).sum()  # Add saves nothing
    with mq.no_grad():
        x += 5.0
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_in_place_arithmetic_on_a_non_leaf_is_recorded_as_torch_records_it():
    torch = pytest.importorskip("torch")
    values = [1.0, -2.0, 0.5]
    x, tx = mq.tensor(values, requires_grad=True, dtype=mq.float64), torch.tensor(values, requires_grad=True,
                                                                                dtype=torch.float64)
    results = []
    for leaf in (x, tx):
        c = leaf * 2
        c += c + 1
        c.mul_(leaf)  # the product rule through the recorded history
        c -= 3
        c.div_(2.0)
        c.sum().backward()
        results.append((c.detach().numpy(), leaf.grad.numpy()))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-15)


def test_in_place_arithmetic_on_a_leaf_that_requires_grad_is_refused():
    w = mq.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place add_ on a leaf tensor that requires grad"):
        w.add_(1.0)
    assert w.version == 0 and w.tolist() == [1.0]
