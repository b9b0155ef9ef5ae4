"""Constrained evolutionary search: finds known optima, respects constraints, fails clearly."""

from __future__ import annotations

import numpy as np
import pytest
from tests.search.helpers import every_config, linear_score, macs_of

from supernet.errors import ConfigError, SearchError
from supernet.search import Constraint, EvolutionConfig, evolutionary_search, random_search
from supernet.space import ConfigBatch, encode_batch, encoding_size, get_space

FAST = EvolutionConfig(population=100, generations=100)


@pytest.fixture
def tiny():
    return get_space("mbv3-tiny")


def test_defaults_are_once_for_all_s():
    c = EvolutionConfig()
    assert (c.population, c.generations, c.parent_ratio, c.mutation_ratio) == (100, 500, 0.25, 0.5)
    assert (c.mutate_prob, c.resolution_mutate_prob) == (0.1, 0.5)
    assert (c.num_parents, c.num_mutations) == (25, 50)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("population", 0, "population = 0 must be an integer >= 1"),
        ("generations", -1, "generations = -1 must be an integer >= 0"),
        ("mutate_prob", 1.5, r"mutate_prob = 1.5 must be in \[0, 1\]"),
        ("parent_ratio", 0.0, "parent_ratio = 0.0 must be > 0"),
        ("max_tries", 0, "max_tries = 0 must be an integer >= 1"),
    ],
)
def test_bad_settings_are_named(field, value, message):
    with pytest.raises(ConfigError, match=message):
        EvolutionConfig(**{field: value})


@pytest.mark.parametrize("seed", [1, 4, 8])
def test_finds_the_brute_force_optimum_under_a_macs_limit(small_space, seed):
    """A linear score of the encoding, MACs at most their median: the best of all 2,048
    configs (enumerated) is found."""
    everything = every_config(small_space)
    score, costs = linear_score(small_space, seed, bias=0.5), macs_of(small_space)
    all_macs = costs(everything)
    limit = float(np.median(all_macs))
    feasible_scores = score(everything)[all_macs <= limit]
    assert (score(everything) > feasible_scores.max()).any()  # the limit binds
    result = evolutionary_search(small_space, score, [Constraint("macs", costs, limit)],
                                 EvolutionConfig(generations=100, seed=seed))  # fmt: skip
    assert result.best_score == pytest.approx(feasible_scores.max())
    assert costs(ConfigBatch.from_configs([result.best], small_space))[0] <= limit
    assert result.best_costs["macs"] <= limit


def best_linear_score(space, weights):
    """Optimum of a linear encoding score without constraints: per slot the best kernel and
    expand ratio, per stage the best depth, the best resolution."""
    nk, per_block = len(space.kernel_sizes), len(space.kernel_sizes) + len(space.expand_ratios)
    blocks = weights[: space.num_blocks * per_block].reshape(space.num_blocks, per_block)
    slot_best = blocks[:, :nk].max(1) + blocks[:, nk:].max(1)
    total, start = weights[space.num_blocks * per_block :].max(), 0
    for max_depth in space.stage_max_depths:
        prefix = np.cumsum(slot_best[start : start + max_depth])
        total += max(prefix[d - 1] for d in space.depths)
        start += max_depth
    return total


def test_gets_close_to_the_optimum_on_mbv3_tiny_and_beats_random_search(tiny):
    weights = np.random.default_rng(0).normal(size=encoding_size(tiny))
    score = lambda b: encode_batch(b, tiny) @ weights  # noqa: E731
    optimum = best_linear_score(tiny, weights)
    evolved = evolutionary_search(tiny, score, [], FAST)
    randomly = random_search(tiny, score, [], n=evolved.candidates_scored, seed=0)
    assert evolved.best_score == pytest.approx(optimum)
    assert randomly.best_score < evolved.best_score
    assert evolved.candidates_scored == randomly.candidates_scored == 100 + 100 * 100


def test_every_scored_and_returned_config_meets_every_constraint(tiny):
    costs = macs_of(tiny)
    smallest, largest = (costs(ConfigBatch.from_configs([c], tiny))[0]
                         for c in (tiny.smallest(), tiny.largest()))  # fmt: skip
    limit = smallest + 0.2 * (largest - smallest)
    constraints = [Constraint("macs", costs, limit), Constraint("res", lambda b: b.resolution, 28)]
    seen: list[ConfigBatch] = []

    def score(batch):
        seen.append(batch)
        return encode_batch(batch, tiny).sum(axis=1)  # bigger is better: pushes on the limit

    result = evolutionary_search(tiny, score, constraints, EvolutionConfig(generations=30))
    scored = ConfigBatch.concat(seen)
    assert (costs(scored) <= limit).all() and (scored.resolution <= 28).all()
    assert (costs(result.population) <= limit).all()
    assert result.best_costs["macs"] <= limit and result.best.resolution <= 28
    assert result.best_costs["macs"] > 0.9 * limit  # the search did push toward the limit
    assert result.candidates_checked > result.candidates_scored  # some children were redrawn


def test_whole_populations_are_scored_in_one_call(tiny):
    sizes = []

    def score(batch):
        sizes.append(len(batch))
        return batch.resolution.astype(float)

    progress = []
    config = EvolutionConfig(population=40, generations=7)
    result = evolutionary_search(tiny, score, [], config, progress=lambda *a: progress.append(a))
    assert sizes == [40] * 8
    assert result.candidates_scored == 40 * 8
    assert [p[:2] for p in progress] == [(g, 7) for g in range(1, 8)]
    assert len(result.history) == 8 and (np.diff(result.history) >= 0).all()
    assert result.history[-1] == result.best_score == max(tiny.resolutions)


def test_seeded_and_reproducible(tiny):
    score = linear_score(tiny, 3)
    constraints = [Constraint("macs", macs_of(tiny), 4e6)]
    config = EvolutionConfig(generations=20, seed=5)
    a = evolutionary_search(tiny, score, constraints, config)
    b = evolutionary_search(tiny, score, constraints, config)
    c = evolutionary_search(tiny, score, constraints, EvolutionConfig(generations=20, seed=6))
    assert a.best == b.best and np.array_equal(a.history, b.history)
    assert a.population.equals(b.population)
    assert not a.population.equals(c.population)


def test_an_impossible_constraint_names_the_cheapest_cost(tiny):
    costs = macs_of(tiny)
    smallest = costs(ConfigBatch.from_configs([tiny.smallest()], tiny))[0]
    with pytest.raises(SearchError) as info:
        evolutionary_search(tiny, linear_score(tiny, 0), [Constraint("macs", costs, smallest - 1)],
                            EvolutionConfig(generations=2, max_tries=3))  # fmt: skip
    msg = str(info.value)
    assert "no subnet of space 'mbv3-tiny' meets all constraints" in msg
    assert f"macs <= {int(smallest) - 1}: cheapest found {int(smallest)}" in msg
    assert "raise the limits" in msg


def test_a_limit_only_the_smallest_meets_still_gives_a_population(tiny):
    """Uniform sampling cannot find these few subnets; bounded tries then fall back to the
    smallest subnet and its feasible mutants instead of looping forever."""
    costs = macs_of(tiny)
    smallest = costs(ConfigBatch.from_configs([tiny.smallest()], tiny))[0]
    config = EvolutionConfig(population=20, generations=3, max_tries=5)
    result = evolutionary_search(tiny, linear_score(tiny, 0), [Constraint("macs", costs, smallest)],
                                 config)  # fmt: skip
    assert len(result.population) == 20 + 5
    assert (costs(result.population) == smallest).all()


def test_a_score_of_the_wrong_shape_is_an_error(tiny):
    with pytest.raises(SearchError, match=r"objective 'score' returned shape \(\) for 100"):
        evolutionary_search(tiny, lambda b: 1.0, [], EvolutionConfig(generations=1))


def test_nan_scores_rank_last(tiny):
    def score(batch):
        out = batch.resolution.astype(float)
        out[batch.resolution == max(tiny.resolutions)] = np.nan
        return out

    result = evolutionary_search(tiny, score, [], EvolutionConfig(generations=5))
    assert result.best.resolution == sorted(tiny.resolutions)[-2]


def test_ties_go_to_children_so_neutral_mutations_drift(tiny):
    """With equal scores the newest candidates rank first (the reference's reversed sort does
    the same): a flat score must not freeze the search on the first initial subnet, which is
    what keeping parents ahead of equal children did."""

    def flat(batch: ConfigBatch) -> np.ndarray:
        return np.zeros(len(batch))

    initial = evolutionary_search(tiny, flat, [], EvolutionConfig(population=20, generations=0))
    later = evolutionary_search(tiny, flat, [], EvolutionConfig(population=20, generations=3))
    assert initial.best == initial.population.to_configs()[0]
    assert later.best != initial.best
    # The returned population lists the last children (20) ahead of their parents (5).
    assert len(later.population) == 25
