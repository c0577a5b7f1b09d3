"""Files of tensors: safetensors with a JSON header of our own, written atomically, read back checked.

Checkpoints (checkpoint.py) and integer models (quant/integer.py) are both such files. ``write``
stores host arrays with the metadata (a "format" name, plus a sha256 of the tensors and of the rest
of the metadata) under one key of the safetensors header; it writes to a temporary file in the same
folder (named after the file and this process), syncs it and renames it over `path`, so a crash
leaves the old file or the new one, never half of one; the next write removes temporary files that
a killed process left. Writing through a symbolic link writes its target, and the file gets the
permissions the umask gives any new file. ``read_header`` and ``read`` refuse truncated, corrupted
or foreign files with a ``StorageError`` that names the file. No pickle anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from typing import Any

from . import backend

METADATA_KEY = "minigrad_q"
_HEADER_LIMIT = 100 << 20  # safetensors' own limit on the header size
_numpy = backend.array_module("cpu")


class StorageError(ValueError):
    """A file that cannot be written or read back; the message starts with its path."""


def host_array(array: Any) -> Any:
    """A C-contiguous NumPy copy or view of `array`, of its own shape (ascontiguousarray would make 0-d arrays 1-d)."""
    host = backend.asnumpy(array)
    return host if host.flags.c_contiguous else host.copy(order="C")


DIGEST_SCOPE = "tensors and metadata"  # files written before this scope was recorded have a digest of their tensors


def digest(tensors: dict[str, Any], metadata: dict[str, Any] | None = None) -> str:
    """sha256 over the names, dtypes, shapes and bytes of `tensors`, in name order, then over `metadata`
    (but its "sha256") as canonical JSON."""
    hashed = hashlib.sha256()
    for name in sorted(tensors):
        array = tensors[name]
        hashed.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        hashed.update(_numpy.ascontiguousarray(array).view(_numpy.uint8).reshape(-1).data)
    if metadata is not None:
        rest = {key: value for key, value in metadata.items() if key != "sha256"}
        hashed.update(json.dumps(rest, sort_keys=True).encode())
    return hashed.hexdigest()


# ---------------------------------------------------------------- write
def write(path: str, tensors: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Store host arrays `tensors` and `metadata` (JSON; gets a "sha256" entry) at `path`, atomically."""
    import safetensors.numpy

    metadata = {**metadata, "digest_scope": DIGEST_SCOPE}
    try:
        metadata["sha256"] = digest(tensors, metadata)
        header = json.dumps(metadata)
    except (TypeError, ValueError) as error:
        raise StorageError(f"{path}: metadata is not JSON-serialisable: {error}") from None
    write_atomic(path, safetensors.numpy.save(tensors, metadata={METADATA_KEY: header}))


def write_chunks(file: Any, data: bytes) -> None:
    """Write `data` in 1 MiB pieces (a function of its own, so tests can simulate a crash half-way)."""
    view = memoryview(data)
    for start in range(0, len(view), 1 << 20):
        file.write(view[start:start + (1 << 20)])


def write_atomic(path: str, data: bytes) -> None:
    """Put `data` at `path` through a synced temporary file and a rename; the old file stays until then.
    A symbolic link at `path` is written through (its target is replaced, the link stays)."""
    path = os.path.realpath(path) if os.path.islink(path) else path
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise StorageError(f"{path}: cannot write it, folder {folder} does not exist")
    _remove_stale_temporaries(path)
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a file written in place would follow the umask
    except OSError as error:
        raise StorageError(f"{path}: cannot write to {folder}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            write_chunks(file, data)
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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(path: str) -> None:
    """Remove the temporary files of earlier writes to `path` whose process is gone (killed mid-write):
    ``.<name>.<pid>.<random>.tmp`` beside it."""
    folder, name = os.path.split(os.path.abspath(path))
    prefix = f".{name}."
    with contextlib.suppress(OSError):
        for entry in os.listdir(folder):
            if not (entry.startswith(prefix) and entry.endswith(".tmp")):
                continue
            pid = entry[len(prefix):].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, entry))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------- read
def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise StorageError(f"{path}: no such file") from None
    except OSError as error:
        raise StorageError(f"{path}: cannot read it: {error.strerror or error}") from None


def _metadata(path: str, data: bytes, what: str, file_format: str) -> dict[str, Any]:
    """The metadata JSON from the safetensors header of `data`, whose "format" must be `file_format`;
    `what` names the kind of file expected."""
    if len(data) < 8:
        raise StorageError(f"{path} is truncated or not a safetensors file ({len(data)} bytes)")
    size = int.from_bytes(data[:8], "little")
    if size > _HEADER_LIMIT or 8 + size > len(data):
        raise StorageError(f"{path} is truncated or not a safetensors file (header of {size} bytes, "
                           f"file of {len(data)} bytes)")
    try:
        metadata = json.loads(json.loads(data[8:8 + size])["__metadata__"][METADATA_KEY])
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: JSON nested beyond reason
        metadata = None
    if not isinstance(metadata, dict):
        raise StorageError(f"{path} is corrupted or not a {what} (no readable '{METADATA_KEY}' metadata in its header)")
    if metadata.get("format") != file_format:
        raise StorageError(f"{path}: unsupported format {metadata.get('format')!r}, expected {file_format!r}")
    return metadata


def read_header(path: str, what: str, file_format: str) -> dict[str, Any]:
    """The metadata of the file at `path`, without reading its tensors."""
    return _metadata(path, _read_bytes(path), what, file_format)


def read(path: str, what: str, file_format: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, host tensors) of the file at `path`, its tensors checked against their sha256."""
    import safetensors
    import safetensors.numpy

    data = _read_bytes(path)
    metadata = _metadata(path, data, what, file_format)
    try:
        tensors = safetensors.numpy.load(data)
    except (safetensors.SafetensorError, ValueError) as error:
        raise StorageError(f"{path} is corrupted or truncated: {error}") from None
    covered = metadata if metadata.get("digest_scope") == DIGEST_SCOPE else None
    if digest(tensors, covered) != metadata.get("sha256"):
        what = "its tensors or metadata do not" if covered is not None else "its tensors do not"
        raise StorageError(f"{path} is corrupted: {what} match the sha256 in its metadata")
    return metadata, tensors
