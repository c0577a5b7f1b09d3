"""A small QAT run end to end: W4A4 LeNet-5 on the bundled digits with `minigrad-q train`'s settings
stays within 2 points of float32, and its integer model agrees with it (issue 4, Tests)."""

import pytest

from minigrad_q.train import TrainConfig, train


@pytest.fixture(scope="module")
def float_accuracy():
    return train(TrainConfig(verbose=False, progress=False))["test_accuracy"]


def test_w4a4_lenet5_is_within_two_points_of_float32_and_converts(float_accuracy):
    summary = train(TrainConfig(quant="ste", wbits=4, abits=4, convert=True, verbose=False, progress=False))
    assert float_accuracy >= 0.97
    assert summary["test_accuracy"] >= float_accuracy - 0.02
    assert summary["integer_agreement"] >= 0.999
    assert abs(summary["integer_test_accuracy"] - summary["test_accuracy"]) <= 0.001 + 1e-12


def test_a_model_that_cannot_be_converted_still_gives_its_training_summary(monkeypatch, capsys):
    from minigrad_q import quant

    def overflow(model):
        raise quant.RequantizationOverflow("convert: layer 3: requantization multiplier 2.4e+15 is too large")

    monkeypatch.setattr(quant, "convert", overflow)
    summary = train(TrainConfig(quant="ste", wbits=2, abits=2, convert=True, epochs=1, progress=False))
    assert summary["integer_error"].startswith("convert: layer 3")
    assert "integer_test_accuracy" not in summary and summary["test_accuracy"] > 0
    assert "integer model: not converted: convert: layer 3" in capsys.readouterr().out
