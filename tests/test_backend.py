"""backend.py: the one door to NumPy/CuPy; devices, dtypes, seeds, transfers."""

import ast
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q import backend

PACKAGE_DIR = Path(mq.__file__).parent
ARRAY_LIBRARIES = {"numpy", "cupy"}


def array_library_imports(source: str) -> list[str]:
    """Every place `source` imports numpy or cupy: import statements and importlib/__import__ strings."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in ARRAY_LIBRARIES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in ARRAY_LIBRARIES:
                found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            target = node.args[0].value
            if name in ("import_module", "__import__") and isinstance(target, str):
                if target.split(".")[0] in ARRAY_LIBRARIES:
                    found.append(f"line {node.lineno}: {name}({target!r})")
    return found


# ---------------------------------------------------------------- the one door
@pytest.mark.parametrize(
    "source, expected",
    [
        ("import numpy", 1),
        ("import numpy as np", 1),
        ("import numpy.linalg", 1),
        ("from numpy import zeros", 1),
        ("from numpy.lib import stride_tricks", 1),
        ("import cupy", 1),
        ("from cupy import cuda", 1),
        ("def f():\n    import cupy as cp\n", 1),
        ("import importlib\nimportlib.import_module('cupy')", 1),
        ("__import__('numpy')", 1),
        ("import os, numpy", 1),
        ("from . import backend\nimport numbers\nfrom .numpy_helpers import x", 0),
        ("xp = backend.array_module('cpu')", 0),
    ],
)
def test_import_detector_sees_every_form(source, expected):
    assert len(array_library_imports(source)) == expected


def test_only_backend_imports_numpy_or_cupy():
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(files) > 10, f"expected to scan the whole package, found only {files}"
    offenders = {
        str(path.relative_to(PACKAGE_DIR)): hits
        for path in files
        if path.name != "backend.py" or path.parent != PACKAGE_DIR
        for hits in [array_library_imports(path.read_text(encoding="utf-8"))]
        if hits
    }
    assert not offenders, f"only minigrad_q/backend.py may import numpy/cupy; found {offenders}"


def test_backend_itself_is_seen_importing_numpy():
    assert array_library_imports((PACKAGE_DIR / "backend.py").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- devices
@pytest.mark.parametrize("name", [None, "cpu"])
def test_parse_cpu(name):
    assert backend.parse_device(name) == "cpu"


@pytest.mark.parametrize("name", ["tpu", "CPU", "cuda:", "cuda:x", "gpu", "cuda:-1"])
def test_unknown_device_is_a_clear_error(name):
    with pytest.raises(backend.DeviceError, match=r"unknown device .*expected 'cpu', 'cuda' or 'cuda:N'"):
        backend.parse_device(name)


def test_unknown_device_reaches_creation_functions():
    with pytest.raises(mq.DeviceError, match="unknown device 'tpu'"):
        mq.zeros(2, device="tpu")


@pytest.mark.skipif(backend.cuda_is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_gpu_says_why(name):
    with pytest.raises(mq.DeviceError, match=r"\.\[cuda12\]|no usable GPU"):
        backend.parse_device(name)
    with pytest.raises(mq.DeviceError, match=r"\.\[cuda12\]|no usable GPU"):
        mq.ones(3, device=name)
    assert backend.cuda_is_available() is False
    assert backend.cuda_device_count() == 0


@pytest.fixture
def fresh_cupy_lookup(monkeypatch):
    """Make backend look cupy up again (it caches the module once found)."""
    monkeypatch.setattr(backend, "_cupy", None)
    return monkeypatch


def test_cuda_without_cupy_names_the_extra(fresh_cupy_lookup):
    fresh_cupy_lookup.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(mq.DeviceError, match=r'needs CuPy.*pip install -e "\.\[cuda12\]"'):
        backend.parse_device("cuda")
    assert backend.versions()["cupy"] == "not installed"
    assert backend.cuda_is_available() is False


def test_cuda_with_cupy_but_no_gpu_says_no_gpu(fresh_cupy_lookup):
    fake = types.ModuleType("cupy")
    fake.is_available = lambda: False  # type: ignore[attr-defined]
    fresh_cupy_lookup.setitem(sys.modules, "cupy", fake)
    with pytest.raises(mq.DeviceError, match="CuPy is installed but found no usable GPU"):
        backend.parse_device("cuda:0")
    assert backend.cuda_is_available() is False


def test_cpu_array_module_is_numpy():
    assert backend.array_module("cpu") is np
    assert backend.get_array_module(np.zeros(2)) is np
    assert backend.get_array_module(np.float32(1)) is np
    assert backend.device_of(np.zeros(2)) == "cpu"


# ---------------------------------------------------------------- dtypes
def test_default_dtype_is_float32():
    assert mq.get_default_dtype() == mq.float32


def test_set_default_dtype_changes_new_float_tensors():
    previous = mq.get_default_dtype()
    try:
        mq.set_default_dtype(mq.float64)
        assert mq.get_default_dtype() == mq.float64
        assert mq.tensor([1.5]).dtype == mq.float64
        assert mq.zeros(2).dtype == mq.float64
        assert mq.rand(2).dtype == mq.float64
        assert mq.arange(0.0, 2.0).dtype == mq.float64
        assert mq.tensor([1]).dtype == mq.int64  # ints are not affected
        mq.set_default_dtype("float32")
        assert mq.get_default_dtype() == mq.float32
    finally:
        mq.set_default_dtype(previous)


@pytest.mark.parametrize("dtype", [mq.int32, "int64", mq.bool_])
def test_set_default_dtype_refuses_non_float(dtype):
    previous = mq.get_default_dtype()
    with pytest.raises(TypeError, match="set_default_dtype: expected a floating dtype"):
        mq.set_default_dtype(dtype)
    assert mq.get_default_dtype() == previous


@pytest.mark.parametrize(
    "name, expected",
    [("float", np.float32), ("double", np.float64), ("half", np.float16), ("long", np.int64), ("int", np.int32),
     ("bool", np.bool_), ("float64", np.float64), (mq.int8, np.int8), (np.uint8, np.uint8)],
)
def test_as_dtype_understands_torch_and_numpy_names(name, expected):
    assert backend.as_dtype(name) == np.dtype(expected)


def test_unknown_dtype_is_a_clear_error():
    with pytest.raises(TypeError, match="unknown dtype 'nonsense'"):
        backend.as_dtype("nonsense")


def test_result_type_promotes_like_torch():
    assert backend.result_type(mq.float32, mq.float64) == mq.float64
    assert backend.result_type(mq.int8, mq.int32) == mq.int32
    assert backend.result_type(mq.bool_, mq.int64) == mq.int64


def test_result_type_int_with_float32_stays_float32_like_torch():
    assert backend.result_type(mq.int64, mq.float32) == mq.float32
    assert backend.result_type(mq.int32, mq.float16) == mq.float16
    assert backend.result_type(mq.bool_, mq.float32) == mq.float32
    assert backend.result_type(mq.int64, mq.float32, mq.float64) == mq.float64


# ---------------------------------------------------------------- random
def test_manual_seed_makes_random_tensors_repeat():
    mq.manual_seed(123)
    first = (mq.randn(4, 3).numpy(), mq.rand(5).numpy(), mq.randint(0, 100, (6,)).numpy())
    mq.manual_seed(123)
    again = (mq.randn(4, 3).numpy(), mq.rand(5).numpy(), mq.randint(0, 100, (6,)).numpy())
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_different_seeds_give_different_numbers():
    mq.manual_seed(1)
    a = mq.randn(8).numpy()
    mq.manual_seed(2)
    b = mq.randn(8).numpy()
    assert not np.array_equal(a, b)


def test_generator_advances_between_calls():
    mq.manual_seed(0)
    assert not np.array_equal(mq.randn(8).numpy(), mq.randn(8).numpy())


# ---------------------------------------------------------------- transfers
def test_asnumpy_and_to_device_on_cpu_round_trip():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert backend.to_device(array, "cpu") is array  # no copy when already there
    assert backend.asnumpy(array) is array
    np.testing.assert_array_equal(backend.asnumpy(backend.asarray([[0, 1, 2], [3, 4, 5]], dtype=np.float32)), array)


def test_asarray_keeps_or_sets_dtype():
    assert backend.asarray([1, 2]).dtype == np.int64
    assert backend.asarray([1, 2], dtype=mq.float64).dtype == np.float64


@pytest.mark.gpu
def test_to_device_round_trip_through_gpu():
    if not backend.cuda_is_available():
        pytest.skip("no CuPy/GPU on this machine")
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    on_gpu = backend.to_device(array, "cuda:0")
    assert backend.device_of(on_gpu) == "cuda:0"
    back = backend.asnumpy(on_gpu)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, array)
    np.testing.assert_array_equal(backend.to_device(on_gpu, "cpu"), array)
    t = mq.tensor(array, device="cuda")
    assert t.device == "cuda:0"
    np.testing.assert_array_equal(t.numpy(), array)


# ---------------------------------------------------------------- info
def test_versions_and_blas_info():
    versions = backend.versions()
    assert versions["numpy"] == np.__version__
    assert "cupy" in versions
    assert isinstance(backend.blas_info(), str) and backend.blas_info()


def test_is_finite_all():
    assert backend.is_finite_all(np.array([1.0, 2.0]))
    assert not backend.is_finite_all(np.array([1.0, np.nan]))
    assert not backend.is_finite_all(np.array([np.inf]))


def test_keep_freed_host_memory_takes_effect_on_glibc():
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert backend.keep_freed_host_memory()


_OPENBLAS_TIMEOUT = """
import threadpoolctl
found = [c.dynlib.openblas_thread_timeout() for c in threadpoolctl.ThreadpoolController().select(internal_api="openblas")
         .lib_controllers if hasattr(c.dynlib, "openblas_thread_timeout")]
print(found[0] if found else "no OpenBLAS")
"""


@pytest.mark.parametrize("code, preset, expected", [
    ("import minigrad_q", None, "4"),                    # idle OpenBLAS threads sleep at once
    ("import minigrad_q", "20", "20"),                   # the user's choice stays
    ("import numpy; import minigrad_q", None, "4"),      # NumPy came first: OpenBLAS re-reads it
    ("import numpy; import minigrad_q", "20", "20"),
])
def test_openblas_threads_sleep_soon_unless_the_user_chose_otherwise(code, preset, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    out = subprocess.run([sys.executable, "-c", code + "\n" + _OPENBLAS_TIMEOUT], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    if out == "no OpenBLAS":
        pytest.skip("NumPy does not use an OpenBLAS that reports its thread timeout")
    assert out == expected


def test_empty_reuses_large_arrays_only_once_nothing_references_them(monkeypatch):
    monkeypatch.setattr(backend, "keeps_freed_host_memory", True)
    monkeypatch.setattr(backend, "_pool", {})
    monkeypatch.setattr(backend, "_pooled_bytes", 0)
    small = backend.empty((4, 4), backend.float32)
    assert small.shape == (4, 4) and small.dtype == backend.float32 and backend._pool == {}
    shape = (9 << 20,)  # 36 MiB of float32: above the 32 MiB threshold
    first = backend.empty(shape, backend.float32)
    first_id = id(first)
    held = backend.empty(shape, backend.float32)  # `first` is still referenced: a new array
    assert held is not first
    view = first[::2]
    del first
    assert id(backend.empty(shape, backend.float32)) != first_id  # a view still holds it
    del view
    again = backend.empty(shape, backend.float32)
    assert id(again) == first_id and again.base is None and again.shape == shape
    assert backend.empty(shape, backend.float64) is not again  # another dtype, another pool


def test_empty_without_the_pool_is_plain_numpy(monkeypatch):
    monkeypatch.setattr(backend, "keeps_freed_host_memory", False)
    monkeypatch.setattr(backend, "_pool", {})
    array = backend.empty((9 << 20,), backend.float32)
    assert backend._pool == {} and array.shape == (9 << 20,)
