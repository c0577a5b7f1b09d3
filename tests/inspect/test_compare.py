"""compare_gradients: the weight quantizers' gradients against the float model's, on a digits batch."""

import copy
import csv
import io
import sys

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import nn, quant
from minigrad_q.inspect.compare import FIELDS, GradientComparison, compare_gradients
from minigrad_q.models import lenet5

LAYERS = ("0", "3", "7", "9", "11")  # lenet5's Conv2d / Linear paths


def _model():
    mq.manual_seed(0)
    return lenet5(input_size=8)


def _in_range_model():
    """lenet5 with each output channel's sign chosen so its largest |w| is negative. A symmetric min/max
    grid then puts that weight on qmin = -2^(b-1) and every weight inside the STE's clip range. (A
    positive largest weight sits half a step above qmax, rounds half to even to 2^(b-1) and is clipped.)"""
    model = _model()
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            rows = module.weight.data.reshape(module.weight.shape[0], -1)
            extreme = rows[np.arange(rows.shape[0]), np.abs(rows).argmax(axis=1)]
            rows *= -np.sign(extreme)[:, None]
    return model


@pytest.fixture(scope="module")
def batch():
    images, labels = mq.data.load_dataset("digits")[0:32]
    return images, labels


@pytest.fixture(scope="module")
def in_range(batch):
    return compare_gradients(_in_range_model(), batch, scope=("quantizer", "model"))


@pytest.fixture(scope="module")
def plain(batch):
    return compare_gradients(_model(), batch)


def _float_grads(model, batch):
    twin = copy.deepcopy(model).train()
    mq.cross_entropy(twin(batch[0]), batch[1]).backward()
    return {path: twin.get_submodule(path).weight.grad.numpy() for path in LAYERS}


def _cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# ---------------------------------------------------------------- the seed observation
def test_ste_gradient_is_the_float_gradient_at_every_bit_width(in_range):
    rows = in_range.select(scope="quantizer", method="ste")
    assert len(rows) == len(LAYERS) * 3
    for row in rows:
        assert (row["cosine"], row["rel_norm"], row["changed"], row["bit_independent"]) == (1.0, 1.0, 0.0, True), row


def test_dsq_gradient_depends_on_the_bit_width(in_range):
    for layer in LAYERS:
        rows = in_range.select(scope="quantizer", method="dsq", layer=layer)
        assert [row["bits"] for row in rows] == [8, 4, 2]
        assert all(row["bit_independent"] is False for row in rows)
        assert all(row["cosine"] < 0.99 and row["changed"] > 0.3 for row in rows)
        assert len({row["cosine"] for row in rows}) == 3


def test_identity_backwards_leave_the_gradient_alone(in_range, plain):
    # QuantNoise's backward is the identity; LSQ's step 2·mean|w|/sqrt(Qp) clips none of lenet5's uniform
    # initial weights at 8, 4 or 2 bits (|w| <= 2·mean|w| for a uniform init), so its mask is all ones
    for result in (in_range, plain):
        for row in result.select(scope="quantizer", method="qnoise") + result.select(scope="quantizer", method="lsq"):
            assert (row["cosine"], row["changed"], row["bit_independent"]) == (1.0, 0.0, True), row


def test_ste_clips_at_most_the_positive_extreme_of_each_channel(plain):
    model = _model()
    for layer in LAYERS:
        rows = model.get_submodule(layer).weight.data.reshape(model.get_submodule(layer).weight.shape[0], -1)
        positive_extremes = int((rows[np.arange(rows.shape[0]), np.abs(rows).argmax(axis=1)] > 0).sum())
        for row in plain.select(method="ste", layer=layer):
            assert round(row["changed"] * rows.size) <= positive_extremes
            assert row["cosine"] > 0.99


def test_model_scope_sees_the_quantized_forward(in_range):
    # the STE's backward changes nothing, yet the forward with 2-bit weights changes every layer's gradient
    for layer in LAYERS:
        rows = in_range.select(scope="model", method="ste", layer=layer)
        assert rows[0]["cosine"] > 0.98
        assert rows[-1]["cosine"] < rows[0]["cosine"]
        assert rows[0]["bit_independent"] is False


# ---------------------------------------------------------------- the numbers themselves
def test_quantizer_scope_equals_a_direct_computation(batch, plain):
    model = _model()
    reference = _float_grads(model, batch)
    prepared = quant.prepare_qat(model, weight="dsq", act=None, wbits=4)
    for layer in ("0", "11"):
        module = prepared.get_submodule(layer)
        module.weight_quant(module.weight).backward(mq.tensor(reference[layer]))
        grad, ref = module.weight.grad.numpy().astype(np.float64), reference[layer].astype(np.float64)
        (row,) = plain.select(method="dsq", bits=4, layer=layer)
        assert row["cosine"] == pytest.approx(_cosine(grad, ref), abs=1e-12)
        assert row["rel_norm"] == pytest.approx(np.linalg.norm(grad) / np.linalg.norm(ref), rel=1e-12)
        changed = np.abs(grad - ref) > 1e-4 * (np.abs(ref) + np.abs(ref).mean())
        assert row["changed"] == changed.mean()


def test_model_scope_equals_a_direct_computation(batch, in_range):
    model = _in_range_model()
    reference = _float_grads(model, batch)
    prepared = quant.prepare_qat(model, weight="ste", act=None, wbits=2).train()
    mq.cross_entropy(prepared(batch[0]), batch[1]).backward()
    for layer in LAYERS:
        (row,) = in_range.select(scope="model", method="ste", bits=2, layer=layer)
        assert row["cosine"] == pytest.approx(_cosine(prepared.get_submodule(layer).weight.grad.numpy(),
                                                      reference[layer]), abs=1e-12)


def test_seeded_runs_are_identical_and_the_model_is_untouched(batch):
    model = _model().eval()
    weights = {name: param.detach().numpy().copy() for name, param in model.named_parameters()}
    first = compare_gradients(model, batch, methods=("qnoise",), bits=(4, 2), scope="model")
    second = compare_gradients(model, batch, methods=("qnoise",), bits=(4, 2), scope="model")
    assert first.rows == second.rows
    other_seed = compare_gradients(model, batch, methods=("qnoise",), bits=(4, 2), scope="model", seed=1)
    assert other_seed.rows != first.rows  # a different QuantNoise mask
    assert not model.training
    for name, param in model.named_parameters():
        assert param.grad is None and np.array_equal(param.detach().numpy(), weights[name])


def test_options_reach_the_methods_they_apply_to(batch):
    kwargs = {"methods": ("ste", "dsq"), "bits": (4,), "skip_first_last": True}
    soft = compare_gradients(_in_range_model(), batch, dsq_alpha=0.999, **kwargs)
    sharp = compare_gradients(_in_range_model(), batch, **kwargs)  # dsq_alpha 0.2
    assert soft.layers == sharp.layers == ("3", "7", "9")
    assert all(row["cosine"] == 1.0 for row in soft.select(method="ste"))
    for layer in soft.layers:
        (near_ste,) = soft.select(method="dsq", layer=layer)
        (default,) = sharp.select(method="dsq", layer=layer)
        # alpha -> 1: DSQ's slope -> 1, left changed only where it clips (weights above qmax·s)
        assert near_ste["cosine"] > default["cosine"] and near_ste["changed"] < 0.05 < default["changed"]


# ---------------------------------------------------------------- table, CSV, PNG
def test_table_structure(in_range, plain):
    lines = plain.table().splitlines()
    assert lines[0] == ("| layer | method | cosine (8 / 4 / 2 bits) | ‖g_q‖/‖g_fp‖ | changed | "
                        "bit-width independent |")
    assert lines[1] == "|---|---|---|---|---|---|"
    assert len(lines) == 2 + len(LAYERS) * 4
    assert all(line.startswith("| ") and line.endswith(" |") and line.count(" | ") == 5 for line in lines[2:])
    assert lines[2].startswith("| 0 (Conv2d) | ste | ")
    assert lines[-1].startswith("| 11 (Linear) | qnoise | 1 / 1 / 1 | 1.000 / 1.000 / 1.000 | 0.0% / 0.0% / 0.0% | yes |")
    assert all(line.split(" | ")[-1] in ("yes |", "no |") for line in lines[2:])
    both = in_range.table().splitlines()
    assert both[0].startswith("| scope | layer |") and len(both) == 2 + 2 * len(LAYERS) * 4
    assert both[2].startswith("| quantizer | 0 (Conv2d) | ste | 1 / 1 / 1 |") and both[-1].startswith("| model | 11 ")
    assert str(in_range) == in_range.table()


def test_csv_structure(in_range):
    records = list(csv.DictReader(io.StringIO(in_range.to_csv())))
    assert len(records) == 2 * len(LAYERS) * 4 * 3 and tuple(records[0]) == FIELDS
    for record, row in zip(records, in_range.rows):
        assert (record["scope"], record["layer"], record["method"], int(record["bits"])) == (
            row["scope"], row["layer"], row["method"], row["bits"])
        assert float(record["cosine"]) == row["cosine"] and float(record["changed"]) == row["changed"]
        assert record["bit_independent"] == str(row["bit_independent"]).lower()


def test_single_bit_width_has_no_independence_verdict(batch):
    result = compare_gradients(_model(), batch, methods=("ste",), bits=4)
    assert all(row["bit_independent"] is None for row in result.rows)
    assert result.table().splitlines()[2].endswith(" | – |")
    assert list(csv.DictReader(io.StringIO(result.to_csv())))[0]["bit_independent"] == ""


def test_plot_writes_a_png(in_range, tmp_path):
    pytest.importorskip("matplotlib")
    path = in_range.plot(tmp_path / "compare.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_plot_without_matplotlib_says_how_to_install(plain, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[plot\]"'):
        plain.plot(tmp_path / "compare.png")


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, match", [
    ({"methods": ("ste", "pact")}, ValueError, r"unknown methods \['pact'\].*ste, dsq, lsq, qnoise"),
    ({"methods": ()}, ValueError, "methods must be non-empty and distinct"),
    ({"methods": ("ste", "ste")}, ValueError, "methods must be non-empty and distinct"),
    ({"methods": 3}, TypeError, "methods must be a sequence"),
    ({"bits": (8, 0)}, ValueError, "bits must be between 1 and 16, got 0"),
    ({"bits": (17,)}, ValueError, "bits must be between 1 and 16, got 17"),
    ({"bits": (4.0,)}, TypeError, "bits must be an int"),
    ({"bits": (4, 4)}, ValueError, "bits must be non-empty and distinct"),
    ({"bits": (2, 1)}, ValueError, "LSQ's signed 1-bit range"),
    ({"scope": "weights"}, ValueError, "unknown scope"),
    ({"pact_alpha": 4.0}, ValueError, r"option\(s\) pact_alpha apply to none of the methods"),
    ({"methods": ("ste",), "dsq_alpha": 0.5}, ValueError,
     r"option\(s\) dsq_alpha apply to none of the methods ste; valid here: per_channel"),
    ({"rtol": -1}, ValueError, "rtol must be a non-negative number"),
    ({"loss_fn": lambda out, labels: out}, TypeError, r"loss_fn must return a one-element Tensor, got \(4, 10\)"),
])
def test_bad_arguments(batch, kwargs, error, match):
    small = (batch[0][:4], batch[1][:4])
    with pytest.raises(error, match=f"compare_gradients: {match}"):
        compare_gradients(_model(), small, **kwargs)


@pytest.mark.parametrize("make_batch, error, match", [
    (lambda x, y: x, TypeError, "batch must be a pair \\(images, labels\\) of Tensors, got Tensor"),
    (lambda x, y: (x,), TypeError, "batch must be a pair .* got a tuple of length 1"),
    (lambda x, y: (x, y, y), TypeError, "batch must be a pair .* got a tuple of length 3"),
    (lambda x, y: (x.numpy(), y), TypeError, "batch images must be a Tensor, got ndarray"),
    (lambda x, y: (x, y[:2]), ValueError, r"batch images \(4, 1, 8, 8\) and labels \(2,\) must have the same"),
])
def test_bad_batch(batch, make_batch, error, match):
    with pytest.raises(error, match=f"compare_gradients: {match}"):
        compare_gradients(_model(), make_batch(batch[0][:4], batch[1][:4]))


def test_bad_models(batch):
    with pytest.raises(TypeError, match="compare_gradients: expected an nn.Module, got str"):
        compare_gradients("lenet5", batch)
    with pytest.raises(ValueError, match="already holds QuantConv2d"):
        compare_gradients(quant.prepare_qat(_model(), weight="ste", act=None), batch)
    with pytest.raises(ValueError, match="no nn.Conv2d or nn.Linear"):
        compare_gradients(nn.Sequential(nn.Flatten()), batch)
    with pytest.raises(ValueError, match="GradientComparison.select: unknown field"):
        GradientComparison([], ("ste",), (8,), ("quantizer",), ()).select(colour="red")
