"""Active learning for the accuracy dataset: measure next the subnets the predictors disagree on.

An ensemble of accuracy predictors (:func:`supernet.predict.accuracy.fit_predictor`, each fit on
a bootstrap resample of the subnets measured so far with its own initialisation seed) scores a
large pool of random, not yet measured subnets; the ones whose predictions vary most across the
members are measured next, in rounds (query by committee with the ensemble's variance as the
disagreement, Seung et al., COLT'92; bootstrap ensembles for regression, Burbidge et al., IDEAL
2007). Written here: the candidates, the predictor and its training are this library's, and the
picking rule is a few lines of numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from supernet.errors import ConfigError
from supernet.predict.accuracy import AccuracyPredictor, fit_predictor
from supernet.space import ArchConfig, SearchSpace, encode

__all__ = ["candidate_pool", "ensemble_predictions", "fit_ensemble", "pick_disagreement",
           "propose_subnets"]  # fmt: skip


def fit_ensemble(
    configs: Sequence[ArchConfig],
    accuracy: np.ndarray,
    space: SearchSpace,
    *,
    members: int = 5,
    epochs: int = 300,
    seed: int = 0,
) -> list[AccuracyPredictor]:
    """``members`` predictors, member ``m`` fit on a bootstrap resample (drawn with
    ``seed + m``) of ``configs`` / ``accuracy`` (float [N], %) and initialised with ``seed + m``.

    Raises:
        ConfigError: ``members`` < 2, fewer than 3 subnets, or lengths that differ.
    """
    y = np.asarray(accuracy, dtype=np.float64).reshape(-1)
    if members < 2:
        raise ConfigError(f"members = {members!r} must be >= 2 (one predictor cannot disagree)")
    if len(configs) != y.size or y.size < 3:
        raise ConfigError(f"{len(configs)} configs and {y.size} accuracies: need >= 3 of each")
    x = encode(list(configs), space)
    ensemble = []
    for m in range(members):
        rows = np.random.default_rng(seed + m).integers(0, y.size, y.size)
        ensemble.append(fit_predictor(x[rows], y[rows], space, epochs=epochs, seed=seed + m))
    return ensemble


def ensemble_predictions(ensemble: Sequence[AccuracyPredictor], x: np.ndarray) -> np.ndarray:
    """Each member's predicted accuracy (%) of encoded configs. Shapes: [N, F] -> [M, N]."""
    with torch.inference_mode():
        return np.stack([p.predict_encoded(x) for p in ensemble])


def pick_disagreement(predictions: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` candidates whose predictions vary most across the members (the
    ensemble's variance), highest first; ties go to the lower index.

    Shapes: ``predictions`` float [M, N] (members x candidates) -> int64 [k].

    Raises:
        ConfigError: ``predictions`` is not [M >= 2, N], or ``k`` not in [1, N].
    """
    p = np.asarray(predictions, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 2:
        raise ConfigError(f"predictions must be [members >= 2, candidates], got {p.shape}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= p.shape[1]:
        raise ConfigError(f"k = {k!r} must be an integer in [1, {p.shape[1]}]")
    variance = p.var(axis=0)
    return np.lexsort((np.arange(p.shape[1]), -variance))[:k].astype(np.int64)


def candidate_pool(
    space: SearchSpace, size: int, exclude: Sequence[ArchConfig], rng: np.random.Generator
) -> list[ArchConfig]:
    """Up to ``size`` distinct random configs of ``space`` whose encoding (the subnet they select)
    is none of ``exclude``'s; at most ``20 * size`` draws.

    Raises:
        ConfigError: ``size`` < 1.
    """
    if size < 1:
        raise ConfigError(f"pool size = {size!r} must be >= 1")
    seen = {row.tobytes() for row in encode(list(exclude), space)} if exclude else set()
    pool: list[ArchConfig] = []
    for _ in range(20 * size):
        if len(pool) == size:
            break
        config = space.sample(rng)
        key = encode([config], space).tobytes()
        if key not in seen:
            seen.add(key)
            pool.append(config)
    return pool


def propose_subnets(
    configs: Sequence[ArchConfig],
    accuracy: np.ndarray,
    space: SearchSpace,
    k: int,
    *,
    pool: int = 2000,
    members: int = 5,
    epochs: int = 300,
    seed: int = 0,
) -> list[ArchConfig]:
    """The ``k`` subnets to measure next: among ``pool`` random unmeasured ones, those where an
    ensemble fit on ``configs`` / ``accuracy`` (float [N], %) disagrees most.

    Raises:
        ConfigError: from :func:`fit_ensemble` or :func:`pick_disagreement` (``k`` larger than
            the pool found).
    """
    ensemble = fit_ensemble(configs, accuracy, space, members=members, epochs=epochs, seed=seed)
    candidates = candidate_pool(space, pool, configs, np.random.default_rng(seed))
    x = encode(candidates, space)
    chosen = pick_disagreement(ensemble_predictions(ensemble, x), min(k, len(candidates)))
    return [candidates[i] for i in chosen]
