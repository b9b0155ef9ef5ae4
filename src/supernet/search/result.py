"""What a single-objective search returns, and the helpers its searches share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from supernet.search.constraints import ObjectiveFn, objective_values
from supernet.space.family import ConfigRows

__all__ = ["ProgressFn", "SearchResult", "score_batch"]

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, what)``: called after each generation (evolution) or batch (random)."""


def score_batch(score_fn: ObjectiveFn, batch: ConfigRows) -> np.ndarray:
    """``score_fn(batch)`` as float64 ``[N]``; NaN scores become ``-inf`` (ranked last).

    Raises:
        SearchError: when ``score_fn`` does not return one number per config.
    """
    scores = objective_values("score", score_fn, batch)
    return np.where(np.isnan(scores), -np.inf, scores)


@dataclass(frozen=True, eq=False)
class SearchResult:
    """The best subnet a search found (highest score among those meeting every constraint).

    Attributes:
        best: the best config (of the space's family).
        best_score: its score (in the score function's unit, e.g. predicted accuracy in %).
        best_costs: each constraint's value for ``best`` (name → value in the constraint's unit).
        history: best score so far, ``[G + 1]`` float64: after the initial population, then after
            each generation (evolution); after each scored batch (random search).
        candidates_scored: configs passed to the score function (Once-for-All counts the same:
            initial population + population × generations).
        candidates_checked: configs whose constraints were evaluated (rejected ones included).
        seconds: wall time of the search.
        population: the space's batch of the final population (evolution) or of every scored
            config (random), best first.
        population_scores: their scores, ``[len(population)]`` float64.
    """

    best: Any
    best_score: float
    best_costs: dict[str, float]
    history: np.ndarray
    candidates_scored: int
    candidates_checked: int
    seconds: float
    population: ConfigRows
    population_scores: np.ndarray

    @property
    def candidates_per_second(self) -> float:
        """``candidates_scored / seconds``."""
        return self.candidates_scored / self.seconds if self.seconds > 0 else float("inf")
