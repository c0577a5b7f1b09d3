"""StepLR and CosineAnnealingLR: values against their closed forms and torch's schedulers,
several parameter groups, state_dict round trips (resuming), and option checks."""

import math

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q.optim import SGD, Adam
from minigrad_q.optim.lr_scheduler import CosineAnnealingLR, StepLR


def optimizer(lrs=(0.1,)):
    return SGD([{"params": [mq.tensor([1.0], requires_grad=True)], "lr": lr} for lr in lrs], lr=lrs[0])


def schedule(scheduler, epochs):
    """get_last_lr() after creation and after each of `epochs` steps."""
    values = [scheduler.get_last_lr()]
    for _ in range(epochs):
        scheduler.optimizer.step()
        scheduler.step()
        values.append(scheduler.get_last_lr())
    return np.array(values)


def test_step_lr_follows_its_closed_form():
    scheduler = StepLR(optimizer((0.1, 0.5)), step_size=3, gamma=0.5)
    got = schedule(scheduler, 10)
    expected = [[base * 0.5 ** (epoch // 3) for base in (0.1, 0.5)] for epoch in range(11)]
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    assert [g["lr"] for g in scheduler.optimizer.param_groups] == list(got[-1])


@pytest.mark.parametrize("eta_min", [0.0, 0.01])
def test_cosine_annealing_follows_its_closed_form(eta_min):
    scheduler = CosineAnnealingLR(optimizer((0.1, 0.3)), T_max=8, eta_min=eta_min)
    got = schedule(scheduler, 12)
    expected = [[eta_min + (base - eta_min) * (1 + math.cos(math.pi * e / 8)) / 2 for base in (0.1, 0.3)] for e in range(13)]
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    np.testing.assert_allclose(got[8], [eta_min, eta_min], atol=1e-17)  # the minimum at T_max
    np.testing.assert_allclose(got[0], [0.1, 0.3])


@pytest.mark.parametrize(
    "name, kwargs",
    [("StepLR", {"step_size": 2}), ("StepLR", {"step_size": 3, "gamma": 0.7}),
     ("CosineAnnealingLR", {"T_max": 5}), ("CosineAnnealingLR", {"T_max": 6, "eta_min": 0.001})],
)
def test_schedules_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours = schedule(getattr(mq.optim.lr_scheduler, name)(optimizer((0.1, 0.02)), **kwargs), 15)
    torch_optimizer = torch.optim.SGD(
        [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in (0.1, 0.02)], lr=0.1)
    torch_scheduler = getattr(torch.optim.lr_scheduler, name)(torch_optimizer, **kwargs)
    theirs = [torch_scheduler.get_last_lr()]
    for _ in range(15):
        torch_optimizer.step()
        torch_scheduler.step()
        theirs.append(torch_scheduler.get_last_lr())
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_scheduler_records_initial_lr_in_the_groups():
    scheduler = StepLR(optimizer((0.1, 0.2)), step_size=1)
    scheduler.step()
    assert [g["initial_lr"] for g in scheduler.optimizer.param_groups] == [0.1, 0.2]
    assert scheduler.base_lrs == [0.1, 0.2]


@pytest.mark.parametrize("make", [lambda o: StepLR(o, 2, gamma=0.3), lambda o: CosineAnnealingLR(o, 7, eta_min=0.001)])
def test_resuming_from_state_dicts_continues_the_schedule(make):
    scheduler = make(optimizer((0.1, 0.4)))
    schedule(scheduler, 4)
    saved_optimizer, saved_scheduler = scheduler.optimizer.state_dict(), scheduler.state_dict()
    rest = schedule(scheduler, 5)[1:]

    resumed = make(optimizer((0.1, 0.4)))  # the order a trainer uses: build both, then load both
    resumed.optimizer.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved_scheduler)
    assert resumed.last_epoch == 4
    np.testing.assert_array_equal(schedule(resumed, 5)[1:], rest)


def test_scheduler_state_dict_holds_plain_values_only():
    state = CosineAnnealingLR(optimizer(), T_max=3).state_dict()
    assert "optimizer" not in state
    assert state == {"T_max": 3, "eta_min": 0.0, "base_lrs": [0.1], "last_epoch": 0, "_last_lr": [0.1]}


def test_scheduler_load_refuses_a_different_schedulers_state():
    state = CosineAnnealingLR(optimizer(), T_max=3).state_dict()
    with pytest.raises(ValueError, match=r"unknown keys \['T_max', 'eta_min'\]"):
        StepLR(optimizer(), step_size=2).load_state_dict(state)


def test_resuming_with_last_epoch_needs_initial_lr():
    with pytest.raises(KeyError, match=r"'initial_lr' is not in param_groups\[0\]"):
        StepLR(optimizer(), step_size=2, last_epoch=3)
    scheduler = StepLR(optimizer(), step_size=2)
    again = StepLR(scheduler.optimizer, step_size=2, last_epoch=3)
    assert again.last_epoch == 4 and again.get_last_lr() == [pytest.approx(0.001)]


def test_schedulers_drive_adam_too():
    adam = Adam([mq.tensor([1.0], requires_grad=True)], lr=0.01)
    scheduler = StepLR(adam, step_size=1, gamma=0.5)
    scheduler.step()
    assert adam.param_groups[0]["lr"] == 0.005


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: StepLR(optimizer(), step_size=0), "StepLR: step_size must be a positive integer, got 0"),
        (lambda: StepLR(optimizer(), step_size=1.5), "got 1.5"),
        (lambda: CosineAnnealingLR(optimizer(), T_max=0), "CosineAnnealingLR: T_max must be a positive integer"),
    ],
)
def test_bad_schedule_options(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="StepLR: expected an Optimizer, got list"):
        StepLR([], step_size=1)
