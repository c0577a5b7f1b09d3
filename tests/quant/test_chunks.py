"""The chunked CPU driver: every element visited once in row order, scratch buffers, per-channel row
layouts and reductions against NumPy, threads, and its errors."""

import numpy as np
import pytest

from minigrad_q.quant import _chunks

rng = np.random.default_rng(0)


@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_sees_each_row_once_and_writes_its_chunk(monkeypatch, threads):
    monkeypatch.setattr(_chunks, "CHUNK", 7)
    monkeypatch.setattr(_chunks, "THREADS", threads)
    x = rng.standard_normal(100)
    y = np.empty_like(x)

    def kernel(rows, x, y, t):
        np.multiply(x, 2.0, out=t)
        np.add(t, 1.0, out=y)
        return rows.start, rows.stop

    spans = _chunks.elementwise(kernel, [x, y], scratch=1)
    np.testing.assert_array_equal(y, 2 * x + 1)
    assert spans == [(start, min(start + 7, 100)) for start in range(0, 100, 7)]


@pytest.mark.parametrize("shape, axis", [((3, 4, 5), None), ((3, 4, 5), 0), ((3, 4, 5), 1), ((3, 4, 5), 2), ((6, 1), 1)])
def test_channel_layout_parameters_and_sums(monkeypatch, shape, axis):
    monkeypatch.setattr(_chunks, "CHUNK", 6)
    monkeypatch.setattr(_chunks, "THREADS", 2)
    x = rng.standard_normal(shape)
    channels = _chunks.Channels(shape, axis)
    count = 1 if axis is None else shape[axis]
    scale = rng.uniform(1, 2, count)
    prepared = channels.prepare(scale, x.dtype)
    y = np.empty_like(x)

    def kernel(rows, x, y):
        np.multiply(x, channels.at(prepared, rows), out=y)
        return channels.partial_sum(y)

    total = channels.total(_chunks.elementwise(kernel, [x, y], channels.row_size))
    broadcast = scale.reshape([count if d == axis else 1 for d in range(len(shape))]) if axis is not None else scale[0]
    np.testing.assert_allclose(y, x * broadcast, rtol=1e-15)
    others = tuple(d for d in range(len(shape)) if d != axis)
    np.testing.assert_allclose(total, (x * broadcast).sum(axis=others) if axis is not None else (x * broadcast).sum())


def test_empty_arrays_and_errors():
    assert _chunks.elementwise(lambda rows, x: None, [np.empty((0, 3))]) == []
    assert _chunks.Channels((0, 3), 1).total([]).shape == (3,)
    with pytest.raises(ValueError, match="elementwise: arrays must be C-contiguous"):
        _chunks.elementwise(lambda rows, x: None, [np.zeros((4, 4))[:, ::2]])
    with pytest.raises(ValueError, match="row_size 3 does not divide the size 8"):
        _chunks.elementwise(lambda rows, x: None, [np.zeros(8)], row_size=3)
