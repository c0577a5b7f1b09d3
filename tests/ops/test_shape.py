"""Shape ops: forward against NumPy, gradients against hand-written NumPy results, views, errors."""

import numpy as np
import pytest

import minigrad_q as mq


def values(shape):
    """Distinct, easy-to-read float64 values 0, 1, 2, ... in `shape`."""
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)


def leaf(array, device):
    return mq.tensor(array, device=device, requires_grad=True)


def grad_of(fn, array, grad_output, device):
    """d(sum(fn(x) * grad_output))/dx, through fn's backward."""
    x = leaf(array, device)
    y = fn(x)
    y.backward(mq.tensor(grad_output, device=device))
    return x.grad.numpy()


def shares_memory(a, b):
    return bool(a.xp.shares_memory(a.data, b.data))


# ---------------------------------------------------------------- reshape / view
@pytest.mark.parametrize("shape, target, expected", [
    ((2, 3), (3, 2), (3, 2)),
    ((2, 3), (-1,), (6,)),
    ((2, 3, 4), (4, -1), (4, 6)),
    ((6,), (1, 2, 1, 3), (1, 2, 1, 3)),
    ((1,), (), ()),
    ((0, 3), (3, 0), (3, 0)),
])
def test_reshape_forward_matches_numpy(device, shape, target, expected):
    x = mq.tensor(values(shape), device=device)
    y = mq.reshape(x, target)
    assert y.shape == expected
    np.testing.assert_array_equal(y.numpy(), values(shape).reshape(expected))


def test_reshape_and_view_methods_accept_varargs_and_tuples(device):
    x = mq.tensor(values((2, 6)), device=device)
    assert x.reshape(3, 4).shape == (3, 4)
    assert x.reshape((4, 3)).shape == (4, 3)
    assert x.view(-1, 2).shape == (6, 2)
    assert mq.view(x, (12,)).shape == (12,)


def test_reshape_of_contiguous_tensor_is_a_view(device):
    x = mq.tensor(values((2, 6)), device=device)
    assert shares_memory(x.reshape(3, 4), x)


def test_reshape_gradient_is_gradient_reshaped_back(device):
    grad_output = values((3, 2)) * 10 + 1
    g = grad_of(lambda x: x.reshape(3, 2), values((2, 3)), grad_output, device)
    np.testing.assert_array_equal(g, grad_output.reshape(2, 3))


def test_reshape_of_non_contiguous_input(device):
    base = values((3, 4))
    x = leaf(base, device)
    y = x.T.reshape(2, 6)  # x.T is a strided view; reshape must copy in row-major order of x.T
    np.testing.assert_array_equal(y.detach().numpy(), base.T.reshape(2, 6))
    grad_output = values((2, 6))
    y.backward(mq.tensor(grad_output, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), grad_output.reshape(4, 3).T)


def test_reshape_errors_name_the_shapes():
    x = mq.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"reshape: cannot reshape tensor of shape \(2, 3\) \(6 elements\) into \(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(RuntimeError, match=r"reshape: cannot reshape .* into \(4, -1\)"):
        x.reshape(4, -1)
    with pytest.raises(RuntimeError, match=r"reshape: invalid shape \(-1, -1\).*at most one -1"):
        x.reshape(-1, -1)
    with pytest.raises(RuntimeError, match=r"reshape: invalid shape \(-2, -3\)"):
        x.reshape(-2, -3)
    with pytest.raises(RuntimeError, match=r"reshape: .*\(0, -1\).*ambiguous"):
        mq.zeros(0, 3).reshape(0, -1)
    with pytest.raises(TypeError, match=r"reshape: expected a shape of ints"):
        x.reshape(2.0, 3)


# ---------------------------------------------------------------- flatten / squeeze / unsqueeze
@pytest.mark.parametrize("shape, start, end, expected", [
    ((2, 3, 4), 0, -1, (24,)),
    ((2, 3, 4), 1, -1, (2, 12)),
    ((2, 3, 4), 0, 1, (6, 4)),
    ((2, 3, 4), -2, -2, (2, 3, 4)),
    ((), 0, -1, (1,)),
])
def test_flatten_shapes(device, shape, start, end, expected):
    y = mq.flatten(mq.tensor(values(shape), device=device), start, end)
    assert y.shape == expected
    np.testing.assert_array_equal(y.numpy(), values(shape).reshape(expected))


def test_flatten_gradient_and_errors(device):
    grad_output = values((2, 12)) + 1
    g = grad_of(lambda x: x.flatten(1), values((2, 3, 4)), grad_output, device)
    np.testing.assert_array_equal(g, grad_output.reshape(2, 3, 4))
    with pytest.raises(ValueError, match=r"flatten: start_dim 2 comes after end_dim 1 .*\(2, 3, 4\)"):
        mq.flatten(mq.zeros(2, 3, 4), 2, 1)
    with pytest.raises(IndexError, match=r"flatten: dimension 3 is out of range for a tensor of 3 dims"):
        mq.flatten(mq.zeros(2, 3, 4), 3)


@pytest.mark.parametrize("dim, expected", [
    (None, (3, 4)),
    (0, (3, 1, 4)),
    (-2, (1, 3, 4)),
    ((0, 2), (3, 4)),
    (1, (1, 3, 1, 4)),  # dim 1 has size 3: a no-op, like torch
])
def test_squeeze_shapes(device, dim, expected):
    x = mq.tensor(values((1, 3, 1, 4)), device=device)
    y = x.squeeze(dim)
    assert y.shape == expected
    np.testing.assert_array_equal(y.numpy(), values((1, 3, 1, 4)).reshape(expected))


def test_squeeze_gradient_and_errors(device):
    grad_output = values((3, 4)) - 5
    g = grad_of(lambda x: x.squeeze(), values((1, 3, 1, 4)), grad_output, device)
    np.testing.assert_array_equal(g, grad_output.reshape(1, 3, 1, 4))
    with pytest.raises(IndexError, match=r"squeeze: dimension 4 is out of range for a tensor of 4 dims \(expected -4..3\)"):
        mq.zeros(1, 3, 1, 4).squeeze(4)
    assert mq.tensor(2.0).squeeze(0).shape == ()


@pytest.mark.parametrize("dim, expected", [(0, (1, 2, 3)), (1, (2, 1, 3)), (2, (2, 3, 1)), (-1, (2, 3, 1)), (-3, (1, 2, 3))])
def test_unsqueeze_shapes(device, dim, expected):
    y = mq.tensor(values((2, 3)), device=device).unsqueeze(dim)
    assert y.shape == expected
    np.testing.assert_array_equal(y.numpy(), np.expand_dims(values((2, 3)), dim))


def test_unsqueeze_gradient_and_errors(device):
    grad_output = values((2, 1, 3)) * 3
    g = grad_of(lambda x: x.unsqueeze(1), values((2, 3)), grad_output, device)
    np.testing.assert_array_equal(g, grad_output.reshape(2, 3))
    with pytest.raises(IndexError, match=r"unsqueeze: dimension 3 is out of range for a tensor of 3 dims"):
        mq.zeros(2, 3).unsqueeze(3)


# ---------------------------------------------------------------- transpose / permute / .T
def test_transpose_forward_gradient_and_view(device):
    base = values((2, 3, 4))
    x = leaf(base, device)
    y = x.transpose(0, -1)
    np.testing.assert_array_equal(y.detach().numpy(), base.swapaxes(0, 2))
    assert shares_memory(y, x)
    grad_output = values((4, 3, 2)) + 7
    y.backward(mq.tensor(grad_output, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), grad_output.swapaxes(0, 2))


def test_permute_forward_and_gradient(device):
    base = values((2, 3, 4))
    np.testing.assert_array_equal(mq.tensor(base, device=device).permute(1, 2, 0).numpy(), base.transpose(1, 2, 0))
    grad_output = values((3, 4, 2)) * 2
    g = grad_of(lambda x: mq.permute(x, (1, 2, 0)), base, grad_output, device)
    np.testing.assert_array_equal(g, grad_output.transpose(2, 0, 1))  # the inverse permutation


def test_T_of_non_contiguous_input(device):
    base = values((3, 4, 5))
    x = leaf(base, device)
    sliced = x.transpose(0, 2)[::2]  # a strided, non-contiguous view, shape (3, 4, 3)
    y = sliced.T
    expected = base.transpose(2, 1, 0)[::2].T
    np.testing.assert_array_equal(y.detach().numpy(), expected)
    grad_output = values(expected.shape) + 1
    y.backward(mq.tensor(grad_output, device=device))
    want = np.zeros_like(base)
    want.transpose(2, 1, 0)[::2] = grad_output.T
    np.testing.assert_array_equal(x.grad.numpy(), want)


def test_transpose_of_1d_and_0d_is_identity(device):
    np.testing.assert_array_equal(mq.tensor([1.0, 2.0], device=device).transpose(0, -1).numpy(), [1.0, 2.0])
    assert mq.tensor(3.0, device=device).T.shape == ()


def test_permute_errors():
    x = mq.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"permute: dims \(0, 0\) are not a permutation of the 2 dims of shape \(2, 3\)"):
        x.permute(0, 0)
    with pytest.raises(RuntimeError, match=r"permute: got 3 dims \(0, 1, 2\) for a tensor of shape \(2, 3\)"):
        x.permute(0, 1, 2)
    with pytest.raises(IndexError, match=r"permute: dimension 2 is out of range for a tensor of 2 dims"):
        x.permute(0, 2)
    with pytest.raises(IndexError, match=r"transpose: dimension -3 is out of range for a tensor of 2 dims \(expected -2..1\)"):
        x.transpose(0, -3)
    with pytest.raises(TypeError, match=r"transpose: dim must be an int, got float"):
        x.transpose(0, 1.0)


@pytest.mark.parametrize("call", [
    lambda lib, x: x.reshape(4, 2),
    lambda lib, x: x.view(-1, -1),
    lambda lib, x: lib.reshape(x, (-2, 3)),
    lambda lib, x: lib.reshape(x[:0], (0, -1)),
    lambda lib, x: x.permute(1, 1),
    lambda lib, x: lib.permute(x, (1, 0, 2)),
], ids=["reshape", "view-two-minus-ones", "negative-size", "ambiguous", "permute-repeat", "permute-length"])
def test_shape_errors_have_torchs_type(call):
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError):
        call(torch, torch.zeros(2, 3))
    with pytest.raises(RuntimeError, match=r"(reshape|permute): "):
        call(mq, mq.zeros(2, 3))


# ---------------------------------------------------------------- expand / broadcast_to
@pytest.mark.parametrize("shape, sizes, expected", [
    ((3, 1), (3, 4), (3, 4)),
    ((3, 1), (-1, 4), (3, 4)),
    ((3, 1), (2, 3, 4), (2, 3, 4)),
    ((3,), (2, 2, -1), (2, 2, 3)),
    ((), (2, 3), (2, 3)),
    ((1, 2), (0, 2), (0, 2)),
])
def test_expand_forward_matches_numpy_broadcast(device, shape, sizes, expected):
    x = mq.tensor(values(shape), device=device)
    y = x.expand(*sizes)
    assert y.shape == expected
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(values(shape), expected))


def test_expand_is_a_view_and_its_gradient_sums_over_repeats(device):
    x = leaf(values((3, 1)), device)
    y = x.expand(2, 3, 4)
    assert shares_memory(y, x)
    grad_output = values((2, 3, 4))
    y.backward(mq.tensor(grad_output, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), grad_output.sum(axis=(0, 2)).reshape(3, 1))


def test_expand_backward_on_its_own():
    """The op's own backward reduces (the engine's un-broadcasting is not needed)."""
    x = leaf(values((1, 3)), "cpu")
    y = mq.expand(x, (4, 2, 3))
    grad_output = values((4, 2, 3))
    g = y.creator.backward(grad_output)
    np.testing.assert_array_equal(g, grad_output.sum(axis=(0, 1)).reshape(1, 3))
    assert y.creator.backward(values((1, 3))).shape == (1, 3)


def test_broadcast_to(device):
    base = values((4,))
    grad_output = values((3, 4))
    y = mq.broadcast_to(mq.tensor(base, device=device), (3, 4))
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(base, (3, 4)))
    g = grad_of(lambda x: x.broadcast_to((3, 4)), base, grad_output, device)
    np.testing.assert_array_equal(g, grad_output.sum(axis=0))


def test_expand_errors():
    x = mq.zeros(2, 3)
    with pytest.raises(ValueError, match=r"expand: cannot expand shape \(2, 3\) to \(4, 3\): dim 0 has size 2"):
        x.expand(4, 3)
    with pytest.raises(ValueError, match=r"expand: size -1 is not allowed for the new leading dim 0"):
        x.expand(-1, 2, 3)
    with pytest.raises(ValueError, match=r"expand: cannot expand shape \(2, 3\) to \(3,\): fewer dims"):
        x.expand(3)
    with pytest.raises(ValueError, match=r"expand: cannot expand shape \(2, 3\) to \(2, -2\)"):
        x.expand(2, -2)
