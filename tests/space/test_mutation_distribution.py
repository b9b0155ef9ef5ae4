"""The mutation distribution of Once-for-All's evolutionary search (reference code,
``MobileNetArchEncoder.mutate_arch``): one coin per block redraws kernel size and expand ratio
together; depths and the resolution on their own coins."""

from __future__ import annotations

import numpy as np
import pytest

from supernet.space import ConfigBatch, get_space, mutate_batch

PROB = 0.2
N = 4000


def _rates(old_ks, old_er, new_ks, new_er, old_d, new_d):
    ks_moved, er_moved = new_ks != old_ks, new_er != old_er
    return ks_moved.mean(), er_moved.mean(), (ks_moved & er_moved).mean(), (new_d != old_d).mean()


def _check(space, rates):
    nk, ne, nd = len(space.kernel_sizes), len(space.expand_ratios), len(space.depths)
    ks, er, both, depth = rates
    # marginals: a value changes when its coin lands and the fresh draw differs
    assert ks == pytest.approx(PROB * (1 - 1 / nk), abs=0.015)
    assert er == pytest.approx(PROB * (1 - 1 / ne), abs=0.015)
    assert depth == pytest.approx(PROB * (1 - 1 / nd), abs=0.02)
    # one coin: both change together with probability p(1-1/nk)(1-1/ne), not p²(...)
    joint = PROB * (1 - 1 / nk) * (1 - 1 / ne)
    assert both == pytest.approx(joint, abs=0.012)
    assert both > 3 * PROB**2 * (1 - 1 / nk) * (1 - 1 / ne)


def test_mutate_redraws_kernel_and_expand_on_one_coin():
    space = get_space("mbv3-tiny")
    rng = np.random.default_rng(0)
    parent = space.smallest()
    kids = [space.mutate(parent, rng, prob=PROB, resolution_prob=0.0) for _ in range(N // 4)]
    ks = np.array([k.kernel_size for k in kids])
    er = np.array([k.expand_ratio for k in kids])
    d = np.array([k.depth for k in kids])
    assert all(k.resolution == parent.resolution for k in kids)
    rates = _rates(np.array(parent.kernel_size), np.array(parent.expand_ratio), ks, er,
                   np.array(parent.depth), d)  # fmt: skip
    _check(space, rates)


def test_mutate_batch_has_the_same_distribution():
    space = get_space("mbv3-tiny")
    rng = np.random.default_rng(1)
    parent = ConfigBatch.from_configs([space.smallest()] * N, space)
    kids = mutate_batch(parent, space, rng, prob=PROB, resolution_prob=1.0)
    rates = _rates(parent.kernel_size, parent.expand_ratio, kids.kernel_size, kids.expand_ratio,
                   parent.depth, kids.depth)  # fmt: skip
    _check(space, rates)
    n_res = len(space.resolutions)
    moved = (kids.resolution != parent.resolution).mean()
    assert moved == pytest.approx(1 - 1 / n_res, abs=0.03)
