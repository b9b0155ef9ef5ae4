"""Constraints: building by name, feasibility, and the errors users see."""

from __future__ import annotations

import numpy as np
import pytest
from tests.search.helpers import macs_of

from supernet.errors import ConfigError, SearchError
from supernet.search import Constraint, build_constraints, constraint_values, feasible_mask
from supernet.search.constraints import no_feasible_subnet
from supernet.space import ConfigBatch, describe, get_space, sample_batch


@pytest.fixture
def tiny():
    return get_space("mbv3-tiny")


def test_build_constraints_pairs_limits_with_objectives(tiny):
    objectives = {"macs": macs_of(tiny), "resolution": lambda b: b.resolution}
    constraints = build_constraints({"resolution": 24, "macs": 3e6}, objectives)
    assert [(c.name, c.limit) for c in constraints] == [("resolution", 24.0), ("macs", 3e6)]
    batch = sample_batch(tiny, 300, np.random.default_rng(0))
    values = constraint_values(constraints, batch)
    expected = (batch.resolution <= 24) & (values["macs"] <= 3e6)
    np.testing.assert_array_equal(feasible_mask(constraints, batch), expected)
    assert 0 < expected.sum() < len(batch)
    assert feasible_mask([], batch).all()


def test_unknown_constraint_names_list_the_known_ones(tiny):
    objectives = {"macs": macs_of(tiny), "latency_ms": lambda b: b.resolution * 0.1}
    with pytest.raises(
        ConfigError, match=r"unknown constraint 'flops'; choose from \['latency_ms', 'macs'\]"
    ):
        build_constraints({"macs": 1e6, "flops": 2e6}, objectives)


@pytest.mark.parametrize("limit", [float("nan"), float("inf"), "5", True])
def test_limits_must_be_finite_numbers(limit):
    with pytest.raises(ConfigError, match="constraint macs limit"):
        Constraint("macs", lambda b: b.resolution, limit)


def test_nan_costs_are_infeasible_and_wrong_shapes_are_errors(tiny):
    batch = sample_batch(tiny, 4, np.random.default_rng(0))
    nan = Constraint("x", lambda b: np.full(len(b), np.nan), 1.0)
    assert not feasible_mask([nan], batch).any()
    column = Constraint("col", lambda b: np.zeros((len(b), 1)), 1.0)
    assert feasible_mask([column], batch).all()  # [N, 1] is accepted
    wrong = Constraint("wrong", lambda b: np.zeros(len(b) + 1), 1.0)
    with pytest.raises(SearchError, match=r"objective 'wrong' returned shape \(5,\) for 4 configs"):
        feasible_mask([wrong], batch)


def test_no_feasible_subnet_message_gives_the_cheapest_costs(tiny):
    costs = macs_of(tiny)
    smallest_macs = costs(ConfigBatch.from_configs([tiny.smallest()], tiny))[0]
    constraints = [
        Constraint("macs", costs, 1000),
        Constraint("resolution", lambda b: b.resolution, 99),
    ]
    batch = sample_batch(tiny, 50, np.random.default_rng(0))
    err = no_feasible_subnet(constraints, tiny, constraint_values(constraints, batch))
    msg = str(err)
    assert "no subnet of space 'mbv3-tiny' meets all constraints (50 sampled subnets" in msg
    assert f"macs <= 1000: cheapest found {int(smallest_macs)} (0 of 51 evaluated" in msg
    assert "resolution <= 99: cheapest found 20 (51 of 51" in msg
    assert f"the smallest subnet ({describe(tiny.smallest())}) has macs {int(smallest_macs)}" in msg
