"""Constraints on subnets: a named batched objective and an upper limit.

Search knows nothing of how a cost is computed: a constraint holds a function
``batch -> np.ndarray [N]`` on a family's batch (:class:`~supernet.space.family.ConfigRows`):
MACs, predicted latency in ms, peak memory in bytes, or a compression policy's size; and the
largest allowed value. The caller builds the functions, e.g.
``{"macs": lambda b: supernet.cost.macs(b, space)}``, and :func:`build_constraints` pairs them
with user limits by name.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4 and App. (efficiency
constraints checked before the accuracy predictor scores a candidate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from supernet.errors import ConfigError, SearchError
from supernet.space.family import ConfigRows, Space

__all__ = [
    "Constraint",
    "ObjectiveFn",
    "build_constraints",
    "cheapest_report",
    "constraint_values",
    "feasible_mask",
    "no_feasible_subnet",
    "objective_values",
]

ObjectiveFn = Callable[[ConfigRows], np.ndarray]
"""A batched objective: a family's batch of N configs (:class:`~supernet.space.ConfigBatch` for
the CNN family) → ``[N]`` numbers (a score, a cost), one call per batch."""


def objective_values(name: str, fn: ObjectiveFn, batch: ConfigRows) -> np.ndarray:
    """``fn(batch)`` as float64 ``[N]``.

    Raises:
        SearchError: when ``fn`` does not return one number per config (names the objective and
            the shape it returned).
    """
    values = np.asarray(fn(batch), dtype=np.float64)
    if values.shape != (len(batch),):
        if values.size == len(batch) and values.ndim == 2:
            return values.reshape(len(batch))
        raise SearchError(
            f"objective {name!r} returned shape {values.shape} for {len(batch)} configs; "
            f"it must return one number per config, shape ({len(batch)},)"
        )
    return values


@dataclass(frozen=True)
class Constraint:
    """``fn(config) <= limit`` for every searched config.

    Attributes:
        name: what is limited, with its unit (``"macs"``, ``"latency_ms"``,
            ``"peak_memory_bytes"``).
        fn: batched cost, N configs → ``[N]`` in the unit of ``limit``.
        limit: the largest allowed value (inclusive).

    Raises:
        ConfigError: when ``limit`` is not a finite number or ``name`` is empty.
    """

    name: str
    fn: ObjectiveFn
    limit: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a constraint needs a name")
        if isinstance(self.limit, bool) or not isinstance(self.limit, (int, float, np.number)):
            raise ConfigError(f"constraint {self.name} limit = {self.limit!r} is not a number")
        if not math.isfinite(float(self.limit)):
            raise ConfigError(f"constraint {self.name} limit = {self.limit} must be finite")
        object.__setattr__(self, "limit", float(self.limit))

    def values(self, batch: ConfigRows) -> np.ndarray:
        """The constrained cost of each config. Shapes: N rows → ``[N]`` float64."""
        return objective_values(self.name, self.fn, batch)

    def satisfied(self, values: np.ndarray) -> np.ndarray:
        """``values <= limit`` (NaN is never satisfied). Shapes: ``[N]`` → ``[N]`` bool."""
        return np.asarray(values) <= self.limit


def constraint_values(
    constraints: Sequence[Constraint], batch: ConfigRows
) -> dict[str, np.ndarray]:
    """Each constraint's cost of each config: name → ``[N]`` float64 (one call per constraint)."""
    return {c.name: c.values(batch) for c in constraints}


def feasible_mask(
    constraints: Sequence[Constraint],
    batch: ConfigRows,
    values: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Which configs meet every constraint.

    Shapes: N rows → ``[N]`` bool (all True without constraints).

    Args:
        values: precomputed :func:`constraint_values` of ``batch`` (computed when None).

    Raises:
        SearchError: when a constraint function returns the wrong shape.
    """
    if values is None:
        values = constraint_values(constraints, batch)
    mask = np.ones(len(batch), dtype=bool)
    for c in constraints:
        mask &= c.satisfied(values[c.name])
    return mask


def build_constraints(
    limits: Mapping[str, float], objectives: Mapping[str, ObjectiveFn]
) -> list[Constraint]:
    """Pair user limits with the objectives of the same name, in the order of ``limits``.

    Example: ``build_constraints({"macs": 5e6}, {"macs": lambda b: macs(b, space), ...})``.

    Raises:
        ConfigError: for an unknown name (lists the known ones) or a limit that is not a finite
            number.
    """
    unknown = [name for name in limits if name not in objectives]
    if unknown:
        raise ConfigError(
            f"unknown constraint {', '.join(repr(n) for n in unknown)}; "
            f"choose from {sorted(objectives)}"
        )
    return [Constraint(name, objectives[name], limit) for name, limit in limits.items()]


def _format(value: float) -> str:
    """Whole numbers (MACs, bytes) in full, others to 6 significant digits."""
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _cheapest(values: np.ndarray) -> float:
    """The lowest value that is not NaN; NaN when there is none."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.nanmin(v)) if (~np.isnan(v)).any() else float("nan")


def cheapest_report(constraints: Sequence[Constraint], values: Mapping[str, np.ndarray]) -> str:
    """One line per constraint: its limit, the cheapest value among the evaluated configs and
    how many met it — for the message of a search that found no feasible subnet."""
    lines = []
    for c in constraints:
        v = np.asarray(values[c.name], dtype=np.float64)
        cheapest = _format(_cheapest(v))
        met = int(c.satisfied(v).sum())
        lines.append(
            f"  {c.name} <= {_format(c.limit)}: cheapest found {cheapest} "
            f"({met} of {v.size} evaluated subnets meet it)"
        )
    return "\n".join(lines)


def no_feasible_subnet(
    constraints: Sequence[Constraint], space: Space, values: Mapping[str, np.ndarray]
) -> SearchError:
    """The error for a search that found no subnet meeting every constraint: for each constraint
    the cheapest value among the evaluated subnets (``values``) and the space's smallest subnet,
    so the user knows what limit is achievable."""
    smallest = space.smallest()
    at_smallest = constraint_values(constraints, space.batch([smallest]))
    merged = {c.name: np.append(values[c.name], at_smallest[c.name]) for c in constraints}
    n = len(next(iter(values.values()))) if values else 0
    smallest_costs = ", ".join(
        f"{c.name} {_format(float(at_smallest[c.name][0]))}" for c in constraints
    )
    return SearchError(
        f"no subnet of space {space.name!r} meets all constraints ({n} sampled subnets and the "
        f"smallest one checked):\n{cheapest_report(constraints, merged)}\n"
        f"the smallest subnet ({space.describe(smallest)}) has {smallest_costs}; raise the limits",
        cheapest={c.name: _cheapest(merged[c.name]) for c in constraints},
    )
