"""Module hooks (full backward, forward) and tensor hooks: each fires once per call, a returned value
replaces the gradient, remove() works; torch's semantics for register_full_backward_hook."""

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q.nn._backward_hook import BackwardHookInputs, BackwardHookOutputs


class Recorder:
    """A backward hook that keeps (module, grad_input, grad_output) of every call as NumPy arrays."""

    def __init__(self, returns=None):
        self.calls = []
        self.returns = returns

    def __call__(self, module, grad_input, grad_output):
        self.calls.append((module, [None if g is None else g.numpy().copy() for g in grad_input],
                           [None if g is None else g.numpy().copy() for g in grad_output]))
        return self.returns(grad_input) if self.returns else None


def linear(in_features=3, out_features=2):
    layer = mq.nn.Linear(in_features, out_features).double()
    return layer


def weighted_sum(y, seed=1):
    """sum(c * y) for a fixed c: dL/dy = c (returned too)."""
    c = np.random.default_rng(seed).standard_normal(y.shape)
    return (y * mq.tensor(c)).sum(), c


# ---------------------------------------------------------------- full backward hooks
def test_full_backward_hook_fires_once_with_the_gradients_of_inputs_and_outputs():
    layer = linear()
    hook = Recorder()
    layer.register_full_backward_hook(hook)
    x = mq.randn(4, 3, dtype=mq.float64, requires_grad=True)
    loss, c = weighted_sum(layer(x))
    loss.backward()
    assert len(hook.calls) == 1
    module, grad_input, grad_output = hook.calls[0]
    assert module is layer
    np.testing.assert_allclose(grad_output[0], c)
    np.testing.assert_allclose(grad_input[0], c @ layer.weight.detach().numpy())
    np.testing.assert_allclose(grad_input[0], x.grad.numpy())
    np.testing.assert_allclose(layer.weight.grad.numpy(), c.T @ x.detach().numpy())  # parameters are unaffected


def test_full_backward_hook_fires_once_per_call_and_per_backward():
    layer = linear(3, 3)
    hook = Recorder()
    layer.register_full_backward_hook(hook)
    x = mq.randn(2, 3, dtype=mq.float64, requires_grad=True)
    loss, _ = weighted_sum(layer(layer(x)))  # two calls in one graph
    loss.backward(retain_graph=True)
    assert len(hook.calls) == 2
    second_call_input, first_call_output = hook.calls[0][1][0], hook.calls[1][2][0]
    np.testing.assert_allclose(second_call_input, first_call_output)  # the outer call's backward runs first
    loss.backward()
    assert len(hook.calls) == 4


def test_a_returned_tuple_replaces_grad_input_upstream():
    first, second = linear(3, 3), linear(3, 2)
    model = mq.nn.Sequential(first, second)
    x = mq.randn(4, 3, dtype=mq.float64, requires_grad=True)
    loss, _ = weighted_sum(model(x))
    loss.backward()
    plain_x, plain_first_weight, plain_second_weight = x.grad.numpy(), first.weight.grad.numpy(), second.weight.grad.numpy()
    x.grad = None
    model.zero_grad()
    second.register_full_backward_hook(Recorder(returns=lambda grad_input: (grad_input[0] * 3,)))
    loss, _ = weighted_sum(model(x))
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * plain_x)
    np.testing.assert_allclose(first.weight.grad.numpy(), 3 * plain_first_weight)
    np.testing.assert_allclose(second.weight.grad.numpy(), plain_second_weight)  # inside the hooked module


def test_hooks_run_in_registration_order_each_seeing_the_previous_result():
    layer = linear()
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0] * 2,))
    layer.register_full_backward_hook(lambda m, gi, go: seen.append(gi[0].numpy().copy()))
    x = mq.randn(1, 3, dtype=mq.float64, requires_grad=True)
    layer(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), seen[0])
    np.testing.assert_allclose(seen[0], 2 * layer.weight.detach().numpy().sum(0, keepdims=True))


def test_when_no_input_requires_grad_the_hook_gets_none_for_every_input():
    layer = linear()
    hook = Recorder()
    layer.register_full_backward_hook(hook)
    loss, c = weighted_sum(layer(mq.randn(4, 3, dtype=mq.float64)))
    loss.backward()
    assert len(hook.calls) == 1
    assert hook.calls[0][1] == [None]
    np.testing.assert_allclose(hook.calls[0][2][0], c)
    layer.register_full_backward_hook(lambda m, gi, go: (go[0],))
    with pytest.raises(RuntimeError, match="no input of this call requires grad"):
        layer(mq.randn(4, 3, dtype=mq.float64)).sum().backward()


def test_non_tensor_arguments_get_none_and_tuple_outputs_their_gradients():
    class Split(mq.nn.Module):
        def forward(self, x, scale):
            return x * scale, x.exp()

    module = Split()
    hook = Recorder()
    module.register_full_backward_hook(hook)
    x = mq.randn(3, dtype=mq.float64, requires_grad=True)
    first, second = module(x, 2.0)
    second.sum().backward()  # `first` gets no gradient: zeros, as in torch
    (_, grad_input, grad_output), = hook.calls
    assert grad_input[1] is None
    np.testing.assert_allclose(grad_input[0], np.exp(x.detach().numpy()))
    np.testing.assert_allclose(grad_output[0], np.zeros(3))
    np.testing.assert_allclose(grad_output[1], np.ones(3))


def test_remove_unhooks_later_calls_and_leaves_the_plain_graph():
    layer = linear()
    hook = Recorder()
    handle = layer.register_full_backward_hook(hook)
    x = mq.randn(2, 3, dtype=mq.float64, requires_grad=True)
    hooked = layer(x)
    assert type(hooked.creator) is BackwardHookOutputs
    handle.remove()
    handle.remove()  # twice is harmless
    plain = layer(x)
    assert type(plain.creator) is not BackwardHookOutputs
    assert all(type(edge[0]) is not BackwardHookInputs for edge in plain.creator.next_edges if type(edge) is tuple)
    plain.sum().backward()
    assert hook.calls == []
    hooked.sum().backward()  # a call made while the hook was registered keeps it (torch does the same)
    assert len(hook.calls) == 1


def test_no_hook_runs_and_nothing_is_wrapped_under_no_grad():
    layer = linear()
    hook = Recorder()
    layer.register_full_backward_hook(hook)
    with mq.no_grad():
        out = layer(mq.randn(2, 3, dtype=mq.float64, requires_grad=True))
    assert out.creator is None and not out.requires_grad


def test_a_bad_return_value_is_reported():
    layer = linear()
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match=r"expected None or a tuple of 1 gradients"):
        layer(mq.randn(2, 3, dtype=mq.float64, requires_grad=True)).sum().backward()
    layer = linear()
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0].sum(),))
    with pytest.raises(RuntimeError, match=r"shape \(\) for input 0 of shape \(2, 3\)"):
        layer(mq.randn(2, 3, dtype=mq.float64, requires_grad=True)).sum().backward()


def test_a_module_returning_a_non_tensor_cannot_have_backward_hooks():
    class Describe(mq.nn.Module):
        def forward(self, x):
            return {"y": x * 2}

    module = Describe()
    module.register_full_backward_hook(Recorder())
    with pytest.raises(TypeError, match="Describe returned a dict"):
        module(mq.randn(2, requires_grad=True))


# ---------------------------------------------------------------- forward hooks and tensor hooks
def test_forward_and_tensor_hooks_fire_once_per_call():
    layer = linear()
    events = []
    layer.register_forward_pre_hook(lambda m, args: events.append("pre"))
    layer.register_forward_hook(lambda m, args, out: events.append("forward"))
    layer.register_full_backward_hook(lambda m, gi, go: events.append("backward"))
    layer.weight.register_hook(lambda grad: events.append("weight"))
    x = mq.randn(2, 3, dtype=mq.float64, requires_grad=True)
    y = layer(x)
    y.register_hook(lambda grad: events.append("output"))
    assert events == ["pre", "forward"]
    y.sum().backward()
    assert events == ["pre", "forward", "output", "weight", "backward"]


def test_a_tensor_hook_returning_a_value_replaces_the_gradient_and_remove_works():
    x = mq.randn(3, dtype=mq.float64, requires_grad=True)
    hidden = x * 2
    handle = hidden.register_hook(lambda grad: grad * 10)  # on a non-leaf: changes what flows on
    leaf_handle = x.register_hook(lambda grad: grad + 1)  # on a leaf: changes what lands in .grad
    hidden.sum().backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 21.0))
    handle.remove()
    leaf_handle.remove()
    x.grad = None
    hidden.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 2.0))
