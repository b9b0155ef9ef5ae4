"""How well any accuracy predictor could score against noisy labels: the noise ceiling.

A subnet's measured validation accuracy is its true accuracy plus measurement noise from the
finite validation set. No predictor that sees only the architecture can learn that noise, so
scored against the measured labels even a perfect predictor has an RMSE equal to the noise's
standard deviation and a Kendall τ below 1. Two estimates of the noise:

* split-half (:func:`noise_ceiling`): each subnet measured on two disjoint halves of the
  validation images (``a``, ``b``, in points). The true accuracy cancels in ``a - b``, so the
  label ``(a + b) / 2`` carries noise of variance ``var(a - b) / 4`` (variance over subnets, the
  shared difficulty offset of the halves removed with the mean).
* per image (:func:`paired_noise_variance`): from each subnet's per-image correctness, the
  variance of two subnets' accuracy difference is their disagreement variance over the image
  count (a paired binomial); half its mean over pairs is one subnet's share.

The ceiling then follows from a normal model: truth ``T ~ N(., s²)`` with ``s²`` the labels'
variance minus the noise's, label ``T + e`` with ``e ~ N(0, σ²)``; the perfect predictor's RMSE
is ``σ`` and its Kendall τ is ``(2/π) arcsin(ρ)`` with ``ρ = s / sqrt(s² + σ²)`` (Greiner's
relation for the bivariate normal; the study in ``benches/predictor_study.py`` simulated the same
model). Written here: no library computes this for a NAS accuracy dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from supernet.errors import ConfigError

__all__ = [
    "NoiseCeiling",
    "ceiling_from_noise",
    "halves_noise_ceiling",
    "label_noise",
    "noise_ceiling",
    "paired_noise_variance",
]


@dataclass(frozen=True)
class NoiseCeiling:
    """What a perfect predictor would score against the labels (all in accuracy points).

    ``noise_std``: one label's measurement noise; ``label_std``: the labels' spread over subnets;
    ``split_half_tau``: Kendall τ between the two halves' accuracies (nan without halves);
    ``rmse`` and ``kendall_tau``: the perfect predictor's expected scores (normal model).
    """

    subnets: int
    noise_std: float
    label_std: float
    split_half_tau: float
    rmse: float
    kendall_tau: float


def ceiling_from_noise(labels: np.ndarray, noise_var: float) -> tuple[float, float]:
    """``(rmse, kendall_tau)`` of a perfect predictor against ``labels`` [N] (points) whose
    measurement noise has variance ``noise_var`` (points²), under the module's normal model.

    Raises:
        ConfigError: fewer than 3 labels, or a negative or non-finite ``noise_var``.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    if labels.size < 3:
        raise ConfigError(f"the noise ceiling needs >= 3 subnets, got {labels.size}")
    if not math.isfinite(noise_var) or noise_var < 0:
        raise ConfigError(f"noise_var = {noise_var!r} must be a finite number >= 0")
    true_var = max(float(labels.var(ddof=1)) - noise_var, 0.0)
    total = true_var + noise_var
    rho = math.sqrt(true_var / total) if total > 0 else 1.0
    return math.sqrt(noise_var), 2.0 / math.pi * math.asin(min(rho, 1.0))


def noise_ceiling(half_a: np.ndarray, half_b: np.ndarray) -> NoiseCeiling:
    """The split-half noise ceiling of labels ``(half_a + half_b) / 2``.

    Shapes: ``half_a``, ``half_b`` float [N]: each subnet's accuracy (points) on two disjoint,
    equal-sized halves of the validation images (even and odd image indices).

    Raises:
        ConfigError: shapes differ, fewer than 3 subnets, or a non-finite value.
    """
    a = np.asarray(half_a, dtype=np.float64).reshape(-1)
    b = np.asarray(half_b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ConfigError(f"half accuracies of {a.size} and {b.size} subnets; need one pair each")
    if a.size < 3:
        raise ConfigError(f"the noise ceiling needs >= 3 subnets, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ConfigError("half accuracies must be finite")
    labels = 0.5 * (a + b)
    noise_var = float(np.var(a - b, ddof=1)) / 4.0
    rmse, tau = ceiling_from_noise(labels, noise_var)
    split_tau = float(stats.kendalltau(a, b).statistic)
    return NoiseCeiling(a.size, math.sqrt(noise_var), float(labels.std(ddof=1)), split_tau,
                        rmse, tau)  # fmt: skip


def halves_noise_ceiling(halves: np.ndarray, *, min_subnets: int = 10) -> NoiseCeiling | None:
    """:func:`noise_ceiling` over the rows of ``halves`` that hold both half accuracies, or
    ``None`` when fewer than ``min_subnets`` do (too few to estimate the noise).

    Shapes: ``halves`` float [N, 2] (even, odd; NaN where a subnet has none), as
    :attr:`supernet.predict.AccuracyDataset.half_accuracy`.

    Raises:
        ConfigError: ``halves`` is not [N, 2], or ``min_subnets`` < 3.
    """
    h = np.asarray(halves, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] != 2:
        raise ConfigError(f"halves must be [subnets, 2] (even, odd), got {h.shape}")
    if min_subnets < 3:
        raise ConfigError(f"min_subnets = {min_subnets!r} must be >= 3")
    ok = ~np.isnan(h).any(axis=1)
    if int(ok.sum()) < min_subnets:
        return None
    return noise_ceiling(h[ok, 0], h[ok, 1])


def label_noise(half_a: np.ndarray, half_b: np.ndarray) -> np.ndarray:
    """Each subnet's own estimate of its label's measurement noise (points), from its halves.

    ``|d - mean(d)| / 2`` with ``d = half_a - half_b``: the deviation of one subnet's half
    difference from the shared difficulty offset, scaled to the label ``(a + b) / 2``. One draw
    per subnet, so each value is rough (its expectation is ``sqrt(2 / pi)`` = 0.80 of the noise
    std), but its root mean square over the subnets is :func:`noise_ceiling`'s ``noise_std``
    (up to ``(N - 1) / N``). Used for the error bars of the predictor plot. NaN halves give NaN.

    Shapes: ``half_a``, ``half_b`` float [N] -> float64 [N].

    Raises:
        ConfigError: the shapes differ.
    """
    a = np.asarray(half_a, dtype=np.float64).reshape(-1)
    b = np.asarray(half_b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ConfigError(f"half accuracies of {a.size} and {b.size} subnets; need one pair each")
    d = a - b
    ok = np.isfinite(d)
    offset = float(d[ok].mean()) if ok.any() else 0.0
    return np.abs(d - offset) / 2.0


def paired_noise_variance(correct: np.ndarray) -> float:
    """One subnet's accuracy noise variance (points²) from per-image correctness.

    Shapes: ``correct`` bool/0-1 [S, I]: subnet s classified image i correctly. For each pair of
    subnets the variance of their per-image difference over ``I`` images is the variance of
    their accuracy difference (a paired binomial); half its mean over the pairs is one subnet's
    share. Moved here from ``benches/predictor_study.py``.

    Raises:
        ConfigError: fewer than 2 subnets or no image.
    """
    c = np.asarray(correct, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 2 or c.shape[1] < 1:
        raise ConfigError(f"correct must be [subnets >= 2, images >= 1], got {c.shape}")
    i, j = np.triu_indices(c.shape[0], 1)
    pair_var = np.array([np.var(c[x] - c[y]) for x, y in zip(i, j, strict=True)])
    return 0.5 * float(pair_var.mean()) / c.shape[1] * 1e4
