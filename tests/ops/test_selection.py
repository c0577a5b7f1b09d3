"""maximum, minimum, clamp, where: forward against NumPy, gradients to the picked input, PyTorch's
tie and bound conventions (pinned case by case), broadcasting, Python numbers, errors."""

import numpy as np
import pytest
from helpers import const, host, leaf

import minigrad_q as mq

rng = np.random.default_rng(0)


def backward_ones(y, device):
    y.backward(const(np.ones(y.shape), device, dtype=y.dtype))


# ---------------------------------------------------------------- maximum / minimum
@pytest.mark.parametrize("op, reference", [(mq.maximum, np.maximum), (mq.minimum, np.minimum)])
def test_maximum_minimum_forward_and_gradient_go_to_the_picked_input(device, op, reference):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)  # broadcast, no ties
    grad_output = rng.standard_normal((3, 4))
    ta, tb = leaf(a, device), leaf(b, device)
    y = op(ta, tb)
    np.testing.assert_array_equal(host(y), reference(a, b))
    y.backward(const(grad_output, device))
    picked_a = reference(a, b) == a
    assert ta.grad.shape == (3, 4) and tb.grad.shape == (4,)
    np.testing.assert_allclose(ta.grad.numpy(), grad_output * picked_a, rtol=1e-15)
    np.testing.assert_allclose(tb.grad.numpy(), (grad_output * ~picked_a).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("op", [mq.maximum, mq.minimum])
def test_ties_split_the_gradient_in_half(device, op):
    ta, tb = leaf([1.0, 2.0, 3.0, np.inf], device), leaf([1.0, 3.0, 2.0, np.inf], device)
    op(ta, tb).backward(const([4.0, 4.0, 4.0, 4.0], device))
    a_wins = [4.0, 0.0, 4.0] if op is mq.maximum else [0.0, 4.0, 0.0]
    np.testing.assert_array_equal(ta.grad.numpy(), [2.0] + a_wins[1:] + [2.0])
    np.testing.assert_array_equal(tb.grad.numpy(), [2.0] + [4.0 - g for g in a_wins[1:]] + [2.0])


@pytest.mark.parametrize("needs", [(True, False), (False, True)])
def test_maximum_computes_only_the_needed_gradient(device, needs):
    ta = mq.tensor([1.0, 2.0, 3.0], device=device, requires_grad=needs[0])
    tb = mq.tensor([1.0, 3.0, 2.0], device=device, requires_grad=needs[1])
    mq.maximum(ta, tb).backward(const([4.0, 4.0, 4.0], device))
    if needs[0]:
        np.testing.assert_array_equal(ta.grad.numpy(), [2.0, 0.0, 4.0])
        assert tb.grad is None
    else:
        np.testing.assert_array_equal(tb.grad.numpy(), [2.0, 4.0, 0.0])
        assert ta.grad is None


def test_maximum_with_a_number(device):
    t = leaf([-1.0, 0.0, 2.0], device)
    y = mq.maximum(t, 0.0)
    np.testing.assert_array_equal(host(y), [0.0, 0.0, 2.0])
    backward_ones(y, device)
    np.testing.assert_array_equal(t.grad.numpy(), [0.0, 0.5, 1.0])
    assert mq.minimum(const([1, 5], device), 3).dtype == mq.int64


# ---------------------------------------------------------------- clamp
def test_clamp_gradient_passes_inside_the_bounds_inclusive(device):
    t = leaf([-1.0, 0.0, 0.5, 1.0, 2.0], device)
    y = mq.clamp(t, 0.0, 1.0)
    np.testing.assert_array_equal(host(y), [0.0, 0.0, 0.5, 1.0, 1.0])
    backward_ones(y, device)
    np.testing.assert_array_equal(t.grad.numpy(), [0.0, 1.0, 1.0, 1.0, 0.0])


@pytest.mark.parametrize(
    "low, high, expected_y, expected_grad",
    [
        (0.0, None, [0.0, 0.0, 2.0], [0.0, 1.0, 1.0]),
        (None, 0.0, [-1.0, 0.0, 0.0], [1.0, 1.0, 0.0]),
        (0.0, 0.0, [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
        (1.0, 0.0, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),  # min > max: the result is max and x gets no gradient
    ],
)
def test_clamp_with_number_bounds(device, low, high, expected_y, expected_grad):
    t = leaf([-1.0, 0.0, 2.0], device)
    y = mq.clamp(t, low, high)
    np.testing.assert_array_equal(host(y), expected_y)
    backward_ones(y, device)
    np.testing.assert_array_equal(t.grad.numpy(), expected_grad)


def test_clamp_with_tensor_bounds_gives_the_bounds_gradients(device):
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 0.2, 0.7, 5.0])
    low = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 1.0, 1.0])
    high = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.5, 0.5])  # the last two have min > max
    tx, tl, th = leaf(x, device), leaf(low, device), leaf(high, device)
    y = mq.clamp(tx, tl, th)
    np.testing.assert_array_equal(host(y), np.minimum(np.maximum(x, low), high))
    backward_ones(y, device)
    np.testing.assert_array_equal(tx.grad.numpy(), [0, 1, 1, 1, 0, 1, 0, 0])  # min <= x <= max
    np.testing.assert_array_equal(tl.grad.numpy(), [1, 0, 0, 0, 0, 0, 0, 0])  # x < min < max
    np.testing.assert_array_equal(th.grad.numpy(), [0, 0, 0, 0, 1, 0, 1, 1])  # x > max or max < min


def test_clamp_with_one_tensor_bound_and_broadcasting(device):
    x = rng.standard_normal((3, 4))
    low = np.array([-0.5, 0.0, 0.5, 10.0])
    tx, tl = leaf(x, device), leaf(low, device)
    y = mq.clamp(tx, min=tl)
    np.testing.assert_array_equal(host(y), np.maximum(x, low))
    backward_ones(y, device)
    np.testing.assert_array_equal(tx.grad.numpy(), (x >= low) * 1.0)
    np.testing.assert_array_equal(tl.grad.numpy(), (x < low).sum(axis=0))
    th = leaf(low, device)
    tx.grad = None
    backward_ones(mq.clamp(tx, max=th), device)
    np.testing.assert_array_equal(tx.grad.numpy(), (x <= low) * 1.0)
    np.testing.assert_array_equal(th.grad.numpy(), (x > low).sum(axis=0))


def test_clamp_of_integers_and_promotion(device):
    t = const([-3, 0, 5], device)
    assert mq.clamp(t, 0, 2).dtype == mq.int64
    np.testing.assert_array_equal(mq.clamp(t, 0, 2).numpy(), [0, 0, 2])
    y = t.clamp(min=0.5)
    assert y.dtype == mq.float32
    np.testing.assert_array_equal(y.numpy(), [0.5, 0.5, 5.0])


def test_clamp_needs_a_bound(device):
    message = r"clamp: At least one of 'min' or 'max' must not be None \(input of shape \(1,\)\)"
    with pytest.raises(RuntimeError, match=message):
        mq.clamp(const([1.0], device))
    with pytest.raises(RuntimeError, match=message):
        mq.clip(const([1.0], device), None, None)
    with pytest.raises(RuntimeError, match=message):
        const([1.0], device).clamp()
    with pytest.raises(RuntimeError, match=message):
        const([1.0], device).clip(None, None)


def test_clip_is_clamp(device):
    np.testing.assert_array_equal(host(mq.clip(const([-2.0, 2.0], device), -1, 1)), [-1.0, 1.0])
    np.testing.assert_array_equal(host(const([-2.0, 2.0], device).clip(-1, 1)), [-1.0, 1.0])


# ---------------------------------------------------------------- where
def test_where_picks_and_routes_the_gradient(device):
    condition = np.array([[True, False, True], [False, False, True]])
    a, b = rng.standard_normal((2, 3)), rng.standard_normal(3)
    grad_output = rng.standard_normal((2, 3))
    ta, tb = leaf(a, device), leaf(b, device)
    y = mq.where(const(condition, device), ta, tb)
    np.testing.assert_array_equal(host(y), np.where(condition, a, b))
    y.backward(const(grad_output, device))
    np.testing.assert_array_equal(ta.grad.numpy(), np.where(condition, grad_output, 0))
    np.testing.assert_allclose(tb.grad.numpy(), np.where(condition, 0, grad_output).sum(axis=0), rtol=1e-15)


def test_where_with_numbers(device):
    condition = const([True, False], device)
    t = leaf([1.0, 2.0], device)
    y = mq.where(condition, t, 0.5)
    np.testing.assert_array_equal(host(y), [1.0, 0.5])
    backward_ones(y, device)
    np.testing.assert_array_equal(t.grad.numpy(), [1.0, 0.0])
    assert mq.where(condition, 1, 0).dtype == mq.int64
    assert mq.where(condition, 1.0, 0).dtype == mq.float32
    np.testing.assert_array_equal(mq.where(condition, 1.0, 0).numpy(), [1.0, 0.0])
    assert mq.where(condition, const([1, 2], device), 0.5).dtype == mq.float32


def test_where_condition_must_be_a_bool_tensor(device):
    t = const([1.0, -1.0], device)
    with pytest.raises(TypeError, match="where: expected condition to be a bool Tensor, got a float64 tensor"):
        mq.where(t, t, t)
    with pytest.raises(TypeError, match="where: expected condition to be a bool Tensor, got list"):
        mq.where([True, False], t, t)
    with pytest.raises(ValueError, match=r"where: shapes \(2,\) and \(2,\) and \(3,\) cannot be broadcast"):
        mq.where(t > 0, t, const([1.0, 2.0, 3.0], device))


# ---------------------------------------------------------------- against PyTorch, when installed
def test_clamp_and_maximum_gradients_match_torch():
    torch = pytest.importorskip("torch")
    values = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    x, low, high = np.repeat(values, 25), np.tile(np.repeat(values, 5), 5), np.tile(values, 25)  # every order
    ours = [leaf(v, "cpu") for v in (x, low, high)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (x, low, high)]
    for clamp, maximum, tensors in ((mq.clamp, mq.maximum, ours), (torch.clamp, torch.maximum, theirs)):
        (clamp(*tensors) * 3 + maximum(tensors[0], tensors[1]) * 5).backward(
            const(np.ones(125), "cpu") if tensors is ours else torch.ones(125, dtype=torch.float64)
        )
    for mine, reference in zip(ours, theirs):
        np.testing.assert_array_equal(mine.grad.numpy(), reference.grad.numpy())
