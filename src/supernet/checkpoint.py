"""Atomic, versioned checkpoints.

A checkpoint file is one ``torch.save`` of the dict::

    {"format_version": FORMAT_VERSION, "metadata": {...}, "payload": {...}}

``metadata`` says which run the checkpoint belongs to (search space, config hash, ...) and
is checked on load against what the resuming run expects; ``payload`` holds the state
(model and optimizer state_dicts, RNG states, counters).

Writes are atomic: the file is written to a temporary file in the same directory, flushed,
fsynced and then ``os.replace``d onto the target, so a crash mid-save leaves the previous
checkpoint intact. Loads use ``torch.load(weights_only=True)``: a checkpoint can hold only
tensors and plain Python data, and loading one never executes code.

Everything that goes into a payload must be loadable with ``weights_only=True``: tensors,
numbers, strings, bytes, lists, tuples, dicts, sets, None, ``torch.dtype``/``torch.device``/
``torch.Size``. NumPy RNG states hold NumPy arrays and big ints; convert them with
:func:`numpy_rng_state` / :func:`restore_numpy_rng`. Torch generators convert with
:func:`torch_rng_state` / :func:`restore_torch_rng`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supernet.errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "load_checkpoint",
    "numpy_rng_state",
    "restore_numpy_rng",
    "restore_torch_rng",
    "save_checkpoint",
    "torch_rng_state",
    "write_text_atomic",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the on-disk layout; bumped whenever the layout changes incompatibly."""

_KEYS = frozenset({"format_version", "metadata", "payload"})

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

# NumPy bit generators restore_numpy_rng will construct (by name, from checkpoint data).
_BIT_GENERATORS = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "MT19937": np.random.MT19937,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
}
_INT_TAG = "__int__"
_NDARRAY_TAG = "__ndarray__"
_DTYPE_TAG = "__dtype__"


# --------------------------------------------------------------------------- save / load


def save_checkpoint(path: str | os.PathLike[str], payload: dict, *, metadata: dict) -> None:
    """Write a checkpoint to ``path`` atomically.

    Writes ``{"format_version": FORMAT_VERSION, "metadata": metadata, "payload": payload}``
    with ``torch.save`` to a temporary file in the directory of ``path``, flushes and fsyncs
    it, ``os.replace``s it onto ``path`` and fsyncs the directory where the OS allows it.
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
    obj = {"format_version": FORMAT_VERSION, "metadata": metadata, "payload": payload}

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
            os.chmod(tmp_name, 0o644)
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


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, fsync, then rename over ``path``.

    A reader sees the old file or the new one, never a partial write (run files, latency tables).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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
    only tensors and plain data are unpickled, no code from the file is executed.

    Args:
        path: the checkpoint file.
        expect: metadata the checkpoint must carry; for every key, ``metadata.get(key)`` must
            equal ``expect[key]`` (e.g. ``{"space": "ofa-mbv3"}``).
        map_location: passed to ``torch.load`` (default: load every tensor onto the CPU).

    Returns:
        ``(payload, metadata)``.

    Raises:
        CheckpointError: the file is missing or not a file; it is corrupt or truncated, or
            holds objects a weights-only load refuses; it is not a supernet checkpoint; it
            has another format version; or its metadata does not match ``expect`` (the
            message names the key, the checkpoint's value and the expected value).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
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
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc

    if not isinstance(obj, dict) or set(obj) != _KEYS:
        raise CheckpointError(f"{path} is not a supernet checkpoint")
    version = obj["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}, this supernet reads "
            f"format version {FORMAT_VERSION}"
        )
    payload, metadata = obj["payload"], obj["metadata"]
    if not isinstance(payload, dict) or not isinstance(metadata, dict):
        raise CheckpointError(f"{path} is not a supernet checkpoint")

    for key, expected in (expect or {}).items():
        actual = metadata.get(key)
        if not _equal(actual, expected):
            if key in metadata:
                raise CheckpointError(
                    f"checkpoint {path} is for {key} {actual!r}, this run uses {expected!r}"
                )
            raise CheckpointError(
                f"checkpoint {path} records no {key} (None), this run uses {expected!r}"
            )
    logger.debug("loaded checkpoint %s", path)
    return payload, metadata


# --------------------------------------------------------------------------- RNG states


def numpy_rng_state(gen: np.random.Generator) -> dict:
    """Return the state of a NumPy generator as plain data a weights-only load reads back.

    Ints (PCG64 states are 128-bit) become decimal strings and arrays become lists of
    decimal strings, tagged so :func:`restore_numpy_rng` can convert them back.
    """
    if not isinstance(gen, np.random.Generator):
        raise TypeError(f"expected a numpy.random.Generator, got {type(gen).__name__}")
    return _encode_np_state(gen.bit_generator.state)


def restore_numpy_rng(state: dict) -> np.random.Generator:
    """Build a NumPy generator from a state made by :func:`numpy_rng_state`.

    Raises:
        CheckpointError: the state is malformed or names an unknown bit generator.
    """
    try:
        decoded = _decode_np_state(state)
        name = decoded["bit_generator"]
        if name not in _BIT_GENERATORS:
            raise ValueError(
                f"unknown bit generator {name!r} (known: {', '.join(sorted(_BIT_GENERATORS))})"
            )
        bit_gen = _BIT_GENERATORS[name]()
        bit_gen.state = decoded
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"malformed numpy RNG state in checkpoint: {exc}") from exc
    return np.random.Generator(bit_gen)


def torch_rng_state(gen: torch.Generator) -> torch.Tensor:
    """Return the state of a torch generator (a uint8 CPU tensor)."""
    if not isinstance(gen, torch.Generator):
        raise TypeError(f"expected a torch.Generator, got {type(gen).__name__}")
    return gen.get_state().clone()


def restore_torch_rng(state: torch.Tensor, device: str | torch.device = "cpu") -> torch.Generator:
    """Build a torch generator on ``device`` from a state made by :func:`torch_rng_state`.

    Raises:
        CheckpointError: the state is not a uint8 tensor or does not fit the generator.
    """
    if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
        raise CheckpointError(
            f"malformed torch RNG state in checkpoint: expected a uint8 tensor, got "
            f"{getattr(state, 'dtype', type(state).__name__)}"
        )
    gen = torch.Generator(device=device)
    try:
        gen.set_state(state.detach().to("cpu"))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"malformed torch RNG state in checkpoint: {exc}") from exc
    return gen


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
    if marker not in text:
        return None
    detail = text.split(marker, 1)[1].strip().split("\n\n", 1)[0]
    detail = " ".join(detail.split())
    return detail.split(". ", 1)[0].rstrip(".") or None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. tensors of different shapes
        return False


def _encode_np_state(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | np.integer):
        return {_INT_TAG: str(int(value))}
    if isinstance(value, np.ndarray):
        return {
            _NDARRAY_TAG: [str(int(x)) for x in value.ravel().tolist()],
            _DTYPE_TAG: str(value.dtype),
            "shape": [str(n) for n in value.shape],
        }
    if isinstance(value, dict):
        return {str(k): _encode_np_state(v) for k, v in value.items()}
    if isinstance(value, str | float) or value is None:
        return value
    raise TypeError(f"unexpected value of type {type(value).__name__} in numpy RNG state")


def _decode_np_state(value: Any) -> Any:
    if isinstance(value, dict):
        if _INT_TAG in value:
            return int(value[_INT_TAG])
        if _NDARRAY_TAG in value:
            dtype = np.dtype(value[_DTYPE_TAG])
            if dtype.kind not in "iu":
                raise ValueError(f"unexpected array dtype {dtype} in numpy RNG state")
            data = np.array([int(x) for x in value[_NDARRAY_TAG]], dtype=dtype)
            shape = [int(n) for n in value.get("shape", [data.size])]
            return data.reshape(shape)
        return {k: _decode_np_state(v) for k, v in value.items()}
    if isinstance(value, str | float | bool) or value is None:
        return value
    raise TypeError(f"unexpected value of type {type(value).__name__} in numpy RNG state")
