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
