"""All analytic costs of many arch configs in one pass (the layer shapes are built once)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from supernet.cost.macs import SubnetShapes
from supernet.cost.memory import peak_elements
from supernet.space import ArchConfig, ConfigBatch, SearchSpace

__all__ = ["COST_KEYS", "cost_table"]

COST_KEYS = (
    "macs",
    "params",
    "peak_memory_bytes",
    "peak_memory_bytes_int8",
    "model_size_bytes",
    "model_size_bytes_int8",
)


def cost_table(
    configs: Sequence[ArchConfig] | ConfigBatch, space: SearchSpace
) -> dict[str, np.ndarray]:
    """MACs, params, peak activation memory and model size of each config's subnet.

    Keys (:data:`COST_KEYS`): ``macs`` (batch 1), ``params``, ``peak_memory_bytes`` (fp32
    activations), ``peak_memory_bytes_int8``, ``model_size_bytes`` (fp32 weights),
    ``model_size_bytes_int8``. The same numbers as :func:`~supernet.cost.macs.macs`,
    :func:`~supernet.cost.macs.params`, :func:`~supernet.cost.memory.peak_memory_bytes` and
    :func:`~supernet.cost.memory.model_size_bytes`.

    Shapes: N configs (a list or a :class:`ConfigBatch`) → each value ``[N]`` int64 (MACs,
    parameters, bytes).

    Raises:
        ConfigError: for the first config that is not valid in ``space``.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 4 (MACs); MCUNet, arXiv 2007.10319, Sec. 3
    (peak SRAM, flash).
    """
    shapes = SubnetShapes.from_configs(configs, space)
    n_params, peak = shapes.params(), peak_elements(shapes)
    return {
        "macs": shapes.macs(),
        "params": n_params,
        "peak_memory_bytes": peak * 4,
        "peak_memory_bytes_int8": peak,
        "model_size_bytes": n_params * 4,
        "model_size_bytes_int8": n_params,
    }
