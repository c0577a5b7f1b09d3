"""Small helpers shared by the op tests (tests/ is on sys.path through its conftest)."""

import importlib.util
import pathlib

import numpy as np

import minigrad_q as mq


def leaf(array, device="cpu", dtype=None):
    """A leaf that requires grad; a float list becomes float64 (through NumPy), as references are."""
    return mq.tensor(np.asarray(array), dtype=dtype, device=device, requires_grad=True)


def const(array, device="cpu", dtype=None):
    return mq.tensor(np.asarray(array), dtype=dtype, device=device)


def host(tensor):
    return tensor.detach().numpy()


def sum_to(array, shape):
    """Sum a broadcast gradient back to `shape` (what reference gradients need)."""
    array = np.asarray(array)
    array = array.sum(axis=tuple(range(array.ndim - len(shape))))
    axes = tuple(i for i, size in enumerate(shape) if size == 1 and array.shape[i] != 1)
    return array.sum(axis=axes, keepdims=True)


def load_script(name):
    """The module scripts/<name>.py, imported from its file (scripts/ is not a package)."""
    path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
