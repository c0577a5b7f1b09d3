"""Grids that cannot be right are refused before any work (issue 15, items 2, 5, 6, 10): zero points
outside [qmin, qmax], infinite scales, NaN ranges, and state that a NaN batch must not poison."""

import math

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import data, optim, quant
from minigrad_q.models import build_model
from minigrad_q.quant import NonFiniteGrid, dsq, fake_quant, minmax_qparams
from minigrad_q.quant.modules import FakeQuantize
from minigrad_q.train import TrainingDiverged, train_one_epoch


@pytest.mark.parametrize("zero_point", [100, -9, mq.tensor([0, 8]), mq.tensor([-9.0, 0.0])])
def test_a_zero_point_outside_the_grid_is_refused_as_torch_does(zero_point):
    x = mq.tensor([[-1.0, 0.0, 1.0], [2.0, 3.0, 4.0]])
    axis = None if not isinstance(zero_point, mq.Tensor) else 0
    with pytest.raises(ValueError, match=r"fake_quant: zero_point must lie between quant_min and quant_max \[-8, 7\]"):
        fake_quant(x, 0.5 if axis is None else mq.tensor([0.5, 0.5]), zero_point, -8, 7, axis)


@pytest.mark.parametrize("op", ["fake_quant", "dsq"])
def test_an_infinite_scale_is_refused_like_zero_negative_and_nan(op):
    x = mq.tensor([-1.0, 0.0, 1.0])
    for scale in (math.inf, mq.tensor([math.inf])):
        with pytest.raises(ValueError, match=f"{op}: scale must be positive and finite"):
            fake_quant(x, scale, 0, -8, 7) if op == "fake_quant" else dsq(x, scale, 0, -8, 7, 0.2)


def test_minmax_qparams_of_a_nan_range_is_an_error_not_a_garbage_zero_point():
    with pytest.raises(NonFiniteGrid, match="minmax_qparams: min and max must be finite, got min \\[nan\\]"):
        minmax_qparams(np, np.array([np.nan]), np.array([1.0]), 0, 255)


def test_a_nan_batch_is_refused_before_it_changes_an_observer():
    quantizer = FakeQuantize(8, signed=False).train()
    quantizer(mq.tensor([0.0, 2.0]))
    state = {name: value.numpy().copy() for name, value in quantizer.state_dict().items()}
    with pytest.raises(NonFiniteGrid, match="the input holds NaN or inf .* nothing was recorded"):
        quantizer(mq.tensor([0.0, np.nan]))
    for name, value in quantizer.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[name])
    np.testing.assert_array_equal(quantizer(mq.tensor([1.0, 1.5])).detach().numpy().shape, (2,))  # clean batches work


def test_a_learned_dsq_alpha_that_became_nan_says_training_diverged():
    with pytest.raises(NonFiniteGrid, match="a learned alpha became NaN"):
        dsq(mq.tensor([0.3, 1.0]), 0.5, 0, -8, 7, mq.tensor([np.nan]))
    model = quant.prepare_qat(build_model("lenet5", in_channels=1, num_classes=10, input_size=8), "dsq", "dsq")
    model[3].weight_quant.alpha.data[...] = np.nan  # as a diverging learned alpha ends
    loader = data.DataLoader(data.load_dataset("digits", split="train"), batch_size=64)
    with pytest.raises(TrainingDiverged, match="training diverged in epoch 1 by step 1"):
        train_one_epoch(model, optim.SGD(model.parameters(), lr=0.1), loader, "epoch 1")
