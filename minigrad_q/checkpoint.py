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

Writing is atomic and reading validates the header, the format and the digest
(storage.py does both for checkpoints and integer models alike); ``restore``
checks the model's keys and shapes. Every problem is a ``CheckpointError``
naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from . import backend, storage
from .core import Tensor
from .storage import host_array

__all__ = ["CheckpointError", "Checkpoint", "save", "load", "read_metadata", "restore", "rng_states", "set_rng_states"]

FORMAT = "minigrad_q.checkpoint/1"
OPTIMIZER_PREFIX = "optimizer/"
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
    """Put every generator back in the state ``rng_states`` recorded (a state that is not one: CheckpointError)."""
    for device, state in states.items():
        if state is not None:
            try:
                backend.generator(device).bit_generator.state = state
            except (TypeError, ValueError, KeyError) as error:
                raise CheckpointError(f"the saved state of the {device} generator is not one "
                                      f"({type(error).__name__}: {error})") from None


# ---------------------------------------------------------------- nested state <-> JSON + tensors
def _join(path: str, key: Any) -> str:
    return f"{path}/{key}" if path else str(key)


def _encode(value: Any, path: str, tensors: dict[str, Any]) -> Any:
    """JSON for `value`; every tensor or array goes into `tensors` under ``optimizer/<path>``."""
    if isinstance(value, Tensor) or backend.is_array(value):
        key = OPTIMIZER_PREFIX + path
        tensors[key] = host_array(value.data if isinstance(value, Tensor) else value)
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
        tensors[name] = host_array(value.data if isinstance(value, Tensor) else value)
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
    }
    try:
        storage.write(path, tensors, metadata)
    except storage.StorageError as error:
        raise CheckpointError(f"checkpoint {error}") from None


# ---------------------------------------------------------------- load
def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's metadata (epoch, config, ...) without checking its tensors."""
    path = os.fspath(path)
    try:
        return storage.read_header(path, "minigrad_q checkpoint", FORMAT)
    except storage.StorageError as error:
        raise CheckpointError(f"checkpoint {error}") from None


def load(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate a checkpoint written by ``save``."""
    path = os.fspath(path)
    try:
        metadata, tensors = storage.read(path, "minigrad_q checkpoint", FORMAT)
    except storage.StorageError as error:
        raise CheckpointError(f"checkpoint {error}") from None
    names = [name for name in tensors if not name.startswith(OPTIMIZER_PREFIX)]
    order = metadata.get("model_keys")
    if isinstance(order, list) and sorted(order) == sorted(names):
        names = order  # the model's own order (safetensors stores keys sorted)
    model_state = {name: tensors[name] for name in names}
    try:
        optimizer_state = _decode(metadata["optimizer"], tensors, "cpu")
        epoch = metadata["epoch"]
    except (KeyError, TypeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupted: bad metadata ({type(error).__name__}: {error})") from None
    _check_metadata(path, metadata)
    return Checkpoint(
        path=path, epoch=epoch, config=metadata.get("config") or {}, model_state=model_state,
        optimizer_state=optimizer_state, rng=metadata.get("rng") or {}, loader=metadata.get("loader"),
        model=metadata.get("model") or {}, extra=metadata.get("extra") or {},
    )


def _check_metadata(path: str, metadata: dict[str, Any]) -> None:
    """The metadata a resumed run relies on has the form ``save`` writes; else a CheckpointError naming the field."""
    def refuse(key: str, expected: str) -> None:
        raise CheckpointError(f"checkpoint {path} is corrupted: its {key} is {metadata.get(key)!r:.80}, "
                              f"expected {expected}")

    epoch = metadata.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        refuse("epoch", "an integer >= 0")
    for key in ("config", "model", "extra", "rng"):
        if not isinstance(metadata.get(key) or {}, dict):
            refuse(key, "an object")
    if not all(isinstance(state, dict) or state is None for state in (metadata.get("rng") or {}).values()):
        refuse("rng", "a generator state (an object) per device")
    loader = metadata.get("loader")
    if loader is not None:
        seed, epoch = (loader.get("seed", -1), loader.get("epoch")) if isinstance(loader, dict) else (-1, None)
        well_formed = isinstance(loader, dict) and set(loader) == {"seed", "epoch"} and (
            seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0)
        ) and isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0
        if not well_formed:
            refuse("loader", '{"seed": an integer >= 0 or null, "epoch": an integer >= 0}')


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
