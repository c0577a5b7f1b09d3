"""The one door to the array libraries: NumPy for "cpu", CuPy for "cuda[:N]".

Every other module asks a tensor (or this module) for its array module `xp`;
nothing else imports numpy or cupy. CuPy is optional and imported lazily: it
is used only when `cupy.is_available()` says a GPU is really there.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

# OpenBLAS's idle threads spin for 2^28 cycles (about 0.1 s) after each threaded call, holding a core
# that conv2d's worker threads and NumPy's other loops need (the toy CNN step on 2 cores: 110 ms with the
# default, 70 ms with 2^4 cycles). OpenBLAS reads the setting when NumPy loads it; unless the user chose a
# value, it is set here, and if NumPy was loaded first, OpenBLAS re-reads it (_respin_openblas).
BLAS_THREAD_TIMEOUT = "4"
sets_blas_thread_timeout = "OPENBLAS_THREAD_TIMEOUT" not in os.environ
_respin = sets_blas_thread_timeout and "numpy" in sys.modules
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)

import numpy  # noqa: E402


def _respin_openblas() -> None:
    """Make an already loaded OpenBLAS re-read OPENBLAS_THREAD_TIMEOUT and restart its threads with it
    (they start again at the next threaded call). Silently nothing where that is not possible."""
    try:
        import threadpoolctl

        for library in threadpoolctl.ThreadpoolController().select(internal_api="openblas").lib_controllers:
            read_env = getattr(library.dynlib, "openblas_read_env", None)
            shutdown = getattr(library.dynlib, "blas_thread_shutdown_", None)
            if read_env is not None and shutdown is not None:
                read_env()
                shutdown()
    except Exception:  # noqa: BLE001  (an unusual BLAS build: keep its default spin)
        pass


if _respin:
    _respin_openblas()

ndarray = numpy.ndarray

# dtypes, exported as mq.float32 etc.
float16 = numpy.dtype("float16")
float32 = numpy.dtype("float32")
float64 = numpy.dtype("float64")
int8 = numpy.dtype("int8")
int16 = numpy.dtype("int16")
int32 = numpy.dtype("int32")
int64 = numpy.dtype("int64")
uint8 = numpy.dtype("uint8")
bool_ = numpy.dtype("bool")
_DTYPE_NAMES = {
    "half": float16, "float": float32, "double": float64, "long": int64, "int": int32,
    "bool": bool_,
}

_default_dtype = float32
_cupy: Any = None
_seed: int | None = None  # the last manual_seed of any thread: where a thread's generators start


class _ThreadGenerators(threading.local):
    """Each thread's generators, one per device: threads draw independently, so a run in a thread
    draws the same numbers whatever other threads do meanwhile."""

    def __init__(self) -> None:
        self.seed = _seed
        self.by_device: dict[str, Any] = {}


_generators = _ThreadGenerators()


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot provide."""


# ---------------------------------------------------------------- dtypes
def as_dtype(dtype: Any) -> Any:
    """numpy dtype for a dtype-like: mq.float32, "float32", "float", numpy types."""
    if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype]
    try:
        return numpy.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}; expected e.g. mq.float32, 'float64', 'int64'") from None


def is_floating(dtype: Any) -> bool:
    return dtype.kind == "f"


def result_type(*dtypes: Any) -> Any:
    """torch's type promotion: float32 with float64 gives float64, and integers or
    bools with a float give that float (numpy would widen int64 + float32 to float64)."""
    floats = [d for d in dtypes if numpy.dtype(d).kind in "fc"]
    if floats and len(floats) < len(dtypes):
        return numpy.result_type(*floats)
    return numpy.result_type(*dtypes)


def get_default_dtype() -> Any:
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """Dtype of tensors made from Python floats (float32 unless changed)."""
    global _default_dtype
    dtype = as_dtype(dtype)
    if not is_floating(dtype):
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype}")
    _default_dtype = dtype


# ---------------------------------------------------------------- devices
def _cupy_module(device: str = "cuda") -> Any:
    """CuPy, when it is installed and finds a GPU; else a DeviceError naming `device`, the one asked for."""
    global _cupy
    if _cupy is None:
        try:
            cupy = importlib.import_module("cupy")
        except ImportError:
            raise DeviceError(
                f"device {device!r} needs CuPy, which is not installed: "
                'pip install -e ".[cuda12]" (CUDA 12) or -e ".[cuda13]" (CUDA 13)'
            ) from None
        if not cupy.is_available():
            raise DeviceError(f"device {device!r}: CuPy is installed but found no usable GPU on this machine")
        _cupy = cupy
    return _cupy


def cuda_is_available() -> bool:
    try:
        _cupy_module()
    except DeviceError:
        return False
    return True


def cuda_device_count() -> int:
    return _cupy_module().cuda.runtime.getDeviceCount() if cuda_is_available() else 0


_kernels: dict[tuple[str, ...], Any] = {}
# Every kernel rounds each multiply and each add, as NumPy does: no contraction into fused multiply-adds,
# so a kernel that follows the plain path's order of operations gives its results bit for bit.
KERNEL_OPTIONS = ("--fmad=false",)


def elementwise_kernel(in_params: str, out_params: str, operation: str, name: str, preamble: str = "") -> Any:
    """A cupy.ElementwiseKernel, compiled once per signature and cached (GPU only; CuPy must be installed).
    The fused GPU twins of the quantizers' NumPy code are built with it."""
    key = (in_params, out_params, operation, name, preamble)
    if key not in _kernels:
        _kernels[key] = _cupy_module().ElementwiseKernel(in_params, out_params, operation, name, preamble=preamble,
                                                         options=KERNEL_OPTIONS)
    return _kernels[key]


_C_TYPES = {"float32": "float", "float64": "double"}
KERNEL_THREADS = 256  # threads per block of a raw kernel; its grid-stride loops take any number of blocks
_MAX_BLOCKS = 65535


def raw_kernel(source: str, name: str, dtype: Any) -> Any:
    """The cupy.RawKernel `name` of `source` with ``T`` the C type of `dtype` (float32 or float64),
    compiled once per (source, dtype) and cached (GPU only). The ops' and optimizers' CUDA sources
    are built with it."""
    key = (source, name, dtype)  # dtype as given: a hit (every launch but the first) looks nothing else up
    kernel = _kernels.get(key)
    if kernel is None:
        c_type = _C_TYPES[numpy.dtype(dtype).name]
        kernel = _kernels[key] = _cupy_module().RawKernel(f"typedef {c_type} T;\n{source}", name, options=KERNEL_OPTIONS)
    return kernel


_scalar_types: dict[Any, type] = {}  # dtype as given -> its NumPy scalar type


def kernel_arguments(args: tuple[Any, ...], dtype: Any) -> tuple[Any, ...]:
    """A raw kernel's arguments as their C types: arrays as pointers, ints (and bools) as ``long long``,
    floats as ``T`` (`dtype`). The one place that says how a Python value reaches a kernel."""
    scalar = _scalar_types.get(dtype)
    if scalar is None:
        scalar = _scalar_types[dtype] = numpy.dtype(dtype).type
    return tuple([numpy.int64(a) if isinstance(a, (bool, int)) else scalar(a) if isinstance(a, float) else a
                  for a in args])


def launch(kernel: Any, items: int, *args: Any, dtype: Any) -> None:
    """Run a raw kernel whose grid-stride loop covers `items` items, on the device of the first array argument."""
    if items <= 0:
        return
    blocks = min(-(-items // KERNEL_THREADS), _MAX_BLOCKS)
    device = next(a for a in args if is_array(a)).device
    with device:
        kernel((blocks,), (KERNEL_THREADS,), kernel_arguments(args, dtype))


# Kernels that meet bad input they cannot refuse up front without a host sync (a class target out of
# range) set a flag on the device; the error is raised at the next read of a result, as torch reports
# its device-side asserts, but with a message that says what was wrong.
_device_checks: dict[tuple[str, type, str], Any] = {}


def device_check(device: str, error: type, message: str) -> Any:
    """A one-element int32 flag on `device` for kernels to set to 1 when they meet the input that
    `message` describes; ``raise_device_errors`` raises ``error(message)`` once it is set."""
    key = (device, error, message)
    flag = _device_checks.get(key)
    if flag is None:
        flag = _device_checks[key] = asarray(numpy.zeros(1, dtype=int32), device=device)
    return flag


def raise_device_errors() -> None:
    """Raise (and clear) the error of the first flag a kernel set; one device read per flag. Called where
    results are read anyway: Tensor.item(), .numpy(), .tolist() and the training loop's log reads."""
    for (_, error, message), flag in _device_checks.items():
        if int(flag[0]):
            flag.fill(0)
            raise error(message)


def nccl() -> Any:
    """CuPy's NCCL bindings (cupy.cuda.nccl) where CuPy has NCCL, else None: how minigrad_q.distributed
    carries CuPy arrays between GPUs."""
    try:
        module = importlib.import_module("cupy.cuda.nccl")
    except ImportError:
        return None
    return module if getattr(module, "available", False) else None


def current_stream(device: str) -> int:
    """The handle of the current CUDA stream (for NCCL calls, which take it explicitly)."""
    return int(_cupy_module().cuda.get_current_stream().ptr)


def free_memory(device: str) -> int:
    """Bytes of memory free on a GPU device (what cudaMemGetInfo reports)."""
    cupy = _cupy_module()
    with cupy.cuda.Device(int(device[5:])):
        return int(cupy.cuda.runtime.memGetInfo()[0])


def parse_device(device: Any) -> str:
    """Canonical device name: "cpu" or "cuda:N". Accepts None (cpu), "cuda", "cuda:1"."""
    if device is None:
        return "cpu"
    name = str(device)
    if name == "cpu":
        return "cpu"
    if name == "cuda":
        _cupy_module()
        return f"cuda:{_cupy_module().cuda.runtime.getDevice()}"
    if name.startswith("cuda:") and name[5:].isdigit():
        count = _cupy_module(name).cuda.runtime.getDeviceCount()
        if int(name[5:]) >= count:
            raise DeviceError(f"device {name!r}: only {count} GPU(s) found")
        return name
    raise DeviceError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")


def device_and_dtype(op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """(device, dtype) from torch's ``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or keywords; None if absent."""
    kwargs = dict(kwargs)
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"{op}: unexpected arguments {sorted(kwargs)}")
    for arg in args:
        if isinstance(arg, str) and (arg == "cpu" or arg.startswith("cuda")):
            device = arg
        elif isinstance(arg, str) and arg not in _DTYPE_NAMES and not _is_dtype_name(arg):
            raise DeviceError(f"{op}: {arg!r} is neither a device ('cpu', 'cuda', 'cuda:N') nor a dtype (such as "
                              "'float32' or mq.float32)")
        else:
            dtype = arg
    return device, dtype


def _is_dtype_name(name: str) -> bool:
    try:
        numpy.dtype(name)
    except TypeError:
        return False
    return True


def device_of(array: Any) -> str:
    if isinstance(array, (ndarray, numpy.generic)):
        return "cpu"
    return f"cuda:{array.device.id}"


def array_module(device: str) -> Any:
    """numpy for "cpu", cupy for "cuda:N"."""
    return numpy if device == "cpu" else _cupy_module()


def get_array_module(array: Any) -> Any:
    return numpy if isinstance(array, (ndarray, numpy.generic)) else _cupy_module()


def is_array(value: Any) -> bool:
    """A numpy or cupy array (cupy is loaded on meeting the first cupy array)."""
    if isinstance(value, ndarray):
        return True
    if _cupy is None:
        if type(value).__module__.partition(".")[0] != "cupy":
            return False
        _cupy_module()
    return isinstance(value, _cupy.ndarray)


def asarray(data: Any, dtype: Any = None, device: str = "cpu") -> Any:
    """An array on `device` from array-likes (lists, scalars, numpy or cupy arrays)."""
    if device == "cpu":
        if not isinstance(data, ndarray) and _cupy is not None and isinstance(data, _cupy.ndarray):
            data = data.get()
        return numpy.asarray(data, dtype=dtype)
    cupy = _cupy_module()
    with cupy.cuda.Device(int(device[5:])):
        return cupy.asarray(data, dtype=dtype)


def to_device(array: Any, device: str) -> Any:
    """The same values on `device` (no copy when already there)."""
    if device_of(array) == device:
        return array
    return asarray(array, device=device)


def asnumpy(array: Any) -> Any:
    """A NumPy array with the same values (a host copy for cupy arrays)."""
    return array if isinstance(array, ndarray) else array.get()


def infer_dtype(data: Any) -> Any:
    """torch.tensor's rule: Python floats become the default dtype, arrays keep theirs."""
    if is_array(data) or isinstance(data, numpy.generic):
        return data.dtype
    try:
        kind = numpy.asarray(data).dtype.kind
    except ValueError as error:
        raise ValueError(f"tensor(): expected a number or a rectangular nested list of numbers; {error}") from None
    if kind == "f":
        return _default_dtype
    if kind in "iu":
        return int64
    if kind == "b":
        return bool_
    raise TypeError(f"tensor(): cannot make a tensor from {type(data).__name__} (dtype kind {kind!r})")


def is_finite_all(array: Any) -> bool:
    xp = get_array_module(array)
    return bool(xp.isfinite(array).all())


# ---------------------------------------------------------------- host memory
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (glibc malloc.h)
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit


def keep_freed_host_memory() -> bool:
    """Ask glibc to keep freed arrays up to 32 MiB in the heap instead of giving them back to the OS.

    Every op makes fresh arrays; above glibc's mmap threshold each is mapped
    anew and its pages faulted in again, which costs as much as the
    arithmetic on a 1M-element tensor. With this, freed buffers are reused and
    the process keeps its peak heap. Done at import; set
    MINIGRAD_Q_KEEP_FREED_MEMORY=0 to leave malloc alone. Returns whether it
    took effect (False off glibc).
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


keeps_freed_host_memory = os.environ.get("MINIGRAD_Q_KEEP_FREED_MEMORY", "1") != "0" and keep_freed_host_memory()

# Arrays larger than glibc's largest mmap threshold are always mapped anew, and the kernel zeroes
# every page of them on first touch: for a quantizer's outputs on 16M floats that took longer than
# the arithmetic. ``empty`` hands out such buffers again once nothing references them any more.
_POOL_MAX_PER_KIND = 4
_POOL_MAX_BYTES = 1 << 30  # all pooled arrays together
_pool: dict[tuple[tuple[int, ...], str], list[Any]] = {}
_pooled_bytes = 0


def empty(shape: tuple[int, ...], dtype: Any) -> Any:
    """numpy.empty(shape, dtype), except that arrays of 32 MiB or more are taken from a pool of arrays of
    that shape and dtype that nothing but the pool references any more (their reference count says so)
    when there is one. Up to _POOL_MAX_PER_KIND arrays per shape and dtype, _POOL_MAX_BYTES in all, are
    kept, as glibc keeps freed memory for smaller arrays; MINIGRAD_Q_KEEP_FREED_MEMORY=0 turns both off.
    The quantizers' CPU outputs and gradients come from here. CPU only."""
    dtype = numpy.dtype(dtype)
    nbytes = dtype.itemsize
    for side in shape:
        nbytes *= side
    if nbytes < _MMAP_THRESHOLD_MAX or not keeps_freed_host_memory:
        return numpy.empty(shape, dtype=dtype)
    arrays = _pool.setdefault((tuple(shape), dtype.str), [])
    for array in arrays:
        if sys.getrefcount(array) == 3:  # the pool's list, this loop's name and getrefcount's argument
            return array
    array = numpy.empty(shape, dtype=dtype)
    global _pooled_bytes
    if len(arrays) < _POOL_MAX_PER_KIND and _pooled_bytes + nbytes <= _POOL_MAX_BYTES:
        arrays.append(array)
        _pooled_bytes += nbytes
    return array


def quiet_float_errors() -> Any:
    """A context in which NumPy does not warn about overflow, invalid values or division by zero (CuPy
    never does): for a training loop that detects NaN and inf itself and says so."""
    return numpy.errstate(over="ignore", invalid="ignore", divide="ignore")


# ---------------------------------------------------------------- fused kernels
# Ops with a fused path (the quantizers' chunked NumPy passes and CUDA kernels, conv2d's and
# max_pool2d's worker chunks) take it while this is on; off, they run their plain array code.
# Both compute the same values (tests check it). Off for a run: MINIGRAD_Q_FUSED=0.
_fused = os.environ.get("MINIGRAD_Q_FUSED", "1") != "0"


def fused_enabled() -> bool:
    """Whether ops take their fused path (the default) or their plain one."""
    return _fused


def set_fused(enabled: bool) -> None:
    global _fused
    _fused = bool(enabled)


@contextlib.contextmanager
def use_fused(enabled: bool) -> Iterator[None]:
    """``with backend.use_fused(False):`` runs the plain array code of every op inside."""
    previous = _fused
    set_fused(enabled)
    try:
        yield
    finally:
        set_fused(previous)


def import_effects() -> list[tuple[str, str, str]]:
    """(what, in effect in this process, how to turn it off) for each thing importing minigrad_q changes
    in the process, and for the fused kernels' switch: for ``minigrad-q info`` and the README."""
    timeout = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    return [
        ("OpenBLAS idle threads sleep at once (OPENBLAS_THREAD_TIMEOUT=4)",
         "yes" if sets_blas_thread_timeout else f"no: OPENBLAS_THREAD_TIMEOUT={timeout} was set before import",
         "set OPENBLAS_THREAD_TIMEOUT yourself before importing"),
        ("glibc keeps freed arrays up to 32 MiB (mallopt)", "yes" if keeps_freed_host_memory else "no",
         "MINIGRAD_Q_KEEP_FREED_MEMORY=0"),
        ("quantizer outputs of 32 MiB or more reuse unreferenced buffers (backend.empty)",
         "yes" if keeps_freed_host_memory else "no", "MINIGRAD_Q_KEEP_FREED_MEMORY=0"),
        ("ops take their fused paths (chunked NumPy, CUDA kernels)", "yes" if _fused else "no",
         "MINIGRAD_Q_FUSED=0, or backend.set_fused(False)"),
    ]


# ---------------------------------------------------------------- random
def manual_seed(seed: int) -> None:
    """Seed this thread's generators of every device (cpu now, cuda ones when first used); threads that
    draw for the first time later start from this seed too."""
    global _seed
    _seed = int(seed)
    _generators.seed = _seed
    _generators.by_device.clear()


def generator(device: str) -> Any:
    """This thread's random generator of `device` (numpy/cupy Generator, seeded by manual_seed)."""
    gen = _generators.by_device.get(device)
    if gen is None:
        xp = array_module(device)
        if device == "cpu":
            gen = xp.random.default_rng(_generators.seed)
        else:
            with xp.cuda.Device(int(device[5:])):
                gen = xp.random.default_rng(_generators.seed)
        _generators.by_device[device] = gen
    return gen


# ---------------------------------------------------------------- info
def blas_info() -> str:
    """The BLAS numpy was built with, for `minigrad-q info`."""
    try:
        config = numpy.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001  (show_config's layout differs between numpy versions)
        return "unknown"


def versions() -> dict[str, str]:
    found = {"numpy": numpy.__version__}
    try:
        found["cupy"] = importlib.import_module("cupy").__version__
    except ImportError:
        found["cupy"] = "not installed"
    return found
