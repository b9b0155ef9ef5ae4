"""Random search: the baseline every search is compared with.

Uniformly random subnets that meet every constraint are scored in batches and the best is kept —
the "random search" baseline of Once-for-All's search comparison (Cai et al., ICLR'20,
arXiv 1908.09791, Sec. 3.4 / App.) and of NAS evaluations in general.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

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

__all__ = ["random_search"]


def random_search(
    space: Space,
    score_fn: ObjectiveFn,
    constraints: Sequence[Constraint] = (),
    n: int = 1000,
    seed: int = 0,
    *,
    batch_size: int = 1000,
    max_tries: int = 100,
    progress: ProgressFn | None = None,
) -> SearchResult:
    """Score ``n`` uniformly random feasible subnets and return the best.

    Subnets are drawn in batches (sized by the feasible share seen so far); those that break a
    constraint are dropped, and the feasible ones are scored ``batch_size`` at a time. At most
    ``max_tries × n`` subnets are drawn: when fewer than ``n`` feasible ones turn up, the ones
    found are scored (``candidates_scored`` says how many).

    Args:
        space: the search space.
        score_fn: batched score to maximize, N configs → ``[N]``; one call per batch.
        constraints: every scored config meets all of them.
        n: feasible subnets to score.
        seed: seed of the ``np.random.Generator``.
        batch_size: configs scored per call of ``score_fn`` (and at least drawn per round).
        max_tries: draws per wanted subnet before giving up.
        progress: ``progress(scored, n, "best <score>")`` after each scored batch.

    Shapes: ``score_fn`` and each constraint map the space's batch of N rows
    (:class:`~supernet.space.family.ConfigRows`) to ``[N]``.

    Raises:
        ConfigError: when ``n``, ``batch_size`` or ``max_tries`` is < 1.
        SearchError: when no subnet meeting every constraint is found (the message gives the
            cheapest value found for each constraint).

    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.4 / App. (random search baseline).
    """
    for name, value in (("n", n), ("batch_size", batch_size), ("max_tries", max_tries)):
        if value < 1:
            raise ConfigError(f"random search {name} = {value} must be >= 1")
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    constraints = list(constraints)
    found: list[ConfigRows] = []
    seen: list[dict[str, np.ndarray]] = []
    n_found = drawn = 0
    rate, budget = 1.0, max_tries * n
    while n_found < n and drawn < budget:  # draw until n feasible subnets (bounded)
        wanted = math.ceil(1.2 * (n - n_found) / rate)
        batch = space.sample_batch(min(budget - drawn, max(batch_size, wanted)), rng)
        drawn += len(batch)
        values = constraint_values(constraints, batch)
        ok = feasible_mask(constraints, batch, values)
        seen.append(values)
        found.append(batch[ok][: n - n_found])
        n_found += len(found[-1])
        rate = max(float(ok.mean()), 1.0 / budget)
    if n_found == 0:
        merged = {c.name: np.concatenate([v[c.name] for v in seen]) for c in constraints}
        raise no_feasible_subnet(constraints, space, merged)
    feasible = space.concat(found)
    kept_scores: list[np.ndarray] = []
    history: list[float] = []
    for lo in range(0, len(feasible), batch_size):  # score batch_size at a time
        scores = score_batch(score_fn, feasible[lo : lo + batch_size])
        kept_scores.append(scores)
        history.append(max(history[-1] if history else -np.inf, float(scores.max())))
        if progress is not None:
            progress(lo + len(scores), n, f"best {history[-1]:.4g}")
    kept = [feasible]
    scored = len(feasible)
    population, scores = space.concat(kept), np.concatenate(kept_scores)
    order = np.argsort(-scores, kind="stable")
    population, scores = population[order], scores[order]
    costs = constraint_values(constraints, population[:1])
    return SearchResult(
        best=population[0],
        best_score=float(scores[0]),
        best_costs={name: float(v[0]) for name, v in costs.items()},
        history=np.asarray(history),
        candidates_scored=scored,
        candidates_checked=drawn,
        seconds=time.perf_counter() - start,
        population=population,
        population_scores=scores,
    )
