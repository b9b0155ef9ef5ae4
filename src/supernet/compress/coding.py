"""Lossless coding of a pruned, weight-shared layer: the sparse relative index (with filler
zeros) and Huffman codes of the cluster indices and of the index gaps.

Relative indexing (Deep Compression, arXiv 1510.00149, Sec. 2, Fig. 2): a pruned weight tensor,
flattened, is stored as its nonzero entries and, for each, the distance to the previous one in
``index_bits`` bits (conv layers 8, fully connected 5 in the paper). A gap longer than
``2**index_bits`` is bridged by *filler zeros*: entries of value zero placed every
``2**index_bits`` positions. Here an entry's gap ``d`` (1 ... ``2**index_bits``) is stored as
``d - 1`` and a filler's cluster index is ``k`` (one past the layer's ``k`` centroids).

Huffman coding (Sec. 4): the cluster indices and the gaps are coded with variable-length prefix
codes built from their frequencies. The codes come from ``dahuffman`` (a maintained, pure-Python
Huffman coder on PyPI, the ``compress`` extra); its end-of-stream symbol is ``-1`` here so that a
code table is plain integers and can be stored in a file header.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from supernet.errors import ConfigError

__all__ = [
    "EOF_SYMBOL",
    "huffman_coded_bytes",
    "huffman_decode",
    "huffman_encode",
    "relative_index",
    "relative_positions",
]

EOF_SYMBOL = -1
"""The Huffman code's end-of-stream symbol (never a cluster index or gap)."""


def _dahuffman() -> Any:
    try:
        import dahuffman
    except ImportError as exc:
        raise ConfigError(
            "Deep Compression's Huffman coding needs the 'dahuffman' package: "
            'pip install -e ".[compress]"'
        ) from exc
    return dahuffman


def relative_index(positions: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaps between increasing flat ``positions``, with filler entries for long gaps.

    Shapes: ``positions`` int ``[n]`` (strictly increasing, >= 0) → ``gaps`` int64 ``[m]`` (each
    ``d - 1`` in ``[0, 2**index_bits)``) and ``filler`` bool ``[m]`` (True for a filler zero),
    ``m >= n``; the non-filler entries are ``positions`` in order.

    Raises:
        ConfigError: ``index_bits`` outside 1 ... 16, or positions not strictly increasing.

    Reference: arXiv 1510.00149, Sec. 2 and Fig. 2.
    """
    if not 1 <= index_bits <= 16:
        raise ConfigError(f"index_bits = {index_bits} must be in 1 ... 16")
    positions = np.asarray(positions, dtype=np.int64)
    span = 1 << index_bits
    diffs = np.diff(positions, prepend=-1)
    if np.any(diffs < 1):
        raise ConfigError("positions must be strictly increasing and >= 0")
    fillers = (diffs - 1) // span  # filler entries before each real entry
    last = diffs - fillers * span  # the real entry's own gap, in 1 ... span
    counts = fillers + 1
    total = int(counts.sum())
    gaps = np.full(total, span - 1, dtype=np.int64)
    is_filler = np.ones(total, dtype=bool)
    ends = np.cumsum(counts) - 1  # each real entry comes last in its group
    gaps[ends] = last - 1
    is_filler[ends] = False
    return gaps, is_filler


def relative_positions(gaps: np.ndarray, is_filler: np.ndarray) -> np.ndarray:
    """Inverse of :func:`relative_index`: the flat positions of the non-filler entries.

    Shapes: ``gaps`` ``[m]``, ``is_filler`` bool ``[m]`` → int64 ``[n]``.
    """
    pos = np.cumsum(np.asarray(gaps, dtype=np.int64) + 1) - 1
    return pos[~np.asarray(is_filler, dtype=bool)]


def huffman_encode(symbols: np.ndarray) -> tuple[bytes, dict[str, list[int]]]:
    """Huffman-code a stream of non-negative int symbols.

    Returns the coded bytes and the code table ``{"symbols", "bits", "codes"}`` (parallel int
    lists, the end-of-stream symbol :data:`EOF_SYMBOL` included) that :func:`huffman_decode` needs.
    An empty stream codes to ``b""``.

    Shapes: ``symbols`` int ``[n]``.

    Reference: Huffman (1952); arXiv 1510.00149, Sec. 4.
    """
    dahuffman = _dahuffman()
    values = np.asarray(symbols, dtype=np.int64).ravel().tolist()
    if not values:
        return b"", {"symbols": [], "bits": [], "codes": []}
    codec = dahuffman.HuffmanCodec.from_frequencies(Counter(values), concat=list, eof=EOF_SYMBOL)
    table = codec.get_code_table()
    names = sorted(table)
    return codec.encode(values), {
        "symbols": names,
        "bits": [int(table[s][0]) for s in names],
        "codes": [int(table[s][1]) for s in names],
    }


def huffman_coded_bytes(counts: dict[int, int]) -> int:
    """Bytes :func:`huffman_encode` writes for a stream with these symbol counts, without coding
    it: the code table's lengths (dahuffman's, built with the end-of-stream symbol) times the
    counts, rounded up to whole bytes (dahuffman writes of the end-of-stream code only what fills
    the last byte).

    Raises:
        ValueError: a negative count.
    """
    counts = {int(s): int(c) for s, c in counts.items() if c}
    if any(c < 0 for c in counts.values()):
        raise ValueError(f"symbol counts must be >= 0, got {counts}")
    if not counts:
        return 0
    table = _dahuffman().HuffmanCodec.from_frequencies(counts, eof=EOF_SYMBOL).get_code_table()
    bits = sum(c * table[s][0] for s, c in counts.items())
    return (bits + 7) // 8


def huffman_decode(data: bytes, table: dict[str, list[int]], count: int) -> np.ndarray:
    """Decode :func:`huffman_encode`'s bytes back to ``count`` int64 symbols.

    Raises:
        ValueError: the stream does not decode to exactly ``count`` symbols (corrupt data).
    """
    if count == 0:
        if data:
            raise ValueError(f"{len(data)} coded bytes for an empty stream")
        return np.zeros(0, dtype=np.int64)
    dahuffman = _dahuffman()
    rows = zip(table["symbols"], table["bits"], table["codes"], strict=True)
    code = {int(s): (int(b), int(c)) for s, b, c in rows}
    codec = dahuffman.huffmancodec.PrefixCodec(code, concat=list, check=True, eof=EOF_SYMBOL)
    out = codec.decode(data)
    if len(out) != count:
        raise ValueError(f"the Huffman stream decodes to {len(out)} symbols, expected {count}")
    return np.asarray(out, dtype=np.int64)
