"""The layers: forward against NumPy references and the functional ops, parameters and buffers,
default initialisation, train/eval behaviour, containers, errors, repr, seeding, and gradients
reaching every parameter of a small CNN."""

import math
from collections import OrderedDict

import numpy as np
import pytest

import minigrad_q as mq
import minigrad_q.nn as nn
import minigrad_q.nn.functional as F

rng = np.random.default_rng(0)


def host(tensor):
    return tensor.detach().numpy()


def const(array, device="cpu"):
    return mq.tensor(np.asarray(array), device=device)


def lenet(num_classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
    )


LENET_REPR = """Sequential(
  (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
  (1): ReLU()
  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (3): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))
  (4): ReLU()
  (5): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (6): Flatten(start_dim=1, end_dim=-1)
  (7): Linear(in_features=400, out_features=120, bias=True)
  (8): ReLU()
  (9): Linear(in_features=120, out_features=84, bias=True)
  (10): ReLU()
  (11): Linear(in_features=84, out_features=10, bias=True)
)"""


def assert_within_init_bound(tensor, fan_in):
    """U(-1/√fan_in, 1/√fan_in), PyTorch's default for Linear/Conv2d weights (kaiming a=√5) and biases."""
    bound = 1 / math.sqrt(fan_in)
    values = host(tensor)
    assert np.all(np.abs(values) <= bound)
    if values.size >= 500:
        assert np.abs(values).max() > 0.98 * bound
        assert values.std() == pytest.approx(bound / math.sqrt(3), rel=0.1)


# ---------------------------------------------------------------- Linear
def test_linear_parameters_forward_and_functional(device):
    layer = nn.Linear(4, 3, device=device)
    assert layer.weight.shape == (3, 4) and layer.bias.shape == (3,)
    assert isinstance(layer.weight, nn.Parameter) and layer.weight.device.startswith(device)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)  # any leading dims
    out = layer(const(x, device))
    expected = x @ host(layer.weight).T + host(layer.bias)
    np.testing.assert_allclose(host(out), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(host(out), host(F.linear(const(x, device), layer.weight, layer.bias)))
    plain = nn.Linear(4, 3, bias=False)
    assert plain.bias is None and [n for n, _ in plain.named_parameters()] == ["weight"]
    np.testing.assert_allclose(host(plain(const(x))), x @ host(plain.weight).T, rtol=1e-5, atol=1e-6)


def test_linear_default_init_and_dtype():
    layer = nn.Linear(400, 120)
    assert_within_init_bound(layer.weight, 400)
    assert_within_init_bound(layer.bias, 400)
    assert nn.Linear(2, 2, dtype=mq.float64).weight.dtype == mq.float64
    with pytest.raises(ValueError, match="Linear: in_features must be a non-negative integer, got -1"):
        nn.Linear(-1, 2)


def test_identity_returns_its_input():
    x = mq.ones(2)
    assert nn.Identity(54, unused="x")(x) is x
    assert repr(nn.Identity()) == "Identity()"


# ---------------------------------------------------------------- Conv2d
def test_conv2d_parameters_and_forward_match_the_functional_op(device):
    conv = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, dilation=(1, 2), groups=2, device=device)
    assert conv.weight.shape == (6, 2, 3, 2) and conv.bias.shape == (6,)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.dilation) == ((3, 2), (2, 2), (1, 1), (1, 2))
    x = const(rng.standard_normal((2, 4, 7, 8)).astype(np.float32), device)
    expected = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1, dilation=(1, 2), groups=2)
    np.testing.assert_array_equal(host(conv(x)), host(expected))
    assert conv(x).shape == (2, 6, 4, 4)  # H: (7 + 2 - 3) // 2 + 1, W: (8 + 2 - (2 - 1) * 2 - 1) // 2 + 1


def test_conv2d_1x1_is_a_channel_mixing_matrix():
    conv = nn.Conv2d(3, 2, 1)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    w = host(conv.weight).reshape(2, 3)
    expected = np.einsum("oc,nchw->nohw", w, x) + host(conv.bias)[None, :, None, None]
    np.testing.assert_allclose(host(conv(const(x))), expected, rtol=1e-5, atol=1e-6)


def test_conv2d_same_and_valid_padding_and_default_init():
    conv = nn.Conv2d(3, 8, 5, padding="same", bias=False)
    assert conv.bias is None and conv(mq.randn(1, 3, 9, 7)).shape == (1, 8, 9, 7)
    assert nn.Conv2d(3, 8, 5, padding="valid")(mq.randn(1, 3, 9, 7)).shape == (1, 8, 5, 3)
    big = nn.Conv2d(32, 32, 3, groups=2)  # fan_in = 32 / 2 · 3 · 3 = 144
    assert_within_init_bound(big.weight, 144)
    assert_within_init_bound(big.bias, 144)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), r"in_channels \(3\) must be divisible by groups \(2\)"),
        (dict(in_channels=4, out_channels=3, kernel_size=3, groups=2), r"out_channels \(3\) must be divisible by groups \(2\)"),
        (dict(in_channels=4, out_channels=4, kernel_size=3, groups=0), "groups must be a positive integer"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, padding="full"), "invalid padding string 'full'"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, padding="same", stride=2), "padding='same' is not supported"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, padding_mode="reflect"), "padding_mode 'reflect' is not supported"),
        (dict(in_channels=1, out_channels=1, kernel_size=0), "kernel_size, stride and dilation must be positive"),
        (dict(in_channels=1, out_channels=1, kernel_size=3, padding=-1), "padding must be non-negative"),
    ],
)
def test_conv2d_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match="Conv2d: " + message):
        nn.Conv2d(**kwargs)


def test_conv2d_kernel_size_of_three_numbers_is_a_type_error():
    with pytest.raises(TypeError, match=r"Conv2d: kernel_size must be an int or a pair of ints, got \(3, 3, 3\)"):
        nn.Conv2d(1, 1, (3, 3, 3))


def test_conv2d_wrong_input_channels_is_a_clear_error():
    with pytest.raises((ValueError, RuntimeError), match="conv2d"):
        nn.Conv2d(3, 4, 3)(mq.randn(1, 2, 8, 8))


# ---------------------------------------------------------------- BatchNorm
def batch_stats(x):
    axes = (0,) + tuple(range(2, x.ndim))
    return x.mean(axis=axes), x.var(axis=axes), x.var(axis=axes, ddof=1)


def channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def test_batchnorm2d_buffers_and_initial_values():
    bn = nn.BatchNorm2d(3)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    np.testing.assert_array_equal(host(bn.weight), np.ones(3))
    np.testing.assert_array_equal(host(bn.bias), np.zeros(3))
    np.testing.assert_array_equal(host(bn.running_var), np.ones(3))
    assert bn.num_batches_tracked.dtype == mq.int64 and bn.num_batches_tracked.shape == ()
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def test_batchnorm2d_training_normalises_by_batch_stats_and_updates_running_stats(device):
    bn = nn.BatchNorm2d(3, momentum=0.2, device=device)
    with mq.no_grad():
        bn.weight.copy_(const([1.0, 2.0, 0.5]))
        bn.bias.copy_(const([0.0, -1.0, 3.0]))
    x = (rng.standard_normal((4, 3, 5, 6)) * 3 + 2).astype(np.float32)
    out = bn(const(x, device))
    mean, var, unbiased = batch_stats(x.astype(np.float64))
    expected = (x - channel(mean, 4)) / np.sqrt(channel(var, 4) + 1e-5) * channel(np.array([1, 2, 0.5]), 4)
    expected += channel(np.array([0.0, -1.0, 3.0]), 4)
    np.testing.assert_allclose(host(out), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(host(bn.running_mean), 0.2 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(bn.running_var), 0.8 + 0.2 * unbiased, rtol=1e-5)
    assert bn.num_batches_tracked.item() == 1
    bn(const(x, device))
    assert bn.num_batches_tracked.item() == 2


def test_batchnorm2d_eval_uses_running_stats_and_changes_nothing():
    bn = nn.BatchNorm2d(2)
    with mq.no_grad():
        bn.running_mean.copy_(const([1.0, -2.0]))
        bn.running_var.copy_(const([4.0, 0.25]))
    bn.eval()
    x = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    out = bn(const(x))
    expected = (x - channel(np.array([1.0, -2.0]), 4)) / np.sqrt(channel(np.array([4.0, 0.25]), 4) + 1e-5)
    np.testing.assert_allclose(host(out), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(host(bn.running_mean), [1.0, -2.0])
    assert bn.num_batches_tracked.item() == 0


def test_batchnorm_momentum_none_is_a_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None)
    batches = [rng.standard_normal((5, 2)).astype(np.float32) + k for k in range(3)]
    for batch in batches:
        bn(const(batch))
    np.testing.assert_allclose(host(bn.running_mean), np.mean([b.mean(axis=0) for b in batches], axis=0), rtol=1e-5)
    assert repr(bn) == "BatchNorm1d(2, eps=1e-05, momentum=None, affine=True, bias=True, track_running_stats=True)"


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval_too():
    bn = nn.BatchNorm1d(3, affine=False, track_running_stats=False).eval()
    assert list(bn.parameters()) == [] and list(bn.buffers()) == [] and bn.running_mean is None
    x = rng.standard_normal((6, 3, 4)).astype(np.float32)
    mean, var, _ = batch_stats(x.astype(np.float64))
    expected = (x - channel(mean, 3)) / np.sqrt(channel(var, 3) + 1e-5)
    np.testing.assert_allclose(host(bn(const(x))), expected, rtol=1e-4, atol=1e-4)
    assert bn.state_dict() == OrderedDict()


def test_batchnorm_without_bias():
    bn = nn.BatchNorm2d(4, bias=False)
    assert bn.bias is None and [n for n, _ in bn.named_parameters()] == ["weight"]
    assert bn(mq.randn(2, 4, 3, 3)).shape == (2, 4, 3, 3)


def test_batchnorm_input_checks():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D input \(got 3D input of shape \(2, 3, 4\)\)"):
        nn.BatchNorm2d(3)(mq.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2D or 3D input \(got 4D input"):
        nn.BatchNorm1d(3)(mq.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 3 channels in dim 1, got input of shape \(2, 5, 4, 4\)"):
        nn.BatchNorm2d(3)(mq.randn(2, 5, 4, 4))


def test_batchnorm_follows_the_module_dtype():
    bn = nn.BatchNorm2d(2).double()
    out = bn(mq.randn(3, 2, 2, 2, dtype=mq.float64))
    assert out.dtype == mq.float64 and bn.running_mean.dtype == mq.float64
    assert bn.num_batches_tracked.dtype == mq.int64


# ---------------------------------------------------------------- Dropout
def test_dropout_zeroes_and_scales_in_training_and_passes_through_in_eval():
    drop = nn.Dropout(0.25)
    x = mq.ones(100, 100)
    out = host(drop(x))
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((out == 0).mean() - 0.25) < 0.02
    drop.eval()
    assert drop(x) is x
    assert repr(drop) == "Dropout(p=0.25, inplace=False)"
    with pytest.raises(ValueError, match="Dropout: dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_dropout_mask_is_reproducible_with_manual_seed():
    x = mq.ones(10, 10)
    mq.manual_seed(3)
    first = host(nn.Dropout()(x))
    mq.manual_seed(3)
    np.testing.assert_array_equal(first, host(nn.Dropout()(x)))


# ---------------------------------------------------------------- pooling, flatten, activations
def test_max_and_avg_pool_default_stride_is_the_kernel_size():
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    windows = x.reshape(1, 2, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(1, 2, 2, 2, 4)
    np.testing.assert_array_equal(host(nn.MaxPool2d(2)(const(x))), windows.max(axis=-1))
    np.testing.assert_allclose(host(nn.AvgPool2d(2)(const(x))), windows.mean(axis=-1))
    assert nn.MaxPool2d(3).stride == 3 and nn.AvgPool2d((2, 1), stride=1).stride == 1


def test_pool_layers_match_their_functional_ops():
    x = mq.randn(2, 3, 9, 8)
    np.testing.assert_array_equal(host(nn.MaxPool2d(3, 2, 1)(x)), host(F.max_pool2d(x, 3, 2, 1)))
    np.testing.assert_array_equal(host(nn.AvgPool2d(3, 2, 1)(x)), host(F.avg_pool2d(x, 3, 2, 1)))
    np.testing.assert_array_equal(host(nn.AdaptiveAvgPool2d((3, 2))(x)), host(F.adaptive_avg_pool2d(x, (3, 2))))
    np.testing.assert_allclose(host(nn.AdaptiveAvgPool2d(1)(x)), host(x).mean(axis=(2, 3), keepdims=True), rtol=1e-5)


def test_pool_options_that_are_not_supported_are_refused():
    with pytest.raises(ValueError, match="AvgPool2d: count_include_pad=False is not supported"):
        nn.AvgPool2d(2, count_include_pad=False)
    with pytest.raises(ValueError, match="AvgPool2d: divisor_override=2 is not supported"):
        nn.AvgPool2d(2, divisor_override=2)


def test_flatten():
    x = mq.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(2)(x).shape == (2, 3, 20)
    np.testing.assert_array_equal(host(nn.Flatten()(x)), host(x).reshape(2, 60))


def test_activations():
    x = rng.standard_normal((3, 4)).astype(np.float32)
    t = const(x)
    np.testing.assert_array_equal(host(nn.ReLU()(t)), np.maximum(x, 0))
    np.testing.assert_allclose(host(nn.LeakyReLU(0.2)(t)), np.where(x > 0, x, 0.2 * x), rtol=1e-6)
    np.testing.assert_allclose(host(nn.Sigmoid()(t)), 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(host(nn.Tanh()(t)), np.tanh(x), rtol=1e-6, atol=1e-7)
    softmax = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(host(nn.Softmax(dim=1)(t)), softmax, rtol=1e-5)
    np.testing.assert_allclose(host(nn.LogSoftmax(dim=1)(t)), np.log(softmax), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"Softmax: give dim, e.g. Softmax\(dim=1\)"):
        nn.Softmax()(t)
    assert repr(nn.LeakyReLU(0.2, inplace=True)) == "LeakyReLU(negative_slope=0.2, inplace=True)"


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_module_calls_the_gelu_op(device, approximate):
    x = rng.standard_normal((3, 4))
    layer = nn.GELU(approximate)
    assert layer.approximate == approximate and repr(layer) == f"GELU(approximate='{approximate}')"
    assert list(layer.parameters()) == []
    t = mq.tensor(x, device=device, requires_grad=True)
    y = layer(t)
    np.testing.assert_array_equal(host(y), host(mq.gelu(const(x, device), approximate)))
    y.sum().backward()
    exact = mq.tensor(x, device=device, requires_grad=True)
    mq.gelu(exact, approximate).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), exact.grad.numpy())
    assert mq.nn.GELU is nn.activation.GELU and "GELU" in nn.__all__


def test_gelu_module_matches_torch():
    torch = pytest.importorskip("torch")
    x = rng.uniform(-5, 5, (2, 3, 5))
    for approximate in ("none", "tanh"):
        ours, theirs = mq.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, y_torch = nn.GELU(approximate)(ours), torch.nn.GELU(approximate)(theirs)
        np.testing.assert_allclose(host(y), y_torch.detach().numpy(), rtol=1e-13, atol=1e-15)
        (y * mq.tensor(x)).sum().backward()
        (y_torch * torch.tensor(x)).sum().backward()
        # atol: in the left tail 1 + tanh(u) and 1 - tanh²(u) cancel to ~1e-4, in torch's float64 as in ours
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-13, atol=2e-14)


def test_gelu_module_refuses_an_unknown_approximation_when_built():
    with pytest.raises(RuntimeError, match=r"GELU: approximate argument must be either 'none' or 'tanh', got 'fast'"):
        nn.GELU("fast")


# ---------------------------------------------------------------- losses
def test_loss_modules_call_their_functional_ops():
    logits = mq.randn(5, 4)
    target = mq.tensor([0, 3, 1, 1, 2])
    assert nn.CrossEntropyLoss()(logits, target).item() == F.cross_entropy(logits, target).item()
    assert nn.CrossEntropyLoss(label_smoothing=0.1, reduction="sum")(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target, reduction="sum", label_smoothing=0.1).item()
    )
    log_probs = F.log_softmax(logits, 1)
    per_sample = nn.NLLLoss(reduction="none")(log_probs, target)
    np.testing.assert_array_equal(host(per_sample), host(F.nll_loss(log_probs, target, reduction="none")))
    other = mq.randn(5, 4)
    assert nn.MSELoss()(logits, other).item() == pytest.approx(((host(logits) - host(other)) ** 2).mean())
    with pytest.raises(ValueError, match="MSELoss: reduction must be one of"):
        nn.MSELoss(reduction="avg")


# ---------------------------------------------------------------- containers
def test_sequential_indexing_length_iteration_and_append():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.Sigmoid()
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and list(seq) == [a, b] and seq[0] is a and seq[-1] is b
    assert seq.append(c) is seq and seq[2] is c and list(seq._modules) == ["0", "1", "2"]
    part = seq[1:]
    assert isinstance(part, nn.Sequential) and list(part) == [b, c] and list(part._modules) == ["1", "2"]
    with pytest.raises(IndexError, match="index 3 is out of range for Sequential of length 3"):
        seq[3]
    with pytest.raises(TypeError, match="Sequential indices must be integers or slices, not str"):
        seq["0"]
    seq[0] = nn.Identity()
    assert isinstance(seq[0], nn.Identity)
    del seq[0]
    assert list(seq) == [b, c] and list(seq._modules) == ["0", "1"]
    seq.insert(0, a)
    assert list(seq) == [a, b, c]
    x = mq.randn(3)
    np.testing.assert_allclose(host(seq(x)), 1 / (1 + np.exp(-np.tanh(np.maximum(host(x), 0)))), rtol=1e-6)


def test_sequential_from_an_ordered_dict_uses_its_names():
    seq = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 3)), ("act", nn.ReLU())]))
    assert [n for n, _ in seq.named_parameters()] == ["conv.weight", "conv.bias"]
    assert seq.conv is seq[0]
    assert repr(seq) == (
        "Sequential(\n  (conv): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))\n  (act): ReLU()\n)"
    )


def test_module_list_registers_its_modules():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3)])
    layers.append(nn.Linear(3, 1))
    holder = nn.Module()
    holder.layers = layers
    assert [n for n, _ in holder.named_parameters()][-2:] == ["layers.2.weight", "layers.2.bias"]
    assert len(layers) == 3 and isinstance(layers[1:], nn.ModuleList)


# ---------------------------------------------------------------- a whole model
def test_lenet_repr_is_torchs():
    assert repr(lenet()) == LENET_REPR


def test_layer_reprs_match_torch_when_installed():
    torch = pytest.importorskip("torch")
    pairs = [
        (lenet(), torch.nn.Sequential(
            torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
            torch.nn.Linear(84, 10))),
    ]
    for build in [
        lambda m: m.Conv2d(6, 16, (5, 3), stride=(2, 1), padding=(1, 0), dilation=2, groups=2, bias=False),
        lambda m: m.Conv2d(3, 3, 3, padding="same"),
        lambda m: m.BatchNorm2d(16),
        lambda m: m.BatchNorm1d(4, eps=1e-3, momentum=None, affine=False, track_running_stats=False),
        lambda m: m.AvgPool2d(3, 1, 1),
        lambda m: m.MaxPool2d((2, 3)),
        lambda m: m.AdaptiveAvgPool2d((5, 5)),
        lambda m: m.Dropout(0.1),
        lambda m: m.LeakyReLU(),
        lambda m: m.GELU(),
        lambda m: m.GELU(approximate="tanh"),
        lambda m: m.ReLU(inplace=True),
        lambda m: m.Softmax(dim=-1),
        lambda m: m.Flatten(0, 2),
        lambda m: m.Identity(),
        lambda m: m.CrossEntropyLoss(),
        lambda m: m.ModuleList([m.Linear(2, 3, bias=False), m.Sequential(m.Tanh(), m.Sigmoid())]),
    ]:
        pairs.append((build(nn), build(torch.nn)))
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())


def test_manual_seed_makes_models_reproducible():
    mq.manual_seed(0)
    first = lenet().state_dict()
    mq.manual_seed(0)
    second = lenet().state_dict()
    third = lenet().state_dict()
    for key in first:
        np.testing.assert_array_equal(first[key].numpy(), second[key].numpy(), err_msg=key)
    assert not np.array_equal(second["0.weight"].numpy(), third["0.weight"].numpy())


def tiny_cnn():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 3, 3, groups=1, bias=False), nn.LeakyReLU(0.1), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(12, 5), nn.Tanh(), nn.Linear(5, 3),
    )


def test_loss_backward_fills_every_parameter_gradient(device):
    model = tiny_cnn().to(device)
    x = mq.randn(4, 2, 8, 8, device=device)
    target = mq.tensor([0, 2, 1, 2], device=device)
    loss = F.cross_entropy(model(x), target)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.shape == param.shape and param.grad.dtype == param.dtype, name
        assert np.all(np.isfinite(host(param.grad))) and np.any(host(param.grad) != 0), name
    assert all(buffer.grad is None for buffer in model.buffers())


def test_parameter_gradients_match_finite_differences():
    model = tiny_cnn().double()
    x = mq.randn(3, 2, 8, 8, dtype=mq.float64)
    target = mq.tensor([1, 0, 2])
    model.eval()  # fixed normalisation, so the loss is a smooth function of the weights

    def loss():
        return F.cross_entropy(model(x), target)

    loss().backward()
    eps = 1e-6
    for name, param in model.named_parameters():
        flat = param.data.reshape(-1)
        numeric = np.empty(flat.size)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + eps
            up = loss().item()
            flat[i] = original - eps
            down = loss().item()
            flat[i] = original
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(host(param.grad).reshape(-1), numeric, rtol=1e-4, atol=1e-8, err_msg=name)


def test_input_gradient_passes_gradcheck_in_training_mode():
    model = tiny_cnn().double()
    x = mq.randn(3, 2, 6, 6, dtype=mq.float64, requires_grad=True)
    assert mq.gradcheck(lambda x: model(x), (x,))


def test_matches_torch_forward_and_gradients_when_installed():
    torch = pytest.importorskip("torch")
    ours = tiny_cnn()
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 3, 3, bias=False), torch.nn.LeakyReLU(0.1), torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(12, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3),
    )
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((4, 2, 8, 8)).astype(np.float32)
    target = np.array([0, 2, 1, 2])
    for train in (True, False):
        ours.train(train)
        theirs.train(train)
        our_loss = F.cross_entropy(ours(const(x)), const(target))
        their_loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(target))
        assert our_loss.item() == pytest.approx(their_loss.item(), rel=1e-5)
        ours.zero_grad()
        theirs.zero_grad()
        our_loss.backward()
        their_loss.backward()
        their_params = dict(theirs.named_parameters())
        for name, param in ours.named_parameters():
            np.testing.assert_allclose(host(param.grad), their_params[name].grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(), rtol=1e-5, atol=1e-7, err_msg=name)
