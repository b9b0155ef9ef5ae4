"""TFLM's greedy memory plan (:mod:`supernet.cost.tflm_planner`) of many subnets of one space at
once: the same numbers as planning each subnet's graph (:func:`supernet.cost.mcu.mcu_cost` with
``planner="tflm"``; tested equal), vectorized over the configs.

Every subnet of a space is laid on one padded timeline: all block slots' operators in order,
an inactive slot's tensors with size 0 (never placed); likewise the converter's PAD before a
stride-2 conv is an operator of every subnet, of size 0 where that subnet's input is odd.
Inserting scopes in which nothing new is alive keeps which buffers meet in time, so each
subnet's plan is unchanged. Each subnet is then planned by the compiled kernel of
:mod:`supernet.cost.tflm_native`, looking only at the buffers that can ever meet each one (fixed
per batch, a few dozen in a chain of MBConv blocks); without a C compiler the numpy planner below
runs one step per buffer rank (largest first, as TFLM sorts) for all subnets together (same
numbers, ~50x slower).

Reference: TensorFlow Lite Micro (arXiv 2010.08678), Sec. 4.4; MCUNet (arXiv 2007.10319),
Sec. 3.2.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from supernet.cost.macs import SubnetShapes
from supernet.cost.tflm_native import greedy_totals
from supernet.cost.tflm_planner import TFLM_ALIGNMENT_BYTES, converter_pad_side

__all__ = ["tflm_sram_of_shapes"]

_FAR = np.int64(1) << 50  # an offset above any arena


class _Timeline:
    """Buffers of the padded graph: per buffer a size (``[N]`` or fixed), a first scope (the
    same in every subnet) and its consumers; scratch buffers after all tensors, as TFLM adds
    them. :meth:`arrays` resolves the last scopes: one per buffer, except for the few buffers
    whose last consumer differs between subnets (a block's input, consumed by the next active
    block; a tensor the converter's PAD consumes in some subnets only)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.scope = 0
        self.sizes: list[np.ndarray | int] = []
        self.first: list[int] = []
        self.masks: list[np.ndarray | None] = []  # where each tensor exists (None: everywhere)
        self.uses: list[tuple[np.ndarray | int, np.ndarray | None, int]] = []
        self.varies: set[int] = set()  # buffers whose last scope differs between subnets
        self.scratch: list[tuple[np.ndarray | int, int]] = []

    def tensor(self, size: np.ndarray | int, at: int, mask: np.ndarray | None = None) -> int:
        self.sizes.append(size)
        self.first.append(at)
        self.masks.append(mask)
        return len(self.sizes) - 1

    def op(self, size: np.ndarray | int, inputs: tuple[np.ndarray | int, ...],
           active: np.ndarray | None = None, scratch: np.ndarray | int = 0) -> int:  # fmt: skip
        """An operator in the next scope: consumes ``inputs`` (buffer indices, per config
        ``[N]`` or fixed) where ``active`` (``[N]`` bool; None: everywhere), produces one tensor
        (size 0 where inactive)."""
        self.scope += 1
        for t in inputs:
            self.uses.append((t, active, self.scope))
            if isinstance(t, np.ndarray):
                self.varies.update(np.unique(t).tolist())
            elif active is not None and self.masks[t] is not active:
                self.varies.add(t)  # (where a tensor is absent its last scope does not matter)
        if np.any(scratch):
            self.scratch.append((_masked(scratch, active), self.scope))
        return self.tensor(_masked(size, active), self.scope, active)

    def conv(self, size: np.ndarray | int, x: np.ndarray | int, act: str,
             active: np.ndarray | None = None) -> int:  # fmt: skip
        y = self.op(size, (x,), active)
        return self.op(size, (y,), active) if act == "h_swish" else y

    def arrays(self) -> _Buffers:
        """The buffers in TFLM's add order (see :class:`_Buffers`)."""
        n, m = self.n, len(self.sizes) + len(self.scratch)
        size = np.empty((m, n), dtype=np.int64)
        for b, s in enumerate(self.sizes + [s for s, _ in self.scratch]):
            size[b] = s
        first = np.array(self.first + [at for _, at in self.scratch], dtype=np.int64)
        last = first.copy()
        varies = sorted(self.varies)
        row = np.full(m, -1, dtype=np.int32)
        row[varies] = np.arange(len(varies))
        last_varies = np.repeat(first[varies, None], n, axis=1)
        rows = np.arange(n)
        for t, active, at in self.uses:  # in scope order: the last consumer's scope stays
            if isinstance(t, np.ndarray):
                r = row[t] if active is None else row[t[active]]
                last_varies[r, rows if active is None else rows[active]] = at
            elif row[t] < 0:
                last[t] = at
            elif active is None:
                last_varies[row[t]] = at
            else:
                last_varies[row[t], active] = at
        return _Buffers(size, first, last, row, last_varies)


class _Buffers(NamedTuple):
    """Buffers of many subnets' plans. ``size`` ``[M, N]`` int64 bytes before alignment (0: not
    placed); ``first`` ``[M]`` scope; ``last`` ``[M]`` last scope where it is the same in every
    subnet; ``row`` ``[M]`` int32: -1, or the row of ``last_varies`` ``[D, N]`` holding the
    buffer's last scope per subnet."""

    size: np.ndarray
    first: np.ndarray
    last: np.ndarray
    row: np.ndarray
    last_varies: np.ndarray

    def full_last(self) -> np.ndarray:
        """Last scope of every buffer in every subnet, ``[M, N]``."""
        last = np.repeat(self.last[:, None], self.size.shape[1], axis=1)
        varies = np.flatnonzero(self.row >= 0)
        last[varies] = self.last_varies[self.row[varies]]
        return last


def _masked(x: np.ndarray | int, active: np.ndarray | None) -> np.ndarray | int:
    return x if active is None else np.where(active, x, 0)


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
    cur: np.ndarray | int = x  # the buffer holding each subnet's current activation
    acts = [st.act for st in sp.stages for _ in range(st.max_depth)]
    strides = [st.stride if i == 0 else 1 for st in sp.stages for i in range(st.max_depth)]
    for s in range(sp.num_blocks):
        on_mask = sh.active[:, s]
        on = None if on_mask.all() else on_mask
        in_area, out_area = sh.in_size[:, s] ** 2, sh.out_size[:, s] ** 2
        mid, se = sh.mid_channels[:, s], sh.se_mid_channels[:, s]
        e = g.conv(in_area * mid, cur, acts[s], on)
        if strides[s] == 2:  # the converter's PAD before a stride-2 depthwise conv, if any
            side = converter_pad_side(sh.in_size[:, s], sh.kernel_size[:, s], 2) * on_mask
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
        cur = out if on is None else np.where(on_mask, out, cur)
    final_area = sh.final_size**2
    x = g.conv(final_area * sp.final_expand_width, cur, sp.head_act)
    x = g.op(sp.final_expand_width, (x,), scratch=4 * sp.final_expand_width)
    x = g.conv(sp.feature_mix_width, x, sp.head_act)
    logits = g.op(sp.num_classes, (x,))
    g.uses.append((logits, None, g.scope))  # the graph output lives to the end
    return g


def _neighbours(buffers: _Buffers) -> np.ndarray:
    """For each buffer the buffers it meets in time in some subnet, ``[M, K]`` int64, padded with
    M (a dummy)."""
    first, m = buffers.first, len(buffers.first)
    hi = buffers.last.copy()
    varies = np.flatnonzero(buffers.row >= 0)
    hi[varies] = buffers.last_varies.max(axis=1, initial=-1)[buffers.row[varies]]
    meets = (first[:, None] <= hi[None, :]) & (hi[:, None] >= first[None, :])
    np.fill_diagonal(meets, False)
    k = max(int(meets.sum(axis=1).max(initial=0)), 1)
    neighbours = np.full((m, k), m, dtype=np.int64)
    for b in range(m):
        idx = np.flatnonzero(meets[b])
        neighbours[b, : idx.size] = idx
    return neighbours


def _greedy(size: np.ndarray, first: np.ndarray, last: np.ndarray,
            neighbours: np.ndarray) -> np.ndarray:  # fmt: skip
    """TFLM's greedy placement of every subnet's buffers at once in numpy, one step per buffer
    rank (the fallback of the compiled kernel, :mod:`supernet.cost.tflm_native`); arena bytes
    per subnet ``[N]``. Inputs as :func:`~supernet.cost.tflm_native.greedy_totals` takes them,
    ``neighbours`` padded with M."""
    m, n = size.shape
    k = neighbours.shape[1]
    rows = np.arange(n)
    # A dummy buffer M: never placed, pads the neighbour lists.
    size = np.concatenate([size.T, np.zeros((n, 1), np.int64)], axis=1)
    first = np.broadcast_to(np.append(first, 0), (n, m + 1))
    last = np.concatenate([last.T, np.full((n, 1), -1, np.int64)], axis=1)
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
    ``tflm`` SRAM of :mod:`supernet.cost.mcu`): the compiled kernel of
    :mod:`supernet.cost.tflm_native` where it builds, else the numpy planner (same numbers)."""
    if len(shapes.resolution) == 0:
        return np.zeros(0, dtype=np.int64)
    buffers = _timeline(shapes).arrays()
    neighbours = _neighbours(buffers)
    total = greedy_totals(*buffers, np.where(neighbours == len(neighbours), -1, neighbours))
    if total is None:
        size = -(-buffers.size // TFLM_ALIGNMENT_BYTES) * TFLM_ALIGNMENT_BYTES
        total = _greedy(size, buffers.first, buffers.full_last(), neighbours)
    return total.astype(np.int64)
