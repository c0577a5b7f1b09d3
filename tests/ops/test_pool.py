"""Pools (max_pool2d, avg_pool2d, adaptive_avg_pool2d): forward and gradients against explicit loops over
windows written here, torch's tie rule (the first maximum takes the gradient), unbatched input, the
fast paths (tiling windows, big windows), max_pool2d's plain and fused paths (chunks on worker
threads), dilation, ceil_mode (torch's output size; avg_pool2d's divisor for windows past the padded
input), return_indices, which cases take the GPU kernels (compiled for the host here), errors, and
cross-checks against torch. Fused == plain on big inputs: tests/ops/test_fused_conv_pool.py."""

import math

import numpy as np
import pytest
from helpers import const, host, leaf

import minigrad_q as mq
import minigrad_q.ops._pool_plan as pool_plan

rng = np.random.default_rng(0)


@pytest.fixture(params=["fused", "plain"])
def fused(request):
    """Runs the test with backend.fused_enabled() on (ops/_pool_plan.py for max_pool2d), then off."""
    with mq.backend.use_fused(request.param == "fused"):
        yield request.param == "fused"


# ---------------------------------------------------------------- loop references
def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def window_starts(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """Start (in unpadded coordinates, may be negative) of each window along one dim: torch's output size,
    rounded up in ceil mode unless that last window would start past the input and its left padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return [i * stride - padding for i in range(out)]


def pool_reference(x, kernel_size, stride, padding, kind, dilation=1, ceil_mode=False, with_indices=False):
    """(output, g, gradient of sum(output * g)[, indices]) by looping over every window; g is drawn here too.
    avg: the divisor counts a window's elements inside the padded input (torch, count_include_pad=True);
    max: the index of a window's first maximum, or of its first element inside the input if all are -inf."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    h, w = x.shape[-2:]
    rows = window_starts(h, kh, sh, ph, dh, ceil_mode)
    cols = window_starts(w, kw, sw, pw, dw, ceil_mode)
    lead = x.shape[:-2]
    out = np.zeros(lead + (len(rows), len(cols)))
    indices = np.zeros(out.shape, dtype=np.int64)
    g = rng.standard_normal(out.shape)
    grad = np.zeros(x.shape)
    for index in np.ndindex(*lead):
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                cells = [(r + a * dh, c + b * dw) for a in range(kh) for b in range(kw)]
                inside = [(a, b) for a, b in cells if 0 <= a < h and 0 <= b < w]
                if kind == "max":
                    values = [x[index + cell] if cell in inside else -np.inf for cell in cells]
                    first = int(np.argmax(values))  # np.argmax: the first maximum
                    out[index + (i, j)] = values[first]
                    if cells[first] in inside:
                        grad[index + cells[first]] += g[index + (i, j)]
                    at = cells[first] if values[first] > -np.inf else inside[0]
                    indices[index + (i, j)] = at[0] * w + at[1]
                else:  # zero padding counted in the divisor (count_include_pad=True), what lies past it not
                    divisor = (min(r + kh, h + ph) - r) * (min(c + kw, w + pw) - c)
                    out[index + (i, j)] = sum(x[index + cell] for cell in inside) / divisor
                    for cell in inside:
                        grad[index + cell] += g[index + (i, j)] / divisor
    return (out, g, grad, indices) if with_indices else (out, g, grad)


def adaptive_reference(x, out_size):
    oh, ow = out_size
    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (oh, ow))
    g = rng.standard_normal(out.shape)
    grad = np.zeros(x.shape)
    for i in range(oh):
        r0, r1 = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
        for j in range(ow):
            c0, c1 = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            count = (r1 - r0) * (c1 - c0)
            out[..., i, j] = x[..., r0:r1, c0:c1].sum(axis=(-2, -1)) / count
            grad[..., r0:r1, c0:c1] += g[..., i, j][..., None, None] / count
    return out, g, grad


def forward_and_grad(fn, x_data, g, device):
    x = leaf(x_data, device)
    y = fn(x)
    y.backward(const(g, device))
    return host(y), x.grad.numpy()


POOL_CASES = [  # (input shape, kernel_size, stride, padding)
    ((2, 3, 8, 8), 2, None, 0),        # tiles the input: the fast path
    ((1, 2, 7, 5), 2, None, 0),        # last row/column left out
    ((2, 2, 6, 5), 3, 1, 1),           # overlapping, padded
    ((1, 2, 9, 7), 3, 2, 1),
    ((1, 1, 7, 7), 2, 3, 1),           # stride > kernel: gaps between windows
    ((2, 2, 6, 9), (2, 3), (1, 2), (1, 1)),
    ((3, 5, 5), 2, 2, 0),              # unbatched (C, H, W)
    ((1, 2, 4, 4), 1, 1, 0),
    ((1, 1, 8, 8), 4, None, 0),        # big tiling windows (avg: averaging matrices)
    ((0, 2, 4, 4), 2, None, 0),        # empty batch
]


CEIL_CASES = [  # (input shape, kernel_size, stride, padding): ceil_mode adds a last window
    ((1, 2, 5, 5), 2, None, 0),        # a last window of one row and column
    ((2, 2, 6, 6), 3, 2, 1),           # it runs past the right and bottom padding
    ((1, 1, 7, 8), (3, 2), (2, 3), (1, 1)),
    ((2, 3, 5), 3, 3, 1),              # unbatched
    ((1, 1, 8, 8), 2, None, 0),        # ceil_mode changes nothing: windows tile the input
    ((1, 1, 4, 4), 3, 3, 1),           # (4 + 2 - 3) / 3 rounds up to 2, but that window would start at 5 >= 4 + 1
    ((1, 2, 4, 3), 5, None, 0),        # a window bigger than the input (torch allows it in ceil mode)
]
DILATED_CASES = [  # (input shape, kernel_size, stride, padding, dilation, ceil_mode)
    ((2, 2, 7, 7), 2, 1, 0, 2, False),
    ((1, 2, 9, 8), 3, 2, 1, 2, False),       # dilation with padding
    ((1, 1, 8, 9), (2, 3), (1, 2), (1, 1), (3, 2), False),
    ((2, 2, 8, 8), 3, 2, 1, 2, True),        # and ceil_mode
    ((1, 1, 6, 7), 2, 3, 1, (2, 3), True),
    ((3, 6, 6), 2, 2, 0, 3, False),          # unbatched
]


@pytest.mark.parametrize("shape, kernel, stride, padding", POOL_CASES, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_forward_and_gradient_match_loops(device, fused, kind, shape, kernel, stride, padding):
    x = rng.standard_normal(shape)
    expected, g, expected_grad = pool_reference(x, kernel, stride, padding, kind)
    op = mq.max_pool2d if kind == "max" else mq.avg_pool2d
    y, grad = forward_and_grad(lambda t: op(t, kernel, stride, padding), x, g, device)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, kernel, stride, padding", CEIL_CASES, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pools_in_ceil_mode_match_loops(device, fused, kind, shape, kernel, stride, padding):
    x = rng.standard_normal(shape)
    expected, g, expected_grad = pool_reference(x, kernel, stride, padding, kind, ceil_mode=True)
    op = mq.max_pool2d if kind == "max" else mq.avg_pool2d
    y, grad = forward_and_grad(lambda t: op(t, kernel, stride, padding, ceil_mode=True), x, g, device)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode", DILATED_CASES, ids=str)
def test_dilated_max_pool_matches_loops(device, fused, shape, kernel, stride, padding, dilation, ceil_mode):
    x = np.round(rng.standard_normal(shape) * 2) / 2  # ties too
    expected, g, expected_grad = pool_reference(x, kernel, stride, padding, "max", dilation, ceil_mode)
    y, grad = forward_and_grad(lambda t: mq.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode), x, g, device)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode",
                         DILATED_CASES + [case + (1, True) for case in CEIL_CASES] + [case + (1, False) for case in POOL_CASES],
                         ids=str)
def test_max_pool_indices_match_loops(device, fused, shape, kernel, stride, padding, dilation, ceil_mode):
    """The flat position h·W + w in its plane of each window's first maximum (ties too), int64, no gradient;
    the output and its gradient as without indices."""
    x = np.round(rng.standard_normal(shape) * 2) / 2
    expected, g, expected_grad, expected_indices = pool_reference(x, kernel, stride, padding, "max", dilation, ceil_mode,
                                                                  with_indices=True)
    t = leaf(x, device)
    y, indices = mq.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
    assert indices.dtype == mq.int64 and not indices.requires_grad and indices.shape == y.shape
    np.testing.assert_array_equal(host(indices), expected_indices)
    np.testing.assert_array_equal(host(y), expected)
    y.backward(const(g, device))
    np.testing.assert_allclose(t.grad.numpy(), expected_grad, rtol=1e-12, atol=1e-12)


def test_max_pool_indices_of_windows_of_minus_infinity_only(device):
    """torch: the window's first element inside the input, also where its first maximum is padding."""
    x = np.full((1, 1, 4, 4), -np.inf)
    x[0, 0, 3, 3] = 1.0
    _, _, _, expected = pool_reference(x, 3, 2, 1, "max", with_indices=True)
    _, indices = mq.max_pool2d(const(x, device), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(host(indices), expected)
    np.testing.assert_array_equal(host(indices)[0, 0], [[0, 1], [4, 15]])


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode",
                         [case + (1, False) for case in POOL_CASES] + [case + (1, True) for case in CEIL_CASES] + DILATED_CASES,
                         ids=str)
def test_max_pool_in_chunks_on_worker_threads_matches_loops(monkeypatch, threads, shape, kernel, stride, padding,
                                                            dilation, ceil_mode):
    """One leading index (image, or channel unbatched) per chunk, over 1-3 workers."""
    monkeypatch.setattr(pool_plan, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(pool_plan, "CHUNK_BYTES", 1)
    monkeypatch.setattr(pool_plan, "blas_threads", lambda: threads)
    x = np.round(rng.standard_normal(shape))  # ties too
    expected, g, expected_grad = pool_reference(x, kernel, stride, padding, "max", dilation, ceil_mode)
    with mq.backend.use_fused(True):
        y, grad = forward_and_grad(lambda t: mq.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode), x, g, "cpu")
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_which_path_max_pool_takes(monkeypatch):
    """The fused CPU path for dilation and ceil_mode too; return_indices takes the plain steps."""
    x = leaf(rng.standard_normal((2, 2, 7, 7)))
    with mq.backend.use_fused(True):
        assert mq.max_pool2d(x, 3, 2, 1, 2, True).creator.plan is not None
        assert mq.max_pool2d(x, 3, 2, 1, return_indices=True)[0].creator.plan is None


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 1, 1), (3, 2, 0), (2, 1, 0)])
def test_max_pool_ties_send_the_gradient_to_the_first_maximum(device, fused, kernel, stride, padding):
    x = np.round(rng.standard_normal((2, 2, 6, 6)))  # many ties
    x[0, 0] = 1.0  # a whole constant plane: every window is one big tie
    expected, g, expected_grad = pool_reference(x, kernel, stride, padding, "max")
    y, grad = forward_and_grad(lambda t: mq.max_pool2d(t, kernel, stride, padding), x, g, device)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_max_pool_tie_on_a_constant_window_goes_to_its_top_left(device, fused):
    x = leaf(np.ones((1, 1, 2, 2)), device)
    mq.max_pool2d(x, 2).backward(const(np.full((1, 1, 1, 1), 3.0), device))
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[3.0, 0.0], [0.0, 0.0]])


def test_max_pool_propagates_nan(device, fused):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    y = host(mq.max_pool2d(const(x, device), 2))
    assert np.isnan(y[0, 0, 0, 0]) and np.array_equal(y[0, 0].ravel()[1:], [7.0, 13.0, 15.0])


def test_max_pool_with_float32_and_many_offsets(device, fused):
    """A 12x12 kernel has 144 offsets, more than an int8 index holds."""
    x = rng.standard_normal((1, 2, 12, 13)).astype(np.float32)
    expected, g, expected_grad = pool_reference(x.astype(np.float64), 12, 1, 0, "max")
    y, grad = forward_and_grad(lambda t: mq.max_pool2d(t, 12, 1), x, g.astype(np.float32), device)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, expected.astype(np.float32))
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6)


def test_pools_of_non_contiguous_input(device, fused):
    base = rng.standard_normal((2, 6, 6, 3))
    view = const(base, device).data.transpose(0, 3, 1, 2)  # (2, 3, 6, 6), not contiguous
    for op, kind in ((mq.max_pool2d, "max"), (mq.avg_pool2d, "avg")):
        x = mq.Tensor(view, requires_grad=True)
        expected, g, expected_grad = pool_reference(base.transpose(0, 3, 1, 2), 3, 2, 1, kind)
        y = op(x, 3, 2, 1)
        y.backward(const(g, device))
        np.testing.assert_allclose(host(y), expected, rtol=1e-12)
        np.testing.assert_allclose(x.grad.numpy(), expected_grad, rtol=1e-12, atol=1e-15)


def test_pools_without_grad_still_compute(device, fused):
    x = const(rng.standard_normal((1, 2, 4, 4)), device)
    with mq.no_grad():
        y = mq.max_pool2d(leaf(x.numpy(), device), 2)
    assert not y.requires_grad
    np.testing.assert_array_equal(host(y), pool_reference(x.numpy(), 2, None, 0, "max")[0])


ADAPTIVE_CASES = [
    ((2, 3, 7, 9), (3, 3)),      # uneven windows (averaging matrices)
    ((2, 2, 6, 10), (2, 5)),     # tiles: avg_pool2d path
    ((1, 1, 5, 5), (7, 7)),      # more outputs than inputs: windows repeat
    ((2, 3, 5, 5), (1, 1)),      # global average (big tiling window)
    ((2, 2, 16, 16), (2, 2)),    # tiling windows of 8x8
    ((3, 6, 4), (4, 2)),         # unbatched
    ((2, 1, 6, 6), (6, 6)),      # identity
]


@pytest.mark.parametrize("shape, out_size", ADAPTIVE_CASES, ids=str)
def test_adaptive_avg_pool_matches_torchs_window_rule(device, shape, out_size):
    x = rng.standard_normal(shape)
    expected, g, expected_grad = adaptive_reference(x, out_size)
    y, grad = forward_and_grad(lambda t: mq.adaptive_avg_pool2d(t, out_size), x, g, device)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-14)


def test_adaptive_avg_pool_output_size_forms(device):
    x = const(rng.standard_normal((1, 2, 6, 4)), device)
    assert mq.adaptive_avg_pool2d(x, 3).shape == (1, 2, 3, 3)
    assert mq.adaptive_avg_pool2d(x, (None, 2)).shape == (1, 2, 6, 2)
    assert mq.adaptive_avg_pool2d(x, [2, None]).shape == (1, 2, 2, 4)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x: mq.max_pool2d(x, 3, 1, 2), ValueError,
         r"max_pool2d: padding \(2, 2\) must be at most half the kernel size \(3, 3\)"),
        (lambda x: mq.avg_pool2d(x, 2, 1, 2), ValueError, r"avg_pool2d: padding .* at most half"),
        (lambda x: mq.max_pool2d(x, 5), RuntimeError,
         r"max_pool2d: kernel \(5, 5\) .* does not fit .* \(1, 2, 4, 4\).*output size would be \(0, 0\)"),
        (lambda x: mq.avg_pool2d(x, (2, 5)), RuntimeError, r"avg_pool2d: .* output size would be \(2, 0\)"),
        (lambda x: mq.max_pool2d(x, 0), ValueError, r"max_pool2d: kernel_size must be >= 1, got 0"),
        (lambda x: mq.max_pool2d(x, 2, 0), ValueError, r"max_pool2d: stride must be >= 1"),
        (lambda x: mq.max_pool2d(x, 2, 2, -1), ValueError, r"max_pool2d: padding must be >= 0"),
        (lambda x: mq.max_pool2d(x, 2, 2, 0, 0), ValueError, r"max_pool2d: dilation must be >= 1, got 0"),
        (lambda x: mq.max_pool2d(x, 3, 1, 2, 2), ValueError,
         r"max_pool2d: padding \(2, 2\) must be at most half the kernel size \(3, 3\)"),
        (lambda x: mq.max_pool2d(x, 2, 1, 0, 4), RuntimeError,
         r"max_pool2d: kernel \(2, 2\) dilation \(4, 4\) with padding \(0, 0\) does not fit .* would be \(0, 0\)"),
        (lambda x: mq.avg_pool2d(x, 6, 2, ceil_mode=True), RuntimeError, r"avg_pool2d: .* output size would be \(0, 0\)"),
        (lambda x: mq.max_pool2d(x, 2.5), TypeError, r"max_pool2d: kernel_size must be an int or a pair of ints, got 2.5"),
        (lambda x: mq.max_pool2d(x, (2, 2, 2)), TypeError, r"kernel_size must be an int or a pair"),
        (lambda x: mq.max_pool2d(x[0, 0], 2), RuntimeError,
         r"max_pool2d: expected a 3-D \(C, H, W\) or 4-D .* got shape \(4, 4\)"),
        (lambda x: mq.avg_pool2d(x.long(), 2), RuntimeError, r"avg_pool2d: expected a floating point input, got dtype int64"),
        (lambda x: mq.adaptive_avg_pool2d(x, 0), ValueError, r"adaptive_avg_pool2d: output_size must be >= 1"),
        (lambda x: mq.adaptive_avg_pool2d(x, (2, 2, 2)), TypeError, r"adaptive_avg_pool2d: output_size must be an int or a pair"),
        (lambda x: mq.max_pool2d(x.numpy(), 2), TypeError, r"max_pool2d: expected a Tensor, got ndarray"),
    ],
)
def test_pool_errors(call, error, match):
    x = mq.tensor(rng.standard_normal((1, 2, 4, 4)))
    with pytest.raises(error, match=match):
        call(x)


def test_pool_error_for_an_empty_channel_dim():
    with pytest.raises(RuntimeError, match=r"non-zero C, H, W, got shape \(2, 0, 4, 4\)"):
        mq.max_pool2d(mq.zeros(2, 0, 4, 4), 2)


@pytest.mark.parametrize(
    "name, args",
    [("max_pool2d", (3, 2, 1)), ("max_pool2d", (2,)), ("avg_pool2d", (3, 1, 1)), ("avg_pool2d", ((2, 4), (2, 3), (1, 2))),
     ("adaptive_avg_pool2d", ((5, 3),)), ("adaptive_avg_pool2d", (1,))],
)
def test_pools_match_torch(name, args, fused):
    torch = pytest.importorskip("torch")
    x_data = rng.standard_normal((4, 3, 15, 13)).astype(np.float32)
    g = rng.standard_normal(getattr(torch.nn.functional, name)(torch.tensor(x_data), *args).shape).astype(np.float32)
    x = mq.tensor(x_data, requires_grad=True)
    y = getattr(mq, name)(x, *args)
    y.backward(mq.tensor(g))
    xt = torch.tensor(x_data, requires_grad=True)
    yt = getattr(torch.nn.functional, name)(xt, *args)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(host(y), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "name, args, options",
    [("max_pool2d", (3, 2, 1), dict(dilation=2)), ("max_pool2d", ((2, 3), 1, (1, 0)), dict(dilation=(3, 2))),
     ("max_pool2d", (3, 2, 1), dict(ceil_mode=True)), ("max_pool2d", (2,), dict(ceil_mode=True, dilation=2)),
     ("max_pool2d", (3, 2, 1), dict(dilation=2, ceil_mode=True, return_indices=True)),
     ("max_pool2d", (2,), dict(return_indices=True)), ("max_pool2d", ((3, 2), (2, 3), 1), dict(return_indices=True)),
     ("avg_pool2d", (3, 2, 1), dict(ceil_mode=True)), ("avg_pool2d", ((2, 4), (2, 3), (1, 2)), dict(ceil_mode=True)),
     ("avg_pool2d", (4, 3), dict(ceil_mode=True))],
    ids=str,
)
def test_pool_options_match_torch(name, args, options, fused):
    """float64: values, gradients and indices (ties too, from rounded inputs)."""
    torch = pytest.importorskip("torch")
    x_data = np.round(rng.standard_normal((2, 3, 15, 13)) * 2) / 2
    xt = torch.tensor(x_data, requires_grad=True)
    theirs = getattr(torch.nn.functional, name)(xt, *args, **options)
    x = mq.tensor(x_data, requires_grad=True)
    ours = getattr(mq, name)(x, *args, **options)
    if options.get("return_indices"):
        (ours, indices), (theirs, their_indices) = ours, theirs
        np.testing.assert_array_equal(host(indices), their_indices.numpy())
    g = rng.standard_normal(tuple(theirs.shape))
    ours.backward(mq.tensor(g))
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(host(ours), theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_max_pool_indices_of_minus_infinity_windows_match_torch():
    torch = pytest.importorskip("torch")
    x_data = np.full((1, 2, 5, 4), -np.inf)
    x_data[0, 1, 2:, 1:] = rng.standard_normal((3, 3))
    _, indices = mq.max_pool2d(mq.tensor(x_data), 3, 2, 1, return_indices=True)
    _, their_indices = torch.nn.functional.max_pool2d(torch.tensor(x_data), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(host(indices), their_indices.numpy())


# ---------------------------------------------------------------- the GPU path's gate
@pytest.mark.parametrize(
    "shape, kernel, stride, padding, dilation, ceil_mode, return_indices, on_gpu",
    [((2, 2, 7, 7), 3, 2, 1, 1, False, False, True),
     ((2, 2, 8, 8), 2, None, 0, 1, True, False, True),     # ceil_mode, but every window inside the input
     ((2, 2, 6, 6), 3, 2, 1, 1, True, False, False),       # a last window past the padded input
     ((2, 2, 7, 7), 3, 2, 1, 2, False, False, False),      # dilation
     ((2, 2, 7, 7), 3, 2, 1, 1, False, True, False)],      # return_indices
    ids=str,
)
def test_max_pool_takes_the_gpu_kernels_only_for_what_they_compute(host_kernels, shape, kernel, stride, padding,
                                                                    dilation, ceil_mode, return_indices, on_gpu):
    x = rng.standard_normal(shape)
    expected, g, expected_grad = pool_reference(x, kernel, stride, padding, "max", dilation, ceil_mode)
    t = leaf(x)
    with mq.backend.use_fused(True):
        y = mq.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode, return_indices)
        y = y[0] if return_indices else y
        y.backward(const(g))
    assert bool(host_kernels) == on_gpu
    np.testing.assert_array_equal(host(y), expected)
    np.testing.assert_allclose(t.grad.numpy(), expected_grad, rtol=1e-12, atol=1e-12)
