"""Batched cost objectives of a search space for device budgets, and random subnets under
budgets (the baseline a search must beat).

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4 (constrained search on
batched cost predictors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from supernet.cost import (
    LatencyTable,
    SubnetShapes,
    costs_of_shapes,
    flash_of_shapes,
    sram_of_shapes,
)
from supernet.space import ArchConfig, ConfigBatch, SearchSpace, sample_batch

__all__ = ["CONSTRAINT_OBJECTIVES", "cheaper_random", "objectives_for"]

CONSTRAINT_OBJECTIVES = {
    "max_latency_ms": "latency_ms",
    "max_macs": "macs",
    "max_peak_memory_bytes": "peak_memory_bytes",
    "max_model_size_bytes": "model_size_bytes",
    "max_sram_bytes": "sram_bytes",
    "max_flash_bytes": "flash_bytes",
}
"""Device constraint name → the objective it limits (fp32 tensors and weights, as exported;
``sram_bytes`` / ``flash_bytes`` are int8, :mod:`supernet.cost.mcu`)."""


def objectives_for(
    space: SearchSpace,
    table: LatencyTable | None,
    *,
    memory_planner: str = "tflm",
    latency_scale: float | None = None,
) -> dict[str, Callable]:
    """Batched cost objectives, ``ConfigBatch [N] -> [N]``, named as in ``CONSTRAINT_OBJECTIVES``:
    MACs, and peak activation memory and model size in bytes of fp32 tensors and weights (as
    :func:`supernet.cost.macs`, :func:`supernet.cost.peak_memory_bytes` and
    :func:`supernet.cost.model_size_bytes` give them); ``sram_bytes`` (int8 peak activation
    memory under ``memory_planner``) and ``flash_bytes`` (int8), as
    :func:`supernet.cost.mcu_batch.sram_bytes` / :func:`~supernet.cost.mcu_batch.flash_bytes`.

    ``latency_ms`` is present only with a latency table: its predictions times
    ``latency_scale`` (the machine's speed drift since the table was built, see
    :func:`supernet.cost.lut_validate.measure_speed_ratio`; None: unscaled).
    """
    # The search checks each constraint of a device on the same batch in turn, and MACs, params
    # and peak memory all derive from the subnets' shapes: build those once per batch (a
    # ConfigBatch is immutable, so the last one is kept by identity).
    last: dict[str, Any] = {}

    def shapes(batch: ConfigBatch | Sequence[ArchConfig]) -> SubnetShapes:
        if not isinstance(batch, ConfigBatch):
            return SubnetShapes.from_configs(batch, space)
        if last.get("batch") is not batch:
            last.update(batch=batch, shapes=SubnetShapes.from_configs(batch, space))
        return last["shapes"]

    def cost(key: str) -> Callable:
        return lambda b: costs_of_shapes(shapes(b), (key,))[key]

    objectives: dict[str, Callable] = {
        key: cost(key) for key in ("macs", "peak_memory_bytes", "model_size_bytes")
    }
    objectives["sram_bytes"] = lambda b: sram_of_shapes(shapes(b), memory_planner)
    objectives["flash_bytes"] = lambda b: flash_of_shapes(shapes(b))
    if table is not None:
        factor = 1.0 if latency_scale is None else latency_scale
        objectives["latency_ms"] = lambda b: factor * table.predict(b)
    return objectives


def cheaper_random(
    space: SearchSpace,
    objectives: dict[str, Callable],
    limits: dict[str, float],
    k: int,
    seed: int,
) -> list[ArchConfig]:
    """Up to ``k`` random subnets at or below ``limits`` on every named objective."""
    rng = np.random.default_rng(seed)
    found: list[ArchConfig] = []
    for _ in range(10):  # bounded: 10 draws of 5,000 subnets
        batch = sample_batch(space, 5000, rng)
        ok = np.ones(len(batch), dtype=bool)
        for name, limit in limits.items():
            ok &= objectives[name](batch) <= limit
        found.extend(batch[np.flatnonzero(ok)[: k - len(found)]].to_configs())
        if len(found) >= k:
            break
    return found
