"""Random search baseline."""

from __future__ import annotations

import numpy as np
import pytest
from tests.search.helpers import every_config, linear_score, macs_of

from supernet.errors import ConfigError, SearchError
from supernet.search import Constraint, random_search
from supernet.space import ConfigBatch, get_space


def test_scores_n_feasible_subnets_and_returns_the_best():
    tiny = get_space("mbv3-tiny")
    costs = macs_of(tiny)
    constraints = [Constraint("macs", costs, 3e6)]
    result = random_search(tiny, linear_score(tiny, 0), constraints, n=700, seed=1, batch_size=256)
    assert result.candidates_scored == 700 == len(result.population)
    assert result.candidates_checked > 700  # infeasible draws were dropped
    assert (costs(result.population) <= 3e6).all()
    scores = linear_score(tiny, 0)(result.population)
    assert result.best_score == pytest.approx(scores.max())
    assert result.best == result.population[int(np.argmax(scores))]
    assert (np.diff(result.population_scores) <= 0).all()
    again = random_search(tiny, linear_score(tiny, 0), constraints, n=700, seed=1, batch_size=256)
    assert again.population.equals(result.population)
    assert len(result.history) == 3 and (np.diff(result.history) >= 0).all()


def test_small_space_random_search_finds_a_feasible_optimum_with_enough_draws(small_space):
    everything = every_config(small_space)
    score, costs = linear_score(small_space, 1), macs_of(small_space)
    limit = float(np.quantile(costs(everything), 0.5))
    best = score(everything)[costs(everything) <= limit].max()
    result = random_search(small_space, score, [Constraint("macs", costs, limit)], n=3000)
    assert result.best_score == pytest.approx(best)


def test_errors():
    tiny = get_space("mbv3-tiny")
    with pytest.raises(ConfigError, match="n = 0 must be >= 1"):
        random_search(tiny, linear_score(tiny, 0), n=0)
    costs = macs_of(tiny)
    smallest = costs(ConfigBatch.from_configs([tiny.smallest()], tiny))[0]
    with pytest.raises(SearchError, match=f"cheapest found {int(smallest)}"):
        random_search(tiny, linear_score(tiny, 0), [Constraint("macs", costs, 1.0)], n=10)
