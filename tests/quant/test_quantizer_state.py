"""quantizer_state: what each quantizer's grid is now, one summary per quantizer, recorded per epoch by train."""

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import quant
from minigrad_q.models import lenet5
from minigrad_q.train import train


def test_weight_grid_covers_each_channels_largest_weight():
    model = quant.prepare_qat(lenet5(input_size=8), weight="ste", act="ste", wbits=3, abits=3)
    model(mq.randn(4, 1, 8, 8))  # a training-mode batch sets the grids
    state = quant.quantizer_state(model)
    weight = np.abs(model[0].weight.detach().numpy()).reshape(6, -1).max(axis=1)  # max |w| of each output channel
    entry = state["0.weight_quant"]
    assert entry["kind"] == "FakeQuantize" and entry["bits"] == 3
    # symmetric narrow grid: qmax·s = max |w_c|, the lowest level its negative
    assert entry["high"]["max"] == pytest.approx(weight.max(), rel=1e-6)
    assert entry["high"]["min"] == pytest.approx(weight.min(), rel=1e-6)
    assert entry["low"]["mean"] == pytest.approx(-entry["high"]["mean"])
    assert entry["scale"]["mean"] == pytest.approx((weight / 3).mean(), rel=1e-6)
    assert "alpha" not in entry and set(state) == {f"{i}.{part}_quant" for i in (0, 3, 7, 9, 11) for part in ("weight", "act")}


def test_alphas_are_reported():
    model = quant.prepare_qat(lenet5(input_size=8), weight="dsq", act="pact", wbits=2, abits=2, dsq_alpha=0.3)
    model(mq.randn(4, 1, 8, 8))
    state = quant.quantizer_state(model)
    assert state["3.weight_quant"]["alpha"] == {"mean": pytest.approx(0.3)}
    assert state["3.act_quant"]["kind"] == "PACTQuantizer"
    assert state["3.act_quant"]["alpha"]["mean"] == pytest.approx(float(model[3].act_quant.alpha.item()))


def test_training_history_records_the_quantizers_each_epoch():
    quantized = train(epochs=2, train_size=64, quant="lsq", wbits=2, abits=2, verbose=False)
    first, last = (record["quantizers"] for record in quantized["history"])
    assert first.keys() == last.keys() and first["3.weight_quant"]["kind"] == "LSQQuantizer"
    assert first["3.weight_quant"]["scale"] != last["3.weight_quant"]["scale"]  # LSQ learns its step
    assert "quantizers" not in train(epochs=1, train_size=64, verbose=False)["history"][0]
