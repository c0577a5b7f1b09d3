"""cast, to_device, clone: values, the identity rules (.to returns self when nothing changes),
gradients flowing back in the input's dtype and onto its device."""

import numpy as np
import pytest
from helpers import const, leaf

import minigrad_q as mq
from minigrad_q.ops.convert import ToDevice


# ---------------------------------------------------------------- cast
@pytest.mark.parametrize("dtype, expected", [(mq.float32, "float32"), ("float16", "float16"), ("double", "float64"),
                                             ("long", "int64"), ("int", "int32"), ("bool", "bool")])
def test_cast_converts_values_and_accepts_dtype_likes(device, dtype, expected):
    x = np.array([-1.5, 0.0, 2.25])
    y = mq.cast(const(x, device), dtype)
    assert str(y.dtype) == expected
    np.testing.assert_array_equal(y.numpy(), x.astype(expected))


def test_cast_to_the_same_dtype_returns_the_input(device):
    t = leaf([1.0, 2.0], device)
    assert mq.cast(t, mq.float64) is t
    assert mq.cast(t, "double") is t
    assert t.double() is t and t.to(mq.float64) is t


def test_cast_gradient_comes_back_in_the_input_dtype(device):
    t = leaf(np.array([1.0, 2.0], np.float64), device)
    y = mq.cast(t, mq.float32)
    assert y.dtype == mq.float32 and y.requires_grad
    (y * y).backward(const([1.0, 1.0], device, dtype=mq.float32))
    assert t.grad.dtype == mq.float64
    np.testing.assert_array_equal(t.grad.numpy(), [2.0, 4.0])


def test_cast_to_a_non_float_dtype_has_no_grad(device):
    t = leaf([1.7, -2.2], device)
    y = t.long()
    assert y.dtype == mq.int64 and not y.requires_grad and y.creator is None
    np.testing.assert_array_equal(y.numpy(), [1, -2])


def test_cast_of_a_tensor_without_grad_records_nothing(device):
    y = mq.cast(const([1, 2], device), mq.float32)
    assert y.creator is None and not y.requires_grad


def test_tensor_conversion_methods(device):
    t = const([1.5, -2.5], device)
    assert t.float().dtype == mq.float32
    assert t.half().dtype == mq.float16
    assert t.int().dtype == mq.int32
    assert t.bool().dtype == mq.bool_
    assert t.type("float32").dtype == mq.float32
    assert t.to(device, mq.float32).dtype == mq.float32


def test_cast_rejects_unknown_dtypes(device):
    with pytest.raises(TypeError, match="unknown dtype 'float128x'"):
        mq.cast(const([1.0], device), "float128x")


# ---------------------------------------------------------------- to_device
def test_to_the_current_device_returns_the_input(device):
    t = leaf([1.0, 2.0], device)
    assert mq.to_device(t, device) is t
    assert t.to(t.device) is t


def test_to_device_round_trip_moves_values_and_gradient_back(device):
    t = leaf([1.0, -2.0, 3.0], device)
    on_cpu = mq.to_device(t, "cpu")
    assert on_cpu.device == "cpu"
    y = mq.to_device(on_cpu * 2.0, device)
    assert y.device == t.device
    np.testing.assert_array_equal(y.detach().numpy(), [2.0, -4.0, 6.0])
    y.backward(const([1.0, 1.0, 1.0], device))
    assert t.grad.device == t.device
    np.testing.assert_array_equal(t.grad.numpy(), [2.0, 2.0, 2.0])


def test_to_device_function_passes_the_gradient_through(device):
    # the spec's path: ToDevice run even when source and target are the same device
    t = leaf([1.0, 2.0], device)
    y = ToDevice.apply(t, t.device)
    assert y.creator is not None and y.device == t.device
    (y * y).backward(const([1.0, 1.0], device))
    np.testing.assert_array_equal(t.grad.numpy(), [2.0, 4.0])


def test_unknown_device_is_a_clear_error():
    with pytest.raises(mq.DeviceError, match="unknown device 'tpu'"):
        mq.to_device(const([1.0], "cpu"), "tpu")


# ---------------------------------------------------------------- clone
def test_clone_copies_memory_and_passes_the_gradient(device):
    t = leaf([1.0, 2.0], device)
    y = mq.clone(t)
    assert y is not t and y.creator is not None
    np.testing.assert_array_equal(y.detach().numpy(), [1.0, 2.0])
    y.data[0] = 5.0
    np.testing.assert_array_equal(t.detach().numpy(), [1.0, 2.0])
    y.backward(const([3.0, 4.0], device))
    np.testing.assert_array_equal(t.grad.numpy(), [3.0, 4.0])
    assert t.clone().dtype == t.dtype


def test_clone_of_a_tensor_without_grad(device):
    t = const([1, 2], device)
    y = t.clone()
    assert y.dtype == mq.int64 and not y.requires_grad
    assert y.data is not t.data
