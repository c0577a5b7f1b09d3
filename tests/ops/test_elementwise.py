"""Arithmetic, powers and comparisons: forward against NumPy, gradients against hand-written NumPy
results (with broadcasting and Python numbers on either side), PyTorch's dtype promotion, error messages."""

import numpy as np
import pytest
from helpers import const, host, leaf, sum_to

import minigrad_q as mq

rng = np.random.default_rng(0)


# shape pairs: equal, broadcast both ways, extra leading dims, 0-d, zero-size
SHAPES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((), (2, 3)), ((2, 0), (1,))]

# op, NumPy reference, d/da, d/db (as functions of a, b)
BINARY = {
    "add": (mq.add, np.add, lambda a, b: np.ones_like(a * b), lambda a, b: np.ones_like(a * b)),
    "sub": (mq.sub, np.subtract, lambda a, b: np.ones_like(a * b), lambda a, b: -np.ones_like(a * b)),
    "mul": (mq.mul, np.multiply, lambda a, b: b + 0 * a, lambda a, b: a + 0 * b),
    "div": (mq.div, np.divide, lambda a, b: 1 / b + 0 * a, lambda a, b: -a / b**2),
}


def positive(shape):
    return rng.uniform(0.5, 2.0, shape)


# ---------------------------------------------------------------- arithmetic
@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shape_a, shape_b", SHAPES)
def test_binary_forward_and_broadcast_gradients(device, name, shape_a, shape_b):
    op, reference, d_a, d_b = BINARY[name]
    a, b = rng.standard_normal(shape_a), positive(shape_b)
    grad_output = rng.standard_normal(np.broadcast_shapes(shape_a, shape_b))
    ta, tb = leaf(a, device), leaf(b, device)
    y = op(ta, tb)
    np.testing.assert_allclose(host(y), reference(a, b), rtol=1e-12)
    y.backward(const(grad_output, device))
    assert ta.grad.shape == shape_a and tb.grad.shape == shape_b
    np.testing.assert_allclose(ta.grad.numpy(), sum_to(grad_output * d_a(a, b), shape_a), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tb.grad.numpy(), sum_to(grad_output * d_b(a, b), shape_b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", BINARY)
def test_binary_with_a_number_on_either_side(device, name):
    op, reference, d_a, d_b = BINARY[name]
    x, number = positive((2, 3)), 1.5
    grad_output = rng.standard_normal((2, 3))
    for left in (True, False):
        t = leaf(x, device)
        y = op(t, number) if left else op(number, t)
        expected = reference(x, number) if left else reference(number, x)
        np.testing.assert_allclose(host(y), expected, rtol=1e-12)
        assert y.creator.needs_input_grad == ((True, False) if left else (False, True))
        y.backward(const(grad_output, device))
        slope = d_a(x, number) if left else d_b(number, x)
        np.testing.assert_allclose(t.grad.numpy(), grad_output * slope, rtol=1e-12)


def test_python_operators_call_the_ops_with_the_number_where_it_was_written(device):
    x = positive((3,))
    t = leaf(x, device)
    results = [t + 2, 2 + t, t - 2, 2 - t, t * 2, 2 * t, t / 2, 2 / t, -t, t**2, 2**t]
    expected = [x + 2, 2 + x, x - 2, 2 - x, x * 2, 2 * x, x / 2, 2 / x, -x, x**2, 2**x]
    for result, reference in zip(results, expected):
        np.testing.assert_allclose(host(result), reference, rtol=1e-12)


def test_neg_gradient_is_minus_one(device):
    t = leaf([1.0, -2.0], device)
    (-t).backward(const([3.0, 4.0], device))
    np.testing.assert_array_equal(t.grad.numpy(), [-3.0, -4.0])


def test_gradient_flows_only_to_tensors_that_require_it(device):
    a, b = leaf([1.0, 2.0], device), const([3.0, 4.0], device)
    (a * b).backward(const([1.0, 1.0], device))
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 4.0])
    assert b.grad is None


def test_same_tensor_on_both_sides_accumulates(device):
    t = leaf([3.0, -2.0], device)
    (t * t).backward(const([1.0, 1.0], device))
    np.testing.assert_array_equal(t.grad.numpy(), [6.0, -4.0])
    t.grad = None
    (t / t).backward(const([1.0, 1.0], device))
    np.testing.assert_allclose(t.grad.numpy(), [0.0, 0.0], atol=1e-15)


def test_zero_dim_inputs_work_forward_and_backward(device):
    a, b = leaf(0.7, device), leaf(1.3, device)
    y = (a * b + 1) / b - a**3
    y.backward()
    assert y.shape == () and a.grad.shape == ()
    np.testing.assert_allclose(a.grad.numpy(), 1 - 3 * 0.7**2, rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), -1 / 1.3**2, rtol=1e-12)


# ---------------------------------------------------------------- dtype promotion
@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((np.float32, (2,)), (np.float64, (2,)), "float64"),
        ((np.int64, (2,)), (np.float32, (2,)), "float32"),
        ((np.int8, (2,)), (np.uint8, (2,)), "int16"),
        ((np.bool_, (2,)), (np.int32, (2,)), "int32"),
        ((np.float32, (2,)), (np.float64, ()), "float32"),  # a 0-d tensor of the same category does not count
        ((np.int32, (2,)), (np.float64, ()), "float64"),  # ... but counts when its category is higher
        ((np.float16, ()), (np.float64, ()), "float64"),
    ],
)
def test_tensor_with_tensor_promotes_like_torch(device, a, b, expected):
    ta = const(np.ones(a[1], a[0]), device)
    tb = const(np.ones(b[1], b[0]), device)
    for op in (mq.add, mq.mul, mq.maximum):
        assert str(op(ta, tb).dtype) == expected
        assert str(op(tb, ta).dtype) == expected


@pytest.mark.parametrize(
    "dtype, number, expected",
    [
        (np.float32, 2.5, "float32"), (np.float16, 2.5, "float16"), (np.float64, 2, "float64"),
        (np.int64, 2.5, "float32"), (np.int32, 2, "int32"), (np.uint8, 2, "uint8"),
        (np.bool_, 2, "int64"), (np.bool_, True, "bool"), (np.bool_, 2.5, "float32"),
        (np.float32, np.float64(2.5), "float32"), (np.int64, np.float64(2.5), "float32"),
    ],
)
def test_tensor_with_number_promotes_like_torch(device, dtype, number, expected):
    t = const(np.ones(2, dtype), device)
    assert str((t + number).dtype) == expected
    assert str((number * t).dtype) == expected


def test_integer_tensor_with_float_number_follows_the_default_dtype(device):
    t = const([1, 2], device)
    mq.set_default_dtype(mq.float64)
    try:
        assert (t * 0.5).dtype == mq.float64
        assert (t / 2).dtype == mq.float64
    finally:
        mq.set_default_dtype(mq.float32)
    np.testing.assert_array_equal(host(t * 0.5), [0.5, 1.0])
    assert (t * 0.5).dtype == mq.float32


def test_div_is_true_division_in_the_default_dtype(device):
    y = const([1, 2, 3], device) / const([2, 2, 2], device)
    assert y.dtype == mq.float32
    np.testing.assert_array_equal(host(y), [0.5, 1.0, 1.5])
    assert (const([True], device) / 2).dtype == mq.float32


def test_promoted_gradients_come_back_in_each_inputs_dtype(device):
    a = leaf(np.ones(3, np.float32), device)
    b = leaf(np.full(3, 2.0), device)
    y = a * b
    assert y.dtype == mq.float64
    y.backward(const(np.ones(3), device))
    assert a.grad.dtype == mq.float32 and b.grad.dtype == mq.float64
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0, 2.0])


# ---------------------------------------------------------------- powers
@pytest.mark.parametrize("exponent", [2, 3, -2, 1, 0.5, -1.5, 2.5, -1])
def test_tensor_to_number_power_and_gradient(device, exponent):
    x = positive((2, 3))
    grad_output = rng.standard_normal((2, 3))
    t = leaf(x, device)
    y = t**exponent
    np.testing.assert_allclose(host(y), x**exponent, rtol=1e-12)
    y.backward(const(grad_output, device))
    np.testing.assert_allclose(t.grad.numpy(), grad_output * exponent * x ** (exponent - 1), rtol=1e-12)


def test_integer_powers_of_negative_bases(device):
    x = np.array([-2.0, -0.5, 0.0, 1.5], np.float32)
    for exponent in (2, 3):
        t = leaf(x, device)
        y = t**exponent
        assert y.dtype == mq.float32
        np.testing.assert_allclose(host(y), x**exponent, rtol=1e-6)
        y.backward(const(np.ones(4, np.float32), device))
        np.testing.assert_allclose(t.grad.numpy(), exponent * x ** (exponent - 1), rtol=1e-6)


def test_power_zero_has_zero_gradient_even_at_zero(device):
    t = leaf([0.0, 2.0, -1.0], device)
    y = t**0
    np.testing.assert_array_equal(host(y), [1.0, 1.0, 1.0])
    y.backward(const([1.0, 1.0, 1.0], device))
    np.testing.assert_array_equal(t.grad.numpy(), [0.0, 0.0, 0.0])  # not 0 * 0**-1 = nan


@pytest.mark.parametrize("shape_a, shape_b", SHAPES[:5])
def test_tensor_to_tensor_power_gradients(device, shape_a, shape_b):
    a, b = positive(shape_a), rng.uniform(-2, 2, shape_b)
    grad_output = rng.standard_normal(np.broadcast_shapes(shape_a, shape_b))
    ta, tb = leaf(a, device), leaf(b, device)
    y = mq.pow(ta, tb)
    np.testing.assert_allclose(host(y), a**b, rtol=1e-12)
    y.backward(const(grad_output, device))
    np.testing.assert_allclose(ta.grad.numpy(), sum_to(grad_output * b * a ** (b - 1), shape_a), rtol=1e-10)
    np.testing.assert_allclose(tb.grad.numpy(), sum_to(grad_output * a**b * np.log(a), shape_b), rtol=1e-10)


def test_zero_base_conventions_follow_torch(device):
    # d/db (a^b) = a^b log a is taken as 0 where a = 0 and b >= 0; d/da is taken as 0 where b = 0
    ta, tb = leaf([0.0, 0.0, 2.0], device), leaf([0.0, 2.0, 0.0], device)
    with np.errstate(divide="ignore", invalid="ignore"):
        mq.pow(ta, tb).backward(const([1.0, 1.0, 1.0], device))
    np.testing.assert_array_equal(tb.grad.numpy(), [0.0, 0.0, np.log(2.0)])
    np.testing.assert_array_equal(ta.grad.numpy(), [0.0, 0.0, 0.0])
    tb = leaf([0.0, 1.5, -1.0], device)
    with np.errstate(divide="ignore", invalid="ignore"):
        (0.0**tb).backward(const([1.0, 1.0, 1.0], device))
    np.testing.assert_array_equal(tb.grad.numpy(), [0.0, 0.0, -np.inf])


def test_number_to_tensor_power_and_gradient(device):
    b = rng.uniform(-2, 2, (2, 3))
    tb = leaf(b, device)
    y = 3.0**tb
    np.testing.assert_allclose(host(y), 3.0**b, rtol=1e-12)
    y.backward(const(np.ones((2, 3)), device))
    np.testing.assert_allclose(tb.grad.numpy(), 3.0**b * np.log(3.0), rtol=1e-12)
    assert (2**const([1, 2], device)).dtype == mq.int64
    assert (2.0 ** const([1, 2], device)).dtype == mq.float32


def test_integer_to_negative_integer_power_is_an_error(device):
    with pytest.raises(ValueError, match=r"pow: cannot apply to int64 \(2,\), int -1: Integers to negative"):
        const([2, 3], device) ** -1


# ---------------------------------------------------------------- comparisons
COMPARISONS = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
               "ge": np.greater_equal}


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparisons_match_numpy_and_carry_no_grad(device, name):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    result = getattr(mq, name)(leaf(a, device), const(b, device))
    assert result.dtype == mq.bool_ and not result.requires_grad and result.creator is None
    np.testing.assert_array_equal(result.numpy(), COMPARISONS[name](a, b))
    np.testing.assert_array_equal(getattr(mq, name)(leaf(a, device), 2).numpy(), COMPARISONS[name](a, 2))
    np.testing.assert_array_equal(getattr(mq, name)(2, leaf(a, device)).numpy(), COMPARISONS[name](2, a))


def test_comparison_operators_including_reflected(device):
    t = const([1, 2, 3], device)
    np.testing.assert_array_equal((t == 2).numpy(), [False, True, False])
    np.testing.assert_array_equal((t != 2).numpy(), [True, False, True])
    np.testing.assert_array_equal((2 < t).numpy(), [False, False, True])  # Python calls t > 2
    np.testing.assert_array_equal((t <= 2.5).numpy(), [True, True, False])
    np.testing.assert_array_equal((t >= np.int64(2)).numpy(), [False, True, True])


def test_comparison_errors(device):
    with pytest.raises(ValueError, match=r"lt: shapes \(2,\) and \(3,\) cannot be broadcast together"):
        mq.lt(const([1.0, 2.0], device), const([1.0, 2.0, 3.0], device))
    with pytest.raises(TypeError, match="eq: expected a Tensor or a Python number, got str"):
        mq.eq(const([1.0], device), "a")
    with pytest.raises(TypeError, match="gt: expected a Tensor, got int and int"):
        mq.gt(1, 2)


# ---------------------------------------------------------------- errors
def test_shapes_that_do_not_broadcast_name_the_op_and_shapes(device):
    a, b = const(np.ones((2, 3)), device), const(np.ones(4), device)
    for op, name in ((mq.add, "add"), (mq.sub, "sub"), (mq.mul, "mul"), (mq.div, "div"), (mq.pow, "pow")):
        with pytest.raises(ValueError, match=rf"{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast together"):
            op(a, b)


def test_other_operands_must_be_tensors_or_numbers(device):
    t = const([1.0, 2.0], device)
    with pytest.raises(TypeError, match="mul: expected a Tensor or a Python number, got list"):
        t * [1.0, 2.0]
    with pytest.raises(TypeError, match="add: expected a Tensor or a Python number, got complex"):
        t + 1j
    with pytest.raises(TypeError, match="add: expected a Tensor or a Python number, got str"):
        "a" + t


def test_bool_negation_and_subtraction_are_errors_like_torch(device):
    flags = const([True, False], device)
    with pytest.raises(TypeError, match=r"neg: cannot apply to bool \(2,\)"):
        mq.neg(flags)
    with pytest.raises(TypeError, match=r"sub: cannot apply to bool \(2,\), bool \(2,\)"):
        mq.sub(flags, flags)


# ---------------------------------------------------------------- against PyTorch, when installed
def _mixed_expression(x, y):
    return (2 - x * y) / (y + 1) + x**y - 3**y + (x - 0.5) ** 3 / x


def test_gradients_match_torch_on_a_mixed_expression():
    torch = pytest.importorskip("torch")
    a, b = rng.uniform(0.5, 2.0, (3, 4)), rng.uniform(0.5, 2.0, (4,))
    ours_a, ours_b = leaf(a, "cpu"), leaf(b, "cpu")
    theirs_a, theirs_b = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ours, theirs = _mixed_expression(ours_a, ours_b), _mixed_expression(theirs_a, theirs_b)
    np.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=1e-12)
    ours.backward(const(np.ones((3, 4)), "cpu"))
    theirs.backward(torch.ones(3, 4, dtype=torch.float64))
    np.testing.assert_allclose(ours_a.grad.numpy(), theirs_a.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours_b.grad.numpy(), theirs_b.grad.numpy(), rtol=1e-12)


def test_result_dtypes_match_torch():
    torch = pytest.importorskip("torch")
    dtypes = [np.bool_, np.int8, np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64]
    for da in dtypes:
        for db in dtypes:
            for shape_a, shape_b in (((2,), (2,)), ((), (2,))):
                a, b = np.ones(shape_a, da), np.ones(shape_b, db)
                expected = torch.add(torch.from_numpy(a), torch.from_numpy(b)).dtype
                assert str(mq.add(mq.tensor(a), mq.tensor(b)).dtype) == str(expected).replace("torch.", "")
        for number in (True, 2, 2.5):
            expected = torch.mul(torch.from_numpy(np.ones(2, da)), number).dtype
            assert str(mq.mul(mq.tensor(np.ones(2, da)), number).dtype) == str(expected).replace("torch.", "")
