"""Multi-objective search: a Pareto front of score vs one or two costs, by NSGA-II.

NSGA-II (Deb et al., IEEE TEC 2002) comes from pymoo, the standard maintained Python library for
it (Blank & Deb, IEEE Access 2020): its fast non-dominated sorting, crowding distance, binary
tournament and constraint-domination (feasible first, then smaller violation) are used as they
are, not re-implemented. Subnets are pymoo integer vectors of choice indices (the family's gene
coding, :meth:`Space.to_choice_indices <supernet.space.family.Space.to_choice_indices>`); the
operators are the family's: uniformly random initial subnets (plus the smallest one), its
mutation (:meth:`~supernet.space.family.Space.mutate_batch`; Once-for-All's for the CNN family)
and uniform crossover (pymoo's ``UX`` on the genes). Every generation is
evaluated in one call of the score function and of each cost and constraint.

Reference: Deb, Pratap, Agarwal, Meyarivan, "A fast and elitist multiobjective genetic algorithm:
NSGA-II", IEEE TEC 6(2), 2002; Once-for-All (arXiv 1908.09791), Sec. 3.4 (mutation, crossover).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling
from pymoo.operators.crossover.ux import UX

from supernet.errors import ConfigError
from supernet.search.constraints import (
    Constraint,
    ObjectiveFn,
    constraint_values,
    no_feasible_subnet,
    objective_values,
)
from supernet.search.pareto import pareto_front_mask
from supernet.search.result import ProgressFn
from supernet.space.family import ConfigRows, Space

__all__ = ["ParetoFront", "nsga2_search"]


@dataclass(frozen=True, eq=False)
class ParetoFront:
    """Feasible, mutually non-dominated subnets, highest score first.

    Attributes:
        configs: the front's subnets, ``M`` rows.
        objectives: ``[M, 1 + K]`` float64: the score (maximized), then each cost (minimized) in
            its own unit.
        objective_names: ``("score", cost names...)``.
        candidates_scored: subnets evaluated (population × generations, duplicates removed).
        seconds: wall time.
    """

    configs: ConfigRows
    objectives: np.ndarray
    objective_names: tuple[str, ...]
    candidates_scored: int
    seconds: float

    def __len__(self) -> int:
        return len(self.configs)


class _SubnetProblem(Problem):
    """pymoo problem: minimize ``(-score, costs...)`` subject to ``constraint - limit <= 0``."""

    def __init__(
        self,
        space: Space,
        score_fn: ObjectiveFn,
        costs: Mapping[str, ObjectiveFn],
        constraints: Sequence[Constraint],
    ) -> None:
        upper = space.choice_counts()
        super().__init__(
            n_var=len(upper),
            n_obj=1 + len(costs),
            n_ieq_constr=len(constraints),
            xl=0,
            xu=np.asarray(upper) - 1,
            vtype=int,
        )
        self.space, self.score_fn = space, score_fn
        self.costs, self.constraints = costs, constraints
        self.evaluated = 0
        self.seen: list[dict[str, np.ndarray]] = []  # constraint values, for the error message

    def _evaluate(self, x: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        batch = self.space.from_choice_indices(np.rint(x).astype(np.int64))
        self.evaluated += len(batch)
        score = objective_values("score", self.score_fn, batch)
        columns = [np.where(np.isnan(score), np.inf, -score)]
        columns += [objective_values(name, fn, batch) for name, fn in self.costs.items()]
        out["F"] = np.column_stack(columns)
        if self.constraints:
            values = constraint_values(self.constraints, batch)
            self.seen.append(values)
            g = np.column_stack([values[c.name] - c.limit for c in self.constraints])
            out["G"] = np.where(np.isnan(g), np.inf, g)


class _Sampling(Sampling):
    def __init__(self, space: Space) -> None:
        super().__init__()
        self.space = space

    def _do(self, problem: Problem, n_samples: int, *args: Any, random_state: Any = None,
            **kwargs: Any) -> np.ndarray:  # fmt: skip
        space = self.space
        batch = space.concat(
            [space.batch([space.smallest()]), space.sample_batch(n_samples - 1, random_state)]
        )
        return space.to_choice_indices(batch)


class _Mutation(Mutation):
    def __init__(self, space: Space, prob: float, resolution_prob: float) -> None:
        super().__init__(prob=1.0)
        self.space, self.arch_prob, self.resolution_prob = space, prob, resolution_prob

    def _do(self, problem: Problem, X: np.ndarray, *args: Any, random_state: Any = None,
            **kwargs: Any) -> np.ndarray:  # fmt: skip
        batch = self.space.from_choice_indices(np.rint(X).astype(np.int64))
        out = self.space.mutate_batch(batch, random_state, prob=self.arch_prob,
                                      resolution_prob=self.resolution_prob)  # fmt: skip
        return self.space.to_choice_indices(out)


def nsga2_search(
    space: Space,
    score_fn: ObjectiveFn,
    costs: Mapping[str, ObjectiveFn],
    constraints: Sequence[Constraint] = (),
    *,
    population: int = 100,
    generations: int = 100,
    mutate_prob: float = 0.1,
    resolution_mutate_prob: float = 0.5,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> ParetoFront:
    """Pareto front of ``score`` (maximized) vs one or two ``costs`` (minimized) among subnets
    that meet every constraint.

    Args:
        space: the search space.
        score_fn: batched score, N configs → ``[N]`` (e.g. predicted accuracy); NaN ranks last.
        costs: one or two named batched costs to minimize (e.g. ``{"latency_ms": ...}``).
        constraints: hard limits; the front holds only subnets meeting all of them.
        population: NSGA-II population size.
        generations: number of generations (the initial population is the first).
        mutate_prob, resolution_mutate_prob: Once-for-All mutation probabilities.
        seed: seed of pymoo's ``np.random.Generator``: same seed, same front.
        progress: ``progress(generation, generations, "front <size>")`` after each generation.

    Shapes: every objective maps the space's batch of N rows to ``[N]``; the result's
    ``objectives`` is ``[M, 1 + len(costs)]``.

    Raises:
        ConfigError: for not one or two costs, or population / generations < 1.
        SearchError: when no evaluated subnet meets every constraint (the message gives the
            cheapest value found for each constraint), or an objective returns the wrong shape.

    Reference: Deb et al., NSGA-II, IEEE TEC 6(2), 2002; Once-for-All, arXiv 1908.09791, Sec. 3.4.
    """
    if not 1 <= len(costs) <= 2:
        raise ConfigError(f"NSGA-II takes one or two costs besides the score, got {list(costs)}")
    for name, value in (("population", population), ("generations", generations)):
        if value < 1:
            raise ConfigError(f"NSGA-II {name} = {value} must be >= 1")
    start = time.perf_counter()
    constraints = list(constraints)
    problem = _SubnetProblem(space, score_fn, costs, constraints)
    algorithm = NSGA2(
        pop_size=population,
        sampling=_Sampling(space),
        crossover=UX(),
        mutation=_Mutation(space, mutate_prob, resolution_mutate_prob),
        eliminate_duplicates=True,
    )
    algorithm.setup(problem, termination=("n_gen", generations), seed=seed, verbose=False)
    while algorithm.has_next():
        algorithm.next()
        if progress is not None:
            progress(algorithm.n_gen - 1, generations, f"front {len(algorithm.opt or [])}")
    pop = algorithm.pop
    x, f, feasible = pop.get("X"), pop.get("F"), pop.get("FEAS").reshape(-1)
    if not feasible.any():
        merged = {c.name: np.concatenate([v[c.name] for v in problem.seen]) for c in constraints}
        raise no_feasible_subnet(constraints, space, merged)
    x, f = x[feasible], f[feasible]
    front = pareto_front_mask(f)  # all minimized here
    x, f = x[front], f[front]
    _, unique = np.unique(np.rint(x).astype(np.int64), axis=0, return_index=True)
    x, f = x[unique], f[unique]
    objectives = np.column_stack([-f[:, 0], f[:, 1:]])
    order = np.argsort(-objectives[:, 0], kind="stable")
    return ParetoFront(
        configs=space.from_choice_indices(np.rint(x[order]).astype(np.int64)),
        objectives=objectives[order],
        objective_names=("score", *costs),
        candidates_scored=problem.evaluated,
        seconds=time.perf_counter() - start,
    )
