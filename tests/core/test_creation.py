"""creation.py: mq.tensor and the factory functions, with torch's names, dtypes and size conventions."""

import numpy as np
import pytest

import minigrad_q as mq


# ---------------------------------------------------------------- mq.tensor: dtype inference
@pytest.mark.parametrize(
    "data, expected",
    [
        (1.5, mq.float32),
        ([1.0, 2.0], mq.float32),
        ([1, 2.5], mq.float32),  # mixed ints and floats are floats
        ([[1.0], [2.0]], mq.float32),
        ([], mq.float32),  # like torch.tensor([])
        (3, mq.int64),
        ([1, 2], mq.int64),
        ([True, 2], mq.int64),
        (True, mq.bool_),
        ([True, False], mq.bool_),
        (np.zeros(2), mq.float64),  # arrays keep their dtype
        (np.zeros(2, dtype=np.float16), mq.float16),
        (np.arange(3, dtype=np.int32), mq.int32),
        (np.array([1, 2], dtype=np.uint8), mq.uint8),
        (np.float64(2.0), mq.float64),  # numpy scalars too
        (np.int32(3), mq.int32),
    ],
)
def test_tensor_infers_dtype_like_torch(data, expected):
    t = mq.tensor(data)
    assert t.dtype == expected
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))


@pytest.mark.parametrize(
    "data, dtype, expected",
    [
        ([1, 2], mq.float64, np.array([1.0, 2.0])),
        ([1.7, -2.2], "int32", np.array([1, -2], dtype=np.int32)),  # truncation toward zero
        (np.zeros(2), mq.float32, np.zeros(2, dtype=np.float32)),
        ([0.0, 2.0], mq.bool_, np.array([False, True])),
        ([1.0], "double", np.array([1.0])),
    ],
)
def test_tensor_dtype_argument_overrides(data, dtype, expected):
    t = mq.tensor(data, dtype=dtype)
    assert t.dtype == expected.dtype
    np.testing.assert_array_equal(t.numpy(), expected)


def test_tensor_shapes_and_scalars():
    assert mq.tensor(3.0).shape == ()
    assert mq.tensor(np.array(3.0)).shape == ()
    assert mq.tensor([[1, 2, 3], [4, 5, 6]]).shape == (2, 3)
    assert mq.tensor([]).shape == (0,)


@pytest.mark.parametrize("bad", ["abc", None, [1, "a"], {"a": 1}])
def test_tensor_refuses_non_numeric_data(bad):
    with pytest.raises(TypeError, match=r"tensor\(\): cannot make a tensor from"):
        mq.tensor(bad)


# ---------------------------------------------------------------- mq.tensor: copies
@pytest.mark.parametrize("dtype", [None, mq.float64])
def test_tensor_copies_a_numpy_array(dtype):
    source = np.zeros(3)
    t = mq.tensor(source, dtype=dtype)
    source[0] = 5.0
    t.data[1] = 7.0
    np.testing.assert_array_equal(t.numpy(), [0.0, 7.0, 0.0])
    np.testing.assert_array_equal(source, [5.0, 0.0, 0.0])
    assert not np.shares_memory(t.data, source)


def test_tensor_copies_a_strided_view():
    base = np.arange(6.0)
    t = mq.tensor(base[::2])
    base[0] = 100.0
    np.testing.assert_array_equal(t.numpy(), [0.0, 2.0, 4.0])


def test_tensor_copies_another_tensor_and_makes_a_leaf():
    x = mq.tensor([1.0, 2.0], requires_grad=True)
    y = mq.tensor(x)
    assert not np.shares_memory(x.data, y.data)
    assert y.is_leaf and not y.requires_grad
    x.data[0] = 9.0
    np.testing.assert_array_equal(y.numpy(), [1.0, 2.0])


def test_tensor_from_a_list_does_not_alias():
    values = [1.0, 2.0]
    t = mq.tensor(values)
    values[0] = 5.0
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


# ---------------------------------------------------------------- requires_grad
def test_requires_grad_on_float_tensors():
    for t in (mq.tensor([1.0], requires_grad=True), mq.zeros(2, requires_grad=True), mq.randn(2, requires_grad=True),
              mq.arange(0.0, 3.0, requires_grad=True), mq.full((2,), 1.5, requires_grad=True)):
        assert t.requires_grad and t.is_leaf and t.grad is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: mq.tensor([1, 2], requires_grad=True),
        lambda: mq.tensor([True], requires_grad=True),
        lambda: mq.zeros(2, dtype=mq.int64, requires_grad=True),
        lambda: mq.ones(2, dtype=mq.int32, requires_grad=True),
        lambda: mq.arange(5, requires_grad=True),
        lambda: mq.full((2,), 3, requires_grad=True),
        lambda: mq.tensor([1, 2]).requires_grad_(),
    ],
)
def test_requires_grad_on_int_tensors_is_a_clear_error(make):
    with pytest.raises(RuntimeError, match="only floating point tensors can require gradients, got dtype"):
        make()


# ---------------------------------------------------------------- filled tensors
@pytest.mark.parametrize("make, value", [(mq.zeros, 0.0), (mq.ones, 1.0)])
def test_zeros_ones(device, make, value):
    for t in (make(2, 3, device=device), make((2, 3), device=device), make([2, 3], device=device)):
        assert t.shape == (2, 3) and t.dtype == mq.float32 and t.device.startswith(device)
        assert not t.requires_grad
        np.testing.assert_array_equal(t.numpy(), np.full((2, 3), value, dtype=np.float32))
    assert make(dtype=mq.int32, device=device).shape == ()
    assert make(4, dtype=mq.int32, device=device).dtype == mq.int32
    assert make(0, 3, device=device).shape == (0, 3)


def test_empty_has_shape_and_dtype(device):
    assert mq.empty(2, 3, device=device).shape == (2, 3)
    assert mq.empty((4,), dtype=mq.float64, device=device).dtype == mq.float64


@pytest.mark.parametrize("make", [mq.zeros, mq.ones, mq.empty, mq.rand, mq.randn])
@pytest.mark.parametrize("size", [(-1,), (2.5,), ("3",), ((2, -3),)])
def test_bad_sizes_are_a_clear_error(make, size):
    with pytest.raises(ValueError, match="expected non-negative integer sizes"):
        make(*size)


@pytest.mark.parametrize(
    "fill, dtype, expected",
    [(1.5, None, mq.float32), (2, None, mq.int64), (True, None, mq.bool_), (2, mq.float64, mq.float64)],
)
def test_full_infers_dtype_from_the_fill_value(fill, dtype, expected):
    t = mq.full((2, 3), fill, dtype=dtype)
    assert t.shape == (2, 3) and t.dtype == expected
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), fill))
    assert mq.full([4], fill).shape == (4,)
    assert mq.full(4, fill).shape == (4,)


def test_like_functions_copy_shape_dtype_and_device(device):
    base = mq.ones(2, 3, dtype=mq.float64, device=device)
    ints = mq.tensor([[1, 2]], device=device)
    cases = [
        (mq.zeros_like(base), (2, 3), mq.float64, 0.0),
        (mq.ones_like(base), (2, 3), mq.float64, 1.0),
        (mq.full_like(base, 7), (2, 3), mq.float64, 7.0),
        (mq.zeros_like(ints), (1, 2), mq.int64, 0),
        (mq.full_like(ints, 2.7), (1, 2), mq.int64, 2),  # torch truncates the fill to the int dtype
        (mq.ones_like(base, dtype=mq.float32), (2, 3), mq.float32, 1.0),
    ]
    for t, shape, dtype, value in cases:
        assert (t.shape, t.dtype, t.device) == (shape, dtype, base.device)
        np.testing.assert_array_equal(t.numpy(), np.full(shape, value, dtype=dtype))
    assert mq.zeros_like(base, requires_grad=True).requires_grad


# ---------------------------------------------------------------- ranges
@pytest.mark.parametrize(
    "args, kwargs, expected",
    [
        ((5,), {}, np.arange(5)),
        ((1, 7, 2), {}, np.array([1, 3, 5])),
        ((5, 0, -2), {}, np.array([5, 3, 1])),
        ((5,), {"dtype": mq.float32}, np.arange(5, dtype=np.float32)),
        ((5.0,), {}, np.arange(5, dtype=np.float32)),
        ((0, 1, 0.25), {}, np.array([0.0, 0.25, 0.5, 0.75], dtype=np.float32)),
        ((0.0, 1.0, 0.1), {}, np.arange(10, dtype=np.float32) / np.float32(10)),
    ],
)
def test_arange_int_or_float(args, kwargs, expected):
    t = mq.arange(*args, **kwargs)
    expected_dtype = mq.int64 if expected.dtype.kind == "i" else mq.float32
    assert t.dtype == expected_dtype
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6)


def test_linspace_includes_both_ends(device):
    t = mq.linspace(-1, 1, 5, device=device)
    assert t.dtype == mq.float32 and t.device.startswith(device)
    np.testing.assert_allclose(t.numpy(), [-1.0, -0.5, 0.0, 0.5, 1.0])
    assert mq.linspace(0, 1, 1).numpy().tolist() == [0.0]
    assert mq.linspace(0, 1, 0).shape == (0,)
    assert mq.linspace(0, 1, 3, dtype=mq.float64).dtype == mq.float64


def test_eye(device):
    np.testing.assert_array_equal(mq.eye(3, device=device).numpy(), np.eye(3, dtype=np.float32))
    rect = mq.eye(2, 3, dtype=mq.int64, device=device)
    assert rect.dtype == mq.int64
    np.testing.assert_array_equal(rect.numpy(), [[1, 0, 0], [0, 1, 0]])


# ---------------------------------------------------------------- random
@pytest.mark.parametrize("dtype", [mq.float32, mq.float64])
def test_rand_is_uniform_on_unit_interval(device, dtype):
    for t in (mq.rand(200, 50, dtype=dtype, device=device), mq.rand((200, 50), dtype=dtype, device=device)):
        values = t.numpy()
        assert t.shape == (200, 50) and t.dtype == dtype and t.device.startswith(device)
        assert values.min() >= 0.0 and values.max() < 1.0
        assert abs(values.mean() - 0.5) < 0.02 and values.min() < 0.01 and values.max() > 0.99


@pytest.mark.parametrize("dtype", [mq.float32, mq.float64])
def test_randn_is_standard_normal(device, dtype):
    t = mq.randn(100, 100, dtype=dtype, device=device)
    values = t.numpy()
    assert t.shape == (100, 100) and t.dtype == dtype and t.device.startswith(device)
    assert abs(values.mean()) < 0.03 and abs(values.std() - 1.0) < 0.03
    assert mq.randn((3, 2)).shape == (3, 2) and mq.randn().shape == ()


def test_randint_range_shape_dtype(device):
    t = mq.randint(3, 10, (50, 40), device=device)
    values = t.numpy()
    assert t.shape == (50, 40) and t.dtype == mq.int64 and t.device.startswith(device)
    assert values.min() == 3 and values.max() == 9  # [low, high): 10 never drawn, every value drawn
    assert mq.randint(0, 2, (5,), dtype=mq.int32).dtype == mq.int32
    assert mq.randint(0, 5, 4).shape == (4,)
    assert mq.randint(0, 5).shape == ()


def test_randint_high_and_size_form_like_torch():
    t = mq.randint(10, (30, 4))
    assert t.shape == (30, 4) and t.dtype == mq.int64
    assert t.numpy().min() == 0 and t.numpy().max() == 9
    assert mq.randint(5, [2]).shape == (2,)


@pytest.mark.parametrize("low, high", [(5, 5), (5, 2)])
def test_randint_empty_range_is_a_clear_error(low, high):
    with pytest.raises(ValueError, match=f"randint: expected low < high, got low={low}, high={high}"):
        mq.randint(low, high, (3,))


def test_rand_like_and_randn_like(device):
    base = mq.zeros(4, 5, dtype=mq.float64, device=device)
    for make in (mq.rand_like, mq.randn_like):
        t = make(base)
        assert (t.shape, t.dtype, t.device) == ((4, 5), mq.float64, base.device)
        assert make(base, dtype=mq.float32).dtype == mq.float32
    assert mq.rand_like(base).numpy().min() >= 0.0


def test_rand_and_randn_in_float16():
    normal = mq.randn(1000, dtype=mq.float16)
    uniform = mq.rand(1000, dtype=mq.float16)
    assert normal.dtype == mq.float16 and uniform.dtype == mq.float16
    assert abs(float(normal.numpy().astype(np.float64).mean())) < 0.15
    assert uniform.numpy().min() >= 0.0 and uniform.numpy().max() <= 1.0  # float16 rounding may reach 1.0


def test_rand_with_int_dtype_is_a_clear_error():
    with pytest.raises(TypeError, match=r"^rand: expected a floating dtype, got int64"):
        mq.rand(3, dtype=mq.int64)
    with pytest.raises(TypeError, match=r"^randn: expected a floating dtype, got int32"):
        mq.randn(3, dtype=mq.int32)
    with pytest.raises(TypeError, match=r"rand.*expected a floating dtype, got int64"):
        mq.rand_like(mq.tensor([1, 2]))


def test_random_tensors_follow_manual_seed():
    mq.manual_seed(7)
    a = (mq.rand(3).numpy(), mq.randn(3).numpy(), mq.randint(0, 1000, (3,)).numpy())
    mq.manual_seed(7)
    b = (mq.rand(3).numpy(), mq.randn(3).numpy(), mq.randint(0, 1000, (3,)).numpy())
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_arange_with_zero_step_is_a_clear_error():
    with pytest.raises(ValueError, match="arange: step must be nonzero"):
        mq.arange(0, 5, 0)


def test_ragged_lists_are_a_clear_error():
    with pytest.raises(ValueError, match="tensor\\(\\): expected a number or a rectangular nested list"):
        mq.tensor([[1, 2], [3]])


def test_float16_rand_stays_below_one():
    mq.manual_seed(0)
    values = mq.rand(200_000, dtype=mq.float16).numpy()
    assert values.dtype == np.float16 and values.min() >= 0 and values.max() < 1
