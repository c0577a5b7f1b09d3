"""Checkpoints: one safetensors file, with the run's metadata as JSON in its header.

A checkpoint is a standard ``.safetensors`` file (written with the
``safetensors`` package's NumPy API; no pickle anywhere), so other frameworks
read the weights directly (``safetensors.torch.load_file(path)``):

- ``<name>``: every entry of ``model.state_dict()`` (parameters and buffers)
  under its own name, e.g. ``features.0.weight``;
- ``optimizer/<path>``: the optimizer's tensors (momentum buffers, Adam
  moments), e.g. ``optimizer/state/0/momentum_buffer``. The ``/`` cannot
  occur in a module's dotted names, so filter these out to load the weights
  elsewhere;
- header metadata ``"minigrad_q"``: a JSON object with ``format``, ``epoch``
  (epochs completed), ``config`` (the run's settings, model and dataset names),
  ``model`` (class name and options), ``optimizer`` (the state dict's structure
  and hyperparameters, each tensor replaced by ``{"__tensor__": key}``),
  ``rng`` (the bit-generator state of every device's generator), ``loader``
  (data loader state), ``extra`` (e.g. the history of test accuracies) and
  ``sha256`` (a digest of every tensor's name, dtype, shape and bytes).

Writing is atomic: the file is written to a temporary file in the same
directory, flushed to disk, then ``os.replace``d over ``path``; a crash while
saving leaves the previous checkpoint untouched. Reading validates the header,
the format, the digest, and (in ``restore``) the model's keys and shapes; every
problem is a ``CheckpointError`` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from . import backend
from .core import Tensor

__all__ = ["CheckpointError", "Checkpoint", "save", "load", "read_metadata", "restore", "rng_states", "set_rng_states"]

FORMAT = "minigrad_q.checkpoint/1"
METADATA_KEY = "minigrad_q"
OPTIMIZER_PREFIX = "optimizer/"
_HEADER_LIMIT = 100 << 20  # safetensors' own limit on the header size
_numpy = backend.array_module("cpu")


class CheckpointError(ValueError):
    """A checkpoint that cannot be written, read or applied; the message names the file."""


@dataclass
class Checkpoint:
    """What ``load`` read: host (NumPy) arrays and plain JSON values."""

    path: str
    epoch: int
    config: dict[str, Any]
    model_state: dict[str, Any]
    optimizer_state: Any = None  # as optimizer.state_dict() gave it, tensors on the CPU
    rng: dict[str, Any] = field(default_factory=dict)
    loader: Any = None
    model: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- random generators
def rng_states(devices: list[str] | tuple[str, ...] = ("cpu",)) -> dict[str, Any]:
    """The state of each device's generator (``backend.generator``), as JSON-able dicts."""
    states = {}
    for device in dict.fromkeys(devices):
        state = getattr(backend.generator(device).bit_generator, "state", None)
        states[device] = state if isinstance(state, dict) else None  # CuPy's generators do not expose theirs as data
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put every generator back in the state ``rng_states`` recorded."""
    for device, state in states.items():
        if state is not None:
            backend.generator(device).bit_generator.state = state


# ---------------------------------------------------------------- nested state <-> JSON + tensors
def _join(path: str, key: Any) -> str:
    return f"{path}/{key}" if path else str(key)


def _encode(value: Any, path: str, tensors: dict[str, Any]) -> Any:
    """JSON for `value`; every tensor or array goes into `tensors` under ``optimizer/<path>``."""
    if isinstance(value, Tensor) or backend.is_array(value):
        key = OPTIMIZER_PREFIX + path
        tensors[key] = _host(value.data if isinstance(value, Tensor) else value)
        return {"__tensor__" if isinstance(value, Tensor) else "__array__": key}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, _join(path, k), tensors) for k, v in value.items()}
        return {"__items__": [[_encode(k, path, {}), _encode(v, _join(path, k), tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, _join(path, i), tensors) for i, v in enumerate(value)]
        return items if isinstance(value, list) else {"__tuple__": items}
    if hasattr(value, "dtype") and getattr(value, "shape", None) == ():  # numpy scalar
        return value.item()
    raise CheckpointError(f"cannot store a {type(value).__name__} at {OPTIMIZER_PREFIX}{path} in a checkpoint")


def _decode(value: Any, tensors: dict[str, Any], device: str) -> Any:
    """The inverse of _encode; stored tensors become Tensors (or arrays) on `device`."""
    if isinstance(value, list):
        return [_decode(v, tensors, device) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value or "__array__" in value:
        array = backend.asarray(tensors[value.get("__tensor__") or value["__array__"]], device=device)
        return Tensor(array) if "__tensor__" in value else array
    if "__tuple__" in value:
        return tuple(_decode(v, tensors, device) for v in value["__tuple__"])
    if "__items__" in value:
        return {_decode(k, tensors, device): _decode(v, tensors, device) for k, v in value["__items__"]}
    return {k: _decode(v, tensors, device) for k, v in value.items()}


def _to_device(value: Any, device: str) -> Any:
    """`value` with every Tensor and array in it moved to `device` (containers rebuilt, the rest kept)."""
    if isinstance(value, Tensor):
        return Tensor(backend.to_device(value.data, device))
    if backend.is_array(value):
        return backend.to_device(value, device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


def _host(array: Any) -> Any:
    """A C-contiguous NumPy copy or view of `array`, of its own shape (ascontiguousarray would make 0-d arrays 1-d)."""
    host = backend.asnumpy(array)
    return host if host.flags.c_contiguous else host.copy(order="C")


def _digest(tensors: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = tensors[name]
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(_numpy.ascontiguousarray(array).view(_numpy.uint8).reshape(-1).data)
    return digest.hexdigest()


# ---------------------------------------------------------------- save
def save(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any = None,
    *,
    epoch: int,
    config: dict[str, Any] | None = None,
    rng: dict[str, Any] | None = None,
    loader: Any = None,
    model_info: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write `model`'s state dict, `optimizer`'s state and the metadata to `path`, atomically.

    `rng` defaults to ``rng_states()`` (the CPU generator); pass
    ``rng_states(["cpu", device])`` to record a GPU's too.
    """
    path = os.fspath(path)
    tensors = {}
    for name, value in model.state_dict().items():
        if "/" in name:
            raise CheckpointError(f"checkpoint {path}: state dict key {name!r} contains '/', which is reserved")
        tensors[name] = _host(value.data if isinstance(value, Tensor) else value)
    optimizer_state = None if optimizer is None else _encode(optimizer.state_dict(), "", tensors)
    metadata = {
        "format": FORMAT,
        "epoch": int(epoch),
        "config": config or {},
        "model": model_info or {"class": type(model).__name__},
        "model_keys": [name for name in tensors if not name.startswith(OPTIMIZER_PREFIX)],  # state-dict order
        "optimizer": optimizer_state,
        "optimizer_class": None if optimizer is None else type(optimizer).__name__,
        "rng": rng_states() if rng is None else rng,
        "loader": loader,
        "extra": extra or {},
        "sha256": _digest(tensors),
    }
    try:
        header = json.dumps(metadata)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: metadata is not JSON-serialisable: {error}") from None
    import safetensors.numpy

    data = safetensors.numpy.save(tensors, metadata={METADATA_KEY: header})
    _atomic_write(path, data)


def _write_all(file: Any, data: bytes) -> None:
    """Write `data` in 1 MiB pieces (a separate function so tests can simulate a crash half-way)."""
    view = memoryview(data)
    for start in range(0, len(view), 1 << 20):
        file.write(view[start:start + (1 << 20)])


def _atomic_write(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CheckpointError(f"checkpoint {path}: cannot write it, folder {folder} does not exist")
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as error:
        raise CheckpointError(f"checkpoint {path}: cannot write to {folder}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            _write_all(file, data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# ---------------------------------------------------------------- load
def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: no such file") from None
    except OSError as error:
        raise CheckpointError(f"checkpoint {path}: cannot read it: {error.strerror or error}") from None


def _parse_header(path: str, data: bytes) -> dict[str, Any]:
    """The metadata JSON from the safetensors header, or a CheckpointError saying what is wrong."""
    if len(data) < 8:
        raise CheckpointError(f"checkpoint {path} is truncated or not a safetensors file ({len(data)} bytes)")
    size = int.from_bytes(data[:8], "little")
    if size > _HEADER_LIMIT or 8 + size > len(data):
        raise CheckpointError(f"checkpoint {path} is truncated or not a safetensors file (header of {size} bytes, "
                              f"file of {len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + size])
        metadata = json.loads(header["__metadata__"][METADATA_KEY])
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"checkpoint {path} is corrupted or not a minigrad_q checkpoint "
                              f"(no readable '{METADATA_KEY}' metadata in its header)") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        raise CheckpointError(f"checkpoint {path}: unsupported format {found!r}, expected {FORMAT!r}")
    return metadata


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's metadata (epoch, config, ...) without checking its tensors."""
    path = os.fspath(path)
    return _parse_header(path, _read(path))


def load(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate a checkpoint written by ``save``."""
    import safetensors
    import safetensors.numpy

    path = os.fspath(path)
    data = _read(path)
    metadata = _parse_header(path, data)
    try:
        tensors = safetensors.numpy.load(data)
    except (safetensors.SafetensorError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated: {error}") from None
    if _digest(tensors) != metadata.get("sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupted: its tensors do not match the sha256 in its metadata")
    names = [name for name in tensors if not name.startswith(OPTIMIZER_PREFIX)]
    order = metadata.get("model_keys")
    if isinstance(order, list) and sorted(order) == sorted(names):
        names = order  # the model's own order (safetensors stores keys sorted)
    model_state = {name: tensors[name] for name in names}
    try:
        optimizer_state = _decode(metadata["optimizer"], tensors, "cpu")
        epoch = int(metadata["epoch"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupted: bad metadata ({type(error).__name__}: {error})") from None
    return Checkpoint(
        path=path, epoch=epoch, config=metadata.get("config") or {}, model_state=model_state,
        optimizer_state=optimizer_state, rng=metadata.get("rng") or {}, loader=metadata.get("loader"),
        model=metadata.get("model") or {}, extra=metadata.get("extra") or {},
    )


def restore(checkpoint: Checkpoint, model: Any, optimizer: Any = None, device: str = "cpu") -> None:
    """Load the checkpoint's weights into `model` (strictly) and its state into `optimizer`."""
    state = {name: Tensor(backend.asarray(array, device=device)) for name, array in checkpoint.model_state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError, ValueError) as error:
        reason = " ".join(line.strip() for line in str(error).splitlines())  # one line, for the command line
        raise CheckpointError(f"checkpoint {checkpoint.path} does not fit this {type(model).__name__}: {reason}") from None
    if optimizer is not None:
        if checkpoint.optimizer_state is None:
            raise CheckpointError(f"checkpoint {checkpoint.path} has no optimizer state")
        try:
            optimizer.load_state_dict(_to_device(checkpoint.optimizer_state, device))
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(f"checkpoint {checkpoint.path}: optimizer state does not fit "
                                  f"{type(optimizer).__name__}: {error}") from None
