"""The Optimizer base: state_dict/load_state_dict round trips (also through JSON + plain arrays, as a
checkpoint stores them), zero_grad, closures, parameter validation and load errors."""

import json

import numpy as np
import pytest
from optim_reference import leaves, make_problem, run, set_gradients

import minigrad_q as mq
from minigrad_q.optim import SGD, Adam, AdamW, Optimizer

OPTIMIZERS = [
    (SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    (Adam, {"lr": 0.01, "weight_decay": 0.01}),
    (AdamW, {"lr": 0.01, "betas": (0.8, 0.95)}),
]
IDS = ["sgd-momentum", "sgd-nesterov", "adam", "adamw"]


def two_groups(params, options):
    return [{"params": params[:2]}, {"params": params[2:], "lr": options["lr"] / 10}]


def split_for_checkpoint(state_dict):
    """What a safetensors + JSON checkpoint keeps: {name: ndarray} and a JSON text of everything else."""
    arrays, meta = {}, {"param_groups": state_dict["param_groups"], "state": {}}
    for index, entries in state_dict["state"].items():
        meta["state"][index] = {}
        for key, value in entries.items():
            if isinstance(value, mq.Tensor):
                arrays[f"{index}.{key}"] = value.numpy()
            else:
                meta["state"][index][key] = value
    return arrays, json.dumps(meta)


def join_from_checkpoint(arrays, text):
    meta = json.loads(text)
    for name, array in arrays.items():
        index, key = name.split(".")
        meta["state"][index][key] = array
    return meta


@pytest.mark.parametrize("through_json", [False, True], ids=["direct", "json+arrays"])
@pytest.mark.parametrize("cls, options", OPTIMIZERS, ids=IDS)
def test_state_dict_round_trip_reproduces_the_next_steps_exactly(cls, options, through_json):
    starts, curvatures, offsets = make_problem([(3, 4), (5,), (2,), ()], dtype=np.float32)
    params = leaves(starts)
    optimizer = cls(two_groups(params, options), **options)
    run(optimizer, params, curvatures, offsets, steps=3)
    saved = optimizer.state_dict()
    if through_json:
        saved = join_from_checkpoint(*split_for_checkpoint(saved))

    resumed_params = leaves([p.detach().numpy() for p in params])
    resumed = cls(two_groups(resumed_params, options), **options)
    resumed.load_state_dict(saved)
    assert [{k: v for k, v in g.items() if k != "params"} for g in resumed.param_groups] == [
        {k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups
    ]
    original = run(optimizer, params, curvatures, offsets, steps=2)
    again = run(resumed, resumed_params, curvatures, offsets, steps=2)
    for a, b in zip(original, again):
        np.testing.assert_array_equal(a, b)


def test_state_dict_layout_is_torchs_with_numbers_and_tensors_only():
    params = leaves([np.ones(3), np.ones(2)])
    optimizer = Adam([{"params": params[:1]}, {"params": params[1:], "lr": 0.1}])
    params[1].grad = mq.tensor([1.0, 1.0])
    optimizer.step()
    state = optimizer.state_dict()
    assert set(state) == {"state", "param_groups"}
    assert list(state["state"]) == [1]  # only the parameter that had a gradient
    assert set(state["state"][1]) == {"step", "exp_avg", "exp_avg_sq"} and state["state"][1]["step"] == 1
    assert state["param_groups"] == [
        {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "params": [0]},
        {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "params": [1]},
    ]
    for entries in state["state"].values():
        for value in entries.values():
            assert isinstance(value, (mq.Tensor, int, float))


def test_state_dict_is_a_snapshot():
    w = leaves([np.ones(2)])[0]
    optimizer = SGD([w], lr=0.1, momentum=0.9)
    w.grad = mq.tensor([1.0, 1.0])
    optimizer.step()
    saved = optimizer.state_dict()
    optimizer.step()
    np.testing.assert_array_equal(saved["state"][0]["momentum_buffer"].numpy(), [1.0, 1.0])
    saved["param_groups"][0]["lr"] = 5.0
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_loaded_state_is_copied_and_cast_to_the_parameter():
    w = mq.tensor(np.zeros(2, dtype=np.float32), requires_grad=True)
    optimizer = SGD([w], lr=0.1, momentum=0.9)
    buffer = np.array([1.0, 2.0])  # float64 from a checkpoint
    optimizer.load_state_dict({"state": {"0": {"momentum_buffer": buffer}}, "param_groups": [
        {"lr": 0.2, "momentum": 0.5, "dampening": 0, "weight_decay": 0, "nesterov": False, "params": [0]}]})
    loaded = optimizer.state[w]["momentum_buffer"]
    assert loaded.dtype == mq.float32 and optimizer.param_groups[0]["lr"] == 0.2
    w.grad = mq.tensor(np.zeros(2, dtype=np.float32))
    optimizer.step()
    np.testing.assert_array_equal(buffer, [1.0, 2.0])
    np.testing.assert_allclose(loaded.numpy(), [0.5, 1.0])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s["param_groups"].append(dict(s["param_groups"][0])), "has 2 parameter groups, this optimizer has 1"),
        (lambda s: s["param_groups"][0]["params"].pop(), "parameter group 0 has 1 parameters in the state dict, 2 in"),
        (lambda s: s["state"].update({7: {}}), "state for parameter 7, but this optimizer has 2 parameters"),
        (lambda s: s["state"][0].update(momentum_buffer=np.zeros(4)),
         r"parameter 0's 'momentum_buffer' has shape \(4,\), but the parameter has shape \(3,\)"),
        (lambda s: s["param_groups"][0].update(betas=[0.9, 0.99]), r"options \['betas'\] that SGD does not know"),
        (lambda s: s.pop("state"), "expected a dict with keys 'state' and 'param_groups'"),
        (lambda s: s["param_groups"][0].update(lr=-1), "invalid learning rate"),
    ],
)
def test_load_state_dict_errors_say_what_does_not_match(change, message):
    params = leaves([np.ones(3), np.ones(2)])
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = mq.ones_like(p)
    optimizer.step()
    saved = optimizer.state_dict()
    change(saved)
    with pytest.raises(ValueError, match=message):
        SGD(leaves([np.ones(3), np.ones(2)]), lr=0.1, momentum=0.9).load_state_dict(saved)


def test_zero_grad_sets_none_or_fills_zeros_in_place():
    a, b = leaves([np.ones(2), np.ones(3)])
    optimizer = SGD([a, b], lr=0.1)
    a.grad, b.grad = mq.ones_like(a), mq.ones_like(b)
    kept = b.grad
    optimizer.zero_grad(set_to_none=False)
    assert b.grad is kept and np.all(b.grad.numpy() == 0) and np.all(a.grad.numpy() == 0)
    optimizer.zero_grad()
    assert a.grad is None and b.grad is None
    optimizer.zero_grad()  # nothing to do, no error


def test_step_with_closure_returns_its_loss_and_uses_its_gradient():
    w = leaves([np.array([3.0])])[0]
    optimizer = SGD([w], lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with mq.no_grad():  # the closure still records its graph
        loss = optimizer.step(closure)
    assert loss.item() == 9.0
    np.testing.assert_allclose(w.detach().numpy(), [3.0 - 0.1 * 6.0])


def test_step_records_nothing_in_the_graph():
    w = leaves([np.ones(2)])[0]
    w.grad = mq.ones_like(w)
    Adam([w]).step()
    assert w.is_leaf and w.requires_grad and w.creator is None


def test_same_run_twice_gives_identical_parameters():
    starts, curvatures, offsets = make_problem([(4, 4)], dtype=np.float32)
    results = []
    for _ in range(2):
        params = leaves(starts)
        results.append(run(Adam(params, lr=0.01), params, curvatures, offsets, steps=5)[0])
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize(
    "params, error, message",
    [
        (lambda: mq.tensor([1.0], requires_grad=True), TypeError, "got a single Tensor"),
        (lambda: [], ValueError, "got an empty parameter list"),
        (lambda: [np.ones(2)], TypeError, "can only optimize Tensors, but one of the params is ndarray"),
        (lambda: [mq.tensor([1.0], requires_grad=True) * 2], ValueError, "can't optimize a non-leaf Tensor"),
        (lambda: [("weight", mq.tensor([1.0], requires_grad=True))], TypeError, "not model.named_parameters"),
        (lambda: [{"lr": 0.1}], ValueError, "a parameter group needs a 'params' key"),
        (lambda: [{"params": [mq.tensor([1.0], requires_grad=True)], "momentun": 0.9}], ValueError,
         r"unknown options \['momentun'\]"),
    ],
)
def test_bad_parameter_lists_are_refused(params, error, message):
    with pytest.raises(error, match=message):
        SGD(params(), lr=0.1)


def test_a_parameter_in_two_groups_is_refused():
    w = mq.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        SGD([{"params": [w]}, {"params": [w]}], lr=0.1)
    with pytest.raises(ValueError, match="appears more than once in one parameter group"):
        SGD([w, w], lr=0.1)


def test_generators_of_parameters_are_accepted():
    params = leaves([np.ones(2), np.ones(3)])
    optimizer = Adam(p for p in params)
    assert optimizer.param_groups[0]["params"] == params


def test_repr_lists_groups_and_options():
    text = repr(SGD(leaves([np.ones(1)]), lr=0.1, momentum=0.9))
    assert text.startswith("SGD (\nParameter Group 0\n") and "    momentum: 0.9\n" in text and text.endswith(")")


def test_optimizer_subclass_without_update_says_so():
    w = mq.tensor([1.0], requires_grad=True)
    w.grad = mq.ones_like(w)
    with pytest.raises(NotImplementedError):
        Optimizer([w], {"lr": 0.1}).step()


def test_set_gradients_then_step_on_device(device):
    starts, curvatures, offsets = make_problem([(3,)])
    params = leaves(starts, device)
    optimizer = SGD(params, lr=0.1)
    set_gradients(params, curvatures, offsets)
    optimizer.step()
    assert params[0].device.startswith(device)
