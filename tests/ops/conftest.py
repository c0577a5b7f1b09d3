"""Fixtures shared by the op tests."""

import pytest
from cuda_source import route_ops_gpu_path


@pytest.fixture
def host_kernels(monkeypatch):
    """ops/_gpu.py's GPU path on CPU arrays, its kernels compiled as C++ (as in tests/ops/test_gpu_path.py);
    the names of the kernels run are collected in the returned list."""
    launched = []
    route_ops_gpu_path(monkeypatch, launched)
    return launched
