"""The chunked CPU path of sigmoid and of tanh's and sigmoid's backward (ops/_chunked.py) computes the plain
path's values bit for bit, on arrays large enough to take it, in float32 and float64, with extreme values."""

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q.ops import _chunked

rng = np.random.default_rng(0)


def values(dtype, shape):
    x = rng.standard_normal(shape) * 8
    x.reshape(-1)[:8] = [-100.0, -40.0, 39.0, 41.0, 1e4, np.inf, -np.inf, np.nan]
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", [mq.sigmoid, mq.tanh], ids=["sigmoid", "tanh"])
def test_chunked_equals_plain_bit_for_bit(op, dtype, monkeypatch):
    shape = (3, _chunked.CHUNK + 123)  # several chunks and a short last one
    x, g = values(dtype, shape), rng.standard_normal(shape).astype(dtype)
    calls = spy(monkeypatch, "sigmoid", "sigmoid_backward", "tanh_backward")
    fused, plain = run_fused_and_plain(op, x, g)
    assert calls == (["sigmoid", "sigmoid_backward"] if op is mq.sigmoid else ["tanh_backward"])
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a, b)


def spy(monkeypatch, *names):
    """The names of the _chunked functions among `names` that get called, in order."""
    calls = []
    for name in names:
        original = getattr(_chunked, name)
        monkeypatch.setattr(_chunked, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    return calls


def run_fused_and_plain(op, x, g):
    """(output, input gradient) of op on x with output gradient g, fused path first, then the plain one."""
    results = []
    for fused in (True, False):
        t = mq.tensor(x, requires_grad=True)
        with mq.backend.use_fused(fused):
            y = op(t)
            y.backward(mq.tensor(g))
        results.append((y.detach().numpy(), t.grad.numpy()))
    return results


def test_small_or_strided_arrays_take_the_plain_path():
    small = np.ones(_chunked.MIN_SIZE - 1, np.float32)
    large = np.ones((2, _chunked.MIN_SIZE), np.float32)
    assert not _chunked.takes(small) and _chunked.takes(large) and not _chunked.takes(large[:, ::2])
    assert not _chunked.takes(large, np.broadcast_to(np.float32(1), large.shape))  # a sum's gradient


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_split_among_workers_equals_plain_bit_for_bit(dtype, workers, monkeypatch):
    """Parts of unequal length (the size is not a multiple of the workers), NaN and ±inf, zeros (relu'(0) = 0)."""
    monkeypatch.setattr(_chunked, "blas_threads", lambda: workers)
    shape = (5, 20011)
    x, g = values(dtype, shape), rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[8:12] = [0.0, -0.0, 1e-300 if dtype == np.float64 else 1e-40, -1e-40]
    monkeypatch.setattr(_chunked, "PARALLEL_MIN_BYTES", x.nbytes)
    calls = spy(monkeypatch, "relu", "relu_backward")
    fused, plain = run_fused_and_plain(mq.relu, x, g)
    assert calls == ["relu", "relu_backward"]
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.signbit(a), np.signbit(b))


def test_relu_stays_on_the_calling_thread_below_its_size_or_with_one_worker(monkeypatch):
    array = np.ones(_chunked.PARALLEL_MIN_BYTES // 4, np.float32)
    monkeypatch.setattr(_chunked, "blas_threads", lambda: 2)
    assert _chunked.takes_split(array) and not _chunked.takes_split(array[1:])
    assert not _chunked.takes_split(array, np.broadcast_to(np.float32(1), array.shape))
    monkeypatch.setattr(_chunked, "blas_threads", lambda: 1)
    assert not _chunked.takes_split(array)
