"""Vectorized sampling, mutation and crossover of :class:`ConfigBatch` rows.

The operators draw from the same distributions as :meth:`SearchSpace.sample`,
:meth:`SearchSpace.mutate` and :meth:`SearchSpace.crossover` (not the same random streams), for
all rows at once: a generation of Once-for-All's evolutionary search is a few numpy calls.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4 and App.
"""

from __future__ import annotations

import numpy as np

from supernet.errors import ConfigError
from supernet.space.batch import ConfigBatch, choice_arrays
from supernet.space.space import SearchSpace

__all__ = ["crossover_batch", "mutate_batch", "sample_batch"]


def _uniform_index(rng: np.random.Generator, n_choices: int, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform integers in ``[0, n_choices)`` (``floor(u * n)``; faster than ``rng.integers`` on
    small arrays)."""
    return (rng.random(shape) * n_choices).astype(np.int64)


def _check_prob(label: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"mutate {label} = {p} must be in [0, 1]")


def sample_batch(space: SearchSpace, n: int, rng: np.random.Generator) -> ConfigBatch:
    """``n`` uniformly random configs (every choice independent), drawn from ``rng`` only — the
    distribution of :meth:`SearchSpace.sample`.

    Shapes: → a batch of ``n`` rows.

    Raises:
        ConfigError: when ``n`` is negative.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.4 (random initial population).
    """
    if n < 0:
        raise ConfigError(f"number of configs n = {n} must be >= 0")
    res, ks, er, dp = choice_arrays(space)
    b, s = space.num_blocks, space.num_stages
    return ConfigBatch._trusted(
        res[_uniform_index(rng, len(res), (n,))],
        ks[_uniform_index(rng, len(ks), (n, b))],
        er[_uniform_index(rng, len(er), (n, b))],
        dp[_uniform_index(rng, len(dp), (n, s))],
    )


def mutate_batch(
    batch: ConfigBatch,
    space: SearchSpace,
    rng: np.random.Generator,
    *,
    prob: float = 0.1,
    resolution_prob: float = 0.5,
) -> ConfigBatch:
    """Redraw each block's kernel size and expand ratio together on one coin of probability
    ``prob`` (both resampled, independently of each other, when it lands), each stage's depth
    with probability ``prob`` and each resolution with probability ``resolution_prob``,
    independently per row (a resampled value may equal the old one) — the distribution of
    :meth:`SearchSpace.mutate`, for all rows at once.

    Shapes: N rows → N rows.

    Raises:
        ConfigError: when a probability is outside [0, 1].

    Reference: Once-for-All evolutionary search (arXiv 1908.09791, Sec. 3.4; its released
    ``EvolutionFinder``: mutate_prob 0.1, resolution_mutate_prob 0.5; one coin per block for
    kernel size and expand ratio as in its ``MobileNetArchEncoder.mutate_arch``).
    """
    _check_prob("prob", prob)
    _check_prob("resolution_prob", resolution_prob)
    res, ks, er, dp = choice_arrays(space)

    def resample(values: np.ndarray, choices: np.ndarray, mask: np.ndarray) -> np.ndarray:
        fresh = choices[_uniform_index(rng, len(choices), values.shape)]
        return np.where(mask, fresh, values)

    block_coin = rng.random(batch.kernel_size.shape) < prob  # one coin: kernel and expand
    return ConfigBatch._trusted(
        resample(batch.resolution, res, rng.random(batch.resolution.shape) < resolution_prob),
        resample(batch.kernel_size, ks, block_coin),
        resample(batch.expand_ratio, er, block_coin),
        resample(batch.depth, dp, rng.random(batch.depth.shape) < prob),
    )


def crossover_batch(a: ConfigBatch, b: ConfigBatch, rng: np.random.Generator) -> ConfigBatch:
    """Uniform crossover row by row: every value of child ``i`` comes from ``a[i]`` or ``b[i]``
    with equal probability — the distribution of :meth:`SearchSpace.crossover`.

    Shapes: two batches of N rows (same block slots and stages) → N rows.

    Raises:
        ConfigError: when the batches' shapes differ.

    Reference: Once-for-All evolutionary search (arXiv 1908.09791, Sec. 3.4).
    """
    for name in ConfigBatch.FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if x.shape != y.shape:
            raise ConfigError(f"crossover of batches with {name} shapes {x.shape} and {y.shape}")

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.where(rng.random(x.shape) < 0.5, x, y)

    return ConfigBatch._trusted(*(mix(getattr(a, n), getattr(b, n)) for n in ConfigBatch.FIELDS))
