"""NSGA-II Pareto fronts (pymoo): feasible, non-dominated, reproducible."""

from __future__ import annotations

import numpy as np
import pytest
from tests.search.helpers import every_config, linear_score, macs_of

from supernet.errors import ConfigError, SearchError
from supernet.search import Constraint, nsga2_search, pareto_front_mask
from supernet.space import get_space


@pytest.fixture
def tiny():
    return get_space("mbv3-tiny")


def test_front_is_feasible_non_dominated_and_consistent(tiny):
    score, costs = linear_score(tiny, 0), macs_of(tiny)
    constraints = [Constraint("macs", costs, 4e6)]
    front = nsga2_search(tiny, score, {"macs": costs}, constraints, population=40, generations=15)
    assert front.objective_names == ("score", "macs")
    assert len(front) >= 5 and front.objectives.shape == (len(front), 2)
    assert (costs(front.configs) <= 4e6).all()
    np.testing.assert_allclose(front.objectives[:, 0], score(front.configs))
    np.testing.assert_allclose(front.objectives[:, 1], costs(front.configs))
    assert pareto_front_mask(front.objectives, [True, False]).all()
    assert (np.diff(front.objectives[:, 0]) <= 0).all()  # best score first
    assert len({c.to_json() for c in front.configs}) == len(front)  # no duplicates
    assert front.candidates_scored >= 40 * 15 * 0.5


def test_seeded_two_costs_and_close_to_the_true_front(small_space):
    everything = every_config(small_space)
    score, costs = linear_score(small_space, 2), macs_of(small_space)
    res = lambda b: b.resolution.astype(float)  # noqa: E731
    kwargs = {"population": 60, "generations": 30, "seed": 3}
    a = nsga2_search(small_space, score, {"macs": costs, "res": res}, **kwargs)
    b = nsga2_search(small_space, score, {"macs": costs, "res": res}, **kwargs)
    assert a.configs.equals(b.configs) and np.array_equal(a.objectives, b.objectives)
    assert a.objectives.shape[1] == 3
    # Every point found is on the true front of all 2,048 configs.
    f = np.column_stack([score(everything), costs(everything), res(everything)])
    true_front = f[pareto_front_mask(f, [True, False, False])]
    for point in a.objectives:
        assert np.isclose(true_front, point).all(axis=1).any()


def test_errors(tiny):
    score, costs = linear_score(tiny, 0), macs_of(tiny)
    with pytest.raises(ConfigError, match="one or two costs"):
        nsga2_search(tiny, score, {})
    with pytest.raises(ConfigError, match="one or two costs"):
        nsga2_search(tiny, score, {"a": costs, "b": costs, "c": costs})
    with pytest.raises(SearchError, match="macs <= 10: cheapest found"):
        nsga2_search(tiny, score, {"macs": costs}, [Constraint("macs", costs, 10)],
                     population=10, generations=2)  # fmt: skip
