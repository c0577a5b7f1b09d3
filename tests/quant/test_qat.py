"""QAT: QuantConv2d / QuantLinear, prepare_qat (swap by path, quantizer choices, options, errors),
state_dict round trips, eval vs train, PACT and DSQ alphas that really train, the DSQ extras, and a
short W4A4 LeNet-5 run on digits whose loss goes down."""

import math

import numpy as np
import pytest
from helpers import const, host

import minigrad_q as mq
from minigrad_q import data, models, nn, optim
from minigrad_q.quant.fake_quant import fake_quant
from minigrad_q.quant.modules import DSQQuantizer, FakeQuantize, PACTQuantizer, QuantNoiseQuantizer
from minigrad_q.quant.qat import QuantConv2d, QuantLinear, dsq_alpha_penalty, dsq_alpha_schedule, prepare_qat

rng = np.random.default_rng(5)
LAYER_PATHS = ["0", "3", "7", "9", "11"]  # the convs and linears of LeNet-5


def lenet():
    return models.lenet5(input_size=8)


def images(count=8):
    return const(rng.normal(size=(count, 1, 8, 8)).astype(np.float32))


def test_prepare_qat_swaps_conv_and_linear_by_path_and_leaves_the_model_alone():
    model = lenet()
    prepared = prepare_qat(model, weight="ste", act="ste")
    assert prepared is not model and type(prepared) is type(model)
    for path, module in prepared.named_children():
        original = model.get_submodule(path)
        if path in LAYER_PATHS:
            assert type(module) is (QuantConv2d if isinstance(original, nn.Conv2d) else QuantLinear)
            np.testing.assert_array_equal(host(module.weight), host(original.weight))
            assert module.weight is not original.weight  # a deep copy
        else:
            assert type(module) is type(original)
    assert all(type(model.get_submodule(path)) in (nn.Conv2d, nn.Linear) for path in LAYER_PATHS)
    keys = prepared.state_dict().keys()
    assert {"0.weight", "0.bias", "0.weight_quant.observer.min_val", "3.act_quant.observer.max_val"} <= set(keys)


def test_repr_prints_the_quantizers_by_path():
    text = repr(prepare_qat(lenet(), weight="lsq", act="pact"))
    assert "(3): QuantConv2d(\n    6, 16, kernel_size=(5, 5)" in text
    assert "(weight_quant): LSQQuantizer(bits=4, qmin=-8, qmax=7, axis=0, offset=False)" in text
    assert "(act_quant): PACTQuantizer(bits=4, qmin=0, qmax=15, alpha=4)" in text


def test_quantizer_choices_per_method():
    prepared = prepare_qat(lenet(), weight="dsq", act="ste", wbits=3, abits=5)
    first, second = prepared[0], prepared[3]
    assert isinstance(first.weight_quant, DSQQuantizer) and first.weight_quant.axis == 0
    assert (first.weight_quant.qmin, first.weight_quant.qmax) == (-3, 3)  # symmetric weights: the narrow range
    assert isinstance(first.act_quant, FakeQuantize)
    assert (first.act_quant.qmin, first.act_quant.qmax) == (-16, 15)  # raw input: signed
    assert (second.act_quant.qmin, second.act_quant.qmax) == (0, 31)  # after a ReLU: unsigned
    assert prepared[7].weight_quant.observer.min_val.shape == (120,)  # per output channel
    pact = prepare_qat(lenet(), weight="qnoise", act="pact")
    assert isinstance(pact[0].act_quant, FakeQuantize) and pact[0].act_quant.signed
    assert all(isinstance(pact.get_submodule(p).act_quant, PACTQuantizer) for p in LAYER_PATHS[1:])
    assert all(isinstance(pact.get_submodule(p).weight_quant, QuantNoiseQuantizer) for p in LAYER_PATHS)
    lsq = prepare_qat(lenet(), weight="lsq", act="lsq", per_channel=False)
    assert lsq[0].weight_quant.axis is None and lsq[0].weight_quant.step.shape == (1,)
    assert lsq[0].act_quant.signed and not lsq[3].act_quant.signed
    dsq = prepare_qat(lenet(), weight="dsq", act="dsq", learn_alpha=False, dsq_alpha=0.3)
    assert all(isinstance(dsq.get_submodule(p).act_quant, DSQQuantizer) for p in LAYER_PATHS)
    assert dsq[0].act_quant.signed and not dsq[3].act_quant.signed and not dsq[3].act_quant.symmetric
    assert float(host(dsq[3].act_quant.alpha)[0]) == pytest.approx(0.3) and not dsq[3].act_quant.learn_alpha
    floats = prepare_qat(lenet(), weight="ste", act=None)
    assert all(floats.get_submodule(p).act_quant is None for p in LAYER_PATHS)


def test_weight_quantizers_are_calibrated_on_the_weights():
    prepared = prepare_qat(lenet(), weight="lsq", act=None).eval()
    weight = prepared[3].weight
    np.testing.assert_allclose(
        host(prepared[3].weight_quant.step),
        np.abs(host(weight)).mean(axis=(1, 2, 3)) * 2 / math.sqrt(7), rtol=1e-5)


def test_skip_first_last_keeps_the_first_and_last_layers_float():
    prepared = prepare_qat(lenet(), weight="ste", act="ste", skip_first_last=True)
    assert type(prepared[0]) is nn.Conv2d and type(prepared[11]) is nn.Linear
    assert all(isinstance(prepared.get_submodule(p), (QuantConv2d, QuantLinear)) for p in ("3", "7", "9"))
    assert prepared[3].act_quant.qmin == 0  # not the model's first layer: unsigned


def test_shared_layers_stay_shared():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    prepared = prepare_qat(model, weight="ste", act="ste")
    assert prepared[0] is prepared[2] and isinstance(prepared[0], QuantLinear)


def test_a_single_layer_model_is_swapped_too():
    prepared = prepare_qat(nn.Linear(3, 2), weight="dsq", act=None)
    assert isinstance(prepared, QuantLinear)


def test_quant_conv_forward_is_conv_of_quantized_input_and_weight():
    layer = QuantConv2d(2, 3, 3, padding=1, weight_quant=FakeQuantize(4, axis=0, averaging_constant=1.0),
                        act_quant=FakeQuantize(4, signed=False, symmetric=False, averaging_constant=1.0))
    x = const(rng.normal(size=(2, 2, 5, 5)).astype(np.float32))
    y = layer(x)
    x_scale, x_zero, *_ = layer.act_quant.qparams()
    w_scale, w_zero, *_ = layer.weight_quant.qparams()
    x_hat = fake_quant(x, x_scale, x_zero.to(mq.float32), 0, 15)
    w_hat = fake_quant(layer.weight.detach(), w_scale, w_zero.to(mq.float32), -8, 7, axis=0)
    np.testing.assert_allclose(host(y), host(mq.conv2d(x_hat, w_hat, layer.bias.detach(), 1, 1)), rtol=1e-5, atol=1e-6)


def test_quant_linear_without_quantizers_is_the_float_layer():
    layer = QuantLinear(5, 3)
    x = const(rng.normal(size=(4, 5)).astype(np.float32))
    np.testing.assert_array_equal(host(layer(x)), host(mq.linear(x, layer.weight.detach(), layer.bias.detach())))
    assert "(weight_quant): None" in repr(layer)


def test_from_float_shares_the_parameters_and_rejects_other_modules():
    conv = nn.Conv2d(1, 2, 3)
    quantized = QuantConv2d.from_float(conv, FakeQuantize(8, axis=0))
    assert quantized.weight is conv.weight and quantized.bias is conv.bias
    assert (quantized.stride, quantized.padding, quantized.kernel_size) == (conv.stride, conv.padding, conv.kernel_size)
    with pytest.raises(TypeError, match="expected an nn.Linear, got Conv2d"):
        QuantLinear.from_float(conv)
    with pytest.raises(TypeError, match="expected an nn.Conv2d, got QuantConv2d"):
        QuantConv2d.from_float(quantized)
    with pytest.raises(TypeError, match="weight_quant must be a quantizer Module or None"):
        QuantConv2d.from_float(conv, weight_quant="dsq")


def _train_steps(model, steps=3, lr=0.05):
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(steps):
        x = images(16)
        labels = mq.tensor(rng.integers(0, 10, size=16))
        loss = mq.cross_entropy(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("weight, act", [("ste", "ste"), ("dsq", "lsq"), ("lsq", "pact"), ("qnoise", None)])
def test_state_dict_round_trip_of_a_prepared_model(weight, act):
    source = prepare_qat(lenet(), weight=weight, act=act, learn_scale=True) if weight == "dsq" else \
        prepare_qat(lenet(), weight=weight, act=act)
    _train_steps(source)
    target = prepare_qat(lenet(), weight=weight, act=act, learn_scale=True) if weight == "dsq" else \
        prepare_qat(lenet(), weight=weight, act=act)
    target.load_state_dict(source.state_dict())
    source.eval(), target.eval()
    x = images()
    np.testing.assert_array_equal(host(target(x)), host(source(x)))


def test_eval_is_deterministic_and_leaves_the_quantizers_unchanged():
    prepared = prepare_qat(lenet(), weight="qnoise", act="ste")
    _train_steps(prepared, steps=2)
    prepared.eval()
    state = {key: host(value).copy() for key, value in prepared.state_dict().items()}
    x = images()
    first, second = host(prepared(x)), host(prepared(x))
    np.testing.assert_array_equal(first, second)
    for key, value in prepared.state_dict().items():
        np.testing.assert_array_equal(host(value), state[key], err_msg=key)
    prepared.train()
    assert not np.array_equal(host(prepared(x)), host(prepared(x)))  # a new noise mask per training forward


def test_observers_switch_off_for_the_whole_model():
    prepared = prepare_qat(lenet(), weight="ste", act="ste")
    prepared(images())
    for module in prepared.modules():
        if isinstance(module, FakeQuantize):
            module.disable_observer()
    state = {key: host(value).copy() for key, value in prepared.state_dict().items() if "observer" in key}
    prepared(images() * 3)
    for key, value in state.items():
        np.testing.assert_array_equal(host(prepared.state_dict()[key]), value, err_msg=key)


def test_pact_alpha_gets_a_gradient_through_a_quant_conv():
    layer = QuantConv2d(1, 2, 3, act_quant=PACTQuantizer(4, alpha=0.5))
    x = const(np.abs(rng.normal(size=(2, 1, 5, 5))).astype(np.float32))  # many inputs above alpha
    layer(x).sum().backward()
    alpha_grad = float(host(layer.act_quant.alpha.grad)[0])
    assert alpha_grad != 0
    before = float(host(layer.act_quant.alpha)[0])
    optim.SGD(layer.parameters(), lr=0.01).step()
    assert float(host(layer.act_quant.alpha)[0]) == pytest.approx(before - 0.01 * alpha_grad)


def test_pact_alpha_gradient_is_the_upstream_sum_over_clipped_inputs_in_a_model():
    prepared = prepare_qat(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)), weight=None, act="pact",
                           pact_alpha=0.3)
    x = const(rng.normal(size=(6, 3)).astype(np.float32))
    hidden = prepared[1](prepared[0](x))
    prepared(x).sum().backward()
    upstream = host(prepared[2].weight).reshape(-1)  # d(sum)/d(quantized hidden) per unit
    expected = (host(hidden) >= 0.3).sum(axis=0) @ upstream
    np.testing.assert_allclose(float(host(prepared[2].act_quant.alpha.grad)[0]), expected, rtol=1e-5)


def test_dsq_alpha_learns_with_the_penalty():
    prepared = prepare_qat(lenet(), weight="dsq", act=None)
    alphas = [module.alpha for module in prepared.modules() if isinstance(module, DSQQuantizer)]
    assert len(alphas) == 5 and all(float(host(alpha)[0]) == pytest.approx(0.2) for alpha in alphas)
    penalty = dsq_alpha_penalty(prepared, 0.5)
    assert float(host(penalty)) == pytest.approx(0.5 * 5 * 0.2**2)
    penalty.backward()
    for alpha in alphas:
        np.testing.assert_allclose(host(alpha.grad), [2 * 0.5 * 0.2], rtol=1e-6)
    _train_steps(prepared, steps=3)
    assert all(float(host(alpha)[0]) != pytest.approx(0.2, abs=1e-6) for alpha in alphas)


def test_dsq_alpha_penalty_without_learned_alphas_is_zero():
    prepared = prepare_qat(lenet(), weight="dsq", act=None, learn_alpha=False)
    assert float(host(dsq_alpha_penalty(prepared, 1.0))) == 0.0
    with pytest.raises(ValueError, match="lam must be a non-negative number"):
        dsq_alpha_penalty(prepared, -1.0)


def test_dsq_alpha_schedule_is_geometric_from_start_to_end():
    prepared = prepare_qat(lenet(), weight="dsq", act=None, learn_alpha=False, dsq_alpha=0.5)
    values = [dsq_alpha_schedule(prepared, 0.5, 0.02, epoch, 5) for epoch in range(6)]
    np.testing.assert_allclose(values, [0.5 * (0.04 ** (e / 4)) for e in range(5)] + [0.02])
    assert all(float(host(m.alpha)[0]) == pytest.approx(0.02) for m in prepared.modules() if isinstance(m, DSQQuantizer))
    with pytest.raises(ValueError, match="no DSQ quantizer with a fixed alpha"):
        dsq_alpha_schedule(prepare_qat(lenet(), weight="dsq", act=None), 0.5, 0.02, 0, 5)
    with pytest.raises(ValueError, match="start must lie in"):
        dsq_alpha_schedule(prepared, 1.0, 0.02, 0, 5)


@pytest.mark.parametrize("kwargs, message", [
    ({"weight": "round"}, "unknown weight method 'round'; expected one of: ste, dsq, lsq, qnoise"),
    ({"act": "round"}, "unknown act method 'round'; expected one of: ste, dsq, lsq, pact"),
    ({"weight": "ste", "qnoise_p": 0.1}, "qnoise_p do not apply to weight='ste', act='ste'; valid here: averaging_constant"),
    ({"weight": "dsq", "act": None, "dsq_alpah": 0.3}, "dsq_alpah do not apply .* valid here: dsq_alpha, learn_alpha, "),
    ({"wbits": 0}, "bits must be between 1 and 16"),
    ({"abits": 17}, "bits must be between 1 and 16"),
    ({"act": "lsq", "abits": 1}, "signed 1-bit gives qmax = 0"),
    ({"weight": "dsq", "dsq_alpha": 1.5}, "alpha must lie in \\(0, 1\\)"),
    ({"weight": "qnoise", "qnoise_p": -0.1}, "p must lie in \\[0, 1\\]"),
])
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare_qat(lenet(), **kwargs)


def test_bad_block_size_is_a_clear_error_at_the_first_forward():
    prepared = prepare_qat(lenet(), weight="qnoise", act=None, qnoise_block_size=4)  # conv1 has 1 in-channel
    with pytest.raises(ValueError, match="block_size"):
        prepared(images())


def test_prepare_qat_rejects_non_modules():
    with pytest.raises(TypeError, match="expected an nn.Module"):
        prepare_qat("lenet5")


@pytest.mark.parametrize("weight, act", [("ste", "ste"), ("dsq", "dsq"), ("lsq", "lsq"), ("qnoise", "pact")])
def test_w4a4_lenet5_on_digits_learns(weight, act):
    train_set = data.load_dataset("digits", split="train")
    options = {"pact_alpha": 1.0} if act == "pact" else {}  # below the early activations: a gradient from the start
    prepared = prepare_qat(lenet(), weight=weight, act=act, wbits=4, abits=4, **options)
    optimizer = optim.Adam(prepared.parameters(), lr=0.003)
    loader = data.DataLoader(train_set, batch_size=64, shuffle=True, seed=0)
    losses = []
    for _, (x, labels) in zip(range(20), loader):
        loss = mq.cross_entropy(prepared(x), labels)
        if weight == "dsq":
            loss = loss + dsq_alpha_penalty(prepared, 1e-4)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(host(loss)))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1
    learned_alphas = [m.alpha for m in prepared.modules() if isinstance(m, (PACTQuantizer, DSQQuantizer))]
    for alpha in learned_alphas:  # PACT's and DSQ's alphas really train (Adam here has no weight decay)
        assert float(host(alpha)[0]) != pytest.approx(1.0 if act == "pact" else 0.2, abs=1e-4)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_ste_weight_grid_keeps_every_weight_in_range_so_the_mask_is_all_ones(bits):
    """With the narrow symmetric min/max grid the largest |w| of each channel lands on a level (with the full
    signed range it would land half a step above qmax and lose its gradient)."""
    prepared = prepare_qat(lenet(), weight="ste", act=None, wbits=bits)
    for index in (0, 3, 7, 9, 11):
        layer = prepared[index]
        weight = mq.tensor(layer.weight.detach().numpy(), requires_grad=True)
        layer.weight_quant(weight).sum().backward()
        assert (weight.grad.numpy() == 1).all(), f"layer {index} at {bits} bits"
