"""conv2d: forward and gradients against direct nested loops written here (groups, stride, dilation,
padding ints/pairs/"same"/"valid", non-square, unbatched input) on the plain and the fused path, every
internal path of the fused one (batch chunks, kept or recomputed columns, wide or strided col2im),
needs_input_grad, float32, errors, and torch. Fused == plain on big batches: tests/ops/test_fused_conv_pool.py."""

import itertools

import numpy as np
import pytest
from helpers import const, host, leaf
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad_q as mq
from minigrad_q.ops import _conv_plan as conv_plan

rng = np.random.default_rng(0)


@pytest.fixture(params=["fused", "plain"])
def fused(request):
    """Runs the test with backend.fused_enabled() on (ops/_conv_plan.py), then off (Conv2d's plain code)."""
    with mq.backend.use_fused(request.param == "fused"):
        yield request.param == "fused"


@pytest.fixture
def fused_on():
    """The internal-path tests below are about the fused path, whatever MINIGRAD_Q_FUSED says."""
    with mq.backend.use_fused(True):
        yield


# ---------------------------------------------------------------- loop references
def pads_of(padding, kernel, dilation):
    """(top, bottom, left, right) as torch reads `padding` ("same": the extra row/column at the bottom/right)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return (ph, ph, pw, pw)


def reference(x, w, b, stride, padding, dilation, groups, g=None):
    """Output of the convolution by looping over every output pixel and kernel tap; with an output
    gradient g, also (dx, dw, db) of sum(output * g) by the same loops."""
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw_ = (dilation, dilation) if isinstance(dilation, int) else dilation
    out_channels, group_channels, kh, kw = w.shape
    top, bottom, left, right = pads_of(padding, (kh, kw), (dh, dw_))
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw_ * (kw - 1) - 1) // sw + 1
    y = np.zeros((x.shape[0], out_channels, oh, ow))
    grad_xp, grad_w = np.zeros_like(xp), np.zeros_like(w)
    per_group = out_channels // groups
    for k, r, s, c, i, j in itertools.product(range(out_channels), range(oh), range(ow), range(group_channels),
                                             range(kh), range(kw)):
        channel = (k // per_group) * group_channels + c
        row, col = r * sh + i * dh, s * sw + j * dw_
        y[:, k, r, s] += w[k, c, i, j] * xp[:, channel, row, col]
        if g is not None:
            grad_xp[:, channel, row, col] += w[k, c, i, j] * g[:, k, r, s]
            grad_w[k, c, i, j] += np.sum(g[:, k, r, s] * xp[:, channel, row, col])
    if b is not None:
        y += b[None, :, None, None]
    if g is None:
        return y
    grad_x = grad_xp[:, :, top:top + x.shape[2], left:left + x.shape[3]]
    return y, grad_x, grad_w, g.sum(axis=(0, 2, 3))


# (batch, in channels, out channels, H, W, kernel, stride, padding, dilation, groups)
CASES = [
    (2, 3, 4, 6, 7, 3, 1, 0, 1, 1),
    (2, 3, 2, 7, 5, (2, 3), 1, 1, 1, 1),
    (1, 2, 3, 8, 9, 3, 2, 1, 1, 1),
    (2, 2, 2, 9, 7, (3, 2), (2, 3), (1, 2), 1, 1),
    (2, 1, 2, 9, 9, 3, 1, 2, 2, 1),
    (1, 2, 2, 10, 8, (2, 3), (1, 2), 0, (2, 1), 1),
    (2, 4, 6, 6, 5, 3, 1, 1, 1, 2),
    (1, 6, 3, 5, 6, (1, 2), 1, 0, 1, 3),
    (2, 4, 4, 5, 5, 3, 1, 1, 1, 4),  # depthwise
    (2, 2, 3, 5, 7, 3, 1, "same", 1, 1),
    (1, 2, 2, 6, 5, (4, 2), 1, "same", 1, 1),  # even kernels: the extra row/column goes bottom/right
    (2, 2, 2, 7, 8, 3, 1, "same", 2, 2),
    (2, 3, 2, 6, 5, (2, 3), 1, "valid", 1, 1),
    (1, 1, 1, 4, 4, 5, 3, 2, 1, 1),  # kernel wider than the input, made to fit by padding
    (2, 2, 3, 3, 3, 3, 1, 0, 1, 1),  # 1x1 output
]


def _case(case, bias=True):
    n, cin, cout, h, w, kernel, stride, padding, dilation, groups = case
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = rng.standard_normal((n, cin, h, w))
    weight = rng.standard_normal((cout, cin // groups, kh, kw))
    b = rng.standard_normal(cout) if bias else None
    return x, weight, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_conv2d_forward_and_gradients_match_loops(device, case, fused):
    x, w, b, options = _case(case, bias=case[0] == 2)
    xt, wt = leaf(x, device), leaf(w, device)
    bt = leaf(b, device) if b is not None else None
    y = mq.conv2d(xt, wt, bt, **options)
    g = rng.standard_normal(y.shape)
    expected, grad_x, grad_w, grad_b = reference(x, w, b, g=g, **options)
    assert y.shape == expected.shape and y.dtype == mq.float64
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)
    y.backward(const(g, device))
    np.testing.assert_allclose(xt.grad.numpy(), grad_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), grad_w, rtol=1e-12, atol=1e-12)
    if bt is not None:
        np.testing.assert_allclose(bt.grad.numpy(), grad_b, rtol=1e-12, atol=1e-12)


def test_same_padding_keeps_the_size_and_pads_bottom_right_for_even_kernels(fused):
    x, w = rng.standard_normal((1, 1, 5, 6)), rng.standard_normal((1, 1, 2, 4))
    y = mq.conv2d(const(x), const(w), padding="same")
    assert y.shape == (1, 1, 5, 6)
    explicit = np.pad(x, ((0, 0), (0, 0), (0, 1), (1, 2)))  # totals 1 and 3: top 0 bottom 1, left 1 right 2
    np.testing.assert_allclose(host(y), reference(explicit, w, None, 1, 0, 1, 1), rtol=1e-12)


def test_unbatched_input_is_one_image(device, fused):
    x, w, b = rng.standard_normal((2, 5, 6)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    xt, wt, bt = leaf(x, device), leaf(w, device), leaf(b, device)
    y = mq.conv2d(xt, wt, bt, stride=(1, 2), padding=1)
    g = rng.standard_normal(y.shape)
    expected, grad_x, grad_w, grad_b = reference(x[None], w, b, (1, 2), 1, 1, 1, g=g[None])
    assert y.shape == expected.shape[1:]
    np.testing.assert_allclose(host(y), expected[0], rtol=1e-12)
    y.backward(const(g, device))
    assert xt.grad.shape == x.shape
    np.testing.assert_allclose(xt.grad.numpy(), grad_x[0], rtol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), grad_w, rtol=1e-12)
    np.testing.assert_allclose(bt.grad.numpy(), grad_b, rtol=1e-12)


# ---------------------------------------------------------------- the internal paths
IMAGE = 36 * 64 * 8  # bytes of one image's column matrices at stride 1: 4 channels x 3x3 = 36 rows, 8x8 outputs, float64
GRID_IMAGE = 36 * 100 * 8  # the same rows over the 10x10 padded grid (the shifted GEMMs' chunk measure)
ROWS_IMAGE = 12 * 10 * 8 * 8  # one image's kernel-row matrix: 3 x 4 rows over 10 padded rows x 8 outputs
OFF = 10**9
COLUMNS = {"SHIFTED_MIN_CHANNELS": OFF, "ROWS_MIN_KERNEL_ROWS": OFF}  # the column-matrix path
SHIFTED = {"SHIFTED_MIN_CHANNELS": 1, "ROWS_MIN_KERNEL_ROWS": OFF, "WIDE_MAX_WASTE": 100.0}
ROWS = {"SHIFTED_MIN_CHANNELS": OFF, "ROWS_MIN_KERNEL_ROWS": 1, "ROWS_MIN_DEPTH": 1, "ROWS_MIN_DEPTH_DX": 1}
PATHS = {  # name: the tuning constants of ops/_conv_plan.py to set
    "one chunk a worker, kept, wide": {**COLUMNS, "CHUNK_BYTES": 1 << 20, "SAVE_COLUMNS_BYTES": 1 << 30, "WIDE_MAX_WASTE": 100.0,
                              "PER_IMAGE_AREA": OFF},
    "chunks of 2 of 5 images, kept, wide": {**COLUMNS, "CHUNK_BYTES": 2 * IMAGE, "SAVE_COLUMNS_BYTES": 1 << 30,
                                            "WIDE_MAX_WASTE": 100.0, "PER_IMAGE_AREA": OFF},
    "chunks of 2, recomputed, wide, per-image GEMMs": {**COLUMNS, "CHUNK_BYTES": 2 * IMAGE, "SAVE_COLUMNS_BYTES": 0,
                                                       "WIDE_MAX_WASTE": 100.0, "PER_IMAGE_AREA": 1},
    "chunks of 3, recomputed, strided col2im": {**COLUMNS, "CHUNK_BYTES": 3 * IMAGE, "SAVE_COLUMNS_BYTES": 0,
                                                "WIDE_MAX_WASTE": 0.0, "PER_IMAGE_AREA": OFF},
    "chunks of 3, kept, strided col2im, per-image GEMMs": {**COLUMNS, "CHUNK_BYTES": 3 * IMAGE,
                                                           "SAVE_COLUMNS_BYTES": 1 << 30, "WIDE_MAX_WASTE": 0.0,
                                                           "PER_IMAGE_AREA": 1},
    "one image per chunk, recomputed, wide": {**COLUMNS, "CHUNK_BYTES": 1, "SAVE_COLUMNS_BYTES": 0,
                                              "WIDE_MAX_WASTE": 100.0, "PER_IMAGE_AREA": OFF},
    "one image per chunk, kept, strided col2im": {**COLUMNS, "CHUNK_BYTES": 1, "SAVE_COLUMNS_BYTES": 1 << 30,
                                                  "WIDE_MAX_WASTE": 0.0, "PER_IMAGE_AREA": OFF},
    "shifted GEMMs, one chunk a worker": {**SHIFTED, "SHIFTED_CHUNK_BYTES": 1 << 20},
    "shifted GEMMs, chunks of 2 of 5 images": {**SHIFTED, "SHIFTED_CHUNK_BYTES": 2 * GRID_IMAGE},
    "shifted GEMMs, one image per chunk": {**SHIFTED, "SHIFTED_CHUNK_BYTES": 1},
    "kernel rows, one chunk a worker": {**ROWS, "CHUNK_BYTES": 1 << 20},
    "kernel rows, chunks of 2 of 5 images": {**ROWS, "CHUNK_BYTES": 2 * ROWS_IMAGE},
    "kernel rows, one image per chunk": {**ROWS, "CHUNK_BYTES": 1},
}


def _force_path(monkeypatch, device, path):
    for name, value in PATHS[path].items():
        monkeypatch.setattr(conv_plan, name, value)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_internal_path_gives_the_same_gradients(device, monkeypatch, fused_on, path, stride, threads):
    """5 images of 4x8x8, 3x3 kernels, padding 1, groups 1 (stride 1) or 2 (stride 2), on 1-3 worker threads."""
    _force_path(monkeypatch, device, path)
    monkeypatch.setattr(conv_plan, "THREADS", threads)
    groups = stride
    x, w, b = rng.standard_normal((5, 4, 8, 8)), rng.standard_normal((4, 4 // groups, 3, 3)), rng.standard_normal(4)
    xt, wt, bt = leaf(x, device), leaf(w, device), leaf(b, device)
    y = mq.conv2d(xt, wt, bt, stride=stride, padding=1, groups=groups)
    g = rng.standard_normal(y.shape)
    expected, grad_x, grad_w, grad_b = reference(x, w, b, stride, 1, 1, groups, g=g)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)
    y.backward(const(g, device))
    np.testing.assert_allclose(xt.grad.numpy(), grad_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), grad_w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bt.grad.numpy(), grad_b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride, groups, blas, shifted", [(1, 1, True, True), (2, 1, True, False), (1, 2, True, False),
                                                       (1, 1, False, False)])
def test_the_shifted_gemms_serve_stride_1_ungrouped_convs_where_the_blas_allows(monkeypatch, fused_on, stride, groups,
                                                                               blas, shifted):
    """Forced on for 4 channels, they run where ops/_blas.py found a GEMM; elsewhere the column-matrix path does."""
    _force_path(monkeypatch, "cpu", "shifted GEMMs, chunks of 2 of 5 images")
    if not blas:
        monkeypatch.setattr(conv_plan._blas, "gemm", lambda dtype: None)
    elif conv_plan._blas.gemm(np.float64) is None:
        pytest.skip("NumPy's BLAS has no GEMM that ops/_blas.py calls")
    x, w, b = rng.standard_normal((5, 4, 8, 8)), rng.standard_normal((4, 4 // groups, 3, 3)), rng.standard_normal(4)
    xt, wt, bt = leaf(x), leaf(w), leaf(b)
    y = mq.conv2d(xt, wt, bt, stride=stride, padding=1, groups=groups)
    assert y.creator.plan.method == ("shifted" if shifted else "columns")
    if shifted:
        chunks = y.creator.plan.chunks
        assert len(chunks) >= 3 and max(stop - start for start, stop in chunks) == 2  # 5 images, at most 2 a chunk
    g = rng.standard_normal(y.shape)
    expected, grad_x, grad_w, grad_b = reference(x, w, b, stride, 1, 1, groups, g=g)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)
    y.backward(const(g))
    np.testing.assert_allclose(xt.grad.numpy(), grad_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), grad_w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bt.grad.numpy(), grad_b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path, groups, method", [("one image per chunk, recomputed, wide", 2, "columns"),
                                                  ("shifted GEMMs, one image per chunk", 1, "shifted"),
                                                  ("kernel rows, one image per chunk", 1, "rows")])
def test_dilation_uneven_padding_and_no_bias_on_each_stride_1_path(monkeypatch, fused_on, path, groups, method):
    _force_path(monkeypatch, "cpu", path)
    x, w = rng.standard_normal((3, 4, 7, 6)), rng.standard_normal((6, 4 // groups, 2, 3))
    xt, wt = leaf(x), leaf(w)
    y = mq.conv2d(xt, wt, None, padding="same", dilation=(2, 1), groups=groups)
    assert y.creator.plan.method == method or conv_plan._blas.gemm(np.float64) is None
    g = rng.standard_normal(y.shape)
    expected, grad_x, grad_w, _ = reference(x, w, None, 1, "same", (2, 1), groups, g=g)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)
    y.backward(const(g))
    np.testing.assert_allclose(xt.grad.numpy(), grad_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), grad_w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
def test_every_path_takes_a_broadcast_output_gradient(monkeypatch, fused_on, path):
    _force_path(monkeypatch, "cpu", path)
    x, w, b = rng.standard_normal((5, 3, 8, 8)), rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(2)
    xt, wt, bt = leaf(x), leaf(w), leaf(b)
    mq.conv2d(xt, wt, bt, padding=1).sum().backward()  # the engine hands backward a stride-0 gradient
    _, grad_x, grad_w, grad_b = reference(x, w, b, 1, 1, 1, 1, g=np.ones((5, 2, 8, 8)))
    np.testing.assert_allclose(xt.grad.numpy(), grad_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), grad_w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bt.grad.numpy(), grad_b, rtol=1e-12, atol=1e-12)


def test_worker_threads_give_reproducible_float32_results(monkeypatch, fused_on):
    monkeypatch.setattr(conv_plan, "THREADS", 2)
    monkeypatch.setattr(conv_plan, "CHUNK_BYTES", 1)  # one image per chunk: 6 chunks over 2 workers
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(6, 3, 9, 9), (4, 3, 3, 3), (4,)]]
    g = mq.tensor(rng.standard_normal((6, 4, 9, 9)).astype(np.float32))
    runs = []
    for _ in range(3):
        tensors = [mq.tensor(a, requires_grad=True) for a in arrays]
        y = mq.conv2d(*tensors, padding=1)
        y.backward(g)
        runs.append([host(y)] + [t.grad.numpy() for t in tensors])
    for run in runs[1:]:
        for a, b in zip(runs[0], run):
            np.testing.assert_array_equal(a, b)


def test_only_the_gradients_asked_for_are_computed(fused):
    """Saved: the weight matrix (index 1 on both paths) only for dX; the input or its columns only for dW."""
    x, w, b = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    g = rng.standard_normal((2, 3, 3, 3))
    _, grad_x, grad_w, grad_b = reference(x, w, b, 1, 0, 1, 1, g=g)
    first_layer_input, wt, bt = const(x), leaf(w), leaf(b)
    y = mq.conv2d(first_layer_input, wt, bt)
    assert (y.creator.plan is not None) == fused
    assert y.creator.saved[1] is None  # no weight matrix kept for an input gradient nobody wants
    assert y.creator.saved[0] is not None or y.creator.saved[2] is not None  # the input or its columns, for dW
    y.backward(const(g))
    assert first_layer_input.grad is None
    np.testing.assert_allclose(wt.grad.numpy(), grad_w, rtol=1e-12)
    np.testing.assert_allclose(bt.grad.numpy(), grad_b, rtol=1e-12)
    xt, frozen = leaf(x), const(w)
    y = mq.conv2d(xt, frozen)
    assert y.creator.saved[1] is not None
    assert all(saved is None for i, saved in enumerate(y.creator.saved) if i != 1)  # no input, no columns
    y.backward(const(g))
    assert frozen.grad is None
    np.testing.assert_allclose(xt.grad.numpy(), grad_x, rtol=1e-12)


def test_no_grad_records_nothing(fused):
    with mq.no_grad():
        y = mq.conv2d(leaf(rng.standard_normal((1, 1, 4, 4))), leaf(rng.standard_normal((1, 1, 3, 3))))
    assert y.creator is None and not y.requires_grad


def test_float32_stays_float32_and_matches_float64(fused):
    x, w, b = rng.standard_normal((3, 4, 9, 9)), rng.standard_normal((5, 4, 3, 3)), rng.standard_normal(5)
    tensors = [leaf(a, dtype=mq.float32) for a in (x, w, b)]
    y = mq.conv2d(*tensors, padding=1)
    assert y.dtype == mq.float32
    g = rng.standard_normal(y.shape)
    y.backward(const(g, dtype=mq.float32))
    expected = reference(x, w, b, 1, 1, 1, 1, g=g)
    np.testing.assert_allclose(host(y), expected[0], rtol=1e-4, atol=1e-4)
    for tensor, grad in zip(tensors, expected[1:]):
        assert tensor.grad.dtype == mq.float32
        np.testing.assert_allclose(tensor.grad.numpy(), grad, rtol=1e-4, atol=1e-3)


def test_non_contiguous_input_and_broadcast_output_gradient(device, fused):
    x, w = rng.standard_normal((2, 6, 5, 3)), rng.standard_normal((2, 3, 2, 2))
    xt = mq.Tensor(const(x, device).data.transpose(0, 3, 2, 1), requires_grad=True)  # (2, 3, 5, 6), not contiguous
    wt = leaf(w, device)
    y = mq.conv2d(xt, wt, padding=(1, 0))
    y.sum().backward()  # the engine hands backward a broadcast (stride-0) gradient
    expected, grad_x, grad_w, _ = reference(x.transpose(0, 3, 2, 1), w, None, 1, (1, 0), 1, 1, g=np.ones(y.shape))
    np.testing.assert_allclose(host(y), expected, rtol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), grad_x, rtol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), grad_w, rtol=1e-12)


def test_empty_batch(fused):
    xt, wt, bt = leaf(np.zeros((0, 2, 5, 5))), leaf(rng.standard_normal((3, 2, 3, 3))), leaf(np.ones(3))
    y = mq.conv2d(xt, wt, bt)
    assert y.shape == (0, 3, 3, 3)
    y.sum().backward()
    assert xt.grad.shape == (0, 2, 5, 5)
    np.testing.assert_array_equal(wt.grad.numpy(), np.zeros((3, 2, 3, 3)))
    np.testing.assert_array_equal(bt.grad.numpy(), np.zeros(3))


def test_backward_node_is_named():
    y = mq.conv2d(leaf(rng.standard_normal((1, 1, 3, 3))), leaf(rng.standard_normal((1, 1, 2, 2))))
    assert repr(y.grad_fn) == "<Conv2dBackward>"


# ---------------------------------------------------------------- errors
def _t(*shape, dtype=mq.float64):
    return mq.zeros(*shape, dtype=dtype)


@pytest.mark.parametrize("call, error, message", [
    (lambda: mq.conv2d(_t(2, 3), _t(1, 1, 1, 1)), ValueError, r"conv2d: expected a 3-D .* or 4-D .* input, got shape \(2, 3\)"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(1, 3, 3)), ValueError, r"conv2d: expected a 4-D weight .* got shape \(1, 3, 3\)"),
    (lambda: mq.conv2d(_t(1, 3, 5, 5), _t(4, 2, 3, 3), groups=2), ValueError,
     r"conv2d: input has 3 channels but weight expects 2\*groups=4"),
    (lambda: mq.conv2d(_t(1, 2, 5, 5), _t(4, 1, 3, 3)), ValueError,
     r"conv2d: input has 2 channels but weight expects 1\*groups=1"),
    (lambda: mq.conv2d(_t(1, 4, 5, 5), _t(3, 2, 3, 3), groups=2), ValueError,
     r"conv2d: groups=2 does not divide the weight's 3 output channels"),
    (lambda: mq.conv2d(_t(1, 1, 6, 6), _t(1, 1, 5, 5), dilation=2), ValueError,
     r"conv2d: kernel 5x5 \(dilated 9x9\) is larger than the padded input 6x6"),
    (lambda: mq.conv2d(_t(1, 1, 2, 6), _t(1, 1, 3, 3), padding=(0, 1)), ValueError,
     r"conv2d: kernel 3x3 is larger than the padded input 2x8"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(1, 1, 3, 3), stride=0), ValueError, r"conv2d: stride must be >= 1, got 0"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(1, 1, 3, 3), stride=(1, -1)), ValueError, r"conv2d: stride must be >= 1"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(1, 1, 3, 3), dilation=0), ValueError, r"conv2d: dilation must be >= 1, got 0"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(1, 1, 3, 3), padding=-1), ValueError, r"conv2d: padding must be >= 0"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(1, 1, 3, 3), padding="same", stride=2), ValueError,
     r"conv2d: padding='same' is not supported for strided convolutions"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(1, 1, 3, 3), padding="full"), ValueError,
     r"conv2d: padding must be an int, a pair, 'same' or 'valid', got 'full'"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(1, 1, 3, 3), stride=(1, 2, 3)), TypeError, r"conv2d: stride must be an int or a pair"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(1, 1, 3, 3), padding=1.5), TypeError, r"conv2d: padding must be an int or a pair"),
    (lambda: mq.conv2d(_t(1, 2, 4, 4), _t(2, 1, 3, 3), groups=0),
     ValueError, r"conv2d: groups must be a positive integer, got 0"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(1, 1, 3, 3, dtype=mq.float32)), RuntimeError,
     r"conv2d: input is float64 but weight is float32"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(1, 1, 3, 3), _t(1, dtype=mq.float32)), RuntimeError,
     r"conv2d: input is float64 but bias is float32"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4, dtype=mq.int64), _t(1, 1, 3, 3, dtype=mq.int64)), TypeError,
     r"conv2d: expected floating-point tensors, got int64"),
    (lambda: mq.conv2d(_t(1, 1, 4, 4), _t(2, 1, 3, 3), _t(3)), ValueError, r"conv2d: expected a bias of shape \(2,\)"),
    (lambda: mq.conv2d(np.zeros((1, 1, 4, 4)), _t(1, 1, 3, 3)), TypeError, r"conv2d: expected Tensors"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_conv2d_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.gpu
def test_device_mismatch_is_an_error():
    if not mq.backend.cuda_is_available():
        pytest.skip("no CuPy/GPU on this machine")
    with pytest.raises(RuntimeError, match=r"conv2d: input is on cpu but weight is on cuda:0"):
        mq.conv2d(_t(1, 1, 4, 4), _t(1, 1, 3, 3).to("cuda"))


# ---------------------------------------------------------------- torch
@pytest.mark.parametrize("options", [
    dict(padding=1), dict(stride=2, padding=(2, 1), dilation=(1, 2)), dict(padding="same", groups=2), dict(padding="valid"),
], ids=str)
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_matches_torch_on_mid_sized_float32_batches(options, fused):
    torch = pytest.importorskip("torch")
    shapes = [(16, 8, 19, 17), (12, 8 // options.get("groups", 1), 3, 4), (12,)]
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ours = [mq.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, yt = mq.conv2d(*ours, **options), torch.nn.functional.conv2d(*theirs, **options)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(mq.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(host(y), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    for a, b in zip(ours, theirs):
        scale = np.abs(b.grad.numpy()).max()
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5 * scale)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_the_stride_1_gemm_paths_on_drawn_shapes(data):
    """Shifted and kernel-row GEMMs forced on drawn stride-1 convolutions (kernels up to 5x5, dilation,
    padding as ints, pairs or "same", 1-4 images or unbatched, chunks of one image or all, one or two
    workers), against the loops."""
    draw = data.draw
    method = draw(st.sampled_from(["shifted", "rows"]))
    kh, kw, dh, dw = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.sampled_from([0, 1, 2, (0, 2), (2, 1), "same"]))
    top, bottom, left, right = pads_of(padding, (kh, kw), (dh, dw))
    least_h, least_w = max(1, dh * (kh - 1) + 1 - top - bottom), max(1, dw * (kw - 1) + 1 - left - right)
    h, w = draw(st.integers(least_h, least_h + 4)), draw(st.integers(least_w, least_w + 4))
    batch, channels, out_channels = draw(st.integers(0, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    x = rng.standard_normal((max(batch, 1), channels, h, w))
    weight, bias = rng.standard_normal((out_channels, channels, kh, kw)), rng.standard_normal(out_channels)
    constants = {**(SHIFTED if method == "shifted" else ROWS), "WIDE_MAX_WASTE": 1e9,
                 "SHIFTED_CHUNK_BYTES" if method == "shifted" else "CHUNK_BYTES": draw(st.sampled_from([1, 1 << 20])),
                 "THREADS": draw(st.integers(1, 2))}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in constants.items():
            patch.setattr(conv_plan, name, value)
        xt, wt, bt = leaf(x[0] if batch == 0 else x), leaf(weight), leaf(bias)
        with mq.backend.use_fused(True):
            y = mq.conv2d(xt, wt, bt, padding=padding, dilation=(dh, dw))
            assert y.creator.plan.method == method or conv_plan._blas.gemm(np.float64) is None
            g = rng.standard_normal(y.shape)
            y.backward(const(g))
    expected, grad_x, grad_w, grad_b = reference(x, weight, bias, 1, padding, (dh, dw), 1, g=g[None] if batch == 0 else g)
    unbatch = (lambda a: a[0]) if batch == 0 else (lambda a: a)
    np.testing.assert_allclose(host(y), unbatch(expected), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(xt.grad.numpy(), unbatch(grad_x), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(wt.grad.numpy(), grad_w, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bt.grad.numpy(), grad_b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("channels, kernel, need_x, method", [(4, 5, True, "rows"), (4, 5, False, "columns"),
                                                             (6, 5, False, "rows"), (3, 5, True, "columns"),
                                                             (3, 7, True, "rows"), (8, 3, True, "columns")])
def test_kernel_rows_from_five_rows_and_a_depth_of_24_or_20_with_an_input_gradient(channels, kernel, need_x, method):
    """The kernel-row rule (docs/benchmarks.md, "Notes: waking a worker thread"): kh >= 5 and kw·C >= 24, or
    kw·C >= 20 where dX is needed, whose kernel-row dX beats the column matrices' col2im."""
    if conv_plan._blas.gemm(np.float32) is None:
        pytest.skip("NumPy's BLAS has no GEMM that ops/_blas.py calls")
    plan = conv_plan.ConvPlan((8, channels, 14, 14), (16, channels, kernel, kernel), (1, 1), (0, 0, 0, 0), (1, 1), 1,
                              np.dtype(np.float32), need_x=need_x)
    assert plan.method == method


@pytest.mark.parametrize("images, side, split", [(64, 28, True), (64, 8, False)])
def test_plans_give_every_worker_a_chunk_unless_the_chunks_would_be_tiny(monkeypatch, images, side, split):
    """LeNet-5's first conv: 64 images of 28x28 (5 MB of column matrices) go in one chunk per worker, not
    in one 8 MiB chunk on one worker; the digits' 64 images of 8x8 (0.4 MB of column matrices) stay in one chunk on the calling
    thread, where a hand-off to a worker would cost more than it saves."""
    monkeypatch.setattr(conv_plan, "THREADS", 2)
    plan = conv_plan.ConvPlan((images, 1, side, side), (6, 1, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1,
                              np.dtype(np.float32), need_x=False)
    assert plan.method == "columns"
    assert (len(plan.chunks), plan.workers) == ((2, 2) if split else (1, 1))
