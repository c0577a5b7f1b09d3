"""Observers: the issue's example, the range always includes 0, the eps floor, per-channel == per-tensor
per slice, the moving-average formula, no gradient recorded, state_dict, errors, torch.ao cross-checks."""

import numpy as np
import pytest
from helpers import const, host

import minigrad_q as mq
from minigrad_q.quant.observers import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from minigrad_q.quant.qparams import FLOAT32_EPS

rng = np.random.default_rng(7)
EXAMPLE = [-5.0, -3.5, -2.0, 0.0, 3.0, 5.0, 7.0]


def test_issue_example_gives_scale_0_094488_and_zero_point_53(device):
    observer = MinMaxObserver(quant_min=0, quant_max=127)
    observer(const(EXAMPLE, device, mq.float32))
    scale, zero_point = observer.calculate_qparams()
    assert scale.shape == (1,) and zero_point.shape == (1,)
    assert round(float(scale.numpy()[0]), 6) == 0.094488
    assert int(zero_point.numpy()[0]) == 53
    assert zero_point.dtype == mq.int64


def test_forward_returns_the_input_itself_and_records_no_gradient(device):
    x = mq.tensor(EXAMPLE, device=device, requires_grad=True)
    observer = MovingAverageMinMaxObserver()
    y = observer(x)
    assert y is x
    assert not observer.min_val.requires_grad and observer.min_val.creator is None
    assert observer.min_val.device == x.device


@pytest.mark.parametrize("values, expected_low, expected_high", [([1.0, 2.0, 4.0], 0.0, 4.0), ([-3.0, -1.0], -3.0, 0.0)])
def test_the_range_always_includes_zero(values, expected_low, expected_high):
    observer = MinMaxObserver(quant_min=0, quant_max=255)
    observer(const(values, dtype=mq.float32))
    scale, zero_point = observer.calculate_qparams()
    np.testing.assert_allclose(scale.numpy(), [(expected_high - expected_low) / 255], rtol=1e-6)
    assert int(zero_point.numpy()[0]) == int(np.clip(0 - np.rint(expected_low / scale.numpy()[0]), 0, 255))
    low = (0 - zero_point.numpy()[0]) * scale.numpy()[0]  # the grid's lowest and highest values
    high = (255 - zero_point.numpy()[0]) * scale.numpy()[0]
    assert low <= 0 <= high  # 0 is on the grid


@pytest.mark.parametrize("symmetric", [False, True])
def test_scale_is_floored_at_float32_eps_for_an_all_zero_input(symmetric):
    observer = MinMaxObserver(quant_min=-128, quant_max=127, symmetric=symmetric)
    observer(mq.zeros(5))
    scale, zero_point = observer.calculate_qparams()
    assert scale.numpy()[0] == np.float32(FLOAT32_EPS)
    assert zero_point.numpy()[0] == (0 if symmetric else -128)


def test_symmetric_signed_and_unsigned_zero_points():
    x = const(EXAMPLE, dtype=mq.float32)
    signed = MinMaxObserver(-128, 127, symmetric=True)
    unsigned = MinMaxObserver(0, 255, symmetric=True)
    signed(x), unsigned(x)
    for observer, zero in ((signed, 0), (unsigned, 128)):
        scale, zero_point = observer.calculate_qparams()
        np.testing.assert_allclose(scale.numpy(), [7.0 / 127.5], rtol=1e-6)
        assert zero_point.numpy()[0] == zero


def test_min_max_observer_keeps_the_running_range():
    observer = MinMaxObserver()
    for values in ([1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]):
        observer(const(values, dtype=mq.float32))
    assert float(observer.min_val) == -1.0 and float(observer.max_val) == 3.0


def test_moving_average_formula_and_first_observation_initialises():
    constant = 0.25
    observer = MovingAverageMinMaxObserver(averaging_constant=constant)
    batches = [rng.normal(size=20) * scale for scale in (1.0, 3.0, 0.5, 2.0)]
    expected_min, expected_max = batches[0].min(), batches[0].max()
    observer(const(batches[0], dtype=mq.float64))
    assert float(observer.min_val) == np.float32(expected_min) and float(observer.max_val) == np.float32(expected_max)
    for batch in batches[1:]:
        observer(const(batch, dtype=mq.float64))
        expected_min = expected_min + constant * (batch.min() - expected_min)
        expected_max = expected_max + constant * (batch.max() - expected_max)
    np.testing.assert_allclose(float(observer.min_val), expected_min, rtol=1e-6)
    np.testing.assert_allclose(float(observer.max_val), expected_max, rtol=1e-6)


def test_averaging_constant_one_keeps_exactly_the_last_batch():
    observer = MovingAverageMinMaxObserver(averaging_constant=1.0)
    for batch in (rng.normal(size=30).astype(np.float32), rng.normal(size=30).astype(np.float32)):
        observer(const(batch))
    assert float(observer.min_val) == batch.min() and float(observer.max_val) == batch.max()


@pytest.mark.parametrize("moving", [False, True])
@pytest.mark.parametrize("ch_axis", [0, 1, -1])
@pytest.mark.parametrize("symmetric", [False, True])
def test_per_channel_equals_per_tensor_applied_per_slice(device, moving, ch_axis, symmetric):
    batches = [rng.normal(size=(3, 4, 5)).astype(np.float32) * (i + 1) for i in range(3)]
    if moving:
        per_channel = MovingAveragePerChannelMinMaxObserver(0.3, ch_axis, -8, 7, symmetric)
        make = lambda: MovingAverageMinMaxObserver(0.3, -8, 7, symmetric)
    else:
        per_channel = PerChannelMinMaxObserver(ch_axis, -8, 7, symmetric)
        make = lambda: MinMaxObserver(-8, 7, symmetric)
    channels = batches[0].shape[ch_axis]
    per_slice = [make() for _ in range(channels)]
    for batch in batches:
        per_channel(const(batch, device))
        for c, observer in enumerate(per_slice):
            observer(const(np.take(batch, c, axis=ch_axis), device))
    scale, zero_point = per_channel.calculate_qparams()
    assert scale.shape == (channels,)
    for c, observer in enumerate(per_slice):
        slice_scale, slice_zero = observer.calculate_qparams()
        assert host(scale)[c] == host(slice_scale)[0]
        assert host(zero_point)[c] == host(slice_zero)[0]


def test_unobserved_qparams_are_scale_one_zero_point_zero_as_torch():
    for observer in (MinMaxObserver(), PerChannelMinMaxObserver(), PerChannelMinMaxObserver(num_channels=3)):
        scale, zero_point = observer.calculate_qparams()
        assert np.all(scale.numpy() == 1.0) and np.all(zero_point.numpy() == 0)


def test_empty_input_is_ignored():
    observer = MinMaxObserver()
    observer(mq.zeros(0, 3))
    assert float(observer.min_val) == np.inf and float(observer.max_val) == -np.inf


def test_state_dict_round_trip():
    source = MovingAveragePerChannelMinMaxObserver(0.5, 0, num_channels=4)
    source(const(rng.normal(size=(4, 6)).astype(np.float32)))
    assert list(source.state_dict()) == ["min_val", "max_val"]
    target = MovingAveragePerChannelMinMaxObserver(0.5, 0, num_channels=4)
    target.load_state_dict(source.state_dict())
    for got, want in zip(target.calculate_qparams(), source.calculate_qparams()):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    lazy = PerChannelMinMaxObserver()
    lazy(const(rng.normal(size=(2, 3)).astype(np.float32)))
    assert lazy.min_val.shape == (2,)


def test_float64_module_keeps_float64_buffers():
    observer = MinMaxObserver().double()
    observer(const([0.1, 0.3]))
    assert observer.min_val.dtype == mq.float64 and float(observer.max_val) == 0.3


def test_errors_are_clear():
    with pytest.raises(ValueError, match="qmin must be less than qmax"):
        MinMaxObserver(quant_min=5, quant_max=5)
    with pytest.raises(ValueError, match="averaging_constant must be in \\(0, 1\\]"):
        MovingAverageMinMaxObserver(averaging_constant=0)
    with pytest.raises(ValueError, match="eps must be a positive number"):
        MinMaxObserver(eps=0.0)
    observer = PerChannelMinMaxObserver(ch_axis=0)
    observer(mq.zeros(3, 2))
    with pytest.raises(ValueError, match="observed 3 channels before"):
        observer(mq.zeros(4, 2))
    with pytest.raises(IndexError):
        PerChannelMinMaxObserver(ch_axis=2)(mq.zeros(3, 2))
    with pytest.raises(TypeError, match="expected a Tensor"):
        MinMaxObserver()(np.zeros(3))


def test_repr_shows_the_settings_and_range():
    observer = MinMaxObserver(0, 127)
    observer(const(EXAMPLE, dtype=mq.float32))
    assert repr(observer) == "MinMaxObserver(quant_min=0, quant_max=127, symmetric=False, min_val=-5.0, max_val=7.0)"


# ---------------------------------------------------------------- torch.ao cross-checks
def _torch_observer(torch, cls, symmetric, per_channel, signed, **kwargs):
    scheme = {(False, False): torch.per_tensor_affine, (True, False): torch.per_tensor_symmetric,
              (False, True): torch.per_channel_affine, (True, True): torch.per_channel_symmetric}[(symmetric, per_channel)]
    dtype, qmin, qmax = (torch.qint8, -128, 127) if signed else (torch.quint8, 0, 255)
    return cls(dtype=dtype, qscheme=scheme, **kwargs), qmin, qmax  # torch's default (not "customized") ranges


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("kind", ["minmax", "moving", "per_channel", "moving_per_channel"])
def test_matches_torch_ao(kind, symmetric, signed):
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import observer as tob

    per_channel = "channel" in kind
    torch_cls = {"minmax": tob.MinMaxObserver, "moving": tob.MovingAverageMinMaxObserver,
                 "per_channel": tob.PerChannelMinMaxObserver,
                 "moving_per_channel": tob.MovingAveragePerChannelMinMaxObserver}[kind]
    extra = {"averaging_constant": 0.2} if "moving" in kind else {}
    if per_channel:
        extra["ch_axis"] = 1
    reference, qmin, qmax = _torch_observer(torch, torch_cls, symmetric, per_channel, signed, **extra)
    ours = {
        "minmax": lambda: MinMaxObserver(qmin, qmax, symmetric),
        "moving": lambda: MovingAverageMinMaxObserver(0.2, qmin, qmax, symmetric),
        "per_channel": lambda: PerChannelMinMaxObserver(1, qmin, qmax, symmetric),
        "moving_per_channel": lambda: MovingAveragePerChannelMinMaxObserver(0.2, 1, qmin, qmax, symmetric),
    }[kind]()
    for i in range(3):
        batch = (rng.normal(size=(2, 3, 4)) * (i + 1) + 0.5).astype(np.float32)
        ours(const(batch))
        reference(torch.from_numpy(batch))
    for got, want in zip(ours.calculate_qparams(), reference.calculate_qparams()):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
