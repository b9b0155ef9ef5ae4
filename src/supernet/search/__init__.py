"""Search for subnets: constrained evolution (Once-for-All), NSGA-II Pareto fronts, random search.

Search knows nothing of predictors or cost models: it receives batched objective functions
(a family's batch → ``np.ndarray [N]``), so the same code serves accuracy-vs-latency search and
compression policies; it sees a space only through the family protocol
(:mod:`supernet.space.family`), so it serves every network family. :func:`nsga2_search` and
:class:`ParetoFront` are imported on first use (pymoo takes most of a second to import).
"""

from typing import Any

from supernet.search.constraints import (
    Constraint,
    ObjectiveFn,
    build_constraints,
    cheapest_report,
    constraint_values,
    feasible_mask,
)
from supernet.search.evolution import EvolutionConfig, evolutionary_search
from supernet.search.pareto import pareto_front_mask
from supernet.search.random import random_search
from supernet.search.result import ProgressFn, SearchResult

__all__ = [
    "Constraint",
    "EvolutionConfig",
    "ObjectiveFn",
    "ParetoFront",
    "ProgressFn",
    "SearchResult",
    "build_constraints",
    "cheapest_report",
    "constraint_values",
    "evolutionary_search",
    "feasible_mask",
    "nsga2_search",
    "pareto_front_mask",
    "random_search",
]


def __getattr__(name: str) -> Any:
    if name in ("ParetoFront", "nsga2_search"):
        from supernet.search import nsga2

        return getattr(nsga2, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
