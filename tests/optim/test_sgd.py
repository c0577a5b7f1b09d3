"""SGD: several steps against the update rule written out in NumPy and against torch.optim.SGD,
for plain, momentum, dampening, Nesterov and weight-decay settings; in-place updates; errors."""

import numpy as np
import pytest
from optim_reference import leaves, make_problem, run, set_gradients, sgd_reference

import minigrad_q as mq
from minigrad_q.optim import SGD

SHAPES = [(3, 4), (5,), ()]
CONFIGS = [
    {"lr": 0.1},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
    {"lr": 0.05, "momentum": 0.8, "nesterov": True},
    {"lr": 0.1, "weight_decay": 0.01},
    {"lr": 0.05, "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.1},
    {"lr": 0.02, "momentum": 0.7, "nesterov": True, "weight_decay": 0.05},
]
IDS = ["plain", "momentum", "dampening", "nesterov", "decay", "momentum-dampening-decay", "nesterov-decay"]


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_sgd_follows_the_update_rule(device, config):
    starts, curvatures, offsets = make_problem(SHAPES)
    params = leaves(starts, device)
    optimizer = SGD(params, **config)
    got = run(optimizer, params, curvatures, offsets, steps=6)
    expected, buffers = sgd_reference(starts, curvatures, offsets, 6, **config)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-15)
    if config.get("momentum"):
        for param, buffer in zip(params, buffers):
            np.testing.assert_allclose(optimizer.state[param]["momentum_buffer"].numpy(), buffer, rtol=1e-13, atol=1e-15)
    else:
        assert optimizer.state_dict()["state"] == {}  # plain SGD keeps no state, as in torch


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_sgd_matches_torch(config, dtype, rtol):
    torch = pytest.importorskip("torch")
    starts, curvatures, offsets = make_problem(SHAPES, dtype=dtype)
    params = leaves(starts)
    got = run(SGD(params, **config), params, curvatures, offsets, steps=6)
    torch_params = [torch.tensor(start.copy(), requires_grad=True) for start in starts]
    torch_optimizer = torch.optim.SGD(torch_params, **config)
    for _ in range(6):
        for param, curvature, offset in zip(torch_params, curvatures, offsets):
            param.grad = torch.from_numpy(curvature) * param.detach() + torch.from_numpy(offset)
        torch_optimizer.step()
    for g, t in zip(got, torch_params):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, t.detach().numpy(), rtol=rtol, atol=rtol)


def test_sgd_with_gradients_from_backward():
    w = mq.tensor([1.0, -2.0, 3.0], requires_grad=True)
    optimizer = SGD([w], lr=0.25)
    loss = (w * w).sum()
    loss.backward()
    optimizer.step()
    np.testing.assert_allclose(w.detach().numpy(), [0.5, -1.0, 1.5])  # w - 0.25 * 2w


def test_sgd_updates_in_place_and_keeps_dtype(device):
    w = mq.tensor(np.ones((2, 3), dtype=np.float32), device=device, requires_grad=True)
    array = w.data
    w.grad = mq.tensor(np.full((2, 3), 2.0, dtype=np.float32), device=device)
    grad_before = w.grad.data.copy()
    SGD([w], lr=0.5, momentum=0.9, weight_decay=0.1).step()
    assert w.data is array and w.dtype == mq.float32 and w.requires_grad and w.is_leaf
    np.testing.assert_allclose(w.detach().numpy(), 1 - 0.5 * (2 + 0.1), rtol=1e-6)
    np.testing.assert_array_equal(w.grad.numpy(), mq.backend.asnumpy(grad_before))  # the gradient is left alone


def test_momentum_buffer_is_not_the_gradient():
    w = mq.tensor([1.0, 2.0], requires_grad=True)
    optimizer = SGD([w], lr=0.1, momentum=0.9)
    w.grad = mq.tensor([1.0, 1.0])
    optimizer.step()
    w.grad.data[...] = 5.0  # a later backward accumulating into the same buffer must not touch the state
    np.testing.assert_array_equal(optimizer.state[w]["momentum_buffer"].numpy(), [1.0, 1.0])


def test_parameters_without_gradient_are_skipped():
    a, b = mq.tensor([1.0, 2.0], requires_grad=True), mq.tensor([3.0], requires_grad=True)
    optimizer = SGD([a, b], lr=0.1, momentum=0.9)
    a.grad = mq.tensor([1.0, 1.0])
    optimizer.step()
    np.testing.assert_allclose(a.detach().numpy(), [0.9, 1.9])
    np.testing.assert_array_equal(b.detach().numpy(), [3.0])
    assert b not in optimizer.state and list(optimizer.state_dict()["state"]) == [0]


def test_param_groups_use_their_own_options():
    starts, curvatures, offsets = make_problem([(4,), (2, 2)])
    params = leaves(starts)
    optimizer = SGD([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.01, "momentum": 0.5}], lr=0.1)
    assert optimizer.param_groups[0]["lr"] == 0.1 and optimizer.param_groups[0]["momentum"] == 0
    got = run(optimizer, params, curvatures, offsets, steps=4)
    first, _ = sgd_reference(starts[:1], curvatures[:1], offsets[:1], 4, lr=0.1)
    second, _ = sgd_reference(starts[1:], curvatures[1:], offsets[1:], 4, lr=0.01, momentum=0.5)
    np.testing.assert_allclose(got[0], first[0], rtol=1e-13)
    np.testing.assert_allclose(got[1], second[0], rtol=1e-13)


def test_add_param_group_fills_in_defaults():
    a, b = mq.tensor([1.0], requires_grad=True), mq.tensor([2.0], requires_grad=True)
    optimizer = SGD([a], lr=0.1, momentum=0.9)
    optimizer.add_param_group({"params": b, "lr": 0.5})
    assert optimizer.param_groups[1] == {"params": [b], "lr": 0.5, "momentum": 0.9, "dampening": 0, "weight_decay": 0,
                                         "nesterov": False}
    b.grad = mq.tensor([1.0])
    optimizer.step()
    np.testing.assert_allclose(b.detach().numpy(), [1.5])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": -0.1}, "invalid learning rate: -0.1"),
        ({"lr": 0.1, "momentum": -0.5}, "invalid momentum value: -0.5"),
        ({"lr": 0.1, "weight_decay": -1}, "invalid weight_decay value: -1"),
        ({"lr": 0.1, "nesterov": True}, "Nesterov momentum requires a momentum > 0 and zero dampening"),
        ({"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, "dampening=0.1"),
    ],
)
def test_sgd_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SGD([mq.tensor([1.0], requires_grad=True)], **kwargs)


def test_sgd_default_learning_rate_is_torchs():
    assert SGD([mq.tensor([1.0], requires_grad=True)]).defaults["lr"] == 1e-3


def test_step_rejects_a_gradient_of_the_wrong_shape():
    w = mq.tensor([1.0, 2.0], requires_grad=True)
    w.grad = mq.tensor([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=r"SGD.step: a parameter of shape \(2,\) has a gradient of shape \(3,\)"):
        SGD([w], lr=0.1).step()


def test_set_gradients_helper_matches_formula():
    starts, curvatures, offsets = make_problem([(3,)])
    params = leaves(starts)
    set_gradients(params, curvatures, offsets)
    np.testing.assert_allclose(params[0].grad.numpy(), curvatures[0] * starts[0] + offsets[0])
