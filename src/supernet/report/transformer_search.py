"""HAT's search: evolution over a SuperTransformer's SubTransformers under a latency budget given
by a latency predictor, fitness = validation loss with the SuperTransformer's (inherited) weights.

The evolution is the library's generic :func:`~supernet.search.evolutionary_search` (the family
protocol; the score is minus the validation loss) with HAT's released numbers
(:data:`HAT_EVOLUTION`): 30 iterations, 25 parents, 50 mutants (each gene redrawn with
probability 0.3), 50 uniform crossovers. HAT re-scores its 25 parents every iteration (a
population of 125); here parents keep their scores, so each generation scores the 100 children
only, and a config is never scored twice (the losses are cached: one validation pass per distinct
SubTransformer). HAT caps the validation batches (``valid-cnt-max``); ``valid_batches`` does the
same here.

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 3.4; released
``fairseq/evolution.py`` and ``configs/wmt14.en-de/evo_search/*.yml``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from supernet.checkpoint import write_text_atomic
from supernet.data.translation import TranslationBatch
from supernet.errors import ConfigError
from supernet.nn.transformer import SuperTransformer
from supernet.search import Constraint, EvolutionConfig, evolutionary_search
from supernet.search.result import ProgressFn
from supernet.space.transformer import TransformerSpace
from supernet.space.transformer_config import TransformerConfig
from supernet.train.transformer import validation_loss

__all__ = [
    "HAT_EVOLUTION",
    "LatencyFn",
    "TransformerSearch",
    "check_latency_budget",
    "pick_batches",
    "search_subtransformer",
]

LatencyFn = Callable[[Sequence[TransformerConfig]], np.ndarray]
"""Batched latency in ms: N configs → ``[N]`` (e.g. a fitted
:class:`~supernet.cost.transformer_predictor.TransformerLatencyPredictor`)."""

HAT_EVOLUTION = EvolutionConfig(
    population=100, generations=30, parent_ratio=0.25, mutation_ratio=0.5, mutate_prob=0.3,
    resolution_mutate_prob=0.0,
)  # fmt: skip
"""HAT's released search settings (``evo-iter 30``, ``parent-size 25``, ``mutation-size 50``,
``crossover-size 50``, ``mutation-prob 0.3``) in the generic evolution's terms."""


def check_latency_budget(
    space: TransformerSpace, latency_fn: LatencyFn, budget_ms: float
) -> tuple[float, float]:
    """Refuse a budget outside the predicted latency of the space's smallest (fastest) and
    largest (slowest) SubTransformer; return those two bounds in ms.

    Raises:
        ConfigError: the budget is not a finite number, is below the fastest or above the
            slowest SubTransformer (the message gives both bounds).
    """
    fastest, slowest = (float(v) for v in latency_fn([space.smallest(), space.largest()]))
    if not np.isfinite(budget_ms):
        raise ConfigError(f"latency budget {budget_ms} ms must be a finite number")
    if not fastest <= budget_ms <= slowest:
        where = "below the fastest" if budget_ms < fastest else "above the slowest"
        raise ConfigError(
            f"latency budget {budget_ms:g} ms is {where} SubTransformer of space "
            f"{space.name!r}: the predictor gives {fastest:.2f} ms for the smallest and "
            f"{slowest:.2f} ms for the largest; choose a budget between the two"
        )
    return fastest, slowest


def pick_batches(batches: Sequence[TranslationBatch], n: int) -> list[TranslationBatch]:
    """``n`` batches spread evenly over ``batches`` (which are sorted by length), so a capped
    validation sees short and long sentences; all of them when ``n`` >= their number.

    Raises:
        ConfigError: ``n`` < 1 or no batches.
    """
    if n < 1 or not batches:
        raise ConfigError(f"need >= 1 validation batch; asked for {n} of {len(batches)}")
    if n >= len(batches):
        return list(batches)
    return [batches[int(i)] for i in np.linspace(0, len(batches) - 1, n).round()]


@dataclass
class TransformerSearch:
    """What :func:`search_subtransformer` found.

    Attributes:
        best: the SubTransformer with the lowest validation loss under the budget.
        valid_loss: its validation loss (nats per target token, inherited weights).
        predicted_latency_ms: its predicted latency.
        latency_budget_ms: the budget.
        history: lowest validation loss after the initial population and each generation.
        candidates_scored: configs the evolution scored; ``distinct_scored`` of them distinct
            (validation passes actually run).
        seconds: wall time.
        settings: the evolution's settings and ``valid_batches`` (a resumed search must match).
    """

    best: TransformerConfig
    valid_loss: float
    predicted_latency_ms: float
    latency_budget_ms: float
    history: list[float]
    candidates_scored: int
    distinct_scored: int
    seconds: float
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``best`` as a config dict)."""
        data = dataclasses.asdict(self)
        data["best"] = self.best.to_dict()
        return data

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON atomically; returns the path. Raises: OSError."""
        path = Path(path)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], space: TransformerSpace) -> TransformerSearch:
        """Read :meth:`save`'s file; ``best`` is validated in ``space``.

        Raises:
            ConfigError: unreadable or malformed, or ``best`` not of ``space``.
        """
        try:
            data = json.loads(Path(path).read_text())
            data["best"] = space.validate(TransformerConfig.from_dict(data["best"]))
            return cls(**data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"search result {path} is not readable: {exc}") from None


def search_settings(evolution: EvolutionConfig, valid_batches: int, budget_ms: float) -> dict:
    """The settings a search result records (and a resumed search must match)."""
    return {**dataclasses.asdict(evolution), "valid_batches": valid_batches,
            "latency_budget_ms": float(budget_ms)}  # fmt: skip


def search_subtransformer(
    model: SuperTransformer,
    valid_batches: Sequence[TranslationBatch],
    latency_fn: LatencyFn,
    budget_ms: float,
    *,
    evolution: EvolutionConfig = HAT_EVOLUTION,
    progress: ProgressFn | None = None,
) -> TransformerSearch:
    """HAT's evolutionary search (module docstring): the SubTransformer of ``model.space`` with
    the lowest validation loss on ``valid_batches`` (inherited weights) whose ``latency_fn`` is
    at most ``budget_ms``. Deterministic for a given ``evolution.seed``.

    Raises:
        ConfigError: a budget outside the space's predicted latency range (both bounds named),
            or no validation batches.

    Reference: HAT (arXiv 2005.14187), Sec. 3.4.
    """
    space = model.space
    check_latency_budget(space, latency_fn, budget_ms)
    if not valid_batches:
        raise ConfigError("no validation batches to score SubTransformers on")
    losses: dict[TransformerConfig, float] = {}
    scored = [0]

    def score(batch: Sequence[TransformerConfig]) -> np.ndarray:
        scored[0] += len(batch)
        for c in batch:
            if c not in losses:
                losses[c] = validation_loss(model, valid_batches, c)
        return np.array([-losses[c] for c in batch])

    def latency(batch: Sequence[TransformerConfig]) -> np.ndarray:
        return np.asarray(latency_fn(list(batch)), dtype=np.float64)

    start = time.perf_counter()
    result = evolutionary_search(
        space, score, [Constraint("latency_ms", latency, budget_ms)], evolution, progress
    )
    return TransformerSearch(
        best=result.best,
        valid_loss=-result.best_score,
        predicted_latency_ms=result.best_costs["latency_ms"],
        latency_budget_ms=float(budget_ms),
        history=[-float(v) for v in result.history],
        candidates_scored=scored[0],
        distinct_scored=len(losses),
        seconds=time.perf_counter() - start,
        settings=search_settings(evolution, len(valid_batches), budget_ms),
    )
