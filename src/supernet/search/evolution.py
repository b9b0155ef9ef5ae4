"""Constrained evolutionary search over a supernet's subnets, one score call per generation.

The algorithm is Once-for-All's (Cai et al., ICLR'20, arXiv 1908.09791, Sec. 3.4 and App.; its
released ``EvolutionFinder``), on whole populations at once:

1. the initial population is ``population`` uniformly random subnets that meet every constraint;
2. each generation keeps the best ``parent_ratio × population`` as parents and adds
   ``population`` children: ``mutation_ratio × population`` mutants of random parents (each
   choice resampled with ``mutate_prob``, the resolution with ``resolution_mutate_prob``) and the
   rest uniform crossovers of two random parents;
3. a child that breaks a constraint is redrawn from the same parent(s) before it is scored; the
   children of a generation are scored in one call of ``score_fn``.

Unlike the reference, rejection sampling is bounded (``max_tries`` draws per subnet): an
initial population that cannot be filled by uniform sampling is completed with mutants of the
feasible subnets found, a child that stays infeasible is a copy of its first parent, and a space
with no feasible subnet found at all raises :class:`~supernet.errors.SearchError` with the
cheapest value of each constraint. Candidate redraws are batched: each pending child gets several
draws at once (as many as the observed feasible rate calls for) and keeps the first feasible one,
which is the same distribution as drawing one at a time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from supernet.errors import ConfigError
from supernet.search.constraints import (
    Constraint,
    ObjectiveFn,
    constraint_values,
    feasible_mask,
    no_feasible_subnet,
)
from supernet.search.result import ProgressFn, SearchResult, score_batch
from supernet.space.family import ConfigRows, Space

__all__ = ["EvolutionConfig", "evolutionary_search"]

log = logging.getLogger(__name__)

_MISS_PROB = 0.05  # target chance that a pending child gets no feasible draw in one round
_MAX_DRAWS_PER_ROUND = 32


@dataclass(frozen=True)
class EvolutionConfig:
    """Hyper-parameters of :func:`evolutionary_search`; the defaults are Once-for-All's.

    Attributes:
        population: subnets per generation (OFA: 100).
        generations: number of generations (OFA ``max_time_budget``: 500).
        parent_ratio: share of the population kept as parents (OFA: 0.25).
        mutation_ratio: share of the children made by mutation; the rest by crossover (OFA: 0.5).
        mutate_prob: chance to resample each kernel size, expand ratio and depth (OFA: 0.1).
        resolution_mutate_prob: chance to resample the resolution (OFA: 0.5); a family without
            an elastic resolution ignores it.
        seed: seed of the ``np.random.Generator`` every draw comes from.
        max_tries: draws per subnet before rejection sampling gives up (the reference loops
            forever).

    Raises:
        ConfigError: for a value out of range (names it and the range).

    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.4 and App.; defaults from its released
    ``EvolutionFinder``.
    """

    population: int = 100
    generations: int = 500
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutate_prob: float = 0.1
    resolution_mutate_prob: float = 0.5
    seed: int = 0
    max_tries: int = 100

    def __post_init__(self) -> None:
        for name, low in (("population", 1), ("generations", 0), ("max_tries", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"evolution {name} = {value!r} must be an integer >= {low}")
        for name in ("parent_ratio", "mutation_ratio", "mutate_prob", "resolution_mutate_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"evolution {name} = {value} must be in [0, 1]")
        if self.parent_ratio == 0.0:
            raise ConfigError("evolution parent_ratio = 0.0 must be > 0 (no parents to breed)")

    @property
    def num_parents(self) -> int:
        """Parents kept per generation: ``round(parent_ratio × population)``, at least 1."""
        return max(1, round(self.parent_ratio * self.population))

    @property
    def num_mutations(self) -> int:
        """Children made by mutation per generation: ``round(mutation_ratio × population)``."""
        return round(self.mutation_ratio * self.population)


class _Sampler:
    """Draws feasible subnets, counting checked candidates and tracking the feasible rate."""

    def __init__(
        self,
        space: Space,
        constraints: Sequence[Constraint],
        config: EvolutionConfig,
        rng: np.random.Generator,
    ) -> None:
        self.space, self.constraints, self.config, self.rng = space, constraints, config, rng
        self.checked = 0
        self.child_rate = 0.5  # feasible share of children, updated as they are drawn

    def _check(self, batch: ConfigRows) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        self.checked += len(batch)
        values = constraint_values(self.constraints, batch)
        return feasible_mask(self.constraints, batch, values), values

    def initial(self) -> ConfigRows:
        """``population`` uniformly random feasible subnets (see the module docstring)."""
        cfg, space = self.config, self.space
        if not self.constraints:
            return space.sample_batch(cfg.population, self.rng)
        found: list[ConfigRows] = []
        seen: list[dict[str, np.ndarray]] = []
        n_found, drawn, budget, rate = 0, 0, cfg.max_tries * cfg.population, 1.0
        while n_found < cfg.population and drawn < budget:
            needed = cfg.population - n_found
            n = min(budget - drawn, max(needed, math.ceil(1.2 * needed / rate)))
            batch = space.sample_batch(n, self.rng)
            drawn += n
            ok, values = self._check(batch)
            seen.append(values)
            found.append(batch[ok])
            n_found += int(ok.sum())
            rate = max(float(ok.mean()), 1.0 / budget)
        if n_found == 0:
            smallest = space.batch([space.smallest()])
            if not self._check(smallest)[0][0]:
                merged = {
                    c.name: np.concatenate([v[c.name] for v in seen]) for c in self.constraints
                }
                raise no_feasible_subnet(self.constraints, space, merged)
            found, n_found = [smallest], 1
        pool = space.concat(found)[: cfg.population]
        if n_found >= cfg.population:
            return pool
        log.info(
            "uniform sampling found %d of %d feasible subnets in %d draws; the rest are mutants",
            n_found, cfg.population, drawn,
        )  # fmt: skip
        fill = self.children(pool, n_mutations=cfg.population - n_found, n_crossovers=0)
        return space.concat([pool, fill])

    def children(self, parents: ConfigRows, n_mutations: int, n_crossovers: int) -> ConfigRows:
        """Feasible mutants of random parents, then crossovers of random parent pairs (a child
        that stays infeasible after ``max_tries`` draws is a copy of its first parent)."""
        cfg, rng = self.config, self.rng
        n = n_mutations + n_crossovers
        first = rng.integers(0, len(parents), size=n)
        second = rng.integers(0, len(parents), size=n)
        if not self.constraints:
            return self._offspring(parents, np.arange(n), first, second, n_mutations)
        filled_rows: list[np.ndarray] = []  # child indices, one array per part below
        filled: list[ConfigRows] = []
        pending, tries = np.arange(n), 0
        while pending.size and tries < cfg.max_tries:
            draws = min(_draws_for(self.child_rate), cfg.max_tries - tries)
            rows = np.repeat(pending, draws)  # sorted: mutants first, as _offspring expects
            batch = self._offspring(parents, rows, first, second, n_mutations)
            ok = self._check(batch)[0]
            self.child_rate = 0.5 * self.child_rate + 0.5 * float(ok.mean())
            per_child = ok.reshape(len(pending), draws)
            has = per_child.any(axis=1)
            chosen = np.arange(len(pending))[has] * draws + per_child[has].argmax(axis=1)
            filled_rows.append(pending[has])
            filled.append(batch[chosen])
            pending, tries = pending[~has], tries + draws
        if pending.size:
            log.info("%d children stayed infeasible after %d draws; copied parents",
                     pending.size, cfg.max_tries)  # fmt: skip
        filled_rows.append(pending)
        filled.append(parents[first[pending]])  # fallback: a copy of the first parent
        # Child i is the row of the concatenation whose child index is i.
        return self.space.concat(filled)[np.argsort(np.concatenate(filled_rows), kind="stable")]

    def _offspring(
        self,
        parents: ConfigRows,
        rows: np.ndarray,
        first: np.ndarray,
        second: np.ndarray,
        n_mutations: int,
    ) -> ConfigRows:
        """One candidate per entry of ``rows`` (sorted child indices): a mutant of
        ``parents[first[row]]`` for ``row < n_mutations``, else a crossover with
        ``parents[second[row]]``."""
        cfg, rng = self.config, self.rng
        split = int(np.searchsorted(rows, n_mutations))
        mut_rows, cross_rows = rows[:split], rows[split:]
        parts = []
        if mut_rows.size:
            parts.append(
                self.space.mutate_batch(
                    parents[first[mut_rows]],
                    rng,
                    prob=cfg.mutate_prob,
                    resolution_prob=cfg.resolution_mutate_prob,
                )
            )
        if cross_rows.size:
            a, b = parents[first[cross_rows]], parents[second[cross_rows]]
            parts.append(self.space.crossover_batch(a, b, rng))
        return parts[0] if len(parts) == 1 else self.space.concat(parts)


def _draws_for(rate: float) -> int:
    """Draws per pending child so that one gets no feasible draw with chance about
    ``_MISS_PROB``, given the feasible share ``rate`` of recent draws."""
    if rate >= 1.0 - _MISS_PROB:
        return 1
    if rate <= 0.0:
        return _MAX_DRAWS_PER_ROUND
    return max(1, min(_MAX_DRAWS_PER_ROUND, math.ceil(math.log(_MISS_PROB) / math.log1p(-rate))))


def evolutionary_search(
    space: Space,
    score_fn: ObjectiveFn,
    constraints: Sequence[Constraint] = (),
    config: EvolutionConfig | None = None,
    progress: ProgressFn | None = None,
) -> SearchResult:
    """Find the subnet with the highest score that meets every constraint (see the module
    docstring for the algorithm).

    Args:
        space: the search space.
        score_fn: batched score to maximize, N configs → ``[N]`` (e.g. predicted accuracy); called
            once for the initial population and once per generation. NaN ranks last.
        constraints: every returned and scored config meets all of them.
        config: hyper-parameters (default: Once-for-All's).
        progress: ``progress(generation, generations, "best <score>")`` after each generation.

    Shapes: ``score_fn`` and each constraint map the space's batch of N rows
    (:class:`~supernet.space.family.ConfigRows`; a :class:`~supernet.space.ConfigBatch` for the
    CNN family) to ``[N]``.

    Raises:
        SearchError: when no subnet meeting every constraint is found (the message gives the
            cheapest value found for each constraint), or an objective returns the wrong shape.

    Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4 and App.
    """
    config = config or EvolutionConfig()
    start = time.perf_counter()
    constraints = list(constraints)
    sampler = _Sampler(space, constraints, config, np.random.default_rng(config.seed))
    population = sampler.initial()
    scores = score_batch(score_fn, population)
    scored = len(population)
    history = [float(scores.max())]
    n_parents = min(config.num_parents, config.population)
    n_mutations = config.num_mutations
    for generation in range(config.generations):
        order = np.argsort(-scores, kind="stable")[:n_parents]
        parents, parent_scores = population[order], scores[order]
        children = sampler.children(parents, n_mutations, config.population - n_mutations)
        child_scores = score_batch(score_fn, children)
        scored += len(children)
        # Children first: the stable sort above then ranks a child ahead of a parent with the
        # same score, as the reference's reversed sort does. Equal scores are common (a mutation
        # in a slot its depth leaves inactive changes nothing), and letting such neutral children
        # replace their parents keeps the population drifting instead of freezing on early bests.
        population = space.concat([children, parents])
        scores = np.concatenate([child_scores, parent_scores])
        history.append(max(history[-1], float(child_scores.max(initial=-np.inf))))
        if progress is not None:
            progress(generation + 1, config.generations, f"best {history[-1]:.4g}")
    order = np.argsort(-scores, kind="stable")
    population, scores = population[order], scores[order]
    best = population[0]
    best_costs = {
        name: float(v[0]) for name, v in constraint_values(constraints, population[:1]).items()
    }
    return SearchResult(
        best=best,
        best_score=float(scores[0]),
        best_costs=best_costs,
        history=np.asarray(history),
        candidates_scored=scored,
        candidates_checked=sampler.checked,
        seconds=time.perf_counter() - start,
        population=population,
        population_scores=scores,
    )
