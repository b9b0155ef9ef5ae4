"""TFLM's greedy memory plan (:mod:`supernet.cost.tflm_planner`) of many subnets of one space at
once: the same numbers as planning each subnet's graph (:func:`supernet.cost.mcu.mcu_cost` with
``planner="tflm"``; tested equal), vectorized over the configs.

Every subnet of a space is laid on one padded timeline: all block slots' operators in order,
an inactive slot's tensors with size 0 (never placed); likewise the converter's PAD before a
stride-2 conv is an operator of every subnet, of size 0 where that subnet's input is odd.
Inserting scopes in which nothing new is alive keeps which buffers meet in time, so each
subnet's plan is unchanged. The greedy planner
then runs one step per buffer rank (largest first, as TFLM sorts) for all subnets together; at
each step only the buffers that can ever meet the placed one (fixed per batch, a few dozen in a
chain of MBConv blocks) are looked at.

Reference: TensorFlow Lite Micro (arXiv 2010.08678), Sec. 4.4; MCUNet (arXiv 2007.10319),
Sec. 3.2.
"""

from __future__ import annotations

import numpy as np

from supernet.cost.macs import SubnetShapes
from supernet.cost.tflm_planner import TFLM_ALIGNMENT_BYTES, converter_pad_side

__all__ = ["tflm_sram_of_shapes"]

_FAR = np.int64(1) << 50  # an offset above any arena


class _Timeline:
    """Buffers of the padded graph: per buffer a size column ``[N]``, a first scope and a last
    scope ``[N]`` (filled in as consumers appear); scratch buffers after all tensors, as TFLM
    adds them."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.scope = 0
        self.sizes: list[np.ndarray] = []
        self.first: list[int] = []
        self.last: list[np.ndarray] = []
        self.scratch: list[tuple[np.ndarray, int]] = []

    def tensor(self, size: np.ndarray | int, at: int) -> int:
        self.sizes.append(np.broadcast_to(np.asarray(size, dtype=np.int64), (self.n,)))
        self.first.append(at)
        self.last.append(np.full(self.n, at, dtype=np.int64))
        return len(self.sizes) - 1

    def op(self, size: np.ndarray | int, inputs: tuple[np.ndarray | int, ...],
           active: np.ndarray | bool = True, scratch: np.ndarray | int = 0) -> int:  # fmt: skip
        """An operator in the next scope: consumes ``inputs`` (buffer indices, per config or
        fixed) where ``active``, produces one tensor (size 0 where inactive)."""
        self.scope += 1
        active = np.broadcast_to(np.asarray(active, dtype=bool), (self.n,))
        for t in inputs:
            cols = np.broadcast_to(np.asarray(t, dtype=np.int64), (self.n,))
            for col in np.unique(cols[active]).tolist():
                rows = active & (cols == col)
                self.last[col][rows] = self.scope
        if np.any(scratch):
            self.scratch.append((np.where(active, scratch, 0), self.scope))
        return self.tensor(np.where(active, size, 0), self.scope)

    def conv(self, size: np.ndarray | int, x: np.ndarray | int, act: str,
             active: np.ndarray | bool = True) -> int:  # fmt: skip
        y = self.op(size, (x,), active)
        return self.op(size, (y,), active) if act == "h_swish" else y

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(aligned sizes ``[N, M]``, first ``[N, M]``, last ``[N, M]``) in TFLM's add order."""
        sizes = self.sizes + [s for s, _ in self.scratch]
        first = self.first + [at for _, at in self.scratch]
        last = self.last + [np.full(self.n, at, dtype=np.int64) for _, at in self.scratch]
        size = np.stack(sizes, axis=1)
        size = -(-size // TFLM_ALIGNMENT_BYTES) * TFLM_ALIGNMENT_BYTES
        return size, np.broadcast_to(np.array(first), size.shape), np.stack(last, axis=1)


def _timeline(sh: SubnetShapes) -> _Timeline:
    """The padded int8 graph of :func:`supernet.cost.mcu._graph` for every subnet of ``sh``."""
    sp, n = sh.space, len(sh.resolution)
    g = _Timeline(n)
    stem_area = sh.stem_size**2
    image = g.tensor(sh.resolution**2 * sp.input_channels, 0)
    side = converter_pad_side(sh.resolution, 3, sp.stem_stride)  # the converter's PAD, if any
    pad = g.op(side**2 * sp.input_channels, (image,), side > 0)
    x = g.conv(stem_area * sp.stem_width, np.where(side > 0, pad, image), sp.head_act)
    # the fixed first block: depthwise (ReLU fused), project, add where it keeps the stem width
    t = g.op(stem_area * sp.stem_width, (x,))
    y = g.op(stem_area * sp.first_block_width, (t,))
    x = g.op(stem_area * sp.first_block_width, (y, x)) if sh.first_block_residual else y
    cur = np.full(n, x, dtype=np.int64)  # the buffer holding each subnet's current activation
    acts = [st.act for st in sp.stages for _ in range(st.max_depth)]
    strides = [st.stride if i == 0 else 1 for st in sp.stages for i in range(st.max_depth)]
    for s in range(sp.num_blocks):
        on = sh.active[:, s]
        in_area, out_area = sh.in_size[:, s] ** 2, sh.out_size[:, s] ** 2
        mid, se = sh.mid_channels[:, s], sh.se_mid_channels[:, s]
        e = g.conv(in_area * mid, cur, acts[s], on)
        if strides[s] == 2:  # the converter's PAD before a stride-2 depthwise conv, if any
            side = np.where(on, converter_pad_side(sh.in_size[:, s], sh.kernel_size[:, s], 2), 0)
            pad = g.op(side**2 * mid, (e,), side > 0)
            e = np.where(side > 0, pad, e)
        d = g.conv(out_area * mid, e, acts[s], on)
        if sh.use_se[s]:
            v = g.op(mid, (d,), on, scratch=4 * mid)
            v = g.op(se, (v,), on)
            v = g.op(mid, (v,), on)
            v = g.op(mid, (v,), on)
            d = g.op(out_area * mid, (d, v), on)
        out = g.op(out_area * sh.out_channels[s], (d,), on)
        if sh.residual[s]:
            out = g.op(out_area * sh.out_channels[s], (out, cur), on)
        cur = np.where(on, out, cur)
    final_area = sh.final_size**2
    x = g.conv(final_area * sp.final_expand_width, cur, sp.head_act)
    x = g.op(sp.final_expand_width, (x,), scratch=4 * sp.final_expand_width)
    x = g.conv(sp.feature_mix_width, x, sp.head_act)
    logits = g.op(sp.num_classes, (x,))
    g.last[logits][:] = g.scope  # the graph output lives to the end
    return g


def _greedy(size: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """TFLM's greedy placement of every row's buffers at once; arena bytes per row ``[N]``."""
    n, m = size.shape
    rows = np.arange(n)
    # A dummy buffer M: never placed, pads the neighbour lists.
    size = np.concatenate([size, np.zeros((n, 1), np.int64)], axis=1)
    first = np.concatenate([first, np.zeros((n, 1), np.int64)], axis=1)
    last = np.concatenate([last, np.full((n, 1), -1, np.int64)], axis=1)
    lo, hi = first.min(axis=0), last.max(axis=0)
    meets = (lo[:m, None] <= hi[None, :m]) & (hi[:m, None] >= lo[None, :m])
    np.fill_diagonal(meets, False)
    k = max(int(meets.sum(axis=1).max()), 1)
    neighbours = np.full((m, k), m, dtype=np.int64)
    for b in range(m):
        idx = np.flatnonzero(meets[b])
        neighbours[b, : idx.size] = idx
    # TFLM's order: largest first; among equal sizes the later-added buffer first.
    order = np.lexsort((np.broadcast_to(-np.arange(m), (n, m)), -size[:, :m]), axis=1)
    offset = np.full((n, m + 1), -1, dtype=np.int64)
    flat_offset, flat_size = offset.reshape(-1), size.reshape(-1)
    flat_first, flat_last = first.reshape(-1), last.reshape(-1)
    base = rows * (m + 1)
    before = np.zeros((n, k + 1), np.int64)  # max end of the buffers below each next one
    gaps = np.full((n, k + 1), _FAR)  # offsets of the alive neighbours by offset, then a sentinel
    steps = int((size[:, :m] > 0).sum(axis=1).max(initial=0))
    for step in range(steps):
        b = base + order[:, step]  # flat index of each row's buffer of this rank
        want, b_first, b_last = flat_size[b], flat_first[b], flat_last[b]
        cand = base[:, None] + neighbours[order[:, step]]  # [N, K] flat
        c_off = flat_offset[cand]
        alive = (c_off >= 0) & (flat_first[cand] <= b_last[:, None])
        alive &= flat_last[cand] >= b_first[:, None]
        c_off = np.where(alive, c_off, _FAR)
        by_offset = np.argsort(c_off, axis=1)  # ties: either order gives the same offset
        c_end = np.where(alive, c_off + flat_size[cand], 0)
        gaps[:, :k] = np.take_along_axis(c_off, by_offset, axis=1)
        np.maximum.accumulate(np.take_along_axis(c_end, by_offset, axis=1), axis=1,
                              out=before[:, 1:])  # fmt: skip
        fits = gaps - before >= want[:, None]  # the gap below each next buffer is big enough
        placed_at = before[rows, np.argmax(fits, axis=1)]
        todo = want > 0
        flat_offset[b[todo]] = placed_at[todo]
    ends = np.where(offset[:, :m] >= 0, offset[:, :m] + size[:, :m], 0)
    return ends.max(axis=1)


def tflm_sram_of_shapes(shapes: SubnetShapes) -> np.ndarray:
    """int8 arena bytes TFLM's greedy planner needs for each subnet, ``[N]`` int64 (the
    ``tflm`` SRAM of :mod:`supernet.cost.mcu`)."""
    if len(shapes.resolution) == 0:
        return np.zeros(0, dtype=np.int64)
    size, first, last = _timeline(shapes).arrays()
    return _greedy(size, first, last).astype(np.int64)
