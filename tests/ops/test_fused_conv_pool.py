"""Fused == plain for conv2d and max_pool2d: with backend.fused_enabled() the ops run their planning
modules (ops/_conv_plan.py, ops/_pool_plan.py: batch chunks on worker threads, reused buffers, the
wide col2im, kept or recomputed columns); without, the plain array code in Conv2d and MaxPool2d.
Both must give the same output and the same gradient for every input, on inputs big enough that the
fused path really splits the work into chunks over two workers (each test checks that it did)."""

import numpy as np
import pytest
from helpers import const, host, leaf

import minigrad_q as mq
from minigrad_q.ops import _conv_plan as conv_plan
from minigrad_q.ops import _pool_plan as pool_plan

rng = np.random.default_rng(0)


@pytest.fixture
def device():
    """The planning modules are the CPU's fused paths (the GPU's: tests/ops/test_gpu_path.py)."""
    return "cpu"


def _two_workers(monkeypatch, device):
    """Two worker threads whatever the BLAS's thread count, and conv2d's column matrices in chunks of
    at most 2 MiB, so that the cases below take 3 or more chunks."""
    monkeypatch.setattr(conv_plan, "THREADS", 2)
    monkeypatch.setattr(conv_plan, "CHUNK_BYTES", 2 << 20)
    monkeypatch.setattr(pool_plan, "blas_threads", lambda: 2)


def _run(fused, op, arrays, requires_grad, g, device):
    """(output, its creator, what it saved for backward, [gradient of each input that requires grad])."""
    tensors = [None if a is None else (leaf if needs else const)(a, device) for a, needs in zip(arrays, requires_grad)]
    with mq.backend.use_fused(fused):
        y = op(*tensors)
        saved = y.creator.saved
        y.backward(const(g, device))
    return host(y), y.creator, saved, [t.grad.numpy() for t in tensors if t is not None and t.requires_grad]


def _assert_close(fused, plain):
    """float64: to 1e-12 of the array's largest value (the paths sum in different orders); float32: 1e-5."""
    tolerance = 1e-12 if plain.dtype == np.float64 else 1e-5
    assert fused.dtype == plain.dtype and fused.shape == plain.shape
    np.testing.assert_allclose(fused, plain, rtol=tolerance, atol=tolerance * np.abs(plain).max())


# ---------------------------------------------------------------- conv2d
# (batch, in channels, out channels, H, W, kernel, stride, padding, dilation, groups, bias): each
# takes 3 or more chunks of images in 2 MiB chunks (the shifted GEMMs: at SHIFTED_CHUNK_BYTES).
CONV_CASES = {
    "3x3 p1, per-image GEMMs, wide col2im": (24, 12, 12, 20, 20, 3, 1, 1, 1, 1, True),
    "3x3 p1, 32 channels, shifted GEMMs": (24, 32, 32, 16, 16, 3, 1, 1, 1, 1, True),
    "3x3 s2 p1 groups 2, chunk GEMMs, strided col2im": (64, 16, 12, 16, 16, 3, 2, 1, 1, 2, False),
    "3x3 dilation (2, 1) p (2, 1) groups 4, wide": (24, 8, 8, 18, 18, 3, 1, (2, 1), (2, 1), 4, True),
    "(2, 3) s (2, 1) p (0, 2)": (96, 12, 10, 24, 21, (2, 3), (2, 1), (0, 2), 1, 1, True),
    "LeNet conv1 5x5 p2": (128, 1, 6, 28, 28, 5, 1, 2, 1, 1, True),
    "LeNet conv2 5x5 valid, kernel rows": (384, 6, 16, 14, 14, 5, 1, "valid", 1, 1, True),
    "3x3 p1 small images, chunk GEMMs, wide col2im": (96, 8, 8, 10, 10, 3, 1, 1, 1, 1, True),
    "depthwise 3x3 same": (32, 12, 12, 16, 16, 3, 1, "same", 1, 12, False),
}


def _conv_case(name, dtype):
    n, cin, cout, h, w, kernel, stride, padding, dilation, groups, bias = CONV_CASES[name]
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    arrays = [rng.standard_normal((n, cin, h, w)), rng.standard_normal((cout, cin // groups, kh, kw)),
              rng.standard_normal(cout) if bias else None]
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return [None if a is None else a.astype(dtype) for a in arrays], options


@pytest.mark.parametrize("keep", ["kept columns", "recomputed columns"])
@pytest.mark.parametrize("name", CONV_CASES)
def test_conv2d_fused_equals_plain(device, monkeypatch, name, keep):
    _two_workers(monkeypatch, device)
    if keep == "recomputed columns":
        monkeypatch.setattr(conv_plan, "SAVE_COLUMNS_BYTES", 0)
    arrays, options = _conv_case(name, np.float64)
    _check_conv(device, arrays, options, [True, True, True], expect_kept=keep == "kept columns")


@pytest.mark.parametrize("requires_grad", [(False, True, True), (True, False, False), (False, False, True)],
                         ids=["first layer (no dx)", "frozen weight and bias", "bias only"])
@pytest.mark.parametrize("name", ["3x3 p1, per-image GEMMs, wide col2im", "3x3 s2 p1 groups 2, chunk GEMMs, strided col2im"])
def test_conv2d_fused_equals_plain_for_the_gradients_asked_for(device, monkeypatch, name, requires_grad):
    _two_workers(monkeypatch, device)
    arrays, options = _conv_case(name, np.float64)
    if arrays[2] is None:
        arrays[2] = rng.standard_normal(arrays[1].shape[0])
    _check_conv(device, arrays, options, list(requires_grad))


@pytest.mark.parametrize("name", ["3x3 p1, per-image GEMMs, wide col2im", "LeNet conv2 5x5 valid, kernel rows"])
def test_conv2d_fused_equals_plain_in_float32(device, monkeypatch, name):
    _two_workers(monkeypatch, device)
    arrays, options = _conv_case(name, np.float32)
    _check_conv(device, arrays, options, [True, True, True])


def _check_conv(device, arrays, options, requires_grad, expect_kept=None):
    op = lambda x, w, b: mq.conv2d(x, w, b, **options)  # noqa: E731
    with mq.no_grad():
        shape = op(*[None if a is None else const(a) for a in arrays]).shape
    g = rng.standard_normal(shape).astype(arrays[0].dtype)
    fused_y, fused_fn, fused_saved, fused_grads = _run(True, op, arrays, requires_grad, g, device)
    plain_y, plain_fn, _, plain_grads = _run(False, op, arrays, requires_grad, g, device)
    plan = fused_fn.plan
    assert plain_fn.plan is None and plan is not None
    assert len(plan.chunks) >= 3 and plan.workers == 2
    if plan.method != "columns":
        assert fused_saved[2] is None  # the shifted and kernel-row GEMMs keep no column matrix
    elif expect_kept is not None:
        assert (fused_saved[2] is not None) == expect_kept
    _assert_close(fused_y, plain_y)
    wanted = [a is not None and needs for a, needs in zip(arrays, requires_grad)]
    assert len(fused_grads) == len(plain_grads) == sum(wanted)
    for fused_grad, plain_grad in zip(fused_grads, plain_grads):
        _assert_close(fused_grad, plain_grad)


def test_the_conv_cases_reach_the_shifted_and_kernel_row_gemms_and_each_col2im_with_each_gemm_layout(monkeypatch):
    _two_workers(monkeypatch, "cpu")
    reached = set()
    for name in CONV_CASES:
        arrays, options = _conv_case(name, np.float64)
        with mq.backend.use_fused(True):
            plan = mq.conv2d(leaf(arrays[0]), const(arrays[1]), **options).creator.plan
        if plan.method != "columns":
            reached.add(plan.method)
        else:
            reached.add(("wide" if plan.wide else "strided", "per image" if plan.per_image else "per chunk"))
    expected = {(col2im, gemm) for col2im in ("wide", "strided") for gemm in ("per image", "per chunk")}
    assert reached == expected | ({"shifted", "rows"} if conv_plan._blas.gemm(np.float64) is not None else set())


# ---------------------------------------------------------------- max_pool2d
# (input shape, kernel_size, stride, padding): inputs of 4 MiB or more also in float32, which the fused
# path splits into chunks.
POOL_CASES = {
    "2x2 tiles": ((64, 16, 32, 32), 2, None, 0),
    "3x3 s2 p1 overlapping": ((64, 16, 33, 31), 3, 2, 1),
    "3x3 s1 p1": ((32, 16, 48, 48), 3, 1, 1),
    "(2, 3) s (1, 2) p (1, 1)": ((64, 16, 36, 30), (2, 3), (1, 2), (1, 1)),
    "2x2 s3: gaps between windows": ((64, 16, 32, 32), 2, 3, 0),
    "2x2 leaving the last row and column out": ((64, 16, 33, 33), 2, None, 0),
    "unbatched (C, H, W)": ((256, 64, 64), 2, None, 0),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", POOL_CASES)
def test_max_pool2d_fused_equals_plain(device, monkeypatch, name, dtype):
    """Values rounded to halves: many ties, which both paths send to the first maximum. Each element of
    dx receives its windows' shares in the same order on both paths, so they agree exactly."""
    _two_workers(monkeypatch, device)
    shape, kernel, stride, padding = POOL_CASES[name]
    x = (np.round(rng.standard_normal(shape) * 2) / 2).astype(dtype)
    op = lambda t: mq.max_pool2d(t, kernel, stride, padding)  # noqa: E731
    with mq.no_grad():
        g = rng.standard_normal(op(const(x)).shape).astype(dtype)
    fused_y, fused_fn, _, (fused_grad,) = _run(True, op, [x], [True], g, device)
    plain_y, plain_fn, _, (plain_grad,) = _run(False, op, [x], [True], g, device)
    assert plain_fn.plan is None and fused_fn.plan is not None
    chunks, workers = fused_fn.plan
    assert len(chunks) >= 2 and workers == 2
    assert fused_y.dtype == plain_y.dtype == fused_grad.dtype == plain_grad.dtype == dtype
    np.testing.assert_array_equal(fused_y, plain_y)
    np.testing.assert_array_equal(fused_grad, plain_grad)


@pytest.mark.parametrize("forward_fused", [True, False])
def test_the_path_forward_took_is_the_one_backward_takes(forward_fused):
    """Flipping the switch between forward and backward changes nothing: each Function's backward
    follows its own forward (the fused backward needs the fused forward's saved arrays, and back)."""
    x, w = rng.standard_normal((4, 3, 9, 9)), rng.standard_normal((5, 3, 3, 3))
    g_conv, g_pool = rng.standard_normal((4, 5, 9, 9)), rng.standard_normal((4, 3, 5, 5))
    results = []
    for flip in (False, True):
        xt, wt, pooled = leaf(x), leaf(w), leaf(x)
        with mq.backend.use_fused(forward_fused):
            y, z = mq.conv2d(xt, wt, padding=1), mq.max_pool2d(pooled, 3, 2, 1)
        assert (y.creator.plan is not None) == (z.creator.plan is not None) == forward_fused
        with mq.backend.use_fused(forward_fused != flip):
            y.backward(const(g_conv))
            z.backward(const(g_pool))
        results.append([xt.grad.numpy(), wt.grad.numpy(), pooled.grad.numpy()])
    for unflipped, flipped in zip(*results):
        np.testing.assert_array_equal(flipped, unflipped)
