"""``subnet.json``: what an export directory holds, as plain JSON, and how it is read back.

Layout (:data:`FORMAT_VERSION` 1): ``format_version``, ``space`` (name), ``config``
(:meth:`ArchConfig.to_dict`), ``input_shape`` ``[1, C, R, R]``, ``output_shape`` ``[1,
num_classes]``, ``input_name`` / ``output_name`` (the ONNX graph's), ``dynamic_batch``,
``normalization`` (``{"mean": [C], "std": [C]}`` for images in [0, 1], or null), ``onnx_opset``,
``versions`` (supernet, torch, onnxruntime), ``files`` (``onnx`` / ``torchscript``: name, bytes,
sha256), ``verification`` (max abs differences to the eager subnet, tolerance, the largest |logit|,
images) and
``metadata`` (what the caller measured: accuracy in %, MACs, params, bytes, latency in ms).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from supernet import __version__
from supernet.errors import ConfigError, ExportError
from supernet.space import ArchConfig, SearchSpace

__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "check_normalization",
    "file_entry",
    "read_metadata",
    "to_json_data",
]

FORMAT_VERSION = 1
"""Version of the ``subnet.json`` layout; :func:`read_metadata` refuses any other."""

logger = logging.getLogger(__name__)

METADATA_FILE = "subnet.json"

_REQUIRED_KEYS = (
    "format_version", "space", "config", "input_shape", "files", "verification", "versions",
)  # fmt: skip


def read_metadata(out_dir: Path, space: SearchSpace | None = None) -> dict[str, Any]:
    """The checked ``subnet.json`` of an export directory.

    Checks the format version (exactly :data:`FORMAT_VERSION`), the required keys, the space
    name (``space``'s when given), the config (valid in ``space`` when given), the input shape
    and the file entries (plain file names with a SHA-256). An export written by another library
    version (``versions.supernet``) is read with a logged warning.

    Raises:
        ExportError: the file is missing, not UTF-8 JSON, of another format version, lacks a
            key, or holds a malformed or mismatched value (names the file, the field, the value
            found and the value expected).
    """
    path = out_dir / METADATA_FILE
    if not path.is_file():
        raise ExportError(f"{path} does not exist; write the directory with export_subnet")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # also bad UTF-8 and huge ints
        raise ExportError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or "format_version" not in doc:
        raise ExportError(f"{path} is not a supernet export (no format_version)")
    if type(doc["format_version"]) is not int or doc["format_version"] != FORMAT_VERSION:
        raise ExportError(
            f"{path} has format version {doc['format_version']!r}, this supernet reads format "
            f"version {FORMAT_VERSION}"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in doc]
    if missing:
        raise ExportError(f"{path} lacks key(s) {missing}")
    if not isinstance(doc["space"], str):
        raise ExportError(f"{path}: space = {doc['space']!r} must be a space name")
    if space is not None and doc["space"] != space.name:
        raise ExportError(f"{path}: space = {doc['space']!r}, expected {space.name!r}")
    try:
        config = ArchConfig.from_dict(doc["config"])
        if space is not None:
            config.validate(space)
    except ConfigError as exc:
        raise ExportError(f"{path} holds an invalid config: {exc}") from exc
    shape = doc["input_shape"]
    if (
        not isinstance(shape, list)
        or len(shape) != 4
        or not all(type(n) is int and n >= 1 for n in shape)
    ):
        raise ExportError(f"{path}: input_shape = {shape!r} must be 4 integers >= 1")
    _check_files(path, doc["files"])
    versions = doc.get("versions")
    written_by = versions.get("supernet") if isinstance(versions, dict) else None
    if written_by != __version__:
        logger.warning("%s was written by supernet %s, this is supernet %s; reading it (same "
                       "format version)", path, written_by, __version__)  # fmt: skip
    return doc


def _check_files(path: Path, files: Any) -> None:
    """``files`` maps a kind to ``{"name": plain file name, "bytes", "sha256": 64 hex digits}``."""
    if not isinstance(files, dict):
        raise ExportError(f"{path}: files = {files!r} must be a mapping")
    for kind, entry in files.items():
        name = entry.get("name") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".."):
            raise ExportError(
                f"{path}: files[{kind!r}] = {entry!r} must name a file in the export directory"
            )
        if not isinstance(digest, str) or len(digest) != 64:
            raise ExportError(f"{path}: files[{kind!r}].sha256 = {digest!r} is not a SHA-256")


def file_entry(name: str, data: bytes) -> dict[str, Any]:
    """``{"name", "bytes", "sha256"}`` of a file about to be written."""
    return {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def check_normalization(value: Any, channels: int) -> dict[str, list[float]]:
    """``{"mean": [C floats], "std": [C floats > 0]}`` from the caller's ``normalization``.

    Raises:
        ConfigError: other keys, not ``channels`` numbers each, or a std <= 0.
    """
    if not isinstance(value, dict) or set(value) != {"mean", "std"}:
        raise ConfigError(
            f"metadata['normalization'] must be {{'mean': [...], 'std': [...]}}, got {value!r}"
        )
    for key in ("mean", "std"):
        values = value[key]
        if (
            not isinstance(values, list)
            or len(values) != channels
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        ):
            raise ConfigError(
                f"metadata['normalization']['{key}'] = {values!r} must be {channels} number(s)"
            )
    if not all(s > 0 for s in value["std"]):
        raise ConfigError(f"metadata['normalization']['std'] = {value['std']} must be > 0")
    return {key: [float(v) for v in value[key]] for key in ("mean", "std")}


def to_json_data(value: Any, where: str) -> Any:
    """``value`` as plain JSON data: NumPy scalars and arrays become numbers and lists, tuples
    become lists.

    Raises:
        ConfigError: a non-finite float (use ``None``), a non-string key or a value JSON cannot
            hold; the message names where it is (``where`` is the name of ``value``).
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value} is not finite; use None for a value not measured")
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where} key {key!r} must be a string")
            out[key] = to_json_data(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, list | tuple):
        return [to_json_data(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise ConfigError(f"{where} is a {type(value).__name__}, which JSON cannot hold")
