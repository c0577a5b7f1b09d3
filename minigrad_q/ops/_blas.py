"""The BLAS that NumPy uses, called directly for what numpy.matmul cannot do: add a product into its
output in place, C = op(A)·op(B) + β·C with β = 1 (conv2d's shifted GEMMs, ops/_conv_shifted.py).

- ``gemm(dtype)``: a ``Gemm`` for float32 or float64, or None where the BLAS has no GEMM we can call
  safely: only OpenBLAS builds whose symbol names fix the integer width (NumPy 2's wheels bundle
  scipy-openblas64, whose GEMMs are ``scipy_cblas_sgemm64_`` and ``scipy_cblas_dgemm64_``). Each
  is checked once against numpy.matmul before it is used.
- ``Gemm.matrix(array)``: (address, transposed, leading dimension) of a 2-D NumPy array or view whose
  rows or columns are contiguous; ``Gemm.__call__`` multiplies row-major matrices given so.

Callers pass addresses, not arrays, because a ctypes call costs a few microseconds and conv2d makes
kh·kw of them per batch chunk: the arithmetic on addresses is theirs, and so is keeping the arrays
alive meanwhile. ctypes releases the GIL during the call, so worker threads multiply in parallel.
"""

from __future__ import annotations

import ctypes
from typing import Any

from .. import backend
from .workers import blas_controllers

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
# (symbol of the float32 GEMM, of the float64 one, C type of their integers)
SYMBOLS = [("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", ctypes.c_int64),
           ("cblas_sgemm64_", "cblas_dgemm64_", ctypes.c_int64),
           ("scipy_cblas_sgemm", "scipy_cblas_dgemm", ctypes.c_int32)]

_found: dict[str, Gemm | None] = {}


class Gemm:
    """cblas_?gemm on row-major matrices given by address: C (m×n) = op(A) (m×k) · op(B) (k×n) + β·C."""

    def __init__(self, function: Any, integer: Any, scalar: Any, itemsize: int) -> None:
        function.restype = None
        function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer, scalar,
                             ctypes.c_void_p, integer, ctypes.c_void_p, integer, scalar, ctypes.c_void_p, integer]
        self.function, self.itemsize = function, itemsize

    def matrix(self, array: Any) -> tuple[int, bool, int]:
        """(address, transposed, leading dimension) of a 2-D array with unit stride along one axis."""
        rows, columns = array.strides
        if columns == self.itemsize:
            return array.ctypes.data, False, rows // self.itemsize
        if rows == self.itemsize:
            return array.ctypes.data, True, columns // self.itemsize
        raise ValueError(f"gemm: a matrix needs unit stride along one axis, got strides {array.strides}")

    def __call__(self, m: int, n: int, k: int, a: tuple[int, bool, int], b: tuple[int, bool, int],
                 c: tuple[int, int], beta: float) -> None:
        """C = op(A)·op(B) + β·C; a, b as ``matrix`` gives them, c = (address, leading dimension)."""
        (a_at, a_t, lda), (b_at, b_t, ldb), (c_at, ldc) = a, b, c
        self.function(ROW_MAJOR, TRANS if a_t else NO_TRANS, TRANS if b_t else NO_TRANS, m, n, k, 1.0,
                      a_at, lda, b_at, ldb, beta, c_at, ldc)


def gemm(dtype: Any) -> Gemm | None:
    """The checked GEMM for `dtype` (float32 or float64), or None (no usable BLAS symbol)."""
    name = backend.array_module("cpu").dtype(dtype).name
    if name not in _found:
        _found[name] = _load(name)
    return _found[name]


def _load(name: str) -> Gemm | None:
    if name not in ("float32", "float64"):
        return None
    numpy = backend.array_module("cpu")
    scalar = ctypes.c_float if name == "float32" else ctypes.c_double
    for controller in blas_controllers():
        library = getattr(controller, "dynlib", None)
        if library is None or getattr(controller, "internal_api", "") != "openblas":
            continue
        for single, double, integer in SYMBOLS:
            function = getattr(library, single if name == "float32" else double, None)
            if function is not None:
                candidate = Gemm(function, integer, scalar, numpy.dtype(name).itemsize)
                return candidate if _agrees(candidate, numpy, name) else None
    return None


def _agrees(candidate: Gemm, numpy: Any, name: str) -> bool:
    """Whether C += Aᵀ·B through `candidate` matches NumPy on a small case."""
    a = numpy.arange(6, dtype=name).reshape(3, 2)
    b = numpy.arange(12, dtype=name).reshape(3, 4) - 5
    c = numpy.ones((2, 4), dtype=name)
    candidate(2, 4, 3, candidate.matrix(a.T), candidate.matrix(b), (c.ctypes.data, 4), 1.0)
    return bool(numpy.array_equal(c, a.T @ b + 1))
