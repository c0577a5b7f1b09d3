"""The models: layouts, output shapes for each input size, names, errors."""

import pytest

import minigrad_q as mq
from minigrad_q import nn
from minigrad_q.models import LeNet5, ToyCNN, build_model, lenet5, toycnn


@pytest.mark.parametrize(
    "input_size, flat",
    [(28, 16 * 5 * 5), (32, 16 * 6 * 6), (8, 16 * 2 * 2), (12, 16 * 1 * 1), (4, 16 * 1 * 1), (16, 16 * 2 * 2)],
)
def test_lenet5_output_shape_for_each_input_size(input_size, flat):
    model = lenet5(input_size=input_size)
    assert model[7].in_features == flat  # the flattened feature count follows the input size
    out = model(mq.randn(3, 1, input_size, input_size))
    assert out.shape == (3, 10)


def test_lenet5_classic_layout_at_28():
    model = lenet5()
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 6, (5, 5), (2, 2)), (6, 16, (5, 5), (0, 0))
    ]
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 120), (120, 84), (84, 10)]
    assert sum(p.numel() for p in model.parameters()) == 61_706  # torch's LeNet-5 (padding 2) has the same count


def test_lenet5_pads_the_second_conv_on_small_inputs():
    model = lenet5(input_size=8)
    assert model[3].padding == (2, 2)
    assert model.options == {"in_channels": 1, "num_classes": 10, "input_size": 8}


def test_lenet5_channels_and_classes():
    model = lenet5(in_channels=3, num_classes=7, input_size=32)
    assert model(mq.randn(2, 3, 32, 32)).shape == (2, 7)


def test_toycnn_output_shape_and_layout():
    model = toycnn()
    out = model(mq.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 32, (3, 3), (1, 1)), (32, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (1, 1))
    ]
    assert model[-1].in_features == 64 * 8 * 8


def test_toycnn_other_sizes():
    assert toycnn(in_channels=1, num_classes=4, input_size=16)(mq.randn(1, 1, 16, 16)).shape == (1, 4)


def test_models_train_end_to_end_one_step():
    model = lenet5(input_size=8)
    out = model(mq.randn(4, 1, 8, 8))
    mq.cross_entropy(out, mq.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_repr_reads_like_torch():
    text = repr(lenet5(input_size=8))
    assert text.startswith("LeNet5(\n  (0): Conv2d(1, 6, kernel_size=(5, 5)")
    assert "(7): Linear(in_features=64, out_features=120" in text
    assert repr(toycnn()).startswith("ToyCNN(\n")


def test_build_model_by_name():
    assert isinstance(build_model("lenet5", input_size=8), LeNet5)
    assert isinstance(build_model("LeNet5"), LeNet5)
    assert isinstance(build_model("toycnn", num_classes=3), ToyCNN)


def test_unknown_model_lists_the_known_names():
    with pytest.raises(ValueError, match=r"unknown model 'resnet50'; known models: lenet5, toycnn"):
        build_model("resnet50")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_size": 3}, "lenet5: input_size must be an integer of at least 4, got 3"),
        ({"num_classes": 0}, "lenet5: num_classes must be a positive integer, got 0"),
        ({"in_channels": 1.5}, "lenet5: in_channels must be a positive integer, got 1.5"),
        ({"depth": 3}, "lenet5: bad options"),
    ],
)
def test_bad_model_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model("lenet5", **kwargs)
