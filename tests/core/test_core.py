"""Tensor's own API: attributes, conversions, repr, leaf rules — as in torch."""

import numpy as np
import pytest

import minigrad_q as mq


def test_attributes(device):
    x = mq.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=device)
    assert x.shape == (2, 3) and x.ndim == 2 and x.dim() == 2
    assert x.size() == (2, 3) and x.size(1) == 3 and x.numel() == 6 and len(x) == 2
    assert x.dtype == mq.float32 and x.device.startswith(device)
    assert x.is_leaf and not x.requires_grad and x.grad is None and x.grad_fn is None
    assert x.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    np.testing.assert_array_equal(x.numpy(), [[1, 2, 3], [4, 5, 6]])


def test_item_and_python_scalars():
    x = mq.tensor([2.5])
    assert x.item() == 2.5 and float(x) == 2.5 and int(mq.tensor(3)) == 3
    with pytest.raises(ValueError, match=r"only one-element tensors.*shape \(2,\)"):
        mq.tensor([1.0, 2.0]).item()


def test_numpy_refuses_tensors_that_require_grad():
    x = mq.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"detach\(\)\.numpy\(\)"):
        x.numpy()
    np.testing.assert_array_equal(x.detach().numpy(), [1.0])


def test_detach_shares_data_and_leaves_the_graph():
    x = mq.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.data is y.data


def test_clone_is_a_differentiable_copy():
    x = mq.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert c.data is not x.data and not c.is_leaf
    (c * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_requires_grad_rules():
    with pytest.raises(RuntimeError, match="only floating point tensors can require gradients, got dtype int64"):
        mq.tensor([1, 2], requires_grad=True)
    x = mq.tensor([1.0]).requires_grad_()
    assert x.requires_grad
    y = x * 2
    with pytest.raises(RuntimeError, match="only be changed on leaf tensors"):
        y.requires_grad = False


def test_int_and_bool_results_carry_no_grad():
    x = mq.tensor([1.0, -1.0], requires_grad=True)
    assert not (x > 0).requires_grad and (x > 0).dtype == mq.bool_
    assert not x.argmax().requires_grad


def test_to_dtype_is_differentiable_and_grad_keeps_input_dtype():
    x = mq.tensor([1.0, 2.0], dtype=mq.float64, requires_grad=True)
    y = x.float()
    assert y.dtype == mq.float32
    (y * 2).sum().backward()
    assert x.grad.dtype == mq.float64
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])
    assert x.to(mq.float64) is x
    assert x.to("cpu") is x
    assert x.to("cpu", mq.float32).dtype == mq.float32


def test_zero_and_grad_reset():
    x = mq.tensor([1.0, 2.0], requires_grad=True)
    (x * 2).sum().backward()
    x.grad.zero_()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    x.grad = None
    assert x.grad is None


def test_repr_looks_like_torch():
    assert repr(mq.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(mq.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(mq.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert repr(mq.tensor([1.0], dtype=mq.float64)) == "tensor([1.], dtype=mq.float64)"
    y = mq.tensor([1.0], requires_grad=True) * 2
    assert repr(y) == "tensor([2.], grad_fn=<MulBackward>)"


def test_operators_match_numpy():
    a_np = np.array([[1.0, -2.0], [3.0, 4.0]], dtype=np.float32)
    b_np = np.array([0.5, 2.0], dtype=np.float32)
    a, b = mq.tensor(a_np), mq.tensor(b_np)
    for got, expected in [
        (a + b, a_np + b_np), (a - b, a_np - b_np), (a * b, a_np * b_np), (a / b, a_np / b_np),
        (2 - a, 2 - a_np), (2 / b, 2 / b_np), (a ** 2, a_np ** 2), (-a, -a_np), (abs(a), abs(a_np)),
        (a @ a, a_np @ a_np), (a.T, a_np.T), (a[0], a_np[0]), (np.float32(3) * a, 3 * a_np),
    ]:
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal((a > 0).numpy(), a_np > 0)
    np.testing.assert_array_equal((a == a).numpy(), np.ones((2, 2), bool))


def test_setitem_refuses_tensors_in_the_graph_but_works_under_no_grad():
    x = mq.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place assignment on a leaf tensor that requires grad"):
        x[0] = 5.0
    with mq.no_grad():
        x[0] = 5.0
    assert x.tolist() == [5.0, 2.0]


def test_truth_value_of_many_elements_is_ambiguous():
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(mq.tensor([1.0, 2.0]))


def test_inplace_arithmetic_outside_the_graph():
    w = mq.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place sub_ on a leaf tensor that requires grad"):
        w -= 1.0
    with mq.no_grad():
        data = w.data
        w -= mq.tensor([0.5, 0.5])
        w *= 2
        w.add_(1.0).div_(2.0)
    assert w.data is data and w.requires_grad and w.is_leaf
    np.testing.assert_allclose(w.detach().numpy(), [1.0, 2.0])  # ((w - 0.5) * 2 + 1) / 2
    w.detach().fill_(7.0)
    assert w.tolist() == [7.0, 7.0]


def test_repr_of_fractions_uses_four_fixed_decimals_like_torch():
    assert repr(mq.tensor([-0.9051, 0.0, 0.25])) == "tensor([-0.9051,  0.0000,  0.2500])"
    assert repr(mq.tensor(3.5)) == "tensor(3.5000)"
    assert repr(mq.zeros(0)) == "tensor([])"


def test_copy_takes_values_from_any_device(device):
    """torch's copy_ copies across devices: a cpu tensor, a NumPy array or a list into a tensor on `device`."""
    target = mq.zeros(3, device=device)
    with mq.no_grad():
        target.copy_(mq.tensor([1.0, 2.0, 3.0]))
        np.testing.assert_array_equal(mq.backend.asnumpy(target.data), [1.0, 2.0, 3.0])
        target.copy_(np.array([4.0, 5.0, 6.0], dtype=np.float32))
        np.testing.assert_array_equal(mq.backend.asnumpy(target.data), [4.0, 5.0, 6.0])
        target.copy_([7.0, 8.0, 9.0])
        target.copy_(target[0:1] * 0 + 2.5)  # broadcast from the same device
    assert target.device == mq.backend.parse_device(device) and target.tolist() == [2.5, 2.5, 2.5]
