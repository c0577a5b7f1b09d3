"""Pooling layers with torch's options: MaxPool2d's dilation, ceil_mode and return_indices, AvgPool2d's
ceil_mode, each passed on to its functional op; reprs and results against torch's layers."""

import numpy as np
import pytest
from helpers import host

import minigrad_q as mq
from minigrad_q import nn
from minigrad_q.nn import functional as F

rng = np.random.default_rng(0)


def test_max_pool_layer_passes_dilation_ceil_mode_and_return_indices_on():
    x = mq.tensor(rng.standard_normal((2, 3, 9, 8)))
    layer = nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True)
    np.testing.assert_array_equal(host(layer(x)), host(F.max_pool2d(x, 3, 2, 1, dilation=2, ceil_mode=True)))
    output, indices = nn.MaxPool2d(2, ceil_mode=True, return_indices=True)(x)
    expected, expected_indices = F.max_pool2d(x, 2, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(host(output), host(expected))
    np.testing.assert_array_equal(host(indices), host(expected_indices))
    assert repr(layer) == "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)"


def test_avg_pool_layer_passes_ceil_mode_on():
    x = mq.tensor(rng.standard_normal((2, 3, 7, 6)))
    np.testing.assert_array_equal(host(nn.AvgPool2d(3, 2, 1, ceil_mode=True)(x)),
                                  host(F.avg_pool2d(x, 3, 2, 1, ceil_mode=True)))
    assert nn.AvgPool2d(3, 2, 1, ceil_mode=True)(x).shape == (2, 3, 4, 4)


@pytest.mark.parametrize(
    "build",
    [lambda m: m.MaxPool2d(3, 2, 1, dilation=2), lambda m: m.MaxPool2d(2, ceil_mode=True),
     lambda m: m.MaxPool2d((3, 2), (2, 1), 1, dilation=(1, 2), ceil_mode=True, return_indices=True),
     lambda m: m.AvgPool2d(3, 2, 1, ceil_mode=True), lambda m: m.AvgPool2d((2, 3), ceil_mode=True)],
)
def test_pool_layers_match_torch(build):
    torch = pytest.importorskip("torch")
    x_data = rng.standard_normal((2, 3, 11, 10))
    ours, theirs = build(nn), build(torch.nn)
    assert repr(ours) == repr(theirs)
    y, yt = ours(mq.tensor(x_data)), theirs(torch.tensor(x_data))
    for mine, their in zip(y if isinstance(y, tuple) else (y,), yt if isinstance(yt, tuple) else (yt,)):
        np.testing.assert_allclose(host(mine), their.numpy(), rtol=1e-12)
