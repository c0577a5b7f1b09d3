"""Adam and AdamW: several steps against the update rule written out in NumPy and against
torch.optim.Adam / AdamW; state contents; option checks."""

import numpy as np
import pytest
from optim_reference import adam_reference, leaves, make_problem, run

import minigrad_q as mq
from minigrad_q.optim import Adam, AdamW

SHAPES = [(3, 4), (5,), ()]
CONFIGS = [
    {"lr": 1e-2},
    {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 0.1, "betas": (0.0, 0.5), "eps": 1e-3, "weight_decay": 0.01},
]
IDS = ["defaults", "betas-eps", "decay", "extreme-betas"]


@pytest.mark.parametrize("decoupled", [False, True], ids=["Adam", "AdamW"])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_adam_follows_the_update_rule(device, config, decoupled):
    starts, curvatures, offsets = make_problem(SHAPES)
    params = leaves(starts, device)
    optimizer = (AdamW if decoupled else Adam)(params, **{"weight_decay": 0.0, **config})
    got = run(optimizer, params, curvatures, offsets, steps=7)
    expected, m, v = adam_reference(starts, curvatures, offsets, 7, decoupled=decoupled, **config)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    for param, m_i, v_i in zip(params, m, v):
        state = optimizer.state[param]
        assert state["step"] == 7
        np.testing.assert_allclose(state["exp_avg"].numpy(), m_i, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(state["exp_avg_sq"].numpy(), v_i, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_adam_matches_torch(config, name, dtype, rtol):
    torch = pytest.importorskip("torch")
    starts, curvatures, offsets = make_problem(SHAPES, dtype=dtype)
    params = leaves(starts)
    got = run({"Adam": Adam, "AdamW": AdamW}[name](params, **config), params, curvatures, offsets, steps=7)
    torch_params = [torch.tensor(start.copy(), requires_grad=True) for start in starts]
    torch_optimizer = getattr(torch.optim, name)(torch_params, **config)
    for _ in range(7):
        for param, curvature, offset in zip(torch_params, curvatures, offsets):
            param.grad = torch.from_numpy(curvature) * param.detach() + torch.from_numpy(offset)
        torch_optimizer.step()
    for g, t in zip(got, torch_params):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, t.detach().numpy(), rtol=rtol, atol=rtol)


def test_adamw_decays_weights_without_gradient_signal():
    w = mq.tensor([2.0, -4.0], requires_grad=True)
    optimizer = AdamW([w], lr=0.1, weight_decay=0.5)
    w.grad = mq.tensor([0.0, 0.0])
    optimizer.step()
    np.testing.assert_allclose(w.detach().numpy(), [2.0 * 0.95, -4.0 * 0.95])  # m = 0: only the decay acts


def test_adam_first_step_moves_each_coordinate_by_about_lr():
    w = mq.tensor([1.0, 1.0, 1.0], requires_grad=True)
    w.grad = mq.tensor([1e-3, 1.0, -50.0])
    Adam([w], lr=0.01).step()
    np.testing.assert_allclose(w.detach().numpy(), [0.99, 0.99, 1.01], rtol=1e-4)  # m̂/√v̂ = sign(g)


def test_adam_defaults_are_torchs():
    w = mq.tensor([1.0], requires_grad=True)
    assert Adam([w]).defaults == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0}
    assert AdamW([mq.tensor([1.0], requires_grad=True)]).defaults["weight_decay"] == 1e-2


def test_adam_updates_in_place_and_keeps_float32(device):
    w = mq.tensor(np.ones(4, dtype=np.float32), device=device, requires_grad=True)
    array = w.data
    w.grad = mq.tensor(np.ones(4, dtype=np.float32), device=device)
    optimizer = Adam([w], weight_decay=0.1)
    optimizer.step()
    assert w.data is array and w.dtype == mq.float32
    assert optimizer.state[w]["exp_avg"].dtype == mq.float32 and optimizer.state[w]["exp_avg"].device == w.device
    np.testing.assert_array_equal(w.grad.numpy(), np.ones(4, dtype=np.float32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": -1.0}, "Adam: invalid learning rate: -1.0"),
        ({"eps": -1e-8}, "invalid epsilon value"),
        ({"betas": (1.0, 0.999)}, r"invalid beta parameter at index 0: 1.0 \(expected 0 <= beta < 1\)"),
        ({"betas": (0.9, -0.1)}, "invalid beta parameter at index 1"),
        ({"betas": (0.9,)}, r"betas must be a pair"),
        ({"weight_decay": -0.1}, "invalid weight_decay value"),
    ],
)
def test_adam_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Adam([mq.tensor([1.0], requires_grad=True)], **kwargs)
