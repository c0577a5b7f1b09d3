"""Fused == plain: each quantizer's fused kernels (quant/_fused_cpu.py's chunked passes on every worker,
quant/_fused_gpu.py's CuPy kernels) against its plain forward and backward (backend.use_fused(False)),
per tensor and per channel, on the output and every gradient: x, scale, alpha, step, offset.

Equal values (-0.0 == 0.0), element by element: every output (DSQ's too), and the x gradients of
fake_quant, LSQ, PACT and QuantNoise. Stated tolerances:
- DSQ's x gradient: the fused kernels reach soft'(u) through rint (a = u − rint(u), |r| = ½ − |a|) and,
  for the x gradient alone, as ½·S·k/cosh²(k·r), in x's dtype; the plain path computes the docstring's
  ½·S·k·(1 − tanh²(k·r)) in float64. The argument k·|r| carries a rounding of about eps (x's dtype),
  which moves cosh² by up to about k·eps relative, and the other operations add a few eps:
  |fused − plain| <= (k + 8)·eps·½·S·k·|g| (measured on the CPU: at most 4.1·eps·½·S·k·|g|).
- Sums of parameter gradients (DSQ's scale and alpha, LSQ's step and offset, PACT's alpha): the paths
  sum in different orders and precisions (the fused CPU kernels add float64 partial sums chunk by
  chunk, plain NumPy / CuPy sum whole arrays, in float64 for DSQ, in x's dtype for LSQ and PACT), and
  the gradient is rounded to the parameter's dtype: they agree within one rounding of that dtype plus
  32·eps·Σ|g|·max|∂ŷ/∂parameter|, the sum over the elements sharing the parameter. (A pairwise or tree
  sum of 2^20 terms errs by at most about 20·eps·Σ|terms|; measured on the CPU: at most 1·eps·Σ|g|·max|·|.)
- On a GPU, NVRTC may contract a multiply and an add into one FMA (one rounding instead of two): LSQ's
  output with an offset, s·code + β, may differ there by one rounding of x's dtype.
"""

import math

import numpy as np
import pytest
from helpers import const, host

import minigrad_q as mq
from minigrad_q import backend
from minigrad_q.ops import workers
from minigrad_q.quant import _fused_cpu, _fused_gpu
from minigrad_q.quant._fused import fused_kernels
from minigrad_q.quant.dsq import dsq, soft_constants
from minigrad_q.quant.fake_quant import fake_quant
from minigrad_q.quant.lsq import lsq
from minigrad_q.quant.noise import quant_noise, quant_noise_mask
from minigrad_q.quant.pact import pact

rng = np.random.default_rng(7)

SHAPE = (4, 16, 128, 128)  # 2^20 elements = _fused_cpu.PARALLEL_MIN: the CPU kernels run on every worker
LAYOUTS = [None, 1, 3]  # per tensor; per channel, a row per channel (axis 1) or a row across channels (last axis)
QMIN, QMAX = -8, 7


def test_the_shape_takes_the_threaded_fused_path():
    size = math.prod(SHAPE)
    assert size >= _fused_cpu.FUSED_MIN and size >= _fused_cpu.PARALLEL_MIN


def test_the_switch_takes_fused_kernels_for_large_cpu_arrays_while_it_is_on():
    small, large = np.zeros(_fused_cpu.FUSED_MIN - 1), np.zeros(_fused_cpu.FUSED_MIN)
    assert fused_kernels(np, small) is None and fused_kernels(np, large) is _fused_cpu
    assert fused_kernels(np, np.zeros(0)) is None
    with backend.use_fused(False):
        assert fused_kernels(np, large) is None
    assert fused_kernels(np, large) is _fused_cpu


def test_the_backward_follows_the_path_its_forward_took():
    x = (rng.standard_normal(2 * _fused_cpu.FUSED_MIN) * 2).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    grads = []
    for forward_fused, backward_fused in ((True, False), (False, True), (False, False)):
        xt, scale = leaf(x, "cpu"), leaf(np.float32([0.3]), "cpu")
        with backend.use_fused(forward_fused):
            y = lsq(xt, scale, QMIN, QMAX)
        with backend.use_fused(backward_fused):
            y.backward(const(g))
        grads.append((host(xt.grad), host(scale.grad)))
    for dx, ds in grads[:2]:
        np.testing.assert_array_equal(dx, grads[2][0])
        np.testing.assert_allclose(ds, grads[2][1], rtol=1e-6)


@pytest.mark.parametrize("shape, axis", [((3, 5, 41), None), ((3, 5, 41), 1), ((3, 5, 41), 2), ((7, 300), 0)])
def test_odd_layouts_in_many_small_chunks_on_two_workers(monkeypatch, shape, axis):
    monkeypatch.setattr(_fused_cpu, "FUSED_MIN", 1)
    monkeypatch.setattr(_fused_cpu, "CHUNK", 40)  # chunks of whole rows, some of one row longer than CHUNK
    monkeypatch.setattr(_fused_cpu, "THREADS", 2)
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    channels = shape[axis] if axis is not None else 1
    scales = rng.uniform(0.2, 0.4, channels).astype(np.float32)
    results = []
    for fused in (True, False):
        xt, st = leaf(x, "cpu"), leaf(scales if axis is not None else scales[:1], "cpu")
        with backend.use_fused(fused):
            outputs = [fake_quant(xt, st.detach(), 1, QMIN, QMAX, axis), lsq(xt, st, QMIN, QMAX, axis=axis),
                       dsq(xt, st.detach(), 1, QMIN, QMAX, 0.3, axis)]
            for y in outputs:
                y.backward(const(g))
        results.append(([host(y) for y in outputs], host(xt.grad), host(st.grad)))
    (outputs, dx, ds), (outputs_plain, dx_plain, ds_plain) = results
    for y, y_plain in zip(outputs, outputs_plain):
        np.testing.assert_array_equal(y, y_plain)
    S, k = soft_constants(np, 0.3)  # x's gradient adds fake_quant's, LSQ's and DSQ's (DSQ's within its tolerance)
    eps = np.finfo(np.float32).eps
    assert np.all(np.abs(dx - dx_plain) <= 2 * eps * np.abs(dx_plain) + (k + 8) * eps * 0.5 * S * k * np.abs(g))
    grad_scale = 1 / math.sqrt(x.size / channels * QMAX)
    assert_sum_close(ds, ds_plain, sum_abs(g, axis) * max(-QMIN, QMAX) * grad_scale, np.float32)


@pytest.fixture
def spy(monkeypatch, device):
    """Records the fused forward kernels that ran, and on the CPU the workers each chunked pass ran on."""
    module = _fused_cpu if device == "cpu" else _fused_gpu
    ran = {"forwards": [], "workers": []}

    def recorded(name, original):
        def forward(*args):
            ran["forwards"].append(name)
            return original(*args)
        return forward

    for name in ("fake_quant_forward", "dsq_forward", "lsq_forward", "pact_forward", "quant_noise_forward"):
        monkeypatch.setattr(module, name, recorded(name, getattr(module, name)))

    def run_in_workers(work, chunks, count, blas=True):
        ran["workers"].append((chunks, count))
        return workers.run_in_workers(work, chunks, count, blas)

    monkeypatch.setattr(_fused_cpu, "run_in_workers", run_in_workers)
    return ran


def both_paths(spy, device, forward, quantize, leaves, g):
    """(output, {name: gradient}) of the fused path, then of the plain one; checks the fused path ran."""
    results = []
    for fused in (True, False):
        spy["forwards"].clear()
        spy["workers"].clear()
        for leaf in leaves.values():
            leaf.grad = None
        with backend.use_fused(fused):
            y = quantize()
            y.backward(const(g, device))
        results.append((host(y), {name: host(leaf.grad) for name, leaf in leaves.items()}))
        if fused:
            assert spy["forwards"] == [forward]
            if device == "cpu":  # every pass ran in chunks, on as many workers as the machine gives
                threads = min(_fused_cpu.MAX_THREADS, workers.usable_cores())
                assert spy["workers"] and all(chunks > 1 and count == threads for chunks, count in spy["workers"])
        else:
            assert spy["forwards"] == [] and spy["workers"] == []
    return results


def leaf(array, device):
    return mq.tensor(array, device=device, requires_grad=True)


def channel_values(axis, low, high, dtype):
    return rng.uniform(low, high, SHAPE[axis] if axis is not None else ()).astype(dtype)


def sum_abs(g, axis):
    """Σ|g| over the elements sharing each parameter value."""
    others = tuple(d for d in range(g.ndim) if d != axis)
    return np.abs(g).astype(np.float64).sum(axis=others if axis is not None else None)


def assert_sum_close(fused, plain, magnitude, dtype):
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(fused.astype(np.float64) - plain) <= eps * np.abs(plain) + 32 * eps * magnitude.reshape(plain.shape))


def inputs(dtype, device):
    x = (rng.standard_normal(SHAPE) * 2).astype(dtype)
    return x, rng.standard_normal(SHAPE).astype(dtype)


# ---------------------------------------------------------------- the quantizers
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", LAYOUTS)
def test_fake_quant(device, spy, axis, dtype):
    x, g = inputs(dtype, device)
    xt = leaf(x, device)
    scale = const(channel_values(axis, 0.05, 0.3, dtype), device) if axis is not None else 0.1
    zero_point = const(rng.integers(-3, 4, SHAPE[axis]), device) if axis is not None else 2
    (y, grads), (y_plain, grads_plain) = both_paths(
        spy, device, "fake_quant_forward", lambda: fake_quant(xt, scale, zero_point, QMIN, QMAX, axis), {"x": xt}, g)
    np.testing.assert_array_equal(y, y_plain)
    np.testing.assert_array_equal(grads["x"], grads_plain["x"])
    assert 0 < np.count_nonzero(grads["x"]) < x.size  # both in-range and clipped elements were there


@pytest.mark.parametrize("learn", [(), ("scale",), ("alpha",), ("scale", "alpha")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", LAYOUTS)
def test_dsq(device, spy, axis, dtype, learn):
    x, g = inputs(dtype, device)
    scales = channel_values(axis, 0.2, 0.4, dtype)
    alphas = channel_values(axis, 0.05, 0.95, dtype) if axis is not None else np.array([0.2], dtype)
    zeros = rng.integers(-2, 3, SHAPE[axis]) if axis is not None else 1
    leaves = {"x": leaf(x, device)}
    scale = leaves["scale"] = leaf(scales, device) if "scale" in learn else const(scales, device)
    alpha = leaves["alpha"] = leaf(alphas, device) if "alpha" in learn else float(alphas[0])
    leaves = {name: t for name, t in leaves.items() if name == "x" or name in learn}
    zero_point = const(zeros, device) if axis is not None else zeros
    (y, grads), (y_plain, grads_plain) = both_paths(
        spy, device, "dsq_forward", lambda: dsq(leaves["x"], scale, zero_point, QMIN, QMAX, alpha, axis), leaves, g)
    np.testing.assert_array_equal(y, y_plain)

    def per_element(values):
        return values.reshape([-1 if d == axis else 1 for d in range(len(SHAPE))]) if axis is not None else values

    S, k = (per_element(c) for c in soft_constants(np, alphas.astype(np.float64)))
    peak, eps = 0.5 * S * k, np.finfo(dtype).eps
    assert np.all(np.abs(grads["x"] - grads_plain["x"].astype(np.float64)) <= (k + 8) * eps * peak * np.abs(g))
    assert np.count_nonzero(grads["x"]) < x.size  # some elements outside the clamp range
    if "scale" in learn:  # |soft(u) − z − soft'·x/s| <= max|code − z| + 1 + ½·S·k·|x/s|
        codes = np.maximum(np.abs(QMIN - per_element(zeros)), np.abs(QMAX - per_element(zeros))) + 1
        bound = (codes + peak * np.abs(x) / per_element(scales)).max(axis=None)
        assert_sum_close(grads["scale"], grads_plain["scale"], sum_abs(g, axis) * bound, dtype)
    if "alpha" in learn:  # |s·½·S·[S·tanh − 2r(1 − tanh²)/(α(2 − α))]| <= s·½·S·(S + 1/(α(2 − α)))
        a = per_element(alphas.astype(np.float64))
        bound = (per_element(scales) * 0.5 * S * (S + 1 / (a * (2 - a)))).max(axis=None)
        assert_sum_close(grads["alpha"], grads_plain["alpha"], sum_abs(g, axis) * bound, dtype)


@pytest.mark.parametrize("offset", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", LAYOUTS)
def test_lsq(device, spy, axis, dtype, offset):
    x, g = inputs(dtype, device)
    leaves = {"x": leaf(x, device), "step": leaf(channel_values(axis, 0.2, 0.5, dtype), device)}
    if offset:
        leaves["offset"] = leaf(channel_values(axis, -0.5, 0.5, dtype), device)
    (y, grads), (y_plain, grads_plain) = both_paths(
        spy, device, "lsq_forward", lambda: lsq(leaves["x"], leaves["step"], QMIN, QMAX, axis=axis,
                                                offset=leaves.get("offset")), leaves, g)
    if device == "cpu" or not offset:
        np.testing.assert_array_equal(y, y_plain)
    else:  # an FMA in the CUDA kernel: one rounding fewer
        np.testing.assert_allclose(y, y_plain, rtol=np.finfo(dtype).eps, atol=0)
    np.testing.assert_array_equal(grads["x"], grads_plain["x"])
    assert 0 < np.count_nonzero(grads["x"]) < x.size
    grad_scale = 1 / math.sqrt(x.size / (SHAPE[axis] if axis is not None else 1) * QMAX)
    assert_sum_close(grads["step"], grads_plain["step"], sum_abs(g, axis) * max(-QMIN, QMAX) * grad_scale, dtype)
    if offset:
        assert_sum_close(grads["offset"], grads_plain["offset"], sum_abs(g, axis) * grad_scale, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pact(device, spy, dtype):
    x, g = inputs(dtype, device)
    leaves = {"x": leaf(x, device), "alpha": leaf(np.array([1.5], dtype), device)}
    (y, grads), (y_plain, grads_plain) = both_paths(
        spy, device, "pact_forward", lambda: pact(leaves["x"], leaves["alpha"], 4), leaves, g)
    np.testing.assert_array_equal(y, y_plain)
    np.testing.assert_array_equal(grads["x"], grads_plain["x"])
    assert 0 < np.count_nonzero(grads["x"]) < x.size
    assert_sum_close(grads["alpha"], grads_plain["alpha"], sum_abs(g, None), dtype)


@pytest.mark.parametrize("shape, block_size, training", [((1024, 1024), 1, True), ((1024, 1024), 4, True),
                                                         (SHAPE, 2, True), (SHAPE, 1, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quant_noise(device, spy, shape, block_size, training, dtype):
    w = leaf((rng.standard_normal(shape) * 2).astype(dtype), device)
    g = rng.standard_normal(shape).astype(dtype)
    mask = quant_noise_mask(shape, 0.5, block_size, device) if training else None  # eval: every element q(w)
    (y, grads), (y_plain, grads_plain) = both_paths(
        spy, device, "quant_noise_forward",
        lambda: quant_noise(w, 0.5, 4, block_size, mask=mask, training=training), {"w": w}, g)
    np.testing.assert_array_equal(y, y_plain)
    changed = np.count_nonzero(y != host(w))
    assert 0 < changed and (changed < w.data.size or not training)  # noised elements, and in training untouched ones
    np.testing.assert_array_equal(grads["w"], grads_plain["w"])
    np.testing.assert_array_equal(grads["w"], g)
