"""All analytic costs of many arch configs in one pass (the layer shapes are built once)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from supernet.cost.macs import SubnetShapes
from supernet.cost.memory import FP32_BYTES, peak_elements
from supernet.errors import ConfigError
from supernet.space import ArchConfig, ConfigBatch, SearchSpace

__all__ = ["COST_KEYS", "cost_table", "costs_of_shapes"]

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
    return costs_of_shapes(SubnetShapes.from_configs(configs, space))


def costs_of_shapes(shapes: SubnetShapes, keys: Sequence[str] = COST_KEYS) -> dict[str, np.ndarray]:
    """The costs named in ``keys`` (a subset of :data:`COST_KEYS`, as in :func:`cost_table`) of
    subnets whose layer shapes are already built; each of MACs, params and the peak is computed
    at most once, and only when a key needs it.

    Shapes: ``shapes`` of N subnets → each value ``[N]`` int64.

    Raises:
        ConfigError: a key is not one of :data:`COST_KEYS` (names it and the known keys).
    """
    unknown = [k for k in keys if k not in COST_KEYS]
    if unknown:
        raise ConfigError(f"unknown cost {unknown[0]!r}; known costs: {', '.join(COST_KEYS)}")
    out: dict[str, np.ndarray] = {}
    if "macs" in keys:
        out["macs"] = shapes.macs()
    if {"params", "model_size_bytes", "model_size_bytes_int8"} & set(keys):
        n_params = shapes.params()
        out.update(params=n_params, model_size_bytes=n_params * FP32_BYTES,
                   model_size_bytes_int8=n_params)  # fmt: skip
    if {"peak_memory_bytes", "peak_memory_bytes_int8"} & set(keys):
        peak = peak_elements(shapes)
        out.update(peak_memory_bytes=peak * FP32_BYTES, peak_memory_bytes_int8=peak)
    return {k: out[k] for k in keys}
