"""Active learning: the picker takes the candidates the ensemble disagrees on most."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from supernet.errors import ConfigError
from supernet.predict.active import (
    candidate_pool,
    ensemble_predictions,
    fit_ensemble,
    pick_disagreement,
    propose_subnets,
)
from supernet.space import encode, get_space


def test_picks_the_max_variance_candidates_of_a_hand_made_ensemble():
    # 3 members x 6 candidates; variances: c0 0, c1 ~0.67 (1 apart), c2 ~6 (3 apart), c3 0,
    # c4 ~6 (the same spread as c2, shifted), c5 ~0.02
    predictions = np.array([
        [85.0, 85.0, 82.0, 90.0, 70.0, 88.0],
        [85.0, 86.0, 85.0, 90.0, 73.0, 88.1],
        [85.0, 84.0, 88.0, 90.0, 76.0, 88.3],
    ])  # fmt: skip
    assert pick_disagreement(predictions, 1).tolist() == [2]  # tie with 4: the lower index
    assert pick_disagreement(predictions, 3).tolist() == [2, 4, 1]
    assert sorted(pick_disagreement(predictions, 6).tolist()) == list(range(6))
    with pytest.raises(ConfigError, match=r"k = 7 must be an integer in \[1, 6\]"):
        pick_disagreement(predictions, 7)
    with pytest.raises(ConfigError, match=r"predictions must be \[members >= 2"):
        pick_disagreement(predictions[:1], 1)


def test_ensemble_members_differ_and_disagree_most_away_from_the_data():
    space = get_space("mbv3-tiny")
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(12)]
    acc = np.array([80.0 + sum(c.depth) / 2 for c in configs])
    ensemble = fit_ensemble(configs, acc, space, members=3, epochs=40, seed=0)
    x = encode(configs, space)
    p = ensemble_predictions(ensemble, x)
    assert p.shape == (3, 12) and not np.allclose(p[0], p[1])
    # the members' parameters come from their own seeds, not from the global RNG
    state = torch.random.get_rng_state()
    again = fit_ensemble(configs, acc, space, members=3, epochs=40, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_allclose(ensemble_predictions(again, x), p, rtol=1e-5)
    with pytest.raises(ConfigError, match="members = 1 must be >= 2"):
        fit_ensemble(configs, acc, space, members=1)


def test_pool_and_proposals_skip_what_is_measured():
    space = get_space("mbv3-tiny")
    rng = np.random.default_rng(1)
    measured = [space.sample(rng) for _ in range(8)]
    pool = candidate_pool(space, 50, measured, np.random.default_rng(1))  # same draws first
    keys = {row.tobytes() for row in encode(measured, space)}
    assert len(pool) == 50 and not keys & {row.tobytes() for row in encode(pool, space)}
    acc = np.array([85.0 + c.resolution / 10 for c in measured])
    picks = propose_subnets(measured, acc, space, 4, pool=30, members=2, epochs=20)
    assert len(picks) == 4 and not keys & {row.tobytes() for row in encode(picks, space)}
