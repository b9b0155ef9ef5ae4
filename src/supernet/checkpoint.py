"""Atomic, versioned, checksummed checkpoints.

A checkpoint file is one ``torch.save`` of the dict::

    {"format_version": FORMAT_VERSION, "library_version": "0.1.0", "sha256": "...",
     "metadata": {...}, "payload": {...}}

``metadata`` says which run the checkpoint belongs to (search space, config hash, ...) and
is checked on load against what the resuming run expects; ``payload`` holds the state
(model and optimizer state_dicts, RNG states, counters). ``sha256`` is a digest of the format
version, library version, metadata and payload (tensors by dtype, shape and bytes; see
:func:`content_digest`), so a file damaged anywhere in its data is refused on load instead of
silently giving wrong weights.

Writes are atomic: the file is written to a temporary file in the same directory, flushed,
fsynced and then ``os.replace``d onto the target, so a crash mid-save leaves the previous
checkpoint intact. Loads use ``torch.load(weights_only=True)``: a checkpoint can hold only
tensors and plain Python data, and loading one never executes code.

Versions: ``format_version`` decides whether a file can be read. This supernet writes
:data:`FORMAT_VERSION` and reads :data:`READABLE_FORMAT_VERSIONS` (format 1 had no
``library_version`` and no ``sha256``); any other version is a :class:`CheckpointError`.
``library_version`` is the ``supernet.__version__`` that wrote the file; a different library
version is *not* an error (an upgrade must not make every old run unreadable when the format is
unchanged) but is logged as a warning, also when it is asked for in ``expect``.

Everything that goes into a payload must be loadable with ``weights_only=True``: tensors,
numbers, strings, bytes, lists, tuples, dicts, sets, None, ``torch.dtype``/``torch.device``/
``torch.Size``. NumPy RNG states hold NumPy arrays and big ints; convert them with
:func:`numpy_rng_state` / :func:`restore_numpy_rng`. Torch generators convert with
:func:`torch_rng_state` / :func:`restore_torch_rng`.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supernet.checkpoint_rng import (
    numpy_rng_state,
    restore_numpy_rng,
    restore_torch_rng,
    torch_rng_state,
)
from supernet.errors import CheckpointError
from supernet.version import __version__

__all__ = [
    "FORMAT_VERSION",
    "READABLE_FORMAT_VERSIONS",
    "content_digest",
    "load_checkpoint",
    "new_file_mode",
    "numpy_rng_state",
    "restore_numpy_rng",
    "restore_torch_rng",
    "save_checkpoint",
    "torch_rng_state",
    "write_text_atomic",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
"""Version of the on-disk layout written; bumped whenever the layout changes incompatibly."""

READABLE_FORMAT_VERSIONS = (1, 2)
"""Layouts :func:`load_checkpoint` reads: 1 (no library version, no checksum) and 2."""

_KEYS = {
    1: frozenset({"format_version", "metadata", "payload"}),
    2: frozenset({"format_version", "library_version", "sha256", "metadata", "payload"}),
}

# Exact types torch.load(weights_only=True) reads back (besides tensors, checked apart).
_LEAF_TYPES = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    torch.dtype,
    torch.device,
    torch.Size,
)
_SEQUENCE_TYPES = (list, tuple, set)
_MAPPING_TYPES = (dict, collections.OrderedDict)
_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)

# --------------------------------------------------------------------------- save / load


def save_checkpoint(path: str | os.PathLike[str], payload: dict, *, metadata: dict) -> None:
    """Write a checkpoint to ``path`` atomically.

    Writes ``{"format_version": FORMAT_VERSION, "library_version": __version__, "sha256":
    content_digest(...), "metadata": metadata, "payload": payload}`` with ``torch.save`` to a
    temporary file in the directory of ``path``, flushes and fsyncs it, ``os.replace``s it onto
    ``path`` and fsyncs the directory where the OS allows it.
    A previous checkpoint at ``path`` is replaced only once the new one is fully on disk.

    Args:
        path: target file; its directory must exist.
        payload: the state to save. It may hold only what ``torch.load(weights_only=True)``
            reads back (tensors, numbers, strings, bytes, lists, tuples, dicts, sets, None,
            torch dtypes/devices/sizes); this is checked before anything is written.
        metadata: plain data describing the run (checked by ``load_checkpoint(expect=...)``).

    Raises:
        CheckpointError: ``payload`` or ``metadata`` holds a value that a weights-only load
            cannot read, or writing failed (the cause is chained). The temporary file is
            removed and a previous checkpoint at ``path`` is left as it was.
    """
    path = Path(path)
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint payload must be a dict, got {type(payload).__name__}")
    if not isinstance(metadata, dict):
        raise CheckpointError(f"checkpoint metadata must be a dict, got {type(metadata).__name__}")
    _check_weights_only_safe(payload, "payload")
    _check_weights_only_safe(metadata, "metadata")
    obj = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "sha256": content_digest(FORMAT_VERSION, __version__, metadata, payload),
        "metadata": metadata,
        "payload": payload,
    }

    directory = path.parent
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file with mode 0600; give the checkpoint a usual file mode.
        with contextlib.suppress(OSError):
            os.chmod(tmp_name, new_file_mode())
        os.replace(tmp_name, path)
        tmp_name = None
    except BaseException as exc:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:  # pragma: no cover - best effort cleanup
                logger.warning("could not remove temporary checkpoint file %s", tmp_name)
        if isinstance(exc, Exception):
            raise CheckpointError(f"could not write checkpoint {path}: {exc}") from exc
        raise
    _fsync_directory(directory)
    logger.debug("saved checkpoint %s", path)


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 less the process umask (0o644 under
    the usual umask 022). Atomic writers create 0600 temp files (``mkstemp``) and chmod them to
    this, so every file of a run directory gets the same mode and a umask of 077 is respected.
    """
    try:  # Linux shows the umask without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, fsync, then rename over ``path``.

    A reader sees the old file or the new one, never a partial write (run files, latency tables).
    The file gets the mode of any new file (:func:`new_file_mode`, 0644 under the usual umask),
    as checkpoints do (the temp file is created 0600).

    Raises:
        OSError: the file cannot be written; the message names ``path``, not the temp file.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    expect: dict | None = None,
    map_location: Any = "cpu",
) -> tuple[dict, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    The file is read with ``torch.load(path, map_location=map_location, weights_only=True)``:
    only tensors and plain data are unpickled, no code from the file is executed. Its format
    version must be one of :data:`READABLE_FORMAT_VERSIONS` and, from format 2 on, its content
    must match the SHA-256 it records. A checkpoint written by another ``supernet`` version is
    read with a logged warning (see the module docstring for the version policy).

    Args:
        path: the checkpoint file.
        expect: metadata the checkpoint must carry; for every key, ``metadata.get(key)`` must
            equal ``expect[key]`` (e.g. ``{"space": "ofa-mbv3"}``). The key
            ``"library_version"`` is the exception: a mismatch there is only logged.
        map_location: passed to ``torch.load`` (default: load every tensor onto the CPU).

    Returns:
        ``(payload, metadata)``.

    Raises:
        CheckpointError: the file is missing or not a file; it is corrupt or truncated (also:
            its content does not match its recorded SHA-256), or holds objects a weights-only
            load refuses; it is not a supernet checkpoint; it has another format version; or
            its metadata does not match ``expect``. The message names the file, the field, the
            value found and the value expected.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    obj = _torch_load(path, map_location)

    if not isinstance(obj, dict) or "format_version" not in obj:
        raise CheckpointError(f"{path} is not a supernet checkpoint (no format_version)")
    version = obj["format_version"]
    if type(version) is not int or version not in READABLE_FORMAT_VERSIONS:
        raise CheckpointError(
            f"checkpoint {path} has format_version {version!r}; this supernet "
            f"({__version__}) reads format version(s) "
            f"{', '.join(map(str, READABLE_FORMAT_VERSIONS))}"
        )
    if set(obj) != _KEYS[version]:
        raise CheckpointError(
            f"{path} is not a supernet checkpoint: keys {sorted(map(str, obj))}, format "
            f"version {version} has {sorted(_KEYS[version])}"
        )
    payload, metadata = obj["payload"], obj["metadata"]
    if not isinstance(payload, dict) or not isinstance(metadata, dict):
        raise CheckpointError(
            f"{path} is not a supernet checkpoint: payload and metadata must be dicts, got "
            f"{type(payload).__name__} and {type(metadata).__name__}"
        )
    library_version = obj.get("library_version", metadata.get("library_version"))
    if version >= 2:
        recorded = obj["sha256"]
        try:
            actual = content_digest(version, library_version, metadata, payload)
        except (RecursionError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {path} is corrupt: {_first_line(exc)}") from exc
        if actual != recorded:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: sha256 of its content is {actual[:16]}…, the "
                f"file records {str(recorded)[:16]}…"
            )
    expect = dict(expect or {})
    expected_library = expect.pop("library_version", __version__)
    if library_version is not None and not _equal(library_version, expected_library):
        logger.warning(
            "checkpoint %s was written by supernet %s, expected %s; reading it (format "
            "version %d is readable)",
            path, library_version, expected_library, version,
        )  # fmt: skip

    for key, expected in expect.items():
        actual_value = metadata.get(key)
        if _equal(actual_value, expected):
            continue
        if key in metadata:
            raise CheckpointError(
                f"checkpoint {path} is for {key} {actual_value!r}, this run uses {expected!r}"
            )
        raise CheckpointError(
            f"checkpoint {path} records no {key} (None), this run uses {expected!r}"
        )
    logger.debug("loaded checkpoint %s", path)
    return payload, metadata


def content_digest(format_version: int, library_version: Any, metadata: Any, payload: Any) -> str:
    """SHA-256 (hex) of a checkpoint's content, the same before saving and after loading.

    Tensors count by dtype, shape and bytes (not by device, storage sharing or strides), dicts
    by their items in order, sets in a sorted order; every value's type is part of the digest.

    Raises:
        TypeError: a value a weights-only checkpoint cannot hold.
    """
    return _digest((format_version, library_version, metadata, payload)).hex()


def _torch_load(path: Path, map_location: Any) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into a CheckpointError."""
    try:
        with warnings.catch_warnings():
            # A damaged file can trigger torch's "unexpected pickle protocol" warnings; the
            # CheckpointError below (or the checksum) reports the damage instead.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _weights_only_detail(exc)
        if detail is not None and detail.startswith("Unsupported global"):
            raise CheckpointError(
                f"checkpoint {path} holds objects other than tensors and plain data, which "
                f"the weights-only load refuses (no code from a checkpoint is run): {detail}"
            ) from exc
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated: {detail or _first_line(exc)}"
        ) from exc
    except Exception as exc:  # torch's loader raises many types on damaged files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


# --------------------------------------------------------------------------- helpers


def _check_weights_only_safe(value: Any, where: str) -> None:
    """Raise CheckpointError naming the first value a weights-only load could not read."""
    stack = [(value, where)]
    while stack:
        item, at = stack.pop()
        kind = type(item)
        if kind in _TENSOR_TYPES or kind in _LEAF_TYPES:
            continue
        if kind in _MAPPING_TYPES:
            for k, v in item.items():
                if type(k) not in _LEAF_TYPES:
                    raise CheckpointError(
                        f"cannot save {at}: key {k!r} of type {type(k).__name__} cannot be "
                        "read back with weights_only=True"
                    )
                stack.append((v, f"{at}[{k!r}]"))
            continue
        if kind in _SEQUENCE_TYPES:
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(item))
            continue
        hint = ""
        if isinstance(item, np.ndarray | np.generic):
            hint = " (convert NumPy values to tensors or Python numbers first)"
        elif isinstance(item, np.random.Generator):
            hint = " (store numpy_rng_state(gen) instead)"
        elif isinstance(item, torch.Generator):
            hint = " (store torch_rng_state(gen) instead)"
        raise CheckpointError(
            f"cannot save {at}: a {kind.__module__}.{kind.__qualname__} cannot be read back "
            f"with weights_only=True{hint}"
        )


def _digest(value: Any) -> bytes:
    """Merkle-style digest of plain data and tensors (see :func:`content_digest`)."""
    kind = type(value)
    if isinstance(value, torch.Tensor):  # a Parameter counts as its data
        t = value.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        if t.is_quantized:
            t = t.int_repr()
        h = hashlib.sha256(f"tensor {t.dtype} {tuple(t.shape)}".encode())
        if t.device.type != "meta" and t.numel():
            t = t.to("cpu").resolve_conj().resolve_neg().contiguous().reshape(-1)
            h.update(t.view(torch.uint8).numpy())
    elif kind in _MAPPING_TYPES:  # dict and OrderedDict alike
        h = hashlib.sha256(b"dict")
        for k, v in value.items():
            h.update(_digest(k))
            h.update(_digest(v))
    elif kind in (list, tuple):
        h = hashlib.sha256(kind.__name__.encode())
        for v in value:
            h.update(_digest(v))
    elif kind is set:
        h = hashlib.sha256(b"set")
        for d in sorted(_digest(v) for v in value):
            h.update(d)
    elif kind is str:
        h = hashlib.sha256(b"str")
        h.update(value.encode("utf-8", "surrogatepass"))
    elif kind is bytes:
        h = hashlib.sha256(b"bytes")
        h.update(value)
    elif kind in _LEAF_TYPES:  # None, bool, int, float, complex, torch dtype/device/Size
        h = hashlib.sha256(f"{kind.__name__} {value!r}".encode())
    else:
        raise TypeError(f"a {kind.__module__}.{kind.__qualname__} has no checkpoint digest")
    return h.digest()


def _fsync_directory(directory: Path) -> None:
    """Fsync a directory so the rename is durable; silently skipped where unsupported."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - platform dependent
        logger.debug("fsync of directory %s not supported", directory)
    finally:
        os.close(fd)


def _weights_only_detail(exc: BaseException) -> str | None:
    """The unpickler's own complaint inside torch's long weights-only error, if present."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = text.split(marker, 1)[1].strip().split("\n\n", 1)[0]
        detail = " ".join(detail.split())
        return detail.split(". ", 1)[0].rstrip(".") or None
    for line in text.splitlines():  # legacy (non-zip) files: "Trying to load unsupported GLOBAL"
        if "unsupported global" in line.lower():
            return "Unsupported global: " + line.strip().rstrip(".")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. tensors of different shapes
        return False
