"""The backward engine: accumulation, release of saved arrays, hooks, retain_grad, long graphs, anomaly mode."""

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q.autograd import Function


def leaf(values, dtype=np.float64, device="cpu"):
    return mq.tensor(np.asarray(values, dtype=dtype), device=device, requires_grad=True)


class Square(Function):
    """y = x²;  dy/dx = 2x."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, grad_output):
        (x,) = self.saved
        return 2 * x * grad_output


class ScaleBy(Function):
    """y = x · c for a plain number c (a non-tensor argument);  dy/dx = c."""

    def forward(self, x, c):
        self.c = c
        return x * c

    def backward(self, grad_output):
        return grad_output * self.c


class BroadcastAdd(Function):
    """y = a + b with broadcasting; backward returns the broadcast-shaped gradient for both
    inputs and relies on the engine to sum it back to each input's shape."""

    def forward(self, a, b):
        return a + b

    def backward(self, grad_output):
        return grad_output, grad_output


def test_fan_out_gradients_are_summed(device):
    x = leaf([1.0, -2.0, 3.0], device=device)
    y = x * x + x  # x is used three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, -2.0, 3.0]) + 1)


def test_leaf_gradients_accumulate_over_backward_calls():
    x = leaf([1.0, 2.0])
    Square.apply(x).sum().backward()
    Square.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 2 * np.array([1.0, 2.0]))


def test_user_function_with_plain_argument_and_needs_input_grad():
    x = leaf([1.0, 2.0])
    y = ScaleBy.apply(x, 3.0)
    assert y.creator.needs_input_grad == (True, False)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_engine_sums_broadcast_gradients_back_to_input_shapes():
    a = leaf(np.ones((2, 3)))
    b = leaf(np.ones((3,)))
    c = leaf(np.ones((2, 1)))
    BroadcastAdd.apply(BroadcastAdd.apply(a, b), c).sum().backward()
    assert a.grad.shape == (2, 3) and b.grad.shape == (3,) and c.grad.shape == (2, 1)
    np.testing.assert_allclose(b.grad.numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(c.grad.numpy(), [[3.0], [3.0]])


def test_gradient_of_an_impossible_shape_names_the_op():
    class Wrong(Function):
        def forward(self, x):
            return x * 1

        def backward(self, grad_output):
            return self.xp.ones((5,))

    x = leaf(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match=r"Wrong\.backward returned a gradient of shape \(5,\) for input 0 of shape \(2, 3\)"):
        Wrong.apply(x).sum().backward()


def test_missing_gradient_for_an_input_that_requires_grad_is_an_error():
    class Forgets(Function):
        def forward(self, a, b):
            return a + b

        def backward(self, grad_output):
            return (grad_output,)

    a, b = leaf([1.0]), leaf([2.0])
    with pytest.raises(RuntimeError, match="Forgets.backward returned no gradient for input 1"):
        Forgets.apply(a, b).sum().backward()


def test_gradients_of_two_leaves_never_share_a_buffer():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (x + y).sum().backward()  # add passes one upstream array to both inputs
    x.grad.data *= 10
    np.testing.assert_allclose(y.grad.numpy(), [1.0, 1.0])


def test_gradient_dtypes_follow_inputs_under_promotion():
    a = mq.tensor([1.0, 2.0], dtype=mq.float32, requires_grad=True)
    b = mq.tensor([3.0, 4.0], dtype=mq.float64, requires_grad=True)
    out = a * b
    assert out.dtype == mq.float64
    out.sum().backward()
    assert a.grad.dtype == mq.float32 and b.grad.dtype == mq.float64
    np.testing.assert_allclose(a.grad.numpy(), [3.0, 4.0])


def test_backward_on_non_scalar_needs_a_gradient():
    x = leaf([1.0, 2.0])
    y = x * 2
    with pytest.raises(RuntimeError, match=r"implicitly created only for a one-element output, got shape \(2,\)"):
        y.backward()
    y.backward(mq.tensor([1.0, 10.0], dtype=mq.float64))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])


def test_gradient_of_wrong_shape_is_an_error():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match=r"gradient has shape \(3,\), but the output has shape \(2,\)"):
        y.backward(mq.tensor([1.0, 1.0, 1.0]))


def test_backward_on_a_tensor_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mq.tensor([1.0]).sum().backward()


def test_backward_on_a_leaf_accumulates_directly():
    x = leaf([5.0])
    x.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0])


def test_second_backward_through_a_released_graph_says_to_retain_it():
    x = leaf([1.0, 2.0])
    y = Square.apply(x).sum()
    y.backward()
    assert y.creator.saved is None  # the sum node freed its buffers
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_keeps_saved_arrays_for_a_second_backward():
    x = leaf([1.0, 2.0])
    y = Square.apply(x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_saved_arrays_are_freed_after_backward():
    x = leaf(np.ones(1000))
    y = Square.apply(x)
    saved = weakref.ref(y.creator.saved[0]) if y.creator.saved[0] is not x.data else None
    square_node = y.creator
    y.sum().backward()
    assert square_node.saved is None
    if saved is not None:
        gc.collect()
        assert saved() is None


def test_non_leaf_grad_only_with_retain_grad():
    x = leaf([1.0, 2.0])
    h = x * 3
    kept = x * 3
    kept.retain_grad()
    (h.sum() + (kept * kept).sum()).backward()
    assert h.grad is None
    np.testing.assert_allclose(kept.grad.numpy(), [6.0, 12.0])


def test_hooks_run_in_registration_order_and_can_replace_the_gradient():
    calls = []
    x = leaf([1.0, 2.0])
    h = x * 1
    h.register_hook(lambda g: calls.append("first"))
    h.register_hook(lambda g: (calls.append("second"), g * 2)[1])
    x.register_hook(lambda g: calls.append(("leaf", g.numpy().tolist())))
    h.sum().backward()
    assert calls == ["first", "second", ("leaf", [2.0, 2.0])]
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_hook_handle_remove():
    x = leaf([1.0])
    handle = x.register_hook(lambda g: g * 100)
    handle.remove()
    (x * 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0])


def test_a_chain_of_100000_ops_backprops_without_recursion_error():
    x = leaf([1.0])
    h = x
    for _ in range(100_000):
        h = ScaleBy.apply(h, 1.0)
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0])


def test_no_grad_records_nothing_and_enable_grad_reenables():
    x = leaf([1.0])
    with mq.no_grad():
        y = x * 2
        assert not mq.is_grad_enabled()
        with mq.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.creator is None
    assert z.requires_grad and z.creator is not None
    assert mq.is_grad_enabled()


def test_training_loop_memory_stays_flat():
    """1,000 forward+backward iterations on the same shapes do not grow memory: graphs are freed."""
    w = leaf(np.random.default_rng(0).standard_normal((64, 64)))
    x = mq.tensor(np.random.default_rng(1).standard_normal((32, 64)))

    def step():
        loss = ((x @ w).tanh() * 0.5 + 1.0).sum()
        loss.backward()
        w.grad = None

    for _ in range(50):
        step()
    gc.collect()
    tracemalloc.start()
    for _ in range(100):
        step()
    after_warmup, _ = tracemalloc.get_traced_memory()
    for _ in range(900):
        step()
    gc.collect()
    after_loop, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert after_loop - after_warmup < 64 * 1024, f"memory grew by {after_loop - after_warmup} bytes"


def test_anomaly_mode_names_the_op_the_shapes_and_the_user_line():
    x = leaf([-1.0, 1.0])
    with mq.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"Log produced NaN/inf in its forward output.*\(2,\).*test_engine\.py"):
            with np.errstate(invalid="ignore"):
                x.log()


def test_anomaly_mode_checks_gradients_too():
    x = leaf([0.0, 1.0])
    with mq.detect_anomaly():
        y = x.sqrt().sum()  # forward is finite; d sqrt/dx at 0 is inf
        with pytest.raises(FloatingPointError, match="Sqrt produced NaN/inf in its gradient for input"):
            with np.errstate(divide="ignore"):
                y.backward()


def test_without_anomaly_mode_nan_passes_silently():
    x = leaf([-1.0])
    with np.errstate(invalid="ignore"):
        assert np.isnan(x.log().detach().numpy()).all()


class _FakeGpuArray:
    """Just enough of a cupy array for the device check, which runs before any arithmetic."""

    def __init__(self, shape):
        self.shape, self.dtype = shape, np.dtype("float32")
        self.device = type("Device", (), {"id": 0})()


def test_mixing_devices_is_an_error_naming_both():
    gpu = mq.Tensor.__new__(mq.Tensor)
    gpu.data, gpu.grad, gpu.creator, gpu._requires_grad, gpu._output_index, gpu._hooks = (
        _FakeGpuArray((2,)), None, None, False, 0, None,
    )
    with pytest.raises(RuntimeError, match=r"Mul: expected all tensors on one device, got cpu \(2,\), cuda:0 \(2,\)"):
        mq.tensor([1.0, 2.0]) * gpu


@pytest.mark.gpu
def test_mixing_real_devices_is_an_error():
    if not mq.backend.cuda_is_available():
        pytest.skip("no CuPy/GPU on this machine")
    with pytest.raises(RuntimeError, match="expected all tensors on one device"):
        mq.tensor([1.0], device="cpu") + mq.tensor([1.0], device="cuda")
