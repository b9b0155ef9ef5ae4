"""TFLM's greedy memory plan of many subnets in compiled code: one C loop per subnet, the same
placement as :func:`supernet.cost.tflm_planner.greedy_plan` (tested equal on random buffers and
on thousands of subnets), ~40-60x faster than the numpy planner of
:mod:`supernet.cost.tflm_batch` (docs/results/mcu-memory.md).

Why our own C: the greedy planner is sequential per buffer (each placement depends on every
larger buffer it meets in time), so numpy can vectorize it only across subnets, one step per
buffer rank with gathers over every neighbour; that stays seconds for 10k subnets, and the
MCU memory model runs in every search's inner loop (issue 23: 10k configs in <= 0.1 s). No
maintained package places TFLM's buffers, numba is not a dependency, so the 50-line kernel
below is compiled once with the system C compiler (``cc``, or ``$CC``) into the user's cache
directory and loaded with :mod:`ctypes`. Where that fails (no compiler, read-only cache) or
``SUPERNET_NO_NATIVE=1`` is set, :func:`load` returns None and callers use the numpy planner.

Reference: TensorFlow Lite Micro (arXiv 2010.08678), Sec. 4.4 (``GreedyMemoryPlanner``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from supernet.cost.tflm_planner import TFLM_ALIGNMENT_BYTES

__all__ = ["greedy_totals", "load"]

_INDEX_BITS = 20  # a sort key is size << 20 | buffer index: up to 2^20 buffers
_SIZE_BITS = 42  # and sizes below 2^42 bytes

_SOURCE = r"""
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    const int32_t *nbr; int64_t k; const int64_t *first;
    int64_t *last, *size, *key, *off, *lo, *hi;
} plan_t;

/* Offset of buffer b as TFLM's greedy planner places it. Its offset depends only on the
   buffers placed before it that meet it in time, i.e. on its neighbours of a larger sort key
   (size, then add order): place those first (depth-first), then walk them by offset. The same
   offsets as placing all buffers in sorted order, without sorting. */
static int64_t place(const plan_t *c, int64_t b, int64_t depth) {
    const int64_t key = c->key[b], start = c->first[b], stop = c->last[b], want = c->size[b];
    int64_t *lo = c->lo + depth * (c->k + 1), *hi = c->hi + depth * (c->k + 1);
    int64_t p = 0, candidate = 0;
    for (const int32_t *j = c->nbr + b * c->k, *end = j + c->k; j < end && *j >= 0; j++) {
        if (!((c->key[*j] > key) & (c->first[*j] <= stop) & (c->last[*j] >= start))) continue;
        int64_t o = c->off[*j] >= 0 ? c->off[*j] : place(c, *j, depth + 1), at = p++;
        while (at > 0 && lo[at - 1] > o) { lo[at] = lo[at - 1]; hi[at] = hi[at - 1]; at--; }
        lo[at] = o; hi[at] = o + c->size[*j];  /* the larger neighbours by offset */
    }
    for (int64_t i = 0; i < p; i++) {  /* the first gap that fits, else on top */
        if (lo[i] - candidate >= want) break;
        if (hi[i] > candidate) candidate = hi[i];
    }
    return c->off[b] = candidate;
}

/* size: [m, n] bytes before alignment (buffer-major); first, last: [m] scopes; row: [m], -1 or
   the row of last_varies [d, n] with the buffer's last scope per subnet; nbr: [m, k], -1
   padded: the buffers each one can meet in time in some subnet. total: [n] arena bytes.
   Returns 0; -1: no memory; -2: a size < 0 or >= MAX_SIZE (the sort key has no room). */
int tflm_greedy(int64_t n, int64_t m, int64_t k, int64_t align, const int64_t *size,
                const int64_t *first, const int64_t *last_fixed, const int32_t *row,
                const int64_t *last_varies, const int32_t *nbr, int64_t *total) {
    int64_t *work = malloc(sizeof(int64_t) * (size_t)(4 * m + 2 * (m + 1) * (k + 1)));
    if (!work) return -1;
    plan_t c = {nbr, k, first, work, work + m, work + 2 * m, work + 3 * m, work + 4 * m,
                work + 4 * m + (m + 1) * (k + 1)};
    const int64_t up = align - 1;  /* align is a power of 2 */
    for (int64_t r = 0; r < n; r++) {
        for (int64_t b = 0; b < m; b++) {
            int64_t s = (size[b * n + r] + up) & ~up;
            if (s < 0 || s >= MAX_SIZE) { free(work); return -2; }
            c.size[b] = s;
            c.key[b] = s > 0 ? (s << INDEX_BITS) | b : -1;  /* size, then the later-added */
            c.off[b] = -1;
            c.last[b] = row[b] < 0 ? last_fixed[b] : last_varies[row[b] * n + r];
        }
        int64_t arena = 0;
        for (int64_t b = 0; b < m; b++) {
            if (c.size[b] == 0) continue;
            int64_t top = (c.off[b] >= 0 ? c.off[b] : place(&c, b, 0)) + c.size[b];
            if (top > arena) arena = top;
        }
        total[r] = arena;
    }
    free(work);
    return 0;
}
""".replace("INDEX_BITS", str(_INDEX_BITS)).replace("MAX_SIZE", f"((int64_t)1 << {_SIZE_BITS})")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "supernet"


@functools.lru_cache(maxsize=1)
def load() -> ctypes.CDLL | None:
    """The compiled kernel (built on first use, then cached on disk), or None where it cannot
    be built or ``SUPERNET_NO_NATIVE`` is set to a non-empty value other than 0."""
    if os.environ.get("SUPERNET_NO_NATIVE", "0") not in ("", "0"):
        return None
    where = f"{sys.platform}-{platform.machine()}"
    digest = hashlib.sha256(f"{_SOURCE}{where}".encode()).hexdigest()[:16]
    lib = _cache_dir() / f"tflm_greedy-{digest}.so"
    try:
        if not lib.exists():
            lib.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
                src, out = Path(tmp) / "tflm_greedy.c", Path(tmp) / "tflm_greedy.so"
                src.write_text(_SOURCE)
                cc = os.environ.get("CC", "cc")
                subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(src)],
                               check=True, capture_output=True, timeout=60)  # fmt: skip
                os.replace(out, lib)  # atomic: a concurrent build loses nothing
        dll = ctypes.CDLL(str(lib))
    except (OSError, subprocess.SubprocessError):
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    dll.tflm_greedy.argtypes = [i64, i64, i64, i64] + [ptr] * 7
    dll.tflm_greedy.restype = ctypes.c_int
    return dll


def greedy_totals(
    size: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    row: np.ndarray,
    last_varies: np.ndarray,
    neighbours: np.ndarray,
    alignment: int = TFLM_ALIGNMENT_BYTES,
) -> np.ndarray | None:
    """Arena bytes of TFLM's greedy plan of each subnet, or None without the compiled kernel.

    Shapes: ``size`` ``[M, N]`` int64, bytes before rounding up to ``alignment`` (buffer-major;
    0 = not placed); ``first``, ``last`` ``[M]`` int64 scopes (``last`` where it is the same in
    every subnet); ``row`` ``[M]``: -1, or the row of ``last_varies`` ``[D, N]`` that holds the
    buffer's last scope per subnet; ``neighbours`` ``[M, K]``: for each buffer the buffers it
    meets in time in some subnet, -1 padded (a superset is fine) → ``[N]`` int64 bytes.

    Raises:
        MemoryError: the kernel could not allocate its work arrays.
    """
    dll = load()
    m, n = size.shape
    if dll is None or m >= 1 << _INDEX_BITS or alignment & (alignment - 1) or alignment < 1:
        return None
    i64, i32 = np.int64, np.int32
    kinds = ((size, i64), (first, i64), (last, i64), (row, i32), (last_varies, i64),
             (neighbours, i32))  # fmt: skip
    arrays = [np.ascontiguousarray(a, dtype=t) for a, t in kinds]
    total = np.zeros(n, dtype=i64)
    k = neighbours.shape[1]
    status = dll.tflm_greedy(n, m, k, alignment, *(a.ctypes.data for a in [*arrays, total]))
    if status == -1:
        raise MemoryError("the TFLM planner kernel could not allocate its work arrays")
    return total if status == 0 else None  # -2: a size the kernel does not take
