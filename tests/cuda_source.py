"""Checking CUDA source without a GPU (tests/ is on sys.path through its conftest):

- ``nvrtc_compile``: NVRTC's verdict on a source, from the nvidia-cuda-nvrtc wheel, the system's
  libnvrtc or CUDA_PATH (``nvrtc_library`` is None where none is found);
- ``HostKernel``: a raw kernel's source compiled as C++ for the CPU and run with one thread, whose
  grid-stride loop then takes every item in turn. That runs the kernel's own index arithmetic and
  math on NumPy arrays, so its results can be compared with the plain NumPy path's.
"""

import ctypes
import ctypes.util
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from minigrad_q.backend import KERNEL_OPTIONS, kernel_arguments

C_TYPES = {np.dtype("float32"): "float", np.dtype("float64"): "double"}


def nvrtc_library():
    candidates = []
    try:
        import nvidia.cuda_nvrtc

        for root in nvidia.cuda_nvrtc.__path__:
            candidates += sorted(glob.glob(os.path.join(root, "lib", "libnvrtc.so*")))
    except ImportError:
        pass
    candidates.append(ctypes.util.find_library("nvrtc"))
    if os.environ.get("CUDA_PATH"):
        candidates += sorted(glob.glob(os.path.join(os.environ["CUDA_PATH"], "lib64", "libnvrtc.so*")))
    for candidate in filter(None, candidates):
        if "builtins" in candidate or ".alt." in candidate:
            continue
        try:
            return ctypes.CDLL(candidate)
        except OSError:
            continue
    return None


def nvrtc_compile(library, source, name):
    """NVRTC's result code and log for `source`."""
    program = ctypes.c_void_p()
    result = library.nvrtcCreateProgram(ctypes.byref(program), source.encode(), f"{name}.cu".encode(), 0, None, None)
    assert result == 0, f"nvrtcCreateProgram: {result}"
    try:
        options = (ctypes.c_char_p * len(KERNEL_OPTIONS))(*(option.encode() for option in KERNEL_OPTIONS))
        result = library.nvrtcCompileProgram(program, len(KERNEL_OPTIONS), options)
        size = ctypes.c_size_t()
        library.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        library.nvrtcGetProgramLog(program, log)
        return result, log.value.decode(errors="replace")
    finally:
        library.nvrtcDestroyProgram(ctypes.byref(program))


def assert_compiles_with_nvrtc(source, name):
    library = nvrtc_library()
    if library is None:
        pytest.skip("no NVRTC library here (pip install nvidia-cuda-nvrtc-cu12, or CUDA)")
    result, log = nvrtc_compile(library, source, name)
    assert result == 0, f"{name} does not compile:\n{log}"
    assert "warning" not in log.lower(), log


# What a kernel finds on the GPU, for one thread in one block: its grid-stride loop visits every item.
HOST_SHIM = """
#include <cmath>
using namespace std;
struct minigrad_q_host_dim3 { unsigned int x, y, z; };
static const minigrad_q_host_dim3 threadIdx = {0, 0, 0}, blockIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
#define __global__
#define __device__
#define __restrict__
"""

_BUILD = os.path.join(tempfile.gettempdir(), f"minigrad_q_host_kernels_{os.getuid()}")


class HostKernel:
    """``HostKernel(source, name, dtype)(*args)``: the kernel run on the CPU. Arguments as
    backend.kernel_arguments gives them to a raw kernel: NumPy arrays (by pointer; the kernel writes
    into them), ints as long long, floats as T."""

    def __init__(self, source, name, dtype):
        compiler = shutil.which("g++") or shutil.which("c++")
        if compiler is None:
            pytest.skip("no C++ compiler here to run CUDA kernels on the CPU")
        self.dtype = np.dtype(dtype)
        text = f"typedef {C_TYPES[self.dtype]} T;\n{HOST_SHIM}\n{source}"
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        os.makedirs(_BUILD, exist_ok=True)
        library = os.path.join(_BUILD, f"{name}_{digest}.so")
        if not os.path.exists(library):
            source_path = library[:-3] + ".cpp"
            with open(source_path, "w", encoding="utf-8") as file:
                file.write(text)
            partial = library + f".{os.getpid()}.tmp"
            subprocess.run([compiler, "-O1", "-std=c++14", "-ffp-contract=off", "-shared", "-fPIC", "-o", partial, source_path],
                           check=True, capture_output=True, text=True)
            os.replace(partial, library)
        self.function = getattr(ctypes.CDLL(library), name)
        self.function.restype = None

    def __call__(self, *args):
        """Arguments converted by backend.kernel_arguments, as a GPU launch converts them."""
        scalars = {np.dtype(np.int64): ctypes.c_longlong, np.dtype(np.float32): ctypes.c_float,
                   np.dtype(np.float64): ctypes.c_double}
        converted = []
        for arg in kernel_arguments(args, self.dtype):
            if isinstance(arg, np.ndarray):
                assert arg.flags.c_contiguous, "kernels take C-contiguous arrays"
                converted.append(ctypes.c_void_p(arg.ctypes.data))
            else:
                converted.append(scalars[arg.dtype](arg))
        self.function(*converted)


_compiled = {}


def route_gpu_path(monkeypatch, module, takes, launched, on_gpu=False):
    """Make a GPU-path module (ops/_gpu.py, optim/_gpu.py: a `takes` gate and a `run_kernel(name, items,
    *args, dtype=)` over its `KERNELS`) record each kernel it launches in `launched`. Unless `on_gpu`, also
    run it on NumPy arrays: `takes` replaces its gate, and each kernel runs as a HostKernel."""
    run = module.run_kernel
    if not on_gpu:
        kernels = module.KERNELS

        def run(name, items, *args, dtype):
            key = (kernels[name], name, np.dtype(dtype))
            if key not in _compiled:
                _compiled[key] = HostKernel(kernels[name], name, dtype)
            _compiled[key](*args)

        monkeypatch.setattr(module, "takes", takes)

    def recorded(name, *args, **options):
        launched.append(name)
        run(name, *args, **options)

    launched.clear()
    monkeypatch.setattr(module, "run_kernel", recorded)


def route_ops_gpu_path(monkeypatch, launched, on_gpu=False):
    """route_gpu_path for ops/_gpu.py, whose gate on the host is: fused on, and a dtype its kernels take."""
    from minigrad_q import backend
    from minigrad_q.ops import _gpu

    route_gpu_path(monkeypatch, _gpu, lambda x: backend.fused_enabled() and x.dtype in _gpu.KERNEL_DTYPES, launched,
                   on_gpu=on_gpu)
