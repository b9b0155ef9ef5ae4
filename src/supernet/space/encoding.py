"""Once-for-All architecture encoding for accuracy predictors.

Reference: Once-for-All (arXiv 1908.09791), Sec. 3.4 and App. — each block slot contributes a
one-hot kernel size and a one-hot expand ratio (all zeros when the slot is inactive because of
depth), followed by a one-hot resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from supernet.space.config import ArchConfig
from supernet.space.space import SearchSpace

__all__ = ["ENCODING_VERSION", "encode", "encoding_size"]

ENCODING_VERSION = 1


def encoding_size(space: SearchSpace) -> int:
    """Number of features ``F`` of :func:`encode` for ``space``."""
    per_block = len(space.kernel_sizes) + len(space.expand_ratios)
    return space.num_blocks * per_block + len(space.resolutions)


def encode(configs: Sequence[ArchConfig], space: SearchSpace) -> np.ndarray:
    """Encode configs as a float32 array.

    Shapes: ``configs`` of length N -> ``[N, F]`` with ``F = encoding_size(space)``.

    Raises:
        ConfigError: when a config is not valid in ``space``.
    """
    n_k, n_e = len(space.kernel_sizes), len(space.expand_ratios)
    per_block = n_k + n_e
    out = np.zeros((len(configs), encoding_size(space)), dtype=np.float32)
    k_index = {k: i for i, k in enumerate(space.kernel_sizes)}
    e_index = {e: i for i, e in enumerate(space.expand_ratios)}
    r_index = {r: i for i, r in enumerate(space.resolutions)}
    res_offset = space.num_blocks * per_block
    for row, config in enumerate(configs):
        config.validate(space)
        for slot in config.active_blocks(space.stage_max_depths):
            base = slot * per_block
            out[row, base + k_index[config.kernel_size[slot]]] = 1.0
            out[row, base + n_k + e_index[config.expand_ratio[slot]]] = 1.0
        out[row, res_offset + r_index[config.resolution]] = 1.0
    return out
