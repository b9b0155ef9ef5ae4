"""The ``subnet.dc`` file: a Deep-Compressed subnet that :func:`load_dc` decodes back to a module.

Layout (all integers little-endian)::

    b"SNDC"  u16 format version  u32 header length
    header   zlib-compressed JSON: arch config, how to rebuild the architecture, per layer (name,
             shape, codebook size k, relative-index bits, entries), the two Huffman code tables,
             stream lengths, and the fp32 tensors' names, dtypes and shapes
    payload  codebooks (float32, layer after layer), Huffman-coded cluster indices, Huffman-coded
             relative-index gaps, then the other tensors (BatchNorm, biases) raw
    sha256   32 bytes over everything before it

A file whose magic, version, checksum or streams do not match raises
:class:`~supernet.errors.CheckpointError`; nothing is loaded from it. Written atomically (temp
file, fsync, rename, as :mod:`supernet.checkpoint` writes checkpoints).

Reference: Deep Compression (arXiv 1510.00149), Sec. 2 (relative index), Sec. 3 (codebook +
indices), Sec. 4 (Huffman); the format itself is this project's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from supernet.compress.coding import (
    huffman_decode,
    huffman_encode,
    relative_index,
    relative_positions,
)
from supernet.compress.context import rebuild_subnet
from supernet.compress.deep_compression import SharedWeight, compressible_layers
from supernet.errors import CheckpointError, ConfigError

__all__ = ["DC_FILE", "DC_FORMAT_VERSION", "load_dc", "save_dc"]

DC_FILE = "subnet.dc"
DC_FORMAT_VERSION = 1
_MAGIC = b"SNDC"
_PREFIX = struct.Struct("<4sHI")
_DTYPES = {"float32": torch.float32, "int64": torch.int64, "float16": torch.float16}


def _shared(module: nn.Module) -> SharedWeight:
    params = getattr(module, "parametrizations", None)
    found = [p for p in params["weight"] if isinstance(p, SharedWeight)] if params else []
    if not found:
        raise ConfigError(
            "save_dc needs a weight-shared model (share_weights / run_deep_compression); a layer "
            "has a plain weight"
        )
    return found[0]


def save_dc(
    path: str | os.PathLike[str], model: nn.Module, *, arch: dict[str, Any], rebuild: dict[str, Any]
) -> dict[str, int]:
    """Write a weight-shared model (every conv/linear weight a :class:`SharedWeight`) as
    ``subnet.dc``, atomically.

    Args:
        path: the file to write.
        model: the compressed module (e.g. the ``"model"`` of ``run_deep_compression``).
        arch: its arch config dict; rebuild: ``CompressContext.rebuild``.

    Returns:
        Byte counts: ``file_bytes``, ``header_bytes``, ``codebook_bytes``, ``index_bytes`` (coded
        cluster indices), ``gap_bytes`` (coded relative index), ``other_bytes`` (fp32 tensors),
        and ``entries`` (coded weights, filler zeros included).

    Raises:
        ConfigError: a conv/linear weight is not shared, or an unsupported layer type.
    """
    layers = compressible_layers(model)
    names = set()
    meta, codebooks, idx_stream, gap_stream = [], [], [], []
    for layer in layers:
        shared = _shared(layer.module)
        index = shared.index.reshape(-1).numpy()
        k = int(shared.codebook.numel())
        pos = np.flatnonzero(index != k)
        gaps, filler = relative_index(pos, layer.index_bits)
        symbols = np.full(len(gaps), k, dtype=np.int64)
        symbols[~filler] = index[pos]
        codebooks.append(shared.codebook.detach().to(torch.float32).numpy().tobytes())
        idx_stream.append(symbols)
        gap_stream.append(gaps)
        meta.append({"name": layer.name, "shape": list(shared.index.shape), "k": k,
                     "index_bits": layer.index_bits, "entries": len(gaps)})  # fmt: skip
        names.add(f"{layer.name}.weight" if layer.name else "weight")
    other, other_meta = [], []
    for key, value in model.state_dict().items():
        if key in names or ".parametrizations." in f".{key}":
            continue
        t = value.detach().cpu().contiguous()
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            raise ConfigError(f"tensor {key!r} has dtype {dtype}; supported: {sorted(_DTYPES)}")
        other_meta.append({"name": key, "dtype": dtype, "shape": list(t.shape)})
        other.append(t.numpy().tobytes())
    all_idx = np.concatenate(idx_stream) if idx_stream else np.zeros(0, np.int64)
    all_gap = np.concatenate(gap_stream) if gap_stream else np.zeros(0, np.int64)
    idx_bytes, idx_table = huffman_encode(all_idx)
    gap_bytes, gap_table = huffman_encode(all_gap)
    cb, ob = b"".join(codebooks), b"".join(other)
    header = {
        "format_version": DC_FORMAT_VERSION, "arch": arch, "rebuild": rebuild, "layers": meta,
        "index": {"table": idx_table, "count": len(all_idx), "bytes": len(idx_bytes)},
        "gap": {"table": gap_table, "count": len(all_gap), "bytes": len(gap_bytes)},
        "codebook_bytes": len(cb), "other": other_meta, "other_bytes": len(ob),
    }  # fmt: skip
    head = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    body = (
        _PREFIX.pack(_MAGIC, DC_FORMAT_VERSION, len(head)) + head + cb + idx_bytes + gap_bytes + ob
    )
    data = body + hashlib.sha256(body).digest()
    _write_atomic(Path(path), data)
    return {"file_bytes": len(data), "header_bytes": len(head) + _PREFIX.size,
            "codebook_bytes": len(cb), "index_bytes": len(idx_bytes), "gap_bytes": len(gap_bytes),
            "other_bytes": len(ob), "entries": len(all_idx)}  # fmt: skip


def load_dc(path: str | os.PathLike[str]) -> nn.Module:
    """Decode ``subnet.dc`` to a plain eval-mode subnet (weights ``codebook[index]``, zeros where
    pruned) whose outputs equal those of the module :func:`save_dc` wrote.

    Shapes: the module maps ``[B, C, R, R]`` → logits ``[B, num_classes]``.

    Raises:
        CheckpointError: missing file, wrong magic or format version, checksum mismatch
            (a corrupt or truncated file), or streams that do not decode to the recorded sizes.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if len(data) < _PREFIX.size + 32:
        raise CheckpointError(f"{path} is not a subnet.dc file ({len(data)} bytes, too short)")
    body, digest = data[:-32], data[-32:]
    magic, version, head_len = _PREFIX.unpack_from(body)
    if magic != _MAGIC:
        raise CheckpointError(
            f"{path} is not a subnet.dc file (magic {magic!r}, expected {_MAGIC!r})"
        )
    if version != DC_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has subnet.dc format version {version}; this library reads {DC_FORMAT_VERSION}"
        )
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"{path} is corrupt: its sha256 checksum does not match its content")
    try:
        return _decode(body, head_len)
    except (ValueError, KeyError, TypeError, RuntimeError, zlib.error) as exc:
        raise CheckpointError(f"{path} does not decode: {exc}") from exc


def _decode(body: bytes, head_len: int) -> nn.Module:
    at = _PREFIX.size
    header = json.loads(zlib.decompress(body[at : at + head_len]))
    at += head_len
    cb = np.frombuffer(body[at : at + header["codebook_bytes"]], dtype=np.float32)
    at += header["codebook_bytes"]
    streams = {}
    for name in ("index", "gap"):
        s = header[name]
        streams[name] = huffman_decode(body[at : at + s["bytes"]], s["table"], s["count"])
        at += s["bytes"]
    model = rebuild_subnet(header["rebuild"], header["arch"])
    state: dict[str, torch.Tensor] = {}
    c_at = e_at = 0
    for layer in header["layers"]:
        k, n = layer["k"], layer["entries"]
        codebook = np.append(cb[c_at : c_at + k], np.float32(0.0))
        symbols = streams["index"][e_at : e_at + n]
        gaps = streams["gap"][e_at : e_at + n]
        c_at, e_at = c_at + k, e_at + n
        filler = symbols == k
        pos = relative_positions(gaps, filler)
        numel = int(np.prod(layer["shape"]))
        if len(pos) and (pos[-1] >= numel or symbols.max() > k):
            raise ValueError(f"layer {layer['name']!r}: an index points outside its weight")
        weight = np.zeros(numel, dtype=np.float32)
        weight[pos] = codebook[symbols[~filler]]
        key = f"{layer['name']}.weight" if layer["name"] else "weight"
        state[key] = torch.from_numpy(weight.reshape(layer["shape"]))
    for entry in header["other"]:
        dtype = _DTYPES[entry["dtype"]]
        size = (
            int(np.prod(entry["shape"], dtype=np.int64))
            * torch.tensor([], dtype=dtype).element_size()
        )
        raw = bytearray(body[at : at + size])
        at += size
        state[entry["name"]] = (
            torch.frombuffer(raw, dtype=dtype).reshape(entry["shape"]).clone()
            if size
            else torch.zeros(entry["shape"], dtype=dtype)
        )
    if at != len(body):
        raise ValueError(f"{len(body) - at} bytes left after the last tensor")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file beside ``path``, fsync, chmod 0644, rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
