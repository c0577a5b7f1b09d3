"""The multi-tensor path of SGD, Adam and AdamW (optim/_gpu.py, kernels in optim/_cuda.py) equals their
per-parameter path: parameters and state, step after step, and state dicts carry over between them.

Each test runs twice: on a GPU ("cuda", marked gpu), and on the CPU ("host"): there optim/_gpu.py's
own code runs on NumPy arrays, each kernel compiled as C++ from its CUDA source and run with one
thread (tests/cuda_source.py). Every source also compiles with NVRTC here.
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest
from cuda_source import assert_compiles_with_nvrtc, route_gpu_path

import minigrad_q as mq
from minigrad_q.optim import SGD, Adam, AdamW, _cuda, _gpu

launched = []  # the names of the kernels run, in order


def _takes_on_host(arrays):
    """_gpu.takes without its device condition: NumPy arrays stand in for CuPy ones."""
    return (mq.backend.fused_enabled() and bool(arrays) and arrays[0].dtype in _gpu.KERNEL_DTYPES
            and all(a.dtype == arrays[0].dtype and a.flags.c_contiguous for a in arrays))


@pytest.fixture(params=["host", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request, monkeypatch):
    """The device of the parameters whose optimizer takes the multi-tensor path: "cuda", or "cpu" with the
    kernels on the host."""
    if request.param == "cuda" and not mq.backend.cuda_is_available():
        pytest.skip("no CuPy/GPU on this machine")
    route_gpu_path(monkeypatch, _gpu, _takes_on_host, launched, on_gpu=request.param == "cuda")
    return request.param.replace("host", "cpu")


# ---------------------------------------------------------------- the sources
@pytest.mark.parametrize("float_type", ["float", "double"])
@pytest.mark.parametrize("name", _cuda.KERNELS)
def test_every_kernel_compiles_with_nvrtc(name, float_type):
    assert_compiles_with_nvrtc(f"typedef {float_type} T;\n{_cuda.KERNELS[name]}", f"{name} ({float_type})")


def test_each_source_defines_the_kernel_it_is_listed_under_and_no_other_optim_module_holds_cuda():
    for name, source in _cuda.KERNELS.items():
        assert re.findall(r'extern "C" __global__ void (\w+)\(', source) == [name]
        assert len(re.findall(r"long long size\d\b", source)) == _cuda.SLOTS
    for path in sorted(Path(_cuda.__file__).parent.glob("*.py")):
        if path.name != "_cuda.py":
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"__global__|RawKernel|ElementwiseKernel|RawModule", text), path.name


def test_numpy_parameters_take_the_per_parameter_path():
    with mq.backend.use_fused(True):
        assert not _gpu.takes([np.zeros(3), np.zeros(3)])


# ---------------------------------------------------------------- multi-tensor path == per-parameter path
SHAPES = [(3, 4), (5,), (), (2, 3, 2), (0,), (7,), (1,), (4, 1, 2), (6, 5), (0, 3)]  # 0-d and empty ones too
CONFIGS = {
    "sgd": (SGD, {"lr": 0.1}),
    "sgd momentum": (SGD, {"lr": 0.05, "momentum": 0.9}),
    "sgd dampening decay": (SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1}),
    "sgd nesterov decay": (SGD, {"lr": 0.02, "momentum": 0.7, "nesterov": True, "weight_decay": 0.05}),
    "adam": (Adam, {"lr": 0.01}),
    "adam decay": (Adam, {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    "adamw no decay": (AdamW, {"lr": 0.01, "weight_decay": 0}),
    "adamw": (AdamW, {"lr": 0.02, "weight_decay": 0.1}),
}
KERNEL_OF = {SGD: "minigrad_q_sgd", Adam: "minigrad_q_adam", AdamW: "minigrad_q_adam"}


def _problem(count, dtype, seed=0):
    """Starting values, and per parameter g(θ) = c·θ + d: gradients follow where the parameters went."""
    rng = np.random.default_rng(seed)
    shapes = [SHAPES[i % len(SHAPES)] for i in range(count)]
    return ([rng.standard_normal(shape).astype(dtype) for shape in shapes],
            [rng.uniform(0.5, 2.0, shape).astype(dtype) for shape in shapes],
            [rng.standard_normal(shape).astype(dtype) for shape in shapes])


def _has_grad(index, step):
    """Some parameters lack a gradient at some steps, so step counts and first steps differ within a launch."""
    return (index + step) % 5 != 0


def _steps(optimizer, params, problem, steps, fused, first_step=0):
    _, curvatures, offsets = problem
    for step in range(first_step, first_step + steps):
        for index, (param, curvature, offset) in enumerate(zip(params, curvatures, offsets)):
            theta = param.detach().numpy()
            param.grad = mq.tensor(curvature * theta + offset, device=param.device) if _has_grad(index, step) else None
        with mq.backend.use_fused(fused):
            optimizer.step()


def _assert_close(got, expected):
    """float64: to 1e-12 of the array's largest value; float32: 1e-6."""
    tolerance = 1e-12 if expected.dtype == np.float64 else 1e-6
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * max(np.abs(expected).max(initial=0), 1e-30))


def _assert_same(optimizer, params, reference, reference_params):
    for param, expected in zip(params, reference_params):
        _assert_close(param.detach().numpy(), expected.detach().numpy())
    for param, expected in zip(params, reference_params):
        state, expected_state = optimizer.state.get(param, {}), reference.state.get(expected, {})
        assert state.keys() == expected_state.keys()
        for key, value in expected_state.items():
            if isinstance(value, mq.Tensor):
                assert isinstance(state[key], mq.Tensor) and state[key].device == param.device
                _assert_close(state[key].numpy(), value.numpy())
            else:
                assert type(state[key]) is type(value) and state[key] == value


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("count", [1, 8, 9, 20])
@pytest.mark.parametrize("config", CONFIGS)
def test_multi_tensor_path_equals_per_parameter_path(device, config, count, dtype):
    cls, options = CONFIGS[config]
    problem = _problem(count, dtype)
    fused_params = [mq.tensor(start, device=device, requires_grad=True) for start in problem[0]]
    plain_params = [mq.tensor(start, device=device, requires_grad=True) for start in problem[0]]
    arrays = [param.data for param in fused_params]
    fused, plain = cls(fused_params, **options), cls(plain_params, **options)
    steps = 4
    launched.clear()
    _steps(fused, fused_params, problem, steps, fused=True)
    with_grads = [sum(_has_grad(index, step) for index in range(count)) for step in range(steps)]
    assert launched == [KERNEL_OF[cls]] * sum(math.ceil(n / _cuda.SLOTS) for n in with_grads)
    launched.clear()
    _steps(plain, plain_params, problem, steps, fused=False)
    assert not launched, "the per-parameter path launched no kernel"
    assert all(param.data is array for param, array in zip(fused_params, arrays))  # updated in place
    _assert_same(fused, fused_params, plain, plain_params)


def test_groups_take_the_path_separately(device):
    """Two groups with their own options: one launch per group and step."""
    problem = _problem(6, np.float64)
    groups = lambda params: [{"params": params[:4], "lr": 0.05, "momentum": 0.9},  # noqa: E731
                             {"params": params[4:], "lr": 0.1, "weight_decay": 0.01}]
    fused_params = [mq.tensor(start, device=device, requires_grad=True) for start in problem[0]]
    plain_params = [mq.tensor(start, device=device, requires_grad=True) for start in problem[0]]
    fused, plain = SGD(groups(fused_params)), SGD(groups(plain_params))
    launched.clear()
    _steps(fused, fused_params, problem, 3, fused=True)
    assert launched == ["minigrad_q_sgd"] * 6
    _steps(plain, plain_params, problem, 3, fused=False)
    _assert_same(fused, fused_params, plain, plain_params)


# ---------------------------------------------------------------- switching paths
@pytest.mark.parametrize("saved_fused", [True, False], ids=["multi-tensor to per-parameter", "per-parameter to multi-tensor"])
@pytest.mark.parametrize("config", ["sgd nesterov decay", "adam decay", "adamw"])
def test_state_dict_from_one_path_continues_identically_on_the_other(device, config, saved_fused):
    cls, options = CONFIGS[config]
    problem = _problem(11, np.float64)
    params = [mq.tensor(start, device=device, requires_grad=True) for start in problem[0]]
    optimizer = cls(params, **options)
    _steps(optimizer, params, problem, 3, fused=saved_fused)
    saved = optimizer.state_dict()

    other_params = [mq.tensor(param.detach().numpy(), device=device, requires_grad=True) for param in params]
    other = cls(other_params, **options)
    other.load_state_dict(saved)
    launched.clear()
    _steps(other, other_params, problem, 3, fused=not saved_fused, first_step=3)
    assert bool(launched) == (not saved_fused)
    _steps(optimizer, params, problem, 3, fused=saved_fused, first_step=3)
    _assert_same(other, other_params, optimizer, params)


@pytest.mark.parametrize("config", ["sgd momentum", "adam"])
def test_switching_paths_mid_run_changes_nothing(device, config):
    cls, options = CONFIGS[config]
    problem = _problem(10, np.float64)
    mixed_params = [mq.tensor(start, device=device, requires_grad=True) for start in problem[0]]
    plain_params = [mq.tensor(start, device=device, requires_grad=True) for start in problem[0]]
    mixed, plain = cls(mixed_params, **options), cls(plain_params, **options)
    for step, fused in enumerate([True, False, True, True, False]):
        _steps(mixed, mixed_params, problem, 1, fused=fused, first_step=step)
    _steps(plain, plain_params, problem, 5, fused=False)
    _assert_same(mixed, mixed_params, plain, plain_params)


def test_a_subclass_that_overrides_the_update_alone_keeps_its_rule(device):
    """Its own `_update` runs, one parameter at a time, not the multi-tensor twin of SGD's."""
    class HalfStep(mq.optim.SGD):
        def _update(self, param, grad, state, group):
            param -= 0.5 * group["lr"] * grad

    w = mq.tensor(np.ones(3), device=device, requires_grad=True)
    w.grad = mq.tensor(np.full(3, 2.0), device=device)
    launched.clear()
    HalfStep([w], lr=0.1).step()
    assert not launched
    np.testing.assert_allclose(w.detach().numpy(), np.full(3, 0.9))
