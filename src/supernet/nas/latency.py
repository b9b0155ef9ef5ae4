"""Differentiable expected latency of the over-parameterized network, from a latency table.

``E[LAT] = base + Σ_slots Σ_ops p_op · lat_op`` (paper Eq. 6-7), where ``lat_op`` is the table's
entry for that MBConv at that slot and resolution (skip: 0 ms) and ``base`` the stem and head.
Terms are the table's own, so for one-hot probabilities ``E[LAT]`` equals
:meth:`~supernet.cost.lut.LatencyTable.predict` of the derived arch config:
``lat_op = scale * (entry - call_overhead_ms)`` and ``base = scale * (stem + head - 2 *
call_overhead_ms) + overhead_ms`` (see :mod:`supernet.cost.lut`).

The loss adds the latency term in one of the reference's two forms (``ref`` = the target
latency): ``"add#linear"`` — ``CE + λ (E[LAT] − ref) / ref``: the paper's additive form
``CE + λ₂ E[LAT]`` (Eq. 4 without the weight decay, which the optimizer applies) with
``λ₂ = λ / ref``; ``"mul#log"`` — ``a · CE · (log E[LAT] / log ref)^β`` (reference default for
its GPU search).

Reference: ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332), Sec. 3.3 (Eq. 4, 6, 7);
released code ``search/nas_manager.py`` (``add_regularization_loss``) and
``search/models/super_nets/super_proxyless.py`` (``expected_latency``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from supernet.cost.lut import LatencyTable, block_key, feature_sizes, head_key, slot_specs, stem_key
from supernet.errors import ConfigError, LatencyTableError
from supernet.nas.mixed_op import SKIP
from supernet.nas.network import candidate_ops, skippable_slots
from supernet.space import SearchSpace

__all__ = ["LATENCY_LOSSES", "LatencyModel", "latency_loss"]

LATENCY_LOSSES = ("add#linear", "mul#log")


@dataclass(frozen=True)
class LatencyModel:
    """Per-slot op latencies of one space at one resolution.

    Attributes:
        op_ms: ``[num_slots, len(candidate_ops(space))]`` float64, ms per op (skip: 0; an op a
            slot lacks: NaN).
        base_ms: stem + head + the table's fitted overhead, ms.
        resolution: input resolution the entries are for.
    """

    op_ms: torch.Tensor
    base_ms: float
    resolution: int

    @classmethod
    def from_table(cls, table: LatencyTable, space: SearchSpace, resolution: int) -> LatencyModel:
        """Read the entries ``space`` needs at ``resolution`` from ``table``.

        Raises:
            LatencyTableError: the table was built for another space (or another definition of
                it), or lacks an entry (names the key).
            ConfigError: ``resolution`` is not one of the space's.
        """
        table.check_space(space)
        if resolution not in space.resolutions:
            raise ConfigError(f"resolution = {resolution} is not allowed in space "
                              f"{space.name!r}; choose from {space.resolutions}")  # fmt: skip
        ops, skippable = candidate_ops(space), skippable_slots(space)
        _, slot_hw, head_hw = feature_sizes(space, resolution)
        c = table.call_overhead_ms

        def entry(key: str) -> float:
            if key not in table.entries:
                raise LatencyTableError(
                    f"latency table for space {space.name!r} ({table.runtime}) has no entry "
                    f"{key!r}; rebuild it"
                )
            return table.entries[key][0]

        op_ms = torch.full((space.num_blocks, len(ops)), math.nan, dtype=torch.float64)
        for s, spec in enumerate(slot_specs(space)):
            for o, op in enumerate(ops):
                if op is SKIP:
                    op_ms[s, o] = 0.0 if skippable[s] else math.nan
                else:
                    key = block_key(spec, slot_hw[s], op[0], op[1])
                    op_ms[s, o] = table.scale * (entry(key) - c)
        stem = entry(stem_key(space, resolution))
        head = entry(head_key(space, head_hw))
        base = table.scale * (stem + head - 2 * c) + table.overhead_ms
        return cls(op_ms, base, resolution)

    def expected_ms(self, probs: torch.Tensor) -> torch.Tensor:
        """``E[LAT]`` in ms (a scalar tensor, differentiable in ``probs``).

        Shapes: ``probs`` ``[num_slots, num_ops]`` (0 where a slot lacks an op) → ``[]``.
        """
        lat = torch.nan_to_num(self.op_ms, nan=0.0).to(probs.device, probs.dtype)
        return self.base_ms + (probs * lat).sum()

    def bounds_ms(self) -> tuple[float, float]:
        """``(fastest, slowest)`` path latency in ms: every slot at its fastest / slowest op."""
        lo = torch.nan_to_num(self.op_ms, nan=math.inf).min(1).values.sum()
        hi = torch.nan_to_num(self.op_ms, nan=-math.inf).max(1).values.sum()
        return self.base_ms + float(lo), self.base_ms + float(hi)

    def check_target(self, target_ms: float) -> None:
        """Refuse a target no path can meet or every path meets.

        Raises:
            ConfigError: ``target_ms`` not a finite number inside ``[fastest, slowest]``; the
                message names both bounds (ms).
        """
        lo, hi = self.bounds_ms()
        ok = isinstance(target_ms, int | float) and not isinstance(target_ms, bool)
        if not ok or not math.isfinite(target_ms) or not lo <= target_ms <= hi:
            raise ConfigError(
                f"target latency {target_ms!r} ms is outside what the space can reach at "
                f"resolution {self.resolution}: fastest path {lo:.4f} ms, slowest path "
                f"{hi:.4f} ms (from the latency table); choose a target between them"
            )


def latency_loss(
    ce: torch.Tensor,
    expected_ms: torch.Tensor,
    target_ms: float,
    *,
    kind: str = "add#linear",
    lam: float = 0.1,
    alpha: float = 0.2,
    beta: float = 0.3,
) -> torch.Tensor:
    """The architecture loss: cross-entropy with the latency term (module doc).

    Defaults are the reference's (``lambda`` 0.1; ``alpha`` 0.2, ``beta`` 0.3).

    Raises:
        ConfigError: an unknown ``kind``; ``"mul#log"`` with a target <= 1 ms (its
            ``log(ref)`` would be <= 0).
    """
    if kind == "add#linear":
        return ce + lam * (expected_ms - target_ms) / target_ms
    if kind == "mul#log":
        if target_ms <= 1.0:
            raise ConfigError(f"latency loss 'mul#log' divides by log(target) and needs a target "
                              f"> 1 ms; got {target_ms} ms (use 'add#linear')")  # fmt: skip
        return alpha * ce * (torch.log(expected_ms) / math.log(target_ms)) ** beta
    raise ConfigError(f"latency loss {kind!r} is not known; choose from {LATENCY_LOSSES}")
