"""The GPU path of conv2d, max_pool2d, cross_entropy and relu (ops/_gpu.py, kernels in ops/_cuda.py)
equals their plain path, and its gradients equal finite differences.

Each test runs twice: on a GPU ("cuda", marked gpu), and on the CPU ("host"): there ops/_gpu.py's
own code runs on NumPy arrays, each kernel compiled as C++ from its CUDA source and run with one
thread (tests/cuda_source.py). The host run checks everything but CUDA's compiler and hardware, so
a wrong index or a wrong formula fails on any machine; every source also compiles with NVRTC here.
"""

import re
from pathlib import Path

import numpy as np
import pytest
from cuda_source import assert_compiles_with_nvrtc, route_ops_gpu_path
from helpers import const, host, leaf

import minigrad_q as mq
from minigrad_q.ops import _cuda
from minigrad_q.ops.conv import Conv2d
from minigrad_q.ops.loss import CrossEntropy
from minigrad_q.ops.pool import MaxPool2d
from minigrad_q.ops.unary import Relu, Sigmoid, Tanh
from minigrad_q.specs import spec_for
from minigrad_q.testing import RandomDraw, check_spec

rng = np.random.default_rng(0)
launched = []  # the names of the kernels run, in order


@pytest.fixture(params=["host", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request, monkeypatch):
    """The device of the tensors whose ops take the GPU path: "cuda", or "cpu" with the kernels on the host."""
    if request.param == "cuda" and not mq.backend.cuda_is_available():
        pytest.skip("no CuPy/GPU on this machine")
    route_ops_gpu_path(monkeypatch, launched, on_gpu=request.param == "cuda")
    return request.param.replace("host", "cpu")


# ---------------------------------------------------------------- the sources
@pytest.mark.parametrize("float_type", ["float", "double"])
@pytest.mark.parametrize("name", _cuda.KERNELS)
def test_every_kernel_compiles_with_nvrtc(name, float_type):
    assert_compiles_with_nvrtc(f"typedef {float_type} T;\n{_cuda.KERNELS[name]}", f"{name} ({float_type})")


def test_each_source_defines_the_kernel_it_is_listed_under_and_no_other_ops_module_holds_cuda():
    for name, source in _cuda.KERNELS.items():
        assert re.findall(r'extern "C" __global__ void (\w+)\(', source) == [name]
    for path in sorted(Path(_cuda.__file__).parent.glob("*.py")):
        if path.name != "_cuda.py":
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"__global__|RawKernel|ElementwiseKernel|RawModule", text), path.name


# ---------------------------------------------------------------- GPU path == plain path
def _run(device, fused, op, arrays, requires_grad, g):
    """(output, its creator, [gradient of each input that requires grad]) on the GPU path or the plain one."""
    tensors = [None if a is None else (leaf if needs else const)(a, device) for a, needs in zip(arrays, requires_grad)]
    with mq.backend.use_fused(fused):
        y = op(*tensors)
        y.backward(const(g, device))
    return host(y), y.creator, [t.grad.numpy() for t in tensors if t is not None and t.requires_grad]


def _assert_close(gpu, plain):
    """float64: to 1e-12 of the array's largest value (sums in other orders, GEMMs of other shapes); float32: 1e-5."""
    tolerance = 1e-12 if plain.dtype == np.float64 else 1e-5
    assert gpu.dtype == plain.dtype and gpu.shape == plain.shape
    largest = np.abs(plain[np.isfinite(plain)]).max(initial=0)
    np.testing.assert_allclose(gpu, plain, rtol=tolerance, atol=tolerance * max(largest, 1e-30))


def _compare(device, op, arrays, requires_grad, kernels, exact=False):
    """The GPU path (which must launch `kernels`) against the plain path: output and gradients."""
    with mq.no_grad(), mq.backend.use_fused(False):
        shape = op(*[None if a is None else const(a, device) for a in arrays]).shape
    g = rng.standard_normal(shape).astype(arrays[0].dtype)
    launched.clear()
    gpu_y, _, gpu_grads = _run(device, True, op, arrays, requires_grad, g)
    assert set(kernels) <= set(launched), f"the GPU path launched {launched}"
    launched.clear()
    plain_y, _, plain_grads = _run(device, False, op, arrays, requires_grad, g)
    assert not launched, "the plain path launched no kernel"
    assert len(gpu_grads) == len(plain_grads) == sum(a is not None and r for a, r in zip(arrays, requires_grad))
    check = np.testing.assert_array_equal if exact else _assert_close
    for gpu, plain in zip([gpu_y, *gpu_grads], [plain_y, *plain_grads]):
        check(gpu, plain)


# (batch, in channels, out channels, H, W, kernel, stride, padding, dilation, groups, bias)
CONV_KERNELS = ["minigrad_q_im2col", "minigrad_q_to_nchw", "minigrad_q_to_matrix", "minigrad_q_col2im"]
CONV_CASES = {
    "3x3 p1": (4, 3, 5, 9, 9, 3, 1, 1, 1, 1, True),
    "3x3 s2 p1 groups 2": (3, 4, 6, 10, 11, 3, 2, 1, 1, 2, False),
    "3x3 dilation (2, 1) p (2, 1) groups 4": (2, 8, 8, 12, 10, 3, 1, (2, 1), (2, 1), 4, True),
    "(2, 3) s (2, 1) p (0, 2)": (3, 5, 4, 11, 9, (2, 3), (2, 1), (0, 2), 1, 1, True),
    "LeNet conv1 5x5 p2": (8, 1, 6, 28, 28, 5, 1, 2, 1, 1, True),
    "LeNet conv2 5x5 valid": (8, 6, 16, 14, 14, 5, 1, "valid", 1, 1, True),
    "depthwise 3x3 same": (2, 6, 6, 7, 8, 3, 1, "same", 1, 6, False),
    "1x1": (3, 4, 2, 5, 5, 1, 1, 0, 1, 1, True),
    "stride 3 larger than the kernel": (2, 2, 3, 11, 10, 2, 3, 1, 1, 1, True),
}


def _conv_arrays(name, dtype):
    n, cin, cout, h, w, kernel, stride, padding, dilation, groups, bias = CONV_CASES[name]
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    arrays = [rng.standard_normal((n, cin, h, w)), rng.standard_normal((cout, cin // groups, kh, kw)),
              rng.standard_normal(cout) if bias else None]
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return [None if a is None else a.astype(dtype) for a in arrays], options


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", CONV_CASES)
def test_conv2d_gpu_path_equals_plain(device, name, dtype):
    arrays, options = _conv_arrays(name, dtype)
    _compare(device, lambda x, w, b: mq.conv2d(x, w, b, **options), arrays, [True, True, True], CONV_KERNELS)


@pytest.mark.parametrize("requires_grad", [(False, True, True), (True, False, False), (False, False, True)],
                         ids=["first layer (no dx)", "frozen weight and bias", "bias only"])
def test_conv2d_gpu_path_computes_the_gradients_asked_for(device, requires_grad):
    arrays, options = _conv_arrays("3x3 s2 p1 groups 2", np.float64)
    arrays[2] = rng.standard_normal(arrays[1].shape[0])
    kernels = CONV_KERNELS if requires_grad[0] else CONV_KERNELS[:3]
    _compare(device, lambda x, w, b: mq.conv2d(x, w, b, **options), arrays, list(requires_grad), kernels)


def test_conv2d_gpu_path_unbatched(device):
    arrays = [rng.standard_normal((3, 7, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)]
    _compare(device, lambda x, w, b: mq.conv2d(x, w, b, padding=1), arrays, [True, True, True], CONV_KERNELS)


POOL_KERNELS = ["minigrad_q_max_pool_forward", "minigrad_q_max_pool_backward"]
POOL_CASES = {
    "2x2 tiles": ((4, 3, 8, 8), 2, None, 0),
    "3x3 s2 p1 overlapping": ((2, 3, 9, 7), 3, 2, 1),
    "3x3 s1 p1": ((2, 2, 6, 6), 3, 1, 1),
    "(2, 3) s (1, 2) p (1, 1)": ((2, 3, 6, 7), (2, 3), (1, 2), (1, 1)),
    "2x2 s3: gaps between windows": ((2, 2, 8, 8), 2, 3, 0),
    "2x2 leaving the last row and column out": ((2, 2, 9, 9), 2, None, 0),
    "unbatched (C, H, W)": ((3, 6, 6), 2, None, 0),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", POOL_CASES)
def test_max_pool2d_gpu_path_equals_plain_exactly(device, name, dtype):
    """Values rounded to halves: many ties, which both paths send to the first maximum; each element of
    dx sums its windows' shares in the same order on both paths."""
    shape, kernel, stride, padding = POOL_CASES[name]
    x = (np.round(rng.standard_normal(shape) * 2) / 2).astype(dtype)
    _compare(device, lambda t: mq.max_pool2d(t, kernel, stride, padding), [x], [True], POOL_KERNELS, exact=True)


def test_max_pool2d_gpu_path_keeps_nan_and_minus_infinity_as_the_plain_path_does(device):
    x = rng.standard_normal((1, 2, 6, 6))
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = np.nan  # two NaNs in one window: the first one is chosen
    x[0, 1, :3, :3] = -np.inf  # a window of -inf only, beside the padding
    _compare(device, lambda t: mq.max_pool2d(t, 3, 2, 1), [x], [True], POOL_KERNELS, exact=True)


def test_max_pool2d_gpu_path_without_a_gradient(device):
    x = mq.tensor(rng.standard_normal((2, 2, 5, 4)), device=device)
    with mq.backend.use_fused(True):
        y = mq.max_pool2d(x, 2, 1, 1)  # the kernel runs without its index output
    with mq.backend.use_fused(False):
        expected = mq.max_pool2d(x, 2, 1, 1)
    np.testing.assert_array_equal(host(y), host(expected))


CE_CASES = {  # (scores shape, label smoothing)
    "(N, C)": ((6, 5), 0.0),
    "(N, C) smoothed": ((6, 5), 0.2),
    "(N, C, d1, d2) smoothed": ((2, 4, 3, 2), 0.1),
    "(C,) unbatched": ((7,), 0.0),
    "one class": ((4, 1), 0.3),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", CE_CASES)
def test_cross_entropy_gpu_path_equals_plain(device, name, reduction, dtype):
    shape, smoothing = CE_CASES[name]
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    target_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    classes = shape[1] if len(shape) > 1 else shape[0]
    target = rng.integers(0, classes, target_shape)

    def op(scores):
        return mq.cross_entropy(scores, mq.tensor(target, device=scores.device), reduction=reduction,
                                label_smoothing=smoothing)

    _compare(device, op, [x], [True], ["minigrad_q_cross_entropy_forward", "minigrad_q_cross_entropy_backward"])


def test_cross_entropy_gpu_path_reports_a_bad_target_at_the_next_read(device):
    """No host sync to check targets up front: the row's loss is NaN, and reading a result raises."""
    scores, target = mq.tensor(rng.standard_normal((3, 4)), device=device), mq.tensor([0, 4, 1], device=device)
    with mq.backend.use_fused(True):
        losses = mq.cross_entropy(scores, target, reduction="none")
    with pytest.raises(IndexError, match=r"cross_entropy: a target outside \[0, C\)"):
        losses.numpy()
    values = losses.numpy()  # reported once: the flag is cleared
    assert np.isnan(values[1]) and np.isfinite(values[[0, 2]]).all()
    with mq.backend.use_fused(False), pytest.raises(IndexError, match=r"in \[0, 4\), got values from 0 to 4"):
        mq.cross_entropy(scores, target)  # the plain path checks before any work


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_gpu_path_equals_plain(device, dtype):
    x = np.round(rng.standard_normal((5, 7)) * 2) / 2  # zeros included: relu'(0) = 0 on both paths
    _compare(device, mq.relu, [x.astype(dtype)], [True], ["minigrad_q_relu_backward"], exact=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op, kernels", [(mq.sigmoid, ["minigrad_q_sigmoid_forward", "minigrad_q_sigmoid_backward"]),
                                         (mq.tanh, ["minigrad_q_tanh_backward"])], ids=["sigmoid", "tanh"])
def test_sigmoid_and_tanh_gpu_paths_equal_plain(device, op, kernels, dtype):
    """Exactly for tanh on the host. A GPU may contract a·b + c into one rounding (FMA), and the kernel's
    exp (CUDA's, or the C library's on the host) is not NumPy's own: there, to _assert_close's tolerance."""
    x = np.concatenate([rng.standard_normal(20) * 4, [-100.0, -30.0, 0.0, 39.0, 41.0, 100.0, np.nan, np.inf, -np.inf]])
    exact = device == "cpu" and op is mq.tanh
    _compare(device, op, [x.astype(dtype)], [True], kernels, exact=exact)


# ---------------------------------------------------------------- finite differences
@pytest.mark.parametrize("function", [Conv2d, MaxPool2d, CrossEntropy, Relu, Sigmoid, Tanh], ids=lambda f: f.__name__)
def test_gpu_path_gradients_match_finite_differences(device, function):
    """Each op's gradient spec (float64, small drawn cases) through the GPU path."""
    with mq.backend.use_fused(True):
        for seed in range(10):
            report = check_spec(spec_for(function), RandomDraw(seed, device=device))
            assert report.passed, report.message


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gpu_path_skips_ignored_targets_as_the_plain_path_does(device, reduction):
    x = rng.standard_normal((6, 4))
    target = np.array([0, -100, 3, 2, -100, 1])

    def op(scores):
        return mq.cross_entropy(scores, mq.tensor(target, device=scores.device), reduction=reduction, label_smoothing=0.1)

    _compare(device, op, [x], [True], ["minigrad_q_cross_entropy_forward", "minigrad_q_cross_entropy_backward"])


def test_cross_entropy_gpu_path_over_only_ignored_targets_is_nan_with_no_gradient(device):
    scores = mq.tensor(rng.standard_normal((2, 3)), device=device, requires_grad=True)
    with mq.backend.use_fused(True):
        loss = mq.cross_entropy(scores, mq.tensor([-100, -100], device=device))
        loss.backward()
    assert np.isnan(loss.item())
    np.testing.assert_array_equal(scores.grad.numpy(), np.zeros((2, 3)))
