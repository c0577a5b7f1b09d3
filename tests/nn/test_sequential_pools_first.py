"""Sequential runs a ReLU followed by a MaxPool2d pool first (nn/container.py, ``pools_first``): the
outputs and the input gradients must equal those of relu then max_pool2d as written, computed here
by the functional ops in their written order, also where windows tie, hold only zeros and negatives,
overlap, dilate or run past the input (ceil mode); hooks and the plain path keep the written order."""

import numpy as np
import pytest
from helpers import const, host, leaf
from hypothesis import given
from hypothesis import strategies as st

import minigrad_q as mq
from minigrad_q import backend, nn
from minigrad_q.inspect import record
from minigrad_q.nn import functional as F


def _written_order(x, grad, pool, device="cpu"):
    """(output, dx) of F.max_pool2d(F.relu(x)): the written order, by the functional ops."""
    x_leaf = leaf(x, device)
    out = F.max_pool2d(F.relu(x_leaf), pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)
    out.backward(const(grad, device))
    return host(out), host(x_leaf.grad)


def _through(model, x, grad, device="cpu"):
    x_leaf = leaf(x, device)
    out = model(x_leaf)
    out.backward(const(grad, device))
    return host(out), host(x_leaf.grad)


@st.composite
def pools(draw):
    kernel = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 2))
    padding = draw(st.integers(0, kernel // 2))
    pool = nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=draw(st.booleans()))
    reach = dilation * (kernel - 1) + 1
    side = draw(st.integers(max(reach - 2 * padding, 1), 7))
    # small integers: ties between positive values, windows of zeros and negatives only
    values = draw(st.lists(st.integers(-3, 3), min_size=2 * 2 * side * side, max_size=2 * 2 * side * side))
    return pool, np.array(values, dtype=np.float64).reshape(2, 2, side, side)


@given(pools())
def test_pool_first_gives_the_written_orders_outputs_and_gradients(case):
    pool, x = case
    model = nn.Sequential(nn.ReLU(), pool)
    out_shape = host(F.max_pool2d(mq.tensor(x), pool.kernel_size, pool.stride, pool.padding, pool.dilation,
                                  pool.ceil_mode)).shape
    grad = np.random.default_rng(0).standard_normal(out_shape)
    expected, expected_grad = _written_order(x, grad, pool)
    out, dx = _through(model, x, grad)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(dx, expected_grad)


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(2, 1, dilation=2),
                                  nn.MaxPool2d(3, 2, ceil_mode=True)], ids=repr)
def test_pool_first_on_each_device(device, pool):
    """The same check on each device (the GPU's pool and relu kernels): integers give ties and windows of
    zeros and negatives only."""
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, (4, 3, 9, 9)).astype(np.float32)
    out_shape = host(F.max_pool2d(const(x), pool.kernel_size, pool.stride, pool.padding, pool.dilation,
                                  pool.ceil_mode)).shape
    grad = rng.standard_normal(out_shape).astype(np.float32)
    out, dx = _through(nn.Sequential(nn.ReLU(), pool), x, grad, device)
    expected, expected_grad = _written_order(x, grad, pool, device)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(dx, expected_grad)


def test_lenet_layers_run_pool_first_and_train_as_written():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1, 12, 12)).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(108, 5))
    grad = rng.standard_normal((4, 5)).astype(np.float32)
    with record(stats=False) as tape:
        out, dx = _through(model, x, grad)
    forward = [call.op for call in tape.calls if call.phase == "forward"]
    assert forward.index("MaxPool2d") < forward.index("Relu")
    weight_grad = host(model[0].weight.grad)

    conv, linear = model[0], model[4]
    conv.weight.grad = None
    x_leaf = leaf(x)
    written = linear(F.max_pool2d(F.relu(conv(x_leaf)), 2).reshape(4, -1))
    written.backward(const(grad))
    np.testing.assert_array_equal(out, host(written))
    np.testing.assert_array_equal(dx, host(x_leaf.grad))
    np.testing.assert_array_equal(weight_grad, host(conv.weight.grad))


def _relu_input_shapes(model, x):
    with record(stats=False) as tape:
        model(mq.tensor(x))
    return [call.input_shapes[0] for call in tape.calls if call.op == "Relu"]


def test_hooks_indices_dilation_and_the_plain_path_keep_the_written_order():
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8))
    relu, pool = nn.ReLU(), nn.MaxPool2d(2)
    model = nn.Sequential(relu, pool)
    assert _relu_input_shapes(model, x) == [(2, 3, 4, 4)]

    seen = []
    handle = relu.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    assert _relu_input_shapes(model, x) == [(2, 3, 8, 8)] and seen == [(2, 3, 8, 8)]
    handle.remove()
    handle = pool.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    assert _relu_input_shapes(model, x) == [(2, 3, 8, 8)]
    handle.remove()

    with backend.use_fused(False):
        assert _relu_input_shapes(model, x) == [(2, 3, 8, 8)]
    assert _relu_input_shapes(nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, dilation=2)), x) == [(2, 3, 8, 8)]
    # a dilated window can hold padding only: -inf as written, 0 with relu after the pool
    out, _ = _through(nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, 1, 1, dilation=2)), np.zeros((1, 1, 1, 1)),
                      np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(out, -np.inf)
    _, indices = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, return_indices=True))(mq.tensor(-np.abs(x)))
    np.testing.assert_array_equal(host(indices), host(F.max_pool2d(F.relu(mq.tensor(-np.abs(x))), 2,
                                                                   return_indices=True)[1]))


def test_only_a_window_holding_nan_changes_its_gradient():
    x = np.array([[[[1.0, np.nan, 3.0, 0.5], [2.0, 0.0, -1.0, 4.0]]]])
    pool = nn.MaxPool2d(2)
    out, dx = _through(nn.Sequential(nn.ReLU(), pool), x, np.ones((1, 1, 1, 2)))
    expected, expected_grad = _written_order(x, np.ones((1, 1, 1, 2)), pool)
    np.testing.assert_array_equal(out, expected)  # [nan, 4] both ways
    np.testing.assert_array_equal(dx[..., 2:], expected_grad[..., 2:])
    np.testing.assert_array_equal(dx[..., :2], 0)  # relu'(nan) = 0; written, the pool passes it to the 1.0
