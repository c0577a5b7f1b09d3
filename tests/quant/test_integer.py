"""Integer inference (minigrad_q/quant/integer.py, integer_layers.py): convert a QAT model, check the
integer arithmetic against exact references, agreement with the fake-quant model, save/load, errors."""

import json
from fractions import Fraction

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import nn, ops, storage
from minigrad_q.data.digits import load_digits
from minigrad_q.models import lenet5
from minigrad_q.quant.fake_quant import fake_quant
from minigrad_q.quant.integer import IntegerModel, IntegerModelError, RequantizationOverflow, convert, load_integer_model
from minigrad_q.quant.integer_layers import (
    Dequantize,
    IntegerConv2d,
    IntegerLinear,
    IntegerMaxPool2d,
    QuantizeInput,
    Requantize,
)


# ---------------------------------------------------------------- hand-made QAT layers with fixed grids
class FixedQuantizer(nn.Module):
    """A quantizer with a fixed grid: forward = fake_quant on it, qparams() = that grid."""

    def __init__(self, scale, zero_point, qmin, qmax, axis=None):
        super().__init__()
        self.register_buffer("scale", mq.tensor(np.asarray(scale, dtype=np.float32).reshape(-1)))
        self.register_buffer("zero_point", mq.tensor(np.asarray(zero_point, dtype=np.int64).reshape(-1)))
        self.qmin, self.qmax, self.axis = qmin, qmax, axis

    def forward(self, x):
        return fake_quant(x, self.scale, self.zero_point.to(x.dtype), self.qmin, self.qmax, self.axis)

    def qparams(self):
        return self.scale, self.zero_point, self.qmin, self.qmax, self.axis


class StubConv(nn.Conv2d):
    def forward(self, x):
        x = x if self.act_quant is None else self.act_quant(x)
        return ops.conv2d(x, self.weight_quant(self.weight), self.bias, self.stride, self.padding, self.dilation, self.groups)


class StubLinear(nn.Linear):
    def forward(self, x):
        x = x if self.act_quant is None else self.act_quant(x)
        return ops.linear(x, self.weight_quant(self.weight), self.bias)


def weight_grid(weight, bits=4, per_channel=True, signed=True, symmetric=True):
    """A min/max grid for a weight array (per output channel or per tensor)."""
    w = weight.reshape(weight.shape[0], -1) if per_channel else weight.reshape(1, -1)
    if symmetric:
        qmax = (1 << (bits - 1)) - 1
        scale, zero = np.abs(w).max(axis=1) / qmax, np.zeros(len(w))
        return FixedQuantizer(scale, zero, -qmax - 1, qmax, 0 if per_channel else None)
    qmin, qmax = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    low, high = np.minimum(w.min(axis=1), 0), np.maximum(w.max(axis=1), 0)
    scale = (high - low) / (qmax - qmin)
    return FixedQuantizer(scale, np.clip(qmin - np.rint(low / scale), qmin, qmax), qmin, qmax, 0 if per_channel else None)


def act_grid(low, high, bits=4):
    qmax = (1 << bits) - 1
    scale = (high - low) / qmax
    return FixedQuantizer(scale, int(np.clip(-np.rint(low / scale), 0, qmax)), 0, qmax)


def tiny_model(wbits=4, abits=4, **weight_options):
    """conv3x3(1->4) - ReLU - maxpool2 - flatten - linear(64->5) with quantized inputs and weights, for (N, 1, 8, 8)."""
    mq.manual_seed(3)
    conv, linear = StubConv(1, 4, 3, padding=1), StubLinear(64, 5)
    conv.weight_quant = weight_grid(conv.weight.data, wbits, **weight_options)
    conv.act_quant = act_grid(-2.0, 2.5, abits)
    linear.weight_quant = weight_grid(linear.weight.data, wbits, **weight_options)
    linear.act_quant = act_grid(0.0, 1.5, abits)
    return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), linear).eval()


def inputs(n=64, seed=0):
    return mq.tensor(np.random.default_rng(seed).normal(size=(n, 1, 8, 8)).astype(np.float32))


def fake_outputs(model, x):
    with mq.no_grad():
        return model(x).data


def output_step(integer_model):
    return next(layer for layer in integer_model if isinstance(layer, Dequantize)).step.data


# ---------------------------------------------------------------- trained QAT LeNet-5 on digits
_TRAINED = {}


def trained_lenet(bits, weight="dsq", act="ste", steps=300, **options):
    """LeNet-5 on digits after `steps` QAT steps (Adam, batch 64, fixed order), in eval mode; cached."""
    key = (bits, weight, act, steps, tuple(sorted(options.items())))
    if key not in _TRAINED:
        from minigrad_q.quant.qat import prepare_qat

        mq.manual_seed(0)
        model = prepare_qat(lenet5(input_size=8), weight=weight, act=act, wbits=bits, abits=bits, **options)
        train = load_digits("train")
        optimizer = mq.optim.Adam(model.parameters(), lr=2e-3)
        order = np.random.default_rng(0).integers(0, len(train.labels), (steps, 64))
        for batch in order:
            loss = mq.nn.functional.cross_entropy(model(mq.tensor(train.images[batch])), mq.tensor(train.labels[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        _TRAINED[key] = model.eval()
    return _TRAINED[key]


def compare_with_fake_quant(model):
    """Run the test digits through the fake-quant model and its integer model, layer by layer.

    Returns (prediction agreement, rows whose codes all equal the fake-quant model's, the largest
    |logit difference| in output steps over those rows, the largest distance of a first code
    mismatch from a rounding tie (in code units)). A mismatch starts only where the fake-quant
    model's float32 value lies within float32 rounding of a tie; later layers of that row inherit it."""
    test = mq.tensor(load_digits("test").images)
    seen = []
    handles = [layer.register_forward_pre_hook(lambda module, args: seen.append((module, args[0].data)))
               for layer in model if getattr(layer, "act_quant", None) is not None]
    fake = fake_outputs(model, test)
    for handle in handles:
        handle.remove()
    integer = convert(model)
    codes, x = [], test
    for layer in integer:
        x = layer(x)
        if isinstance(layer, (QuantizeInput, Requantize)):
            codes.append(x.data)
    out = x.data
    same = np.ones(len(out), dtype=bool)
    worst_tie_distance = 0.0
    for (layer, value), code in zip(seen, codes):
        scale, zero_point, qmin, qmax, _ = layer.act_quant.qparams()
        scaled = value / scale.data.astype(value.dtype)[0]
        reference = np.clip(np.rint(scaled) + int(zero_point.data.reshape(-1)[0]), qmin, qmax)
        mismatch = (reference != code.reshape(reference.shape)).reshape(len(out), -1)
        first = mismatch & same[:, None]  # rows whose earlier codes all agreed
        if first.any():
            fractions = scaled.reshape(len(out), -1)[first] % 1
            worst_tie_distance = max(worst_tie_distance, float(np.abs(fractions - 0.5).max()))
        same &= ~mismatch.any(axis=1)
    errors = np.abs(out - fake) / output_step(integer)
    agree = float((fake.argmax(1) == out.argmax(1)).mean())
    return agree, same, float(errors[same].max()), worst_tie_distance


def assert_agrees(model):
    agree, same, error_in_steps, tie_distance = compare_with_fake_quant(model)
    assert agree >= 0.999  # of the 360 test digits
    assert same.mean() >= 0.99  # codes differ only where float32 rounding in the fake-quant model crossed a tie
    assert tie_distance <= 1e-4
    assert error_in_steps <= 1.0  # where the codes agree, every logit lies within one output step s_x·s_w


@pytest.mark.parametrize("bits", [4, 8])
def test_integer_lenet5_agrees_with_the_fake_quant_model_on_digits(bits):
    assert_agrees(trained_lenet(bits, steps=200))


@pytest.mark.parametrize("weight, act, options", [
    ("ste", "ste", {}), ("lsq", "lsq", {}), ("lsq", "lsq", {"lsq_offset": True}), ("qnoise", "ste", {}), ("ste", "pact", {}),
])
def test_every_qat_method_converts_and_agrees(weight, act, options):
    assert_agrees(trained_lenet(4, weight, act, steps=20, **options))


def test_float_first_and_last_layers_run_in_float():
    model = trained_lenet(4, "ste", "ste", steps=20, skip_first_last=True)
    integer = convert(model)
    kinds = [type(layer).__name__ for layer in integer]
    assert kinds[0] == "Conv2d" and kinds[-1] == "Linear" and "QuantizeInput" in kinds and "Dequantize" in kinds
    test = mq.tensor(load_digits("test").images)
    fake, out = fake_outputs(model, test), integer(test).data
    assert (fake.argmax(1) == out.argmax(1)).mean() >= 0.999
    np.testing.assert_allclose(out, fake, rtol=1e-4, atol=1e-4)


def test_weight_only_quantized_last_layer_runs_in_float_with_its_fake_quantized_weight():
    model = tiny_model()
    model[4].act_quant = None  # no input grid: the last layer cannot take integer codes
    integer = convert(model)
    assert [type(layer).__name__ for layer in integer][-5:] == ["Dequantize", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    np.testing.assert_array_equal(integer[-1].weight.data, model[4].weight_quant(model[4].weight).data)
    x = inputs()
    np.testing.assert_allclose(integer(x).data, fake_outputs(model, x), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- storage
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_weights_are_int8_codes_with_per_channel_zero_points_and_int32_bias(bits):
    model = tiny_model(wbits=bits)
    integer = convert(model)
    for layer, source in ((integer[1], model[0]), (integer[5], model[4])):
        assert layer.weight.dtype == mq.int8 and layer.bias.dtype == mq.int32 and layer.weight_zero_point.dtype == mq.int32
        assert layer.weight_zero_point.shape == (source.weight.shape[0],)
        codes = layer.weight.data.astype(np.int64)
        assert codes.min() >= -(1 << (bits - 1)) and codes.max() <= (1 << (bits - 1)) - 1
        scale = source.weight_quant.scale.data.reshape((-1,) + (1,) * (codes.ndim - 1))
        fake_weight = source.weight_quant(source.weight).data
        np.testing.assert_array_equal(codes.astype(np.float32) * scale, fake_weight)  # exactly the fake-quant weight
    dtypes = {value.dtype for value in integer.state_dict().values()}
    assert dtypes <= {mq.int8, mq.int32, mq.float32, mq.float64}


def test_unsigned_8bit_weights_are_shifted_into_int8():
    model = tiny_model(wbits=8, signed=False, symmetric=False)  # codes 0..255, zero point ~128
    integer = convert(model)
    conv = integer[1]
    assert conv.weight.dtype == mq.int8 and conv.weight_range == (-128, 127)
    np.testing.assert_array_equal(conv.weight_zero_point.data, model[0].weight_quant.zero_point.data - 128)
    x = inputs()
    assert (np.abs(integer(x).data - fake_outputs(model, x)) <= output_step(integer)).all()


def test_16bit_weights_use_int16_and_an_exact_float64_accumulation():
    model = tiny_model(wbits=16, abits=8)
    integer = convert(model)
    conv = integer[1]
    assert conv.weight.dtype == mq.int16 and conv.compute_dtype == "float64"  # bound 255·Σ|q_w| >= 2^24
    codes = QuantizeInput(model[0].act_quant.scale.data, 0, 0, 255)  # any codes will do
    x = codes(inputs())
    assert_exact_conv(conv, x)


# ---------------------------------------------------------------- exact arithmetic
def reference_conv(x_codes, z_x, w_codes, z_w, bias, padding):
    """Σ (q_x − z_x)(q_w − z_w) + b in int64, zero padding in real values (code z_x), stride 1."""
    x = np.pad(x_codes.astype(np.int64) - z_x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    w = w_codes.astype(np.int64) - z_w.astype(np.int64)[:, None, None, None]
    kh, kw = w.shape[2:]
    oh, ow = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,kc->nkhw", x[:, :, i:i + oh, j:j + ow], w[:, :, i, j])
    return out + bias[None, :, None, None]


def assert_exact_conv(conv, x):
    acc = conv(x).data
    assert acc.dtype == np.int32
    expected = reference_conv(x.data, conv.input_zero_point, conv.weight.data, conv.weight_zero_point.data,
                              conv.bias.data.astype(np.int64), conv.padding[0])
    np.testing.assert_array_equal(acc, expected)


def test_integer_conv_subtracts_zero_points_and_pads_with_the_input_zero_point():
    rng = np.random.default_rng(1)
    weight = rng.integers(-128, 128, (3, 2, 3, 3)).astype(np.int8)
    conv = IntegerConv2d(weight, rng.integers(-5, 5, 3).astype(np.int32), rng.integers(-1000, 1000, 3).astype(np.int32),
                         stride=1, padding=1, dilation=1, groups=1, input_zero_point=37, input_range=(0, 255),
                         weight_range=(-128, 127), compute_dtype="float32")
    x = mq.tensor(rng.integers(0, 256, (2, 2, 5, 5)).astype(np.int32))
    assert_exact_conv(conv, x)
    all_zero = mq.tensor(np.full((1, 2, 5, 5), 37, dtype=np.int32))  # real 0 everywhere: output is the bias alone
    np.testing.assert_array_equal(conv(all_zero).data, np.broadcast_to(conv.bias.data[None, :, None, None], (1, 3, 5, 5)))


def test_integer_linear_is_exact():
    rng = np.random.default_rng(2)
    weight = rng.integers(-8, 8, (4, 30)).astype(np.int8)
    zero_w, bias = rng.integers(-2, 2, 4).astype(np.int32), rng.integers(-99, 99, 4).astype(np.int32)
    linear = IntegerLinear(weight, zero_w, bias, input_zero_point=3, input_range=(0, 15), weight_range=(-8, 7),
                           compute_dtype="float32")
    x = rng.integers(0, 16, (5, 30))
    expected = (x - 3) @ (weight.astype(np.int64) - zero_w[:, None]).T + bias
    np.testing.assert_array_equal(linear(mq.tensor(x.astype(np.int32))).data, expected)


def exact_requantize(acc, m, n, o, z, low, high):
    """clamp(round_half_even((acc·m + o) / 2^n) + z, low, high) in exact rational arithmetic."""
    return min(max(round(Fraction(int(acc) * int(m) + int(o), 1 << int(n))) + z, low), high)


def test_requantize_rounds_half_to_even_exactly():
    rng = np.random.default_rng(4)
    m = np.array([1 << 30, 3 << 28, int(rng.integers(1 << 30, 1 << 31))], dtype=np.int32)  # M = 1/2, 3/64, ~2^-14
    n = np.array([31, 32, 45], dtype=np.int32)
    o = np.array([0, 1 << 27, int(rng.integers(-(1 << 29), 1 << 29))], dtype=np.int32)
    acc = rng.integers(-(1 << 31), 1 << 31, (60, 3))
    acc[:6, 0] = [-5, -3, -1, 1, 3, 5]  # exact ties for M = 1/2
    acc = acc.astype(np.int32)
    layer = Requantize(m, n, o, zero_point=7, qmin=-(1 << 30), qmax=1 << 30, relu=False)
    out = layer(mq.tensor(acc)).data
    np.testing.assert_array_equal(out[:6, 0], np.array([-2, -2, 0, 0, 2, 2]) + 7)  # half to even
    expected = [[exact_requantize(acc[i, k], m[k], n[k], o[k], 7, -(1 << 30), 1 << 30) for k in range(3)]
                for i in range(len(acc))]
    np.testing.assert_array_equal(out, expected)


def test_requantize_fuses_relu_as_a_clamp_at_the_zero_point():
    one = np.array([1 << 30], dtype=np.int32)  # M = 2^30 / 2^31 = 1/2
    acc = mq.tensor(np.arange(-10, 11, dtype=np.int32).reshape(-1, 1))
    plain = Requantize(one, np.array([31], np.int32), np.zeros(1, np.int32), zero_point=3, qmin=0, qmax=15, relu=False)
    fused = Requantize(one, np.array([31], np.int32), np.zeros(1, np.int32), zero_point=3, qmin=0, qmax=15, relu=True)
    expected = np.clip(np.rint(np.arange(-10, 11) / 2) + 3, 0, 15)
    np.testing.assert_array_equal(plain(acc).data[:, 0], expected)
    np.testing.assert_array_equal(fused(acc).data[:, 0], np.maximum(expected, 3))


def test_requantization_multiplier_is_the_scale_ratio():
    model = tiny_model()
    integer = convert(model)
    requantize = integer[3]
    assert isinstance(requantize, Requantize) and requantize.relu
    multiplier = requantize.multiplier.data.astype(np.float64) * 2.0 ** -requantize.shift.data.astype(np.float64)
    ratio = (np.float64(model[0].act_quant.scale.data[0]) * model[0].weight_quant.scale.data.astype(np.float64)
             / np.float64(model[4].act_quant.scale.data[0]))
    np.testing.assert_allclose(multiplier, ratio, rtol=2.0**-30)


def test_weights_grown_without_bound_give_a_clear_error_naming_the_layer():
    model = tiny_model()
    model[0].weight.data *= 1e12  # what a diverging run leaves behind
    model[0].weight_quant = weight_grid(model[0].weight.data)
    with pytest.raises(RequantizationOverflow, match=r"layer 0: requantization multiplier .* too large .*training diverged"):
        convert(model)


def test_integer_max_pool_matches_max_pool_on_floats():
    rng = np.random.default_rng(5)
    codes = rng.integers(-50, 50, (2, 3, 7, 6)).astype(np.int32)
    for kernel, stride, padding in [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 1))]:
        out = IntegerMaxPool2d(kernel, stride, padding)(mq.tensor(codes)).data
        expected = ops.max_pool2d(mq.tensor(codes.astype(np.float64)), kernel, stride, padding).data
        np.testing.assert_array_equal(out, expected)


def test_tiny_model_agrees_with_its_fake_quant_model():
    model = tiny_model()
    x = inputs(256)
    integer = convert(model)
    fake, out = fake_outputs(model, x), integer(x).data
    assert out.dtype == np.float32
    assert (fake.argmax(1) == out.argmax(1)).all()
    assert (np.abs(out - fake) <= output_step(integer)).all()


def test_integer_model_runs_on_the_device_of_its_qat_model(device):
    model = tiny_model().to(device)
    x = inputs()
    integer = convert(model)
    expected = mq.backend.parse_device(device)  # "cuda" names the current GPU, "cuda:0"
    assert integer[1].weight.device == expected
    out = integer(x.to(device))
    assert out.device == expected
    np.testing.assert_array_equal(mq.backend.asnumpy(out.data), convert(tiny_model())(x).data)


def test_dropout_and_identity_between_quantized_layers_are_identities():
    base = tiny_model()
    model = nn.Sequential(base[0], nn.Dropout(0.5), base[1], base[2], nn.Identity(), base[3], base[4]).eval()
    x = inputs()
    np.testing.assert_array_equal(convert(model)(x).data, convert(base)(x).data)


def test_nested_sequentials_are_flattened():
    base = tiny_model()
    model = nn.Sequential(nn.Sequential(base[0], base[1], base[2]), nn.Sequential(base[3], base[4])).eval()
    x = inputs()
    integer = convert(model)
    np.testing.assert_array_equal(integer(x).data, convert(base)(x).data)
    assert integer.sources[1] == "0.0"


def test_convert_leaves_the_model_unchanged():
    model = tiny_model()
    before = {k: v.data.copy() for k, v in model.state_dict().items()}
    convert(model)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.data, before[key])


def test_repr_shows_the_integer_layers():
    text = repr(convert(tiny_model()))
    assert text.startswith("IntegerModel(")
    assert "IntegerConv2d(1, 4, kernel_size=(3, 3)" in text and "weight=int8[4-bit codes -8..7]" in text
    assert "bias=int32" in text and "Requantize(int32 -> int32" in text and "relu" in text
    assert "QuantizeInput(float -> int32" in text and "Dequantize(int32 -> float32" in text


# ---------------------------------------------------------------- save / load
def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    integer = convert(tiny_model())
    path = tmp_path / "model.safetensors"
    integer.save(path)
    loaded = load_integer_model(path)
    assert isinstance(loaded, IntegerModel) and repr(loaded) == repr(integer)
    x = inputs()
    np.testing.assert_array_equal(loaded(x).data, integer(x).data)
    for key, value in integer.state_dict().items():
        assert loaded.state_dict()[key].dtype == value.dtype


def test_saved_file_is_safetensors_with_int8_weights_and_a_json_layer_list(tmp_path):
    import safetensors.numpy

    path = tmp_path / "model.safetensors"
    convert(tiny_model()).save(path)
    tensors = safetensors.numpy.load_file(str(path))
    assert tensors["1.weight"].dtype == np.int8 and tensors["1.bias"].dtype == np.int32
    raw = path.read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    metadata = json.loads(header["__metadata__"]["minigrad_q"])
    assert metadata["format"] == "minigrad_q.integer/1"
    assert [layer["type"] for layer in metadata["layers"]] == [
        "QuantizeInput", "IntegerConv2d", "IntegerMaxPool2d", "Requantize", "Flatten", "IntegerLinear", "Dequantize"]
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"previous")

    def crash(file, data):
        file.write(data[:10])
        raise OSError("disk full")

    monkeypatch.setattr(storage, "write_chunks", crash)
    with pytest.raises(OSError, match="disk full"):
        convert(tiny_model()).save(path)
    assert path.read_bytes() == b"previous" and not list(tmp_path.glob(".*.tmp"))


def test_load_rejects_corrupted_and_foreign_files(tmp_path):
    path = tmp_path / "model.safetensors"
    convert(tiny_model()).save(path)
    data = bytearray(path.read_bytes())
    (tmp_path / "truncated").write_bytes(bytes(data[:-10]))
    with pytest.raises(IntegerModelError, match="truncated"):
        load_integer_model(tmp_path / "truncated")
    data[-1] ^= 0xFF
    (tmp_path / "flipped").write_bytes(bytes(data))
    with pytest.raises(IntegerModelError, match="sha256"):
        load_integer_model(tmp_path / "flipped")
    with pytest.raises(IntegerModelError, match="missing: no such file"):
        load_integer_model(tmp_path / "missing")
    mq.checkpoint.save(tmp_path / "checkpoint", nn.Linear(2, 2), epoch=0)
    with pytest.raises(IntegerModelError, match="unsupported format"):
        load_integer_model(tmp_path / "checkpoint")


# ---------------------------------------------------------------- errors
def test_unsupported_layer_between_quantized_layers_is_named():
    base = tiny_model()
    model = nn.Sequential(base[0], nn.Sigmoid(), base[2], base[3], base[4])
    with pytest.raises(ValueError, match=r"layer 1 \(Sigmoid\) sits between the quantized layers 0 and 4"):
        convert(model)


def test_float_conv_between_quantized_layers_is_an_error():
    base = tiny_model()
    model = nn.Sequential(base[0], nn.Conv2d(4, 4, 1), base[2], base[3], base[4])
    with pytest.raises(ValueError, match=r"layer 1 \(Conv2d\).*quantize it with prepare_qat"):
        convert(model)


def test_unsupported_float_layer_before_the_first_quantized_layer_is_named():
    base = tiny_model()
    model = nn.Sequential(nn.BatchNorm2d(1), *base)
    with pytest.raises(ValueError, match=r"layer 0 \(BatchNorm2d\) is not supported"):
        convert(model)


def test_model_without_quantized_layers_is_an_error():
    with pytest.raises(ValueError, match="has no quantized layer"):
        convert(lenet5(input_size=8))
    with pytest.raises(TypeError, match="expected an nn.Module"):
        convert("lenet5")


def test_per_channel_activation_grid_is_an_error():
    model = tiny_model()
    model[4].act_quant = FixedQuantizer([0.1, 0.2], [0, 0], 0, 15, axis=1)
    with pytest.raises(ValueError, match="activation quantizer of 4 .*per-tensor activation grids"):
        convert(model)


def test_non_integer_zero_point_is_an_error():
    model = tiny_model()
    model[4].act_quant.zero_point = mq.tensor(np.array([0.5]))
    with pytest.raises(ValueError, match="non-integer zero point"):
        convert(model)


def test_integer_layers_reject_float_input():
    integer = convert(tiny_model())
    with pytest.raises(TypeError, match="expected a floating-point input"):
        integer(mq.tensor(np.zeros((1, 1, 8, 8), dtype=np.int32)))
    with pytest.raises(TypeError, match="IntegerConv2d: expected a Tensor of integer codes"):
        integer[1](inputs())


def test_convert_refuses_a_max_pool_with_options_integer_inference_does_not_have():
    float_model = mq.nn.Sequential(mq.nn.Conv2d(1, 2, 3), mq.nn.ReLU(), mq.nn.MaxPool2d(2, ceil_mode=True),
                                   mq.nn.Flatten(), mq.nn.Linear(18, 4))
    model = mq.quant.prepare_qat(float_model, "ste", "ste")
    model(mq.tensor(np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)))
    with pytest.raises(ValueError, match=r"convert: 2 \(MaxPool2d\) has dilation=1, ceil_mode=True"):
        mq.quant.convert(model)
