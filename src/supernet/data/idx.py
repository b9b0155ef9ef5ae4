"""Read and write IDX files, the array format of MNIST and Fashion-MNIST.

Layout: two zero bytes, a dtype code byte, a byte holding the number of dimensions,
that many big-endian int32 sizes, then the data, big-endian, in C order. Files may be
gzip-compressed; gzip is detected by its magic bytes (1f 8b), not by the file name.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from supernet.errors import ConfigError, DataNotFoundError

__all__ = ["read_idx", "write_idx"]

_GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype code -> big-endian numpy dtype.
_CODE_TO_DTYPE: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_KIND_TO_CODE = {(dt.kind, dt.itemsize): code for code, dt in _CODE_TO_DTYPE.items()}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a numpy array.

    Shapes: returns an array of the shape stored in the file, e.g. [N, 28, 28] for
    MNIST-style images or [N] for labels, in native byte order (writable copy).

    Raises:
        DataNotFoundError: the file does not exist.
        ConfigError: bad magic bytes, unknown dtype code, a corrupt gzip stream, or a
            data size that does not match the header (truncated or trailing bytes).
            The message names the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataNotFoundError(f"IDX file not found: {path}") from exc
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ConfigError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ConfigError(
            f"{path}: not an IDX file (magic bytes {raw[:4].hex() or 'missing'}; "
            "expected 00 00 <dtype code> <ndim>)"
        )
    code, ndim = raw[2], raw[3]
    if code not in _CODE_TO_DTYPE:
        allowed = ", ".join(f"0x{c:02X}" for c in _CODE_TO_DTYPE)
        raise ConfigError(f"{path}: unknown IDX dtype code 0x{code:02X}; allowed: {allowed}")
    dtype = _CODE_TO_DTYPE[code]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError(
            f"{path}: truncated IDX header ({len(raw)} bytes, need {header} for {ndim} dims)"
        )
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    if any(d < 0 for d in dims):
        raise ConfigError(f"{path}: negative dimension in IDX header {dims}")
    count = math.prod(dims)
    expected = header + count * dtype.itemsize
    if len(raw) != expected:
        raise ConfigError(
            f"{path}: IDX size mismatch: header {dims} of {dtype.name} needs {expected} "
            f"bytes, file holds {len(raw)} (truncated or corrupt)"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header)
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file, gzip-compressed if asked.

    Shapes: any array of 0..255 dimensions, each below 2**31.
    Units: bytes on disk; gzip is used when ``compress`` is True, or when it is None
    and the file name ends in ``.gz``.

    Raises:
        ConfigError: the dtype is not one of uint8, int8, int16, int32, float32,
            float64, or the shape does not fit the IDX header.
    """
    path = Path(path)
    array = np.asarray(array)
    key = (array.dtype.kind, array.dtype.itemsize)
    if key not in _KIND_TO_CODE:
        raise ConfigError(
            f"write_idx: dtype {array.dtype} is not storable in IDX; "
            "allowed: uint8, int8, int16, int32, float32, float64"
        )
    if array.ndim > 255 or any(d >= 2**31 for d in array.shape):
        raise ConfigError(f"write_idx: shape {array.shape} does not fit an IDX header")
    code = _KIND_TO_CODE[key]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code]).tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
