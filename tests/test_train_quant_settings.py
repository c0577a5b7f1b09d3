"""The quantization settings of a training run: defaults that agree with prepare_qat's, settings that
would change nothing refused, and the first and last layers at their own bit width (integer conversion
included)."""

import pytest

from minigrad_q import cli, quant
from minigrad_q.models import lenet5
from minigrad_q.train import METHOD_SETTINGS, ConfigError, TrainConfig, train


def bits_of(model):
    """(weight bits, input bits) of each quantized layer, in module order."""
    return [(layer.weight_quant.bits, layer.act_quant.bits) for _, layer in model.named_modules()
            if hasattr(layer, "weight_quant") and layer.weight_quant is not None]


def test_dsq_learns_alpha_and_its_clipping_range_by_default():
    model = quant.prepare_qat(lenet5(input_size=8), weight="dsq", act="dsq")
    learned = {name for name, _ in model.named_parameters()}
    for layer in ("3.weight_quant", "3.act_quant"):
        assert f"{layer}.alpha" in learned and f"{layer}.scale" in learned


def test_method_defaults_are_prepare_qats():
    dsq = TrainConfig(quant="dsq").resolved()
    options = quant.METHOD_OPTIONS[("weight", "dsq")]
    assert (dsq.dsq_alpha, dsq.learn_alpha) == (options["dsq_alpha"], options["learn_alpha"]) == (0.2, True)
    assert TrainConfig(quant="qnoise").resolved().qnoise_p == quant.METHOD_OPTIONS[("weight", "qnoise")]["qnoise_p"]
    resolved = TrainConfig(quant="ste").resolved()
    assert (resolved.wbits, resolved.abits, resolved.first_last_bits) == (4, 4, 8)
    assert resolved.dsq_alpha is None and resolved.qnoise_p is None  # not settings of the STE
    assert all(getattr(TrainConfig().resolved(), name) is None for name in METHOD_SETTINGS)  # a float run has none


@pytest.mark.parametrize("settings, message", [
    ({"wbits": 2}, "wbits applies to a quantization method only, and this run has quant=None: it would change nothing"),
    ({"abits": 2}, "abits applies to a quantization method only"),
    ({"first_last_bits": 8}, "first-last-bits applies to a quantization method only"),
    ({"quant": "ste", "dsq_alpha": 0.4}, "dsq-alpha applies to quant='dsq' only, and this run has quant='ste'"),
    ({"quant": "ste", "learn_alpha": True}, "learn-alpha applies to quant='dsq' only"),
    ({"quant": "lsq", "qnoise_p": 0.3}, "qnoise-p applies to quant='qnoise' only"),
    ({"quant": "ste", "first_last_bits": 0}, "first-last-bits must be an integer from 1 to 8 or 'same', got 0"),
    ({"quant": "ste", "first_last_bits": "all"}, "first-last-bits must be an integer from 1 to 8 or 'same', got 'all'"),
    ({"quant": "ste", "wbits": "same"}, "wbits must be an integer from 1 to 8, got 'same'"),
    ({"quant": "dsq", "learn_alpha": 1}, "learn-alpha must be True or False, got 1"),
])
def test_settings_that_would_change_nothing_or_cannot_work_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        train(TrainConfig(verbose=False, **settings))


def test_the_command_refuses_bit_widths_without_a_method(capsys):
    code = cli.main(["train", "--wbits", "2", "--abits", "2"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "wbits applies to a quantization method only" in err


def test_prepare_qat_gives_the_first_and_last_layers_their_own_bits():
    model = lenet5(input_size=8)
    assert bits_of(quant.prepare_qat(model, "dsq", "dsq", 2, 3)) == [(2, 3)] * 5
    assert bits_of(quant.prepare_qat(model, "dsq", "dsq", 2, 3, first_last_bits=8)) == [(8, 8), *[(2, 3)] * 3, (8, 8)]
    with pytest.raises(ValueError, match="skip_first_last keeps the first and last layers float"):
        quant.prepare_qat(model, "ste", "ste", skip_first_last=True, first_last_bits=8)
    with pytest.raises(ValueError, match="first_last_bits"):
        quant.prepare_qat(model, "ste", "ste", first_last_bits=0)


@pytest.mark.parametrize("method", ["dsq", "lsq", "pact"])
def test_mixed_bit_models_convert_to_integers_that_agree(method):
    summary = train(epochs=3, quant=method, wbits=2, abits=2, convert=True, verbose=False)
    assert summary["config"]["first_last_bits"] == 8
    # the integer model predicts what the fake-quant model predicts on (nearly) every test image
    assert summary["integer_agreement"] >= 0.997, summary.get("integer_error")


def test_first_last_bits_same_quantizes_every_layer_alike(capsys):
    code = cli.main(["train", "--epochs", "1", "--train-size", "64", "--quant", "ste", "--wbits", "3", "--abits", "3",
                     "--first-last-bits", "same"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines()[0].startswith("training lenet5 quantized W3A3 with ste (")  # no first/last note
    with pytest.raises(SystemExit) as exited:  # argparse's own usage error
        cli.main(["train", "--quant", "ste", "--first-last-bits", "eight"])
    assert exited.value.code == 2 and "expected a number of bits or 'same', got 'eight'" in capsys.readouterr().err
