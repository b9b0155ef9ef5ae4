"""Once-for-All architecture encoding for accuracy predictors.

Reference: Once-for-All (arXiv 1908.09791), Sec. 3.4 and App. — each block slot contributes a
one-hot kernel size and a one-hot expand ratio (all zeros when the slot is inactive because of
depth), followed by a one-hot resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from supernet.space.batch import ConfigBatch, choice_index
from supernet.space.config import ArchConfig
from supernet.space.space import SearchSpace

__all__ = ["ENCODING_VERSION", "encode", "encode_batch", "encoding_size", "summary_map"]

ENCODING_VERSION = 1


def encoding_size(space: SearchSpace) -> int:
    """Number of features ``F`` of :func:`encode` for ``space``."""
    per_block = len(space.kernel_sizes) + len(space.expand_ratios)
    return space.num_blocks * per_block + len(space.resolutions)


def encode(configs: Sequence[ArchConfig] | ConfigBatch, space: SearchSpace) -> np.ndarray:
    """Encode configs as a float32 array (a :class:`ConfigBatch` goes to :func:`encode_batch`).

    Shapes: ``configs`` of length N -> ``[N, F]`` with ``F = encoding_size(space)``.

    Raises:
        ConfigError: when a config is not valid in ``space``.
    """
    if isinstance(configs, ConfigBatch):
        return encode_batch(configs, space)
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


def encode_batch(batch: ConfigBatch, space: SearchSpace) -> np.ndarray:
    """:func:`encode` for a :class:`ConfigBatch`, without a per-config Python loop (the same
    array, bit for bit).

    Shapes: N rows -> ``[N, F]`` float32 with ``F = encoding_size(space)``: per block slot a
    one-hot kernel size then a one-hot expand ratio (zeros when the slot is inactive), then a
    one-hot resolution.

    Raises:
        ConfigError: when a row is not valid in ``space`` (names the row, field, value, choices).

    Reference: Once-for-All (arXiv 1908.09791), Sec. 3.4 and App. (accuracy predictor input).
    """
    r_idx, k_idx, e_idx, _ = choice_index(batch, space)  # validates
    n, n_k, n_slots = len(batch), len(space.kernel_sizes), space.num_blocks
    per_block = n_k + len(space.expand_ratios)
    out = np.zeros((n, encoding_size(space)), dtype=np.float32)
    # Flat positions: row * F + slot * per_block + choice; inactive slots are left at zero.
    active = batch.active_mask(space)
    base = np.arange(n)[:, None] * out.shape[1] + np.arange(n_slots)[None, :] * per_block
    flat = out.reshape(-1)
    flat[(base + k_idx)[active]] = 1.0
    flat[(base + n_k + e_idx)[active]] = 1.0
    flat[np.arange(n) * out.shape[1] + n_slots * per_block + r_idx] = 1.0
    return out


def summary_map(space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
    """The linear map from the encoding to the summary features: ``s(x) = x @ matrix + offset``.

    Columns: the depth of each stage (its active slots, read from the slots' one-hot kernel size),
    then the resolution (the one-hot's value), each scaled so the space's smallest choice is 0 and
    its largest 1 (a space with one choice gives 0).

    Shapes: ``matrix`` float32 [F, S + 1] with ``F = encoding_size(space)`` and ``S`` stages;
    ``offset`` float32 [S + 1].
    """
    n_k, n_e = len(space.kernel_sizes), len(space.expand_ratios)
    per_block = n_k + n_e
    matrix = np.zeros((encoding_size(space), space.num_stages + 1), dtype=np.float32)
    offset = np.zeros(space.num_stages + 1, dtype=np.float32)
    low, span = min(space.depths), max(max(space.depths) - min(space.depths), 1)
    slot = 0
    for stage, max_depth in enumerate(space.stage_max_depths):
        for j in range(slot, slot + max_depth):
            matrix[j * per_block : j * per_block + n_k, stage] = 1.0 / span
        offset[stage] = -low / span
        slot += max_depth
    res = np.asarray(space.resolutions, dtype=np.float64)
    span = max(float(res.max() - res.min()), 1.0)
    matrix[slot * per_block :, -1] = (res - res.min()) / span
    return matrix, offset
