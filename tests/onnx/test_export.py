"""ONNX export (minigrad_q.onnx) checked in onnxruntime, on trained models: float LeNet-5 on the digits and
Fashion-MNIST test sets, and QDQ LeNet-5 trained with every QAT method at W8A8 and W4A4 (short runs), and
at W2A2 (grids below ONNX's smallest type). Skipped without onnx and onnxruntime (pip install -e '.[onnx]')."""

import os

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import data, nn, quant, storage
from minigrad_q.cli.main import main
from minigrad_q.onnx import ExportError, compare, export, run
from minigrad_q.train import model_from_checkpoint, train

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

DIGITS = data.load_dataset("digits", split="test")


def trained(tmp_path_factory, name, **settings):
    """(model in eval mode, its checkpoint's path) of a short `train` run."""
    path = str(tmp_path_factory.mktemp("runs") / f"{name}.safetensors")
    train(save=path, verbose=False, **settings)
    model, _, _ = model_from_checkpoint(path)
    return model, path


def op_types(path):
    return [node.op_type for node in onnx.load(path).graph.node]


# ---------------------------------------------------------------- float
def test_float_lenet5_on_the_digits_agrees_with_onnxruntime(tmp_path_factory, tmp_path):
    model, _ = trained(tmp_path_factory, "float", epochs=10)
    path = tmp_path / "float.onnx"
    export(model, mq.tensor(DIGITS.images[:1]), path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert sorted(set(op_types(path))) == ["Conv", "Flatten", "Gemm", "MaxPool", "Relu"]
    agreement = compare(model, path, DIGITS.images)
    assert agreement.images == 360 and agreement.class_agreement == 1.0
    assert agreement.max_relative_difference <= 1e-5 and agreement.max_steps is None


def test_float_lenet5_on_fashion_mnist_agrees_with_onnxruntime(tmp_path_factory, tmp_path):
    try:
        test_set = data.load_dataset("fashion-mnist", split="test")
    except (OSError, ValueError):
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    model, _ = trained(tmp_path_factory, "fashion", dataset="fashion-mnist", epochs=1, train_size=6000)
    path = tmp_path / "fashion.onnx"
    export(model, mq.tensor(test_set.images[:1]), path)
    agreement = compare(model, path, test_set.images)
    assert agreement.images == 10000 and agreement.class_agreement >= 0.999
    assert agreement.max_relative_difference <= 1e-5


def test_batchnorm_average_pooling_and_other_float_layers_export(tmp_path):
    mq.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding="same"), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Conv2d(4, 4, 3, padding=1, stride=2, groups=2), nn.Tanh(), nn.Dropout(0.5),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3), nn.Sigmoid())
    model.train()
    model(mq.tensor(DIGITS.images[:64]))  # running statistics that are not the initial ones
    path = tmp_path / "layers.onnx"
    export(model, mq.tensor(DIGITS.images[:1]), path)
    assert {"BatchNormalization", "AveragePool", "GlobalAveragePool", "Tanh", "Sigmoid"} <= set(op_types(path))
    assert compare(model, path, DIGITS.images).max_relative_difference <= 1e-5
    assert model.training  # export puts the model back in the mode it was in


# ---------------------------------------------------------------- QDQ
@pytest.mark.parametrize("method, bits", [(method, bits) for method in quant.METHODS for bits in (8, 4)]
                         + [("dsq", 2), ("lsq", 2)])
def test_a_qat_model_exports_as_qdq_and_agrees_with_onnxruntime(tmp_path_factory, tmp_path, method, bits):
    """The predicted class agrees on at least 99.9% of the test digits. The logits lie within one output step
    s_x·s_w (one unit of the last layer's integer accumulator) on at least 99% of them: elsewhere float
    rounding in a convolution's sum (onnxruntime's order, not ours) moved some code across a rounding tie.
    W2A2: grids below ONNX's smallest integer type, exported exactly in 8-bit containers."""
    model, _ = trained(tmp_path_factory, f"{method}{bits}", epochs=2, quant=method, wbits=bits, abits=bits)
    path = tmp_path / "qdq.onnx"
    export(model, mq.tensor(DIGITS.images[:1]), path)
    graph = onnx.load(path).graph
    kinds = [node.op_type for node in graph.node]
    assert "QuantizeLinear" in kinds and "DequantizeLinear" in kinds
    made_by = {output: node for node in graph.node for output in node.output}
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm"):
            assert made_by[node.input[1]].op_type == "DequantizeLinear", f"{node.name}'s weight is not dequantized codes"
    if bits < 8:
        assert "Clip" in kinds  # the activation grid is narrower than its 8-bit container
    agreement = compare(model, path, DIGITS.images)
    assert agreement.class_agreement >= 0.999, str(agreement)
    assert agreement.within_step >= 0.99, str(agreement)


def test_qdq_weights_are_the_fake_quant_weights_exactly(tmp_path_factory, tmp_path):
    model, _ = trained(tmp_path_factory, "lsq2", epochs=2, quant="lsq", wbits=2, abits=2)
    path = tmp_path / "weights.onnx"
    export(model, mq.tensor(DIGITS.images[:1]), path)
    initializers = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in onnx.load(path).graph.initializer}
    for layer_path, layer in quant.layers_in_order(model):
        if getattr(layer, "weight_quant", None) is None:
            continue
        codes = next(v for k, v in initializers.items() if k.startswith(f"{layer_path}.weight_codes"))
        scale = next(v for k, v in initializers.items() if k.startswith(f"{layer_path}.weight_scale"))
        zero = next(v for k, v in initializers.items() if k.startswith(f"{layer_path}.weight_zero_point"))
        layout = (-1,) + (1,) * (codes.ndim - 1)
        dequantized = (codes.astype(np.float32) - zero.reshape(layout).astype(np.float32)) * scale.reshape(layout)
        with mq.no_grad():
            expected = layer.weight_quant(layer.weight).numpy()
        np.testing.assert_array_equal(dequantized, expected)
        assert codes.dtype == np.int8 and len(np.unique(codes)) <= 2 ** layer.weight_quant.bits


# ---------------------------------------------------------------- bad input
def test_an_unsupported_layer_is_named_with_its_path(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.LeakyReLU()))
    with pytest.raises(ExportError, match=r"layer 1\.1 \(LeakyReLU\) has no ONNX form"):
        export(model, mq.tensor(DIGITS.images[:1]), tmp_path / "no.onnx")
    assert not os.listdir(tmp_path)


def test_a_missing_folder_and_a_bad_example_are_refused_before_any_work(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(ExportError, match="its folder .*nowhere does not exist"):
        export(model, mq.tensor(DIGITS.images[:1]), tmp_path / "nowhere" / "m.onnx")
    with pytest.raises(ExportError, match=r"example input Tensor \(N, C, H, W\), got \(64,\)"):
        export(model, mq.tensor(DIGITS.images[0].reshape(-1)), tmp_path / "m.onnx")


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    path = tmp_path / "m.onnx"
    export(model, mq.tensor(DIGITS.images[:1]), path)
    before = path.read_bytes()

    def crash(file, data):
        file.write(data[:10])
        raise OSError("disk full")

    monkeypatch.setattr(storage, "write_chunks", crash)
    with pytest.raises(OSError, match="disk full"):
        export(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), mq.tensor(DIGITS.images[:1]), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.onnx"]
    assert run(path, DIGITS.images[:2]).shape == (2, 10)


# ---------------------------------------------------------------- the command
def test_the_export_command_writes_checks_and_refuses_the_wrong_kind(tmp_path_factory, tmp_path, capsys):
    _, float_path = trained(tmp_path_factory, "cli-float", epochs=2)
    _, qat_path = trained(tmp_path_factory, "cli-qat", epochs=2, quant="dsq")
    assert main(["export", qat_path, "--onnx", str(tmp_path / "q.onnx")]) == 0
    printed = capsys.readouterr().out
    assert "QDQ with dsq W4A4" in printed and "predicted class agrees on 100.00%" in printed
    assert main(["export", qat_path, "--onnx", str(tmp_path / "f.onnx"), "--format", "float"]) == 2
    assert "cannot be exported as float: it was trained quantized" in capsys.readouterr().err
    assert main(["export", float_path, "--onnx", str(tmp_path / "f.onnx"), "--format", "qdq"]) == 2
    assert "it was trained in float: there are no quantization grids" in capsys.readouterr().err
    assert main(["export", float_path, "--onnx", str(tmp_path / "missing" / "f.onnx")]) == 2
    assert "its folder" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["q.onnx"]


# ---------------------------------------------------------------- the integer model
@pytest.mark.parametrize("method, bits", [(method, 4) for method in quant.METHODS] + [("ste", 8), ("lsq", 2)])
def test_the_integer_model_exports_as_integer_operators_and_agrees_exactly(tmp_path_factory, tmp_path, method, bits):
    model, _ = trained(tmp_path_factory, f"int-{method}{bits}", epochs=2, quant=method, wbits=bits, abits=bits)
    integer_model = quant.convert(model)
    path = tmp_path / "integer.onnx"
    mq.onnx.export_integer(integer_model, mq.tensor(DIGITS.images[:1]), path)
    kinds = op_types(path)
    assert "ConvInteger" in kinds and "MatMulInteger" in kinds and "QuantizeLinear" in kinds
    assert not {"Conv", "Gemm", "MatMul"} & set(kinds)  # no float Conv or GEMM on the quantized path
    agreement = compare(integer_model, path, DIGITS.images)
    assert agreement.class_agreement == 1.0 and agreement.max_abs_difference == 0.0, str(agreement)


def test_the_export_command_writes_the_integer_model_of_a_qat_run_only(tmp_path_factory, tmp_path, capsys):
    _, float_path = trained(tmp_path_factory, "cli-int-float", epochs=1)
    _, qat_path = trained(tmp_path_factory, "cli-int-qat", epochs=2, quant="lsq")
    assert main(["export", qat_path, "--onnx", str(tmp_path / "i.onnx"), "--integer"]) == 0
    printed = capsys.readouterr().out
    assert "integer operators with lsq W4A4" in printed and "the integer model of quant.convert" in printed
    assert "predicted class agrees on 100.00%; logits differ by at most 0 " in printed
    assert main(["export", float_path, "--onnx", str(tmp_path / "f.onnx"), "--integer"]) == 2
    assert "cannot be exported as integer: it was trained in float" in capsys.readouterr().err


def test_max_pool_dilation_and_ceil_mode_export_and_agree(tmp_path):
    mq.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
                          nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(12, 4))
    path = tmp_path / "pools.onnx"
    export(model, mq.tensor(DIGITS.images[:1]), path)
    assert compare(model, path, DIGITS.images).max_relative_difference <= 1e-5


def test_a_max_pool_that_returns_indices_is_refused(tmp_path):
    with pytest.raises(ExportError, match=r"layer 1 \(MaxPool2d\) returns indices"):
        export(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, return_indices=True)), mq.tensor(DIGITS.images[:1]),
               tmp_path / "indices.onnx")
