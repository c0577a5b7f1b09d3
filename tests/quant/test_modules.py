"""Quantizer modules: eval forward == fake_quant on qparams(), train/eval behaviour, observer and
fake-quant switches, LSQ / DSQ initialisation and learned values, state_dict round trips, repr, errors."""

import numpy as np
import pytest
from helpers import const, host

import minigrad_q as mq
from minigrad_q.quant.fake_quant import fake_quant
from minigrad_q.quant.lsq import lsq_init_step
from minigrad_q.quant.modules import (
    ALPHA_MAX,
    DSQQuantizer,
    FakeQuantize,
    LSQQuantizer,
    PACTQuantizer,
    QuantNoiseQuantizer,
)

rng = np.random.default_rng(11)

# name -> (factory, input shape, non-negative input)
QUANTIZERS = {
    "fake_quant_tensor": (lambda: FakeQuantize(4, signed=False, symmetric=False), (8, 5), False),
    "fake_quant_channel": (lambda: FakeQuantize(4, axis=0, averaging_constant=1.0, num_channels=6), (6, 3, 2, 2), False),
    "fake_quant_minmax": (lambda: FakeQuantize(3, averaging_constant=None), (4, 7), False),
    "dsq_tensor": (lambda: DSQQuantizer(4, True), (8, 5), False),
    "dsq_channel_fixed_alpha": (lambda: DSQQuantizer(2, True, axis=0, learn_alpha=False, num_channels=6), (6, 4), False),
    "dsq_learned_scale": (lambda: DSQQuantizer(3, False, axis=1, learn_scale=True, num_channels=5), (4, 5, 3), True),
    "lsq_tensor": (lambda: LSQQuantizer(4, False), (8, 5), True),
    "lsq_channel": (lambda: LSQQuantizer(4, True, axis=0, num_channels=6), (6, 3, 2, 2), False),
    "lsq_offset": (lambda: LSQQuantizer(3, False, offset=True), (8, 5), False),
    "pact": (lambda: PACTQuantizer(4, alpha=1.5), (8, 5), True),
    "qnoise": (lambda: QuantNoiseQuantizer(4, p=0.5), (6, 8), False),
}


def _data(shape, non_negative):
    data = rng.normal(size=shape).astype(np.float32)
    return np.abs(data) if non_negative else data


@pytest.mark.parametrize("name", QUANTIZERS)
def test_eval_forward_is_fake_quant_on_qparams(name, device):
    factory, shape, non_negative = QUANTIZERS[name]
    quantizer = factory().to(device)
    quantizer(const(_data(shape, non_negative), device))  # a training batch sets the grid
    quantizer.eval()
    x = const(_data(shape, non_negative) * 1.5, device)
    scale, zero_point, qmin, qmax, axis = quantizer.qparams()
    assert zero_point.dtype == mq.int64 and np.all(host(scale) > 0)
    expected = fake_quant(x, scale, zero_point.to(mq.float32), qmin, qmax, axis)
    np.testing.assert_allclose(host(quantizer(x)), host(expected), rtol=1e-6, atol=1e-7)
    assert len(np.unique(host(quantizer(x)))) <= 2 ** quantizer.bits * (1 if axis is None else x.shape[axis])


@pytest.mark.parametrize("name", QUANTIZERS)
def test_eval_forward_does_not_change_the_state(name):
    factory, shape, non_negative = QUANTIZERS[name]
    quantizer = factory()
    quantizer(const(_data(shape, non_negative)))
    before = {key: host(value).copy() for key, value in quantizer.state_dict().items()}
    quantizer.eval()
    quantizer(const(_data(shape, non_negative) * 3))
    for key, value in quantizer.state_dict().items():
        np.testing.assert_array_equal(host(value), before[key], err_msg=key)


@pytest.mark.parametrize("name", QUANTIZERS)
def test_state_dict_round_trip(name):
    factory, shape, non_negative = QUANTIZERS[name]
    source = factory()
    for _ in range(2):
        source(const(_data(shape, non_negative)))
    target = factory()
    target.load_state_dict(source.state_dict())
    source.eval(), target.eval()
    x = const(_data(shape, non_negative))
    np.testing.assert_array_equal(host(target(x)), host(source(x)))
    target.train()
    before = {key: host(value).copy() for key, value in target.named_parameters()}
    target(x)  # a loaded LSQ / learned-scale DSQ is not initialised again
    for key, value in target.named_parameters():
        np.testing.assert_array_equal(host(value), before[key], err_msg=key)


@pytest.mark.parametrize("name", QUANTIZERS)
def test_disable_fake_quant_returns_the_input(name):
    factory, shape, non_negative = QUANTIZERS[name]
    quantizer = factory().disable_fake_quant()
    x = const(_data(shape, non_negative))
    assert quantizer(x) is x
    assert quantizer.enable_fake_quant() is quantizer and quantizer(x) is not x
    assert "fake_quant=off" in repr(quantizer.disable_fake_quant())


@pytest.mark.parametrize("name", ["fake_quant_tensor", "fake_quant_channel", "dsq_tensor", "qnoise"])
def test_disable_observer_freezes_the_grid(name):
    factory, shape, non_negative = QUANTIZERS[name]
    quantizer = factory()
    quantizer(const(_data(shape, non_negative)))
    scale, zero_point, *_ = quantizer.qparams()
    quantizer.disable_observer()
    quantizer(const(_data(shape, non_negative) * 5))
    np.testing.assert_array_equal(host(quantizer.qparams()[0]), host(scale))
    np.testing.assert_array_equal(host(quantizer.qparams()[1]), host(zero_point))
    assert "observer=off" in repr(quantizer)
    quantizer.enable_observer()
    quantizer(const(_data(shape, non_negative) * 5))
    assert not np.array_equal(host(quantizer.qparams()[0]), host(scale))


def test_fake_quantize_train_forward_observes_then_quantizes():
    quantizer = FakeQuantize(4, signed=True, axis=0, averaging_constant=1.0)
    x = const(_data((3, 8), False))
    y = quantizer(x)
    data = host(x)
    scale = (np.maximum(np.abs(data).max(axis=1), 0) / 7.5).astype(data.dtype)  # symmetric signed: max|x| / ((qmax - qmin) / 2)
    inverse = np.asarray(1, data.dtype) / scale  # fake_quant multiplies by 1/s, as torch does
    expected = (np.clip(np.rint(data * inverse[:, None]), -8, 7)) * scale[:, None]
    np.testing.assert_allclose(host(y), expected, rtol=1e-6)
    assert quantizer.qparams()[2:] == (-8, 7, 0)


def test_fake_quantize_gradient_is_the_ste_mask():
    quantizer = FakeQuantize(8, signed=False, symmetric=False, averaging_constant=1.0)
    quantizer(const([0.0, 2.0]))  # grid [0, 2]
    quantizer.disable_observer()
    x = mq.tensor([-1.0, 0.5, 1.0, 3.0], dtype=mq.float32, requires_grad=True)
    quantizer(x).sum().backward()
    np.testing.assert_array_equal(host(x.grad), [0.0, 1.0, 1.0, 0.0])


def test_lsq_step_initialised_on_the_first_training_batch_only():
    quantizer = LSQQuantizer(4, True, axis=0)
    assert quantizer.step.shape == (0,) and int(quantizer.initialized) == 0
    first = const(_data((5, 12), False))
    quantizer(first)
    np.testing.assert_allclose(host(quantizer.step), lsq_init_step(first, 7, axis=0).numpy(), rtol=1e-6)
    assert int(quantizer.initialized) == 1 and quantizer.is_initialized()
    before = host(quantizer.step).copy()
    quantizer(const(_data((5, 12), False) * 10))
    np.testing.assert_array_equal(host(quantizer.step), before)


def test_lsq_eval_before_initialisation_is_a_clear_error_per_channel():
    quantizer = LSQQuantizer(4, True, axis=0).eval()
    with pytest.raises(RuntimeError, match="not initialised yet"):
        quantizer(mq.zeros(3, 2))


def test_lsq_step_gets_the_lsq_gradient_and_keeps_its_parameter_object():
    quantizer = LSQQuantizer(3, False)
    step = quantizer.step
    x = const(_data((10,), True))
    quantizer(x).sum().backward()
    assert quantizer.step is step and step.grad is not None and np.isfinite(host(step.grad)).all()


def test_lsq_offset_initialised_from_min_max():
    quantizer = LSQQuantizer(2, False, offset=True)
    x = const([-1.0, 0.0, 2.0], dtype=mq.float32)
    quantizer(x)
    np.testing.assert_allclose(host(quantizer.step), [1.0])  # (2 - (-1)) / 3
    np.testing.assert_allclose(host(quantizer.offset), [-1.0])
    assert int(host(quantizer.qparams()[1])[0]) == 1  # z = -round(beta / s)


def test_dsq_alpha_is_a_parameter_with_a_gradient_or_a_buffer():
    learned = DSQQuantizer(2, True)
    assert [name for name, _ in learned.named_parameters()] == ["alpha"]
    assert float(learned.alpha) == pytest.approx(0.2)
    x = mq.tensor(_data((20,), False), requires_grad=True)
    learned(x).sum().backward()
    assert learned.alpha.grad is not None and float(learned.alpha.grad) != 0
    fixed = DSQQuantizer(2, True, learn_alpha=False, alpha=0.5)
    assert list(fixed.named_parameters()) == [] and "alpha" in fixed.state_dict()


def test_dsq_alpha_is_projected_back_into_its_domain():
    quantizer = DSQQuantizer(2, True)
    quantizer.alpha.data[...] = 1.7  # as an optimizer step might leave it
    quantizer(const(_data((10,), False)))
    assert float(quantizer.alpha) == pytest.approx(ALPHA_MAX)


def test_dsq_learned_scale_is_initialised_from_the_observer_and_trains():
    quantizer = DSQQuantizer(3, True, learn_scale=True)
    x = mq.tensor(_data((30,), False), requires_grad=True)
    quantizer(x).sum().backward()
    np.testing.assert_allclose(host(quantizer.scale), [np.abs(host(x)).max() / 3.5], rtol=1e-6)  # max|x| / ((qmax - qmin) / 2)
    assert quantizer.scale.grad is not None and quantizer.alpha.grad is not None


def test_dsq_forward_equals_fake_quantize_forward():
    x = const(_data((4, 9), False))
    dsq_quantizer, ste_quantizer = DSQQuantizer(3, True, axis=0), FakeQuantize(3, True, axis=0)
    np.testing.assert_array_equal(host(dsq_quantizer(x)), host(ste_quantizer(x)))


def test_pact_alpha_gets_the_sum_of_upstream_where_x_reaches_alpha():
    quantizer = PACTQuantizer(2, alpha=1.0)
    x = const([0.2, 0.7, 1.5, 3.0, -1.0], dtype=mq.float32)
    upstream = const([1.0, 2.0, 3.0, 4.0, 5.0], dtype=mq.float32)
    (quantizer(x) * upstream).sum().backward()
    assert float(quantizer.alpha.grad) == 7.0
    scale, zero_point, qmin, qmax, axis = quantizer.qparams()
    assert float(scale) == pytest.approx(1 / 3) and (qmin, qmax, axis) == (0, 3, None)


def test_quant_noise_trains_with_noise_and_evaluates_fully_quantized():
    weight = mq.tensor(_data((16, 32), False), requires_grad=True)
    original = host(weight).copy()
    full = QuantNoiseQuantizer(4, p=1.0)
    quantized = host(full(weight))
    none = QuantNoiseQuantizer(4, p=0.0)
    np.testing.assert_array_equal(host(none(weight)), original)
    half = QuantNoiseQuantizer(4, p=0.5)
    noised = host(half(weight))
    taken = noised != original
    assert 0.3 < taken.mean() < 0.7
    np.testing.assert_array_equal(noised[taken], quantized[taken])
    half.eval()
    np.testing.assert_array_equal(host(half(weight)), quantized)
    np.testing.assert_array_equal(host(weight), original)  # never modified in place
    half.train()
    half(weight).sum().backward()
    np.testing.assert_array_equal(host(weight.grad), np.ones_like(original))


def test_float64_input_through_float32_quantizer():
    quantizer = DSQQuantizer(4, True)
    x = mq.tensor(_data((6,), False).astype(np.float64), requires_grad=True)
    y = quantizer(x)
    y.sum().backward()
    assert y.dtype == mq.float64 and quantizer.alpha.grad.dtype == mq.float32


def test_repr_shows_bits_and_method_options():
    assert repr(PACTQuantizer(4)) == "PACTQuantizer(bits=4, qmin=0, qmax=15, alpha=10)"
    assert repr(QuantNoiseQuantizer(8, p=0.25, block_size=4)) .startswith(
        "QuantNoiseQuantizer(\n  bits=8, qmin=-128, qmax=127, p=0.25, block_size=4, signed=True")
    text = repr(DSQQuantizer(2, True, axis=0, learn_alpha=False, alpha=0.4))
    assert "bits=2, qmin=-2, qmax=1, axis=0, alpha=0.4, learn_alpha=False, learn_scale=False, symmetric=True" in text
    assert "(observer): MovingAveragePerChannelMinMaxObserver(ch_axis=0" in text
    assert "offset=True" in repr(LSQQuantizer(4, False, offset=True))


@pytest.mark.parametrize("make, message", [
    (lambda: FakeQuantize(0), "bits must be between 1 and 16"),
    (lambda: FakeQuantize(17), "bits must be between 1 and 16"),
    (lambda: FakeQuantize(1, narrow=True), "single code"),
    (lambda: FakeQuantize(4, axis=1.5), "axis must be None"),
    (lambda: FakeQuantize(4, num_channels=3), "needs a channel axis"),
    (lambda: DSQQuantizer(4, True, alpha=1.0), "alpha must lie in \\(0, 1\\)"),
    (lambda: DSQQuantizer(4, True, alpha=0.0), "alpha must lie in \\(0, 1\\)"),
    (lambda: LSQQuantizer(1, True), "signed 1-bit gives qmax = 0"),
    (lambda: PACTQuantizer(4, alpha=0.0), "alpha must be positive"),
    (lambda: QuantNoiseQuantizer(4, p=1.5), "p must lie in \\[0, 1\\]"),
    (lambda: QuantNoiseQuantizer(4, block_size=0), "block_size must be a positive int"),
])
def test_bad_settings_are_clear_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_bad_inputs_are_clear_errors():
    with pytest.raises(TypeError, match="expected a Tensor"):
        FakeQuantize(4)(np.zeros(3))
    quantizer = FakeQuantize(4, axis=0, num_channels=3)
    with pytest.raises(ValueError, match="observed 3 channels before"):
        quantizer(mq.zeros(4, 2))
    with pytest.raises(ValueError, match="block_size"):
        QuantNoiseQuantizer(4, block_size=3)(mq.zeros(4, 8))
    with pytest.raises(TypeError, match="enabled must be a bool"):
        FakeQuantize(4).enable_observer("yes")
