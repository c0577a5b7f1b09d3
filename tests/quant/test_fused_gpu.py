"""The quant package's CUDA source: all of it in quant/_fused_gpu.py, and every kernel there compiles with
NVRTC for float and double (on any machine where an NVRTC library is found: the nvidia-cuda-nvrtc wheel,
the system's libnvrtc, or CUDA_PATH; no GPU needed). tests/quant/test_fused.py runs the kernels on a GPU."""

import re
from pathlib import Path

import pytest
from cuda_source import assert_compiles_with_nvrtc

from minigrad_q.quant import _fused_gpu

QUANT = Path(_fused_gpu.__file__).parent
C_TYPES = {"bool": "bool", "float64": "double", "float32": "float", "int64": "long long"}


def test_no_other_quant_module_holds_cuda_source():
    for path in sorted(QUANT.glob("*.py")):
        if path.name != "_fused_gpu.py":
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"elementwise_kernel|ElementwiseKernel|RawKernel|RawModule|__global__", text), path.name


def test_kernels_have_distinct_names_and_every_dsq_variant_is_listed():
    names = [name for _, _, _, name in _fused_gpu.KERNELS]
    assert len(set(names)) == len(names) and all(name.startswith("minigrad_q_") for name in names)
    for slope, scale, alpha in [(a, b, c) for a in (False, True) for b in (False, True) for c in (False, True)]:
        if slope or not (scale or alpha):  # scale and alpha derivatives always come with the slope
            assert _fused_gpu.dsq_kernel(slope, scale, alpha) in _fused_gpu.KERNELS


def cuda_source(kernel, float_type):
    """A standalone __global__ function around an ElementwiseKernel's operation (T = float_type), one
    element per thread: what NVRTC must accept for CuPy to build the kernel."""
    in_params, out_params, operation, name = kernel

    def params(text):
        return [tuple(part.split()) for part in text.split(",")]

    def c_type(type_name):
        return float_type if type_name == "T" else C_TYPES[type_name]

    inputs, outputs = params(in_params), params(out_params)
    arguments = [f"const {c_type(t)}* {n}_in" for t, n in inputs] + [f"{c_type(t)}* {n}_out" for t, n in outputs]
    loads = [f"const {c_type(t)} {n} = {n}_in[i];" for t, n in inputs] + [f"{c_type(t)}& {n} = {n}_out[i];" for t, n in outputs]
    return (f"typedef {float_type} T;\n"
            f'extern "C" __global__ void {name}({", ".join(arguments)}, long long size) {{\n'
            "  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n  if (i >= size) return;\n"
            f"  {' '.join(loads)}\n  {operation};\n}}\n")


def test_rendered_sources_name_every_parameter():
    source = cuda_source(_fused_gpu.FAKE_QUANT_MASK, "float")
    assert "const float* x_in" in source and "bool* mask_out" in source and "bool& mask = mask_out[i];" in source
    assert _fused_gpu.FAKE_QUANT_MASK[2] in source


@pytest.mark.parametrize("float_type", ["float", "double"])
@pytest.mark.parametrize("kernel", _fused_gpu.KERNELS, ids=[kernel[3] for kernel in _fused_gpu.KERNELS])
def test_every_kernel_compiles_with_nvrtc(kernel, float_type):
    assert_compiles_with_nvrtc(cuda_source(kernel, float_type), f"{kernel[3]} ({float_type})")
