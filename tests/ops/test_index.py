"""Indexing and joining ops: forward against NumPy, gradients against hand-written NumPy results, errors."""

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q.ops import index as index_ops


def values(shape):
    """Distinct, easy-to-read float64 values 0, 1, 2, ... in `shape`."""
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)


def leaf(array, device):
    return mq.tensor(array, device=device, requires_grad=True)


def scatter_add_reference(shape, index, grad_output):
    """The gradient of x[index], accumulated with NumPy's unbuffered add (the test's reference)."""
    g = np.zeros(shape)
    np.add.at(g, index, grad_output)
    return g


# ---------------------------------------------------------------- getitem: forward
INDICES = [
    1,
    -1,
    (1, 2),
    slice(1, None),
    slice(None, None, -1),
    (slice(None, None, -2), slice(3, 0, -1)),
    (Ellipsis, 1),
    (None, Ellipsis, None),
    (1, None, slice(None, None, 2)),
    [2, 0, 2, 2],
    ([0, 0, 2], [1, 1, 3]),
    ([[0], [2]], [1, 1, 3]),            # index arrays broadcast to (2, 3)
    (slice(None), [3, 3, 0]),
    ([True, False, True],),
    (slice(None, None, -1), [False, True, True, False]),
    ([], slice(None)),
]


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_getitem_forward_matches_numpy(device, index):
    base = values((3, 4))
    y = mq.tensor(base, device=device)[index]
    np.testing.assert_array_equal(y.numpy(), base[index])


def test_getitem_with_tensor_indices(device):
    base = values((3, 4))
    x = mq.tensor(base, device=device)
    rows = mq.tensor([2, 0, 2], device=device)
    mask = mq.tensor(base > 4.5, device=device)
    np.testing.assert_array_equal(x[rows].numpy(), base[[2, 0, 2]])
    np.testing.assert_array_equal(x[mask].numpy(), base[base > 4.5])
    np.testing.assert_array_equal(x[rows, mq.tensor([1, 1, 0], device=device)].numpy(), base[[2, 0, 2], [1, 1, 0]])
    np.testing.assert_array_equal(x[mq.tensor(1, device=device)].numpy(), base[1])
    np.testing.assert_array_equal(x[np.int64(2), np.array([3, 0])].numpy(), base[2, [3, 0]])


def test_basic_indexing_is_a_view(device):
    x = mq.tensor(values((3, 4)), device=device)
    assert x.xp.shares_memory(x[1:, ::-2].data, x.data)
    assert x.xp.shares_memory(x[mq.tensor(1, device=device)].data, x.data)  # a 0-d index tensor acts as an int


def test_scalar_result_is_a_0d_tensor(device):
    y = mq.tensor(values((3, 4)), device=device)[1, 2]
    assert y.shape == () and y.item() == 6.0


# ---------------------------------------------------------------- getitem: gradients
def test_gradient_of_repeated_integer_indices_accumulates(device):
    x = leaf(values((3, 2)), device)
    y = x[[0, 2, 0, 0]]
    y.backward(mq.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]], device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [[13.0, 16.0], [0.0, 0.0], [3.0, 4.0]])


def test_gradient_of_repeated_pairs_of_index_arrays(device):
    x = leaf(values((2, 3)), device)
    y = x[[1, 1, 0, 1], [2, 2, 0, -1]]  # (1, 2) is read three times, once through -1
    y.backward(mq.tensor([1.0, 10.0, 100.0, 1000.0], device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [[100.0, 0.0, 0.0], [0.0, 0.0, 1011.0]])


@pytest.mark.parametrize("shape, index", [
    ((3, 4), (slice(None), [3, 3, 0])),
    ((3, 4), ([[0], [2]], [1, 1, 3])),
    ((3, 4, 4), ([2, 2], slice(None), [1, 1])),  # advanced indices split by a slice: their dims go first
    ((3, 4), (Ellipsis, None, [0, 0, 3])),
    ((3, 4), ([-1, 2, -1], slice(None, None, -1))),
], ids=repr)
def test_gradient_of_mixed_advanced_indices_matches_add_at(device, shape, index):
    x = leaf(values(shape), device)
    y = x[index]
    grad_output = values(y.shape) + 1
    y.backward(mq.tensor(grad_output, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), scatter_add_reference(shape, index, grad_output))


def test_gradient_of_bool_mask(device):
    base = values((3, 4))
    mask = base % 3 == 1
    x = leaf(base, device)
    y = x[mq.tensor(mask, device=device)]
    grad_output = np.arange(1.0, mask.sum() + 1)
    y.backward(mq.tensor(grad_output, device=device))
    expected = np.zeros((3, 4))
    expected[mask] = grad_output
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_gradient_of_none_and_ellipsis(device):
    x = leaf(values((2, 3, 4)), device)
    y = x[None, ..., 1, None]
    assert y.shape == (1, 2, 3, 1)
    grad_output = values((1, 2, 3, 1)) + 1
    y.backward(mq.tensor(grad_output, device=device))
    expected = np.zeros((2, 3, 4))
    expected[:, :, 1] = grad_output[0, :, :, 0]
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_gradient_of_negative_steps(device):
    x = leaf(values((5,)), device)
    y = x[::-2]  # reads x[4], x[2], x[0]
    y.backward(mq.tensor([1.0, 2.0, 3.0], device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 2.0, 0.0, 1.0])
    x2 = leaf(values((3, 4)), device)
    y2 = x2[2:0:-1, -1::-3]  # rows 2, 1; columns 3, 0
    y2.backward(mq.tensor([[1.0, 2.0], [3.0, 4.0]], device=device))
    np.testing.assert_array_equal(x2.grad.numpy(), [[0, 0, 0, 0], [4, 0, 0, 3], [2, 0, 0, 1]])


def test_gradient_keeps_float32(device):
    x = mq.tensor(values((4,)), dtype=mq.float32, device=device, requires_grad=True)
    y = x[[1, 1]]
    y.backward(mq.tensor([0.5, 0.25], dtype=mq.float32, device=device))
    assert x.grad.dtype == mq.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.array([0.0, 0.75, 0.0, 0.0], dtype=np.float32))


def test_empty_index_list_gives_zero_gradient(device):
    x = leaf(values((3, 2)), device)
    y = x[[]]
    assert y.shape == (0, 2)
    y.backward(mq.tensor(np.zeros((0, 2)), device=device))
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 2)))


# ---------------------------------------------------------------- getitem: errors
@pytest.mark.parametrize("index, message", [
    (3, r"getitem: invalid index 3 for a tensor of shape \(3, 4\): index 3 is out of bounds for axis 0"),
    ((0, -5), r"getitem: invalid index \(0, -5\) for a tensor of shape \(3, 4\)"),
    ([0, 7], r"getitem: invalid index \[0, 7\] for a tensor of shape \(3, 4\): index 7 is out of bounds"),
    ((0, 1, 2), r"getitem: invalid index \(0, 1, 2\) for a tensor of shape \(3, 4\): too many indices"),
    ([True, False], r"getitem: invalid index \[True, False\] for a tensor of shape \(3, 4\)"),
    (([0, 1], [0, 1, 2]), r"getitem: invalid index .* shape mismatch"),
    (slice(None, None, 0), r"getitem: invalid index slice\(None, None, 0\) .*step cannot be zero"),
])
def test_getitem_errors_name_op_index_and_shape(index, message):
    with pytest.raises(IndexError, match=message):
        mq.zeros(3, 4)[index]


def test_getitem_type_errors():
    x = mq.zeros(3, 4)
    with pytest.raises(TypeError, match=r"getitem: unsupported index 1.5 \(float\)"):
        x[1.5]
    with pytest.raises(TypeError, match=r"getitem: index arrays must be integer or bool, got dtype float64"):
        x[[0.0, 1.0]]
    with pytest.raises(TypeError, match=r"getitem: index arrays must be integer or bool, got dtype float32"):
        x[mq.tensor([0.0])]


@pytest.mark.parametrize("index, bad, axis, size", [
    ((0, np.array([1, 4])), 4, 1, 4),
    ((Ellipsis, np.array([-5])), -5, 1, 4),
    ((None, np.array([True, True, False]), np.array([9])), 9, 1, 4),
    ((np.array([3]),), 3, 0, 3),
])
def test_array_bounds_check_used_on_gpu(index, bad, axis, size):
    """CuPy wraps out-of-range integer arrays around, so getitem checks them itself there."""
    x = mq.zeros(3, 4)
    prepared = index_ops._prepare_index(x, index)
    with pytest.raises(IndexError, match=rf"getitem: .* index {bad} is out of bounds for axis {axis} with size {size}"):
        index_ops._check_array_bounds(x, index, prepared)
    index_ops._check_array_bounds(x, (0, np.array([0, 3, -4])), index_ops._prepare_index(x, (0, np.array([0, 3, -4]))))


# ---------------------------------------------------------------- cat / stack
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_forward_and_gradient_slices(device, dim):
    parts = [values((2, 3)), values((2, 3)) + 10, values((2, 3)) - 10]
    tensors = [leaf(p, device) for p in parts]
    y = mq.cat(tensors, dim)
    np.testing.assert_array_equal(y.detach().numpy(), np.concatenate(parts, axis=dim))
    grad_output = values(y.shape) * 3 + 1
    y.backward(mq.tensor(grad_output, device=device))
    for t, expected in zip(tensors, np.split(grad_output, 3, axis=dim)):
        np.testing.assert_array_equal(t.grad.numpy(), expected)


def test_cat_of_unequal_sizes_promotes_dtype_and_skips_inputs_without_grad(device):
    a = mq.tensor(values((1, 2)), dtype=mq.float32, device=device, requires_grad=True)
    b = mq.tensor(values((3, 2)), device=device)  # float64, no grad
    c = mq.tensor(np.zeros((0, 2)), device=device, requires_grad=True)
    y = mq.cat([a, b, c])
    assert y.dtype == mq.float64 and y.shape == (4, 2)
    y.backward(mq.tensor(values((4, 2)), device=device))
    assert a.grad.dtype == mq.float32
    np.testing.assert_array_equal(a.grad.numpy(), [[0.0, 1.0]])
    assert b.grad is None
    assert c.grad.shape == (0, 2)


def test_cat_of_one_tensor_twice_sums_its_gradients(device):
    x = leaf(values((2,)), device)
    y = mq.cat((x, x))
    y.backward(mq.tensor([1.0, 2.0, 30.0, 40.0], device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [31.0, 42.0])


def test_cat_errors():
    with pytest.raises(ValueError, match=r"cat: tensors must have equal sizes except in dim 0: tensor 0 has shape \(2, 3\) "
                                         r"\(so expected \(\*, 3\)\), tensor 1 has shape \(2, 4\)"):
        mq.cat([mq.zeros(2, 3), mq.zeros(2, 4)])
    with pytest.raises(ValueError, match=r"cat: .*tensor 1 has shape \(6,\)"):
        mq.cat([mq.zeros(2, 3), mq.zeros(6)], dim=1)
    with pytest.raises(ValueError, match=r"cat: expected a non-empty sequence"):
        mq.cat([])
    with pytest.raises(TypeError, match=r"cat: expected Tensors, got ndarray at position 1"):
        mq.cat([mq.zeros(2), np.zeros(2)])
    with pytest.raises(TypeError, match=r"cat: expected a sequence \(list or tuple\) of Tensors, got Tensor"):
        mq.cat(mq.zeros(2))
    with pytest.raises(ValueError, match=r"cat: zero-dimensional tensor \(at position 0\)"):
        mq.cat([mq.tensor(1.0)])
    with pytest.raises(IndexError, match=r"cat: dimension 2 is out of range for a tensor of 2 dims"):
        mq.cat([mq.zeros(2, 3)], dim=2)


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack_forward_and_gradient(device, dim):
    parts = [values((2, 3)), values((2, 3)) * -1]
    tensors = [leaf(p, device) for p in parts]
    y = mq.stack(tensors, dim)
    np.testing.assert_array_equal(y.detach().numpy(), np.stack(parts, axis=dim))
    grad_output = values(y.shape) + 5
    y.backward(mq.tensor(grad_output, device=device))
    for i, t in enumerate(tensors):
        np.testing.assert_array_equal(t.grad.numpy(), np.take(grad_output, i, axis=dim))


def test_stack_errors():
    with pytest.raises(ValueError, match=r"stack: expected all tensors to have one shape, got \(2, 3\) at 0 and \(3, 2\) at 1"):
        mq.stack([mq.zeros(2, 3), mq.zeros(3, 2)])
    with pytest.raises(IndexError, match=r"stack: dimension 3 is out of range for a tensor of 3 dims"):
        mq.stack([mq.zeros(2, 3)], dim=3)


# ---------------------------------------------------------------- split / chunk
@pytest.mark.parametrize("n, split_size, sizes", [(5, 2, [2, 2, 1]), (6, 3, [3, 3]), (2, 5, [2]), (0, 2, [0]), (0, 0, [0])])
def test_split_sizes_like_torch(n, split_size, sizes):
    parts = mq.zeros(n, 2).split(split_size)
    assert [p.shape[0] for p in parts] == sizes


@pytest.mark.parametrize("n, chunks, sizes", [
    (5, 3, [2, 2, 1]), (6, 4, [2, 2, 2]), (6, 3, [2, 2, 2]), (1, 3, [1]), (0, 3, [0, 0, 0]), (7, 7, [1] * 7),
])
def test_chunk_sizes_like_torch(n, chunks, sizes):
    assert [p.shape[0] for p in mq.zeros(n).chunk(chunks)] == sizes


def test_split_forward_views_and_gradient(device):
    base = values((2, 5))
    x = leaf(base, device)
    parts = mq.split(x, [1, 3, 1], dim=1)
    for part, expected in zip(parts, np.split(base, [1, 4], axis=1)):
        np.testing.assert_array_equal(part.detach().numpy(), expected)
        assert part.xp.shares_memory(part.data, x.data)
    joined = mq.cat(parts, dim=1)  # the gradient reaches Split through every output at once
    grad_output = values((2, 5)) + 1
    joined.backward(mq.tensor(grad_output, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), grad_output)


def test_gradient_through_one_chunk_is_zero_elsewhere(device):
    x = leaf(values((5, 2)), device)
    middle = x.chunk(3)[1]
    middle.backward(mq.tensor([[1.0, 2.0], [3.0, 4.0]], device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0], [0, 0], [1, 2], [3, 4], [0, 0]])


def test_split_and_chunk_errors():
    x = mq.zeros(5, 2)
    with pytest.raises(ValueError, match=r"split: section sizes \[2, 2\] must be >= 0 and sum to the size 5 of dim 0 "
                                         r"of shape \(5, 2\), but sum to 4"):
        x.split([2, 2])
    with pytest.raises(ValueError, match=r"split: split_size must be positive.*got 0 for dim size 5"):
        x.split(0)
    with pytest.raises(ValueError, match=r"split: split_size must be positive.*got -1"):
        x.split(-1)
    with pytest.raises(ValueError, match=r"split: expected a tensor with at least one dim"):
        mq.tensor(1.0).split(1)
    with pytest.raises(ValueError, match=r"chunk: chunks must be positive, got 0"):
        x.chunk(0)
    with pytest.raises(IndexError, match=r"chunk: dimension 2 is out of range"):
        x.chunk(2, dim=2)


# ---------------------------------------------------------------- pad
def test_pad_positive_matches_numpy_pad(device):
    base = values((2, 3, 4))
    y = mq.pad(mq.tensor(base, device=device), (1, 2, 0, 1), value=-1.5)
    expected = np.pad(base, ((0, 0), (0, 1), (1, 2)), constant_values=-1.5)
    np.testing.assert_array_equal(y.numpy(), expected)


@pytest.mark.parametrize("amounts, expected", [
    ((-1, 0), lambda b: b[:, 1:]),
    ((0, -2, -1, 0), lambda b: b[1:, :-2]),
    ((-1, 2), lambda b: np.pad(b[:, 1:], ((0, 0), (0, 2)))),
    ((-4, 0), lambda b: b[:, 4:]),
])
def test_pad_negative_crops(device, amounts, expected):
    base = values((3, 4))
    np.testing.assert_array_equal(mq.pad(mq.tensor(base, device=device), amounts).numpy(), expected(base))


def test_pad_crop_past_the_edge_leaves_only_padding(device):
    y = mq.pad(mq.tensor(values((2,)), device=device), (-3, 2), value=7.0)  # x is cropped away entirely
    np.testing.assert_array_equal(y.numpy(), [7.0])


def test_pad_gradient_is_the_inner_region(device):
    grad_output = values((4, 7)) + 1
    x = leaf(values((3, 4)), device)
    y = mq.pad(x, (1, 2, 0, 1))
    y.backward(mq.tensor(grad_output, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), grad_output[0:3, 1:5])


def test_pad_gradient_with_crops_is_zero_where_cropped(device):
    x = leaf(values((3, 4)), device)
    y = mq.pad(x, (-1, 2, 1, -2))  # columns 1..3 and row 0 survive, at y[1:2, 0:3]
    assert y.shape == (2, 5)
    grad_output = values((2, 5)) + 1
    y.backward(mq.tensor(grad_output, device=device))
    expected = np.zeros((3, 4))
    expected[0:1, 1:4] = grad_output[1:2, 0:3]
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_pad_errors():
    x = mq.zeros(2, 3)
    with pytest.raises(NotImplementedError, match=r"pad: unrecognised padding mode 'reflection'; the modes are "
                                                   r"'constant', 'reflect', 'replicate', 'circular'"):
        mq.pad(x, (1, 1), mode="reflection")
    with pytest.raises(ValueError, match=r"pad: expected an even number of pad sizes.*\(4 for shape \(2, 3\)\), got \(1, 1, 1\)"):
        mq.pad(x, (1, 1, 1))
    with pytest.raises(ValueError, match=r"pad: expected an even number .*got \(1, 1, 1, 1, 1, 1\)"):
        mq.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"pad: pad \(-2, -2\) makes dim 1 of shape \(2, 3\) negative \(-1\)"):
        mq.pad(x, (-2, -2))


# ---------------------------------------------------------------- pad: reflect, replicate, circular
ROW = values((1, 5))  # [[0, 1, 2, 3, 4]]


@pytest.mark.parametrize("mode, amounts, expected", [
    ("reflect", (2, 3), [2, 1, 0, 1, 2, 3, 4, 3, 2, 1]),
    ("replicate", (2, 3), [0, 0, 0, 1, 2, 3, 4, 4, 4, 4]),
    ("circular", (2, 3), [3, 4, 0, 1, 2, 3, 4, 0, 1, 2]),
    ("reflect", (4, 0), [4, 3, 2, 1, 0, 1, 2, 3, 4]),
    ("replicate", (0, 7), [0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4]),
    ("circular", (5, 5), [0, 1, 2, 3, 4] * 3),
    # negative amounts crop: after taking the strips for reflect/replicate, before for circular (torch)
    ("reflect", (-1, 2), [1, 2, 3, 4, 3, 2]),
    ("reflect", (2, -4), [2, 1, 0]),
    ("replicate", (2, -2), [0, 0, 0, 1, 2]),
    ("circular", (-1, 2), [1, 2, 3, 4, 1, 2]),
    ("circular", (2, -2), [1, 2, 0, 1, 2]),
])
def test_pad_modes_on_a_row(device, mode, amounts, expected):
    y = mq.pad(mq.tensor(ROW, device=device), amounts, mode)
    np.testing.assert_array_equal(y.numpy(), [expected])


@pytest.mark.parametrize("mode, amounts, expected", [
    ("reflect", (2, 3), [2, 1 + 3 + 9, 0 + 4 + 8, 5 + 7, 6]),  # y = x2 x1 x0 x1 x2 x3 x4 x3 x2 x1
    ("replicate", (2, 3), [0 + 1 + 2, 3, 4, 5, 6 + 7 + 8 + 9]),  # y = x0 x0 x0 x1 x2 x3 x4 x4 x4 x4
    ("circular", (2, 3), [2 + 7, 3 + 8, 4 + 9, 0 + 5, 1 + 6]),  # y = x3 x4 x0 x1 x2 x3 x4 x0 x1 x2
    ("reflect", (-1, 2), [0, 0, 1 + 5, 2 + 4, 3]),  # y = x1 x2 x3 x4 x3 x2 (x0 cropped away)
    ("circular", (2, -2), [2, 0 + 3, 1 + 4, 0, 0]),  # y = x1 x2 x0 x1 x2 (cropped to x0 x1 x2, then wrapped)
])
def test_pad_mode_gradients_add_each_strip_back_onto_its_source(device, mode, amounts, expected):
    x = leaf(ROW, device)
    y = mq.pad(x, amounts, mode)
    y.backward(mq.tensor(values(y.shape), device=device))  # output position k gets gradient k
    np.testing.assert_array_equal(x.grad.numpy(), [expected])


MODE_CASES = [
    ((2, 5), (2, 3)),
    ((2, 3, 5), (1, 0)),
    ((2, 3, 4), (1, 2, 2, 1)),
    ((1, 2, 3, 4), (3, 0, 0, 2)),
    ((2, 3, 4, 3), (2, 1, 1, 0, 1, 2)),
    ((1, 2, 3, 4, 3), (1, 2, 2, 1, 0, 1)),
    ((2, 5), (-2, 3)),
    ((2, 3, 4), (-1, 1, 2, -1)),
    ((2, 3, 4, 3), (0, -1, -2, 2, 1, -1)),
    ((0, 3, 4), (1, 1)),
    ((3, 1), (0, 0)),
]


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape, amounts", MODE_CASES)
def test_pad_modes_match_torch(mode, shape, amounts):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.pad(theirs, amounts, mode=mode)
    grad_output = rng.standard_normal(tuple(expected.shape))
    expected.backward(torch.tensor(grad_output))
    ours = leaf(x, "cpu")
    y = mq.pad(ours, amounts, mode)
    y.backward(mq.tensor(grad_output))
    assert y.shape == tuple(expected.shape)
    np.testing.assert_array_equal(y.detach().numpy(), expected.detach().numpy())
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-14, atol=1e-15)


def test_pad_mode_of_integers_keeps_the_dtype(device):
    y = mq.pad(mq.tensor(np.array([[1, 2, 3]]), device=device), (1, 1), "reflect")
    assert y.dtype == mq.int64
    np.testing.assert_array_equal(y.numpy(), [[2, 1, 2, 3, 2]])


def test_pad_mode_value_must_be_absent_or_zero():
    x = mq.zeros(2, 3)
    assert mq.pad(x, (1, 1), "replicate", value=0).shape == (2, 5)
    with pytest.raises(RuntimeError, match=r"pad: padding mode 'replicate' doesn't take a value argument, got value=1.5"):
        mq.pad(x, (1, 1), "replicate", value=1.5)


@pytest.mark.parametrize("mode, shape, amounts, error, message", [
    ("reflect", (2, 3), (3, 0), RuntimeError,
     r"pad: reflect padding \(3, 0\) of dim 1 of shape \(2, 3\) must be less than the dim's size 3"),
    ("circular", (2, 3), (0, 4), RuntimeError,
     r"pad: circular padding \(0, 4\) of dim 1 \(size 3, 3 after the crops\) of shape \(2, 3\) wraps around more than once"),
    ("circular", (2, 3), (-2, 2), RuntimeError, r"pad: circular padding \(-2, 2\) .*\(size 3, 1 after the crops\)"),
    ("replicate", (2, 3), (-4, 0), RuntimeError, r"pad: replicate padding \(-4, 0\) makes dim 1 of shape \(2, 3\) negative"),
    ("reflect", (2, 3), (-2, -1), RuntimeError,
     r"pad: reflect padding \(-2, -1\) leaves no entry in any padded dim of shape \(2, 3\) \(sizes \(0,\)\)"),
    ("replicate", (2, 0), (1, 1), RuntimeError,
     r"pad: replicate padding needs entries to copy, but dim 1 of shape \(2, 0\) is empty"),
    ("reflect", (5,), (1, 1), NotImplementedError,
     r"pad: mode 'reflect' pads the last 1, 2 or 3 dims .* got 2 pad sizes \(1, 1\) for a 1-d input of shape \(5,\)"),
    ("replicate", (2, 3), (1, 1, 1, 1), NotImplementedError, r"got 4 pad sizes \(1, 1, 1, 1\) for a 2-d input"),
    ("circular", (1, 1, 1, 2, 3, 4), (1, 1, 1, 1, 1, 1), NotImplementedError, r"got 6 pad sizes .* for a 6-d input"),
    ("reflect", (1, 1, 2, 3, 4), (1, 1, 1, 1, 1, 1, 1, 1), NotImplementedError, r"got 8 pad sizes"),
])
def test_pad_mode_errors(mode, shape, amounts, error, message):
    with pytest.raises(error, match=message):
        mq.pad(mq.zeros(*shape), amounts, mode)


@pytest.mark.parametrize("mode, shape, amounts, value", [
    ("reflect", (2, 3), (3, 0), None),
    ("reflect", (2, 3), (-3, 0), None),
    ("circular", (2, 3), (0, 4), None),
    ("replicate", (5,), (1, 1), None),
    ("reflect", (2, 3), (1, 1, 1, 1), None),
    ("replicate", (2, 3), (1, 1), 2.0),
    ("wrap", (2, 3), (1, 1), None),
])
def test_pad_mode_errors_have_torchs_types(mode, shape, amounts, value):
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception) as theirs:
        torch.nn.functional.pad(torch.zeros(shape), amounts, mode=mode, value=value)
    with pytest.raises(Exception) as ours:
        mq.pad(mq.zeros(*shape), amounts, mode, value)
    assert ours.type is theirs.type
