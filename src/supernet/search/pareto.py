"""Pareto fronts: which points no other point beats in every objective.

Reference: Deb, Pratap, Agarwal, Meyarivan, "A fast and elitist multiobjective genetic algorithm:
NSGA-II", IEEE TEC 6(2), 2002 (Pareto dominance, Sec. II).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from supernet.errors import ConfigError

__all__ = ["pareto_front_mask"]

_CHUNK_ELEMENTS = 1 << 22  # bound on the [rows, N, M] comparison block


def pareto_front_mask(
    objectives: np.ndarray, maximize: bool | Sequence[bool] = False
) -> np.ndarray:
    """Which points are non-dominated.

    Point ``i`` is dominated when some ``j`` is at least as good in every objective and strictly
    better in one ("better" is larger where ``maximize`` is True, smaller elsewhere). Equal points
    do not dominate each other, so duplicates of a front point are all on the front. Rows with a
    NaN are never on the front.

    Shapes: ``objectives [N, M]`` (or ``[N]`` for one objective); ``maximize`` one bool or ``M``
    bools → ``[N]`` bool.

    Raises:
        ConfigError: when ``maximize`` does not give one flag per objective.

    Reference: Deb et al. 2002, NSGA-II, Sec. II (dominance).
    """
    f = np.asarray(objectives, dtype=np.float64)
    if f.ndim == 1:
        f = f[:, None]
    if f.ndim != 2:
        raise ConfigError(f"objectives must be [N, M], got shape {f.shape}")
    flags = np.asarray(maximize, dtype=bool)
    if flags.ndim == 0:
        flags = np.full(f.shape[1], bool(flags))
    if flags.shape != (f.shape[1],):
        raise ConfigError(f"maximize has {flags.size} flags for {f.shape[1]} objectives")
    f = np.where(flags[None, :], -f, f)  # minimize everything
    valid = ~np.isnan(f).any(axis=1)
    g = f[valid]
    n = len(g)
    dominated = np.zeros(n, dtype=bool)
    step = max(1, _CHUNK_ELEMENTS // max(1, n * f.shape[1]))
    for lo in range(0, n, step):
        block = g[lo : lo + step, None, :]  # [b, 1, M]: the points tested
        no_worse = (g[None, :, :] <= block).all(axis=2)  # [b, N]: j no worse than i everywhere
        better = (g[None, :, :] < block).any(axis=2)  # [b, N]: j strictly better somewhere
        dominated[lo : lo + step] = (no_worse & better).any(axis=1)
    mask = np.zeros(len(f), dtype=bool)
    mask[np.flatnonzero(valid)[~dominated]] = True
    return mask
