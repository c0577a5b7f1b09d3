"""The fused CPU kernels' chunked driver: every row visited once, results in chunk order on any number of
workers (ops.workers), scratch buffers, per-channel row layouts and reductions against NumPy, and its errors.
(tests/quant/test_fused.py checks the kernels against the plain paths.)"""

import threading

import numpy as np
import pytest

from minigrad_q.quant import _fused_cpu as fused

rng = np.random.default_rng(0)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_kernel_sees_each_row_once_and_results_come_back_in_chunk_order(monkeypatch, threads):
    monkeypatch.setattr(fused, "CHUNK", 7)
    monkeypatch.setattr(fused, "THREADS", threads)
    x = rng.standard_normal(100)
    y = np.empty_like(x)
    seen_threads = set()

    def kernel(rows, x, y, t):
        np.multiply(x, 2.0, out=t)
        np.add(t, 1.0, out=y)
        seen_threads.add(threading.get_ident())
        return rows.start, rows.stop

    spans = fused.elementwise(kernel, [x, y], scratch=1)
    np.testing.assert_array_equal(y, 2 * x + 1)
    assert [i for start, stop in spans for i in range(start, stop)] == list(range(100))  # in order, once each
    assert max(stop - start for start, stop in spans) <= 7
    assert (len(seen_threads) > 1) == (threads > 1)  # the calling thread and pool threads (which the pool may reuse)


@pytest.mark.parametrize("shape, axis", [((3, 4, 5), None), ((3, 4, 5), 0), ((3, 4, 5), 1), ((3, 4, 5), 2), ((6, 1), 1)])
def test_channel_layout_parameters_and_sums(monkeypatch, shape, axis):
    monkeypatch.setattr(fused, "CHUNK", 6)
    monkeypatch.setattr(fused, "THREADS", 2)
    x = rng.standard_normal(shape)
    channels = fused.Channels(shape, axis)
    count = 1 if axis is None else shape[axis]
    scale = rng.uniform(1, 2, count)
    prepared = channels.prepare(scale, x.dtype)
    y = np.empty_like(x)

    def kernel(rows, x, y):
        np.multiply(x, channels.at(prepared, rows), out=y)
        return channels.partial_sum(y)

    total = channels.total(fused.elementwise(kernel, [x, y], channels.row_size))
    broadcast = scale.reshape([count if d == axis else 1 for d in range(len(shape))]) if axis is not None else scale[0]
    np.testing.assert_allclose(y, x * broadcast, rtol=1e-15)
    others = tuple(d for d in range(len(shape)) if d != axis)
    np.testing.assert_allclose(total, (x * broadcast).sum(axis=others) if axis is not None else (x * broadcast).sum())


def test_empty_arrays_and_errors():
    assert fused.elementwise(lambda rows, x: None, [np.empty((0, 3))]) == []
    assert fused.Channels((0, 3), 1).total([]).shape == (3,)
    with pytest.raises(ValueError, match="elementwise: arrays must be C-contiguous"):
        fused.elementwise(lambda rows, x: None, [np.zeros((4, 4))[:, ::2]])
    with pytest.raises(ValueError, match="row_size 3 does not divide the size 8"):
        fused.elementwise(lambda rows, x: None, [np.zeros(8)], row_size=3)
