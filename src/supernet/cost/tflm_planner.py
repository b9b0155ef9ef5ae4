"""TensorFlow Lite Micro's greedy memory planner, re-implemented to predict the size of the
non-persistent (activation) part of a TFLM tensor arena without running TFLM.

What TFLM does (tflite-micro ``micro_allocation_info.cc``, ``micro_allocator.cc`` and
``memory_planner/greedy_memory_planner.cc``; facts, not code, carried over):

- Lifetimes are counted in *allocation scopes*: the graph inputs are created at scope 0, operator
  ``i`` runs in scope ``i + 1``; a tensor is created by its producer and last used by its last
  consumer; graph outputs stay alive to the last scope. A scratch buffer an operator requests in
  ``Prepare`` lives exactly during that operator's scope.
- Every buffer's size is rounded up to the arena alignment, 16 bytes
  (``MicroArenaBufferAlignment``).
- Buffers are added in tensor order, then scratch buffers; the planner lists them from the last
  added to the first, then sorts by size, largest first, with a stable sort (so among equal sizes
  the later-added buffer comes first).
- Each buffer in that order goes to the lowest offset where it fits: walking the already placed
  buffers that overlap it in time, in order of offset, the first gap between the end of the ones
  passed so far and the next one that is at least its size; else after the last one.
- The arena needs ``max(offset + size)`` bytes for these buffers (``GetMaximumMemorySize``).

Persistent allocations (tensor structs, operator data, quantization parameters kept in the
arena) are not part of this plan; see :data:`supernet.cost.mcu.TFLM_PERSISTENT_BYTES`.

Reference: TensorFlow Lite Micro (David et al., MLSys'21, arXiv 2010.08678), Sec. 4.4 (memory
planning); MCUNet (arXiv 2007.10319), Sec. 3.2 compares TinyEngine's peak memory against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from supernet.errors import ConfigError

__all__ = [
    "TFLM_ALIGNMENT_BYTES",
    "Buffer",
    "align_up",
    "converter_pad_side",
    "greedy_plan",
    "live_high_water",
]

TFLM_ALIGNMENT_BYTES = 16
"""Arena alignment of every non-persistent buffer (TFLM ``MicroArenaBufferAlignment()``)."""


def converter_pad_side(size, kernel, stride):
    """Side of the explicit ``PAD`` output the converter (litert-torch) puts before a ``kernel``
    × ``kernel`` conv of ``stride`` on a ``size`` × ``size`` input, or 0 where it puts none.

    PyTorch pads ``k // 2`` on every side; TFLite's SAME padding pads ``max((ceil(H / s) − 1) s +
    k − H, 0)`` in total, the odd pixel at the end. They agree at stride 1 (odd ``k``) and at
    stride 2 on an odd input; at stride 2 on an even input they differ, so the converter writes
    ``PAD`` (to ``H + k − 1``, symmetric) and a VALID conv. Read from the ``.tflite`` files of
    ``benches.mcu_validate`` (docs/results/mcu-validation.md): e.g. 16×16×48, k 5, stride 2 →
    PAD 20×20×48; 10×10 → 5×5 and 7×7 → 4×4 at stride 2 have no PAD.

    Shapes: scalars or numpy arrays (broadcast) → the same shape, int.
    """
    needs = (np.asarray(stride) == 2) & (np.asarray(size) % 2 == 0) & (np.asarray(kernel) > 1)
    side = np.where(needs, np.asarray(size) + np.asarray(kernel) - 1, 0)
    return int(side) if side.ndim == 0 else side


def align_up(size: int, alignment: int = TFLM_ALIGNMENT_BYTES) -> int:
    """``size`` rounded up to a multiple of ``alignment`` (bytes)."""
    return -(-size // alignment) * alignment


@dataclass(frozen=True)
class Buffer:
    """One buffer the planner places: ``size`` in bytes (already aligned), alive from scope
    ``first`` to scope ``last`` inclusive."""

    size: int
    first: int
    last: int


def greedy_plan(buffers: Sequence[Buffer]) -> tuple[list[int], int]:
    """Offsets of ``buffers`` (in the order given = the order TFLM adds them) and the arena
    bytes they need, as TFLM's ``GreedyMemoryPlanner`` places them (see the module docstring).

    Shapes: M buffers → ``([M] offsets in bytes, total bytes)``; zero-size buffers are not
    placed (offset -1), as TFLM does not allocate them.

    Raises:
        ConfigError: a negative size or a buffer that ends before it starts.
    """
    for i, b in enumerate(buffers):
        if b.size < 0 or b.last < b.first:
            raise ConfigError(f"buffer {i} = {b} must have size >= 0 and last >= first")
    size = [b.size for b in buffers]
    first = [b.first for b in buffers]
    last = [b.last for b in buffers]
    ids = [i for i in range(len(buffers)) if size[i] > 0]
    order = sorted(ids, key=lambda i: (-size[i], -i))
    offsets = [-1] * len(buffers)
    placed: list[int] = []  # buffer ids in order of offset (equal offsets: in placing order)
    for i in order:
        want, start, stop = size[i], first[i], last[i]
        candidate = 0
        for j in placed:
            if first[j] > stop or start > last[j]:
                continue  # not alive at the same time
            if offsets[j] - candidate >= want:
                break  # the gap before this buffer is big enough
            end = offsets[j] + size[j]
            if end > candidate:
                candidate = end
        offsets[i] = candidate
        at = len(placed)
        while at > 0 and offsets[placed[at - 1]] > candidate:
            at -= 1
        placed.insert(at, i)
    total = max((offsets[i] + size[i] for i in ids), default=0)
    return offsets, total


def live_high_water(buffers: Sequence[Buffer], offsets: Sequence[int], scope: int) -> int:
    """The highest arena byte in use during ``scope``: ``max(offset + size)`` over the buffers
    alive then (0 when none)."""
    return max(
        (
            offsets[i] + b.size
            for i, b in enumerate(buffers)
            if b.size > 0 and b.first <= scope <= b.last
        ),
        default=0,
    )
