"""Constrained evolutionary search with Once-for-All's defaults (population 100, 500 generations,
parent ratio 0.25, mutation ratio 0.5, mutation probability 0.1, resolution mutation 0.5): the
batched search vs a per-config baseline with the structure of the reference ``EvolutionFinder``
(one config at a time through mutate / crossover / a MACs check, rejection sampling per child,
each population scored in one call) — measured in the same run, printed as a ratio.

    python -m benches.search [--generations 500] [--population 100] [--repeats 3]
                             [--baseline-generations 10] [--threads 1]

Two settings:
- ``mbv3-tiny``: a linear score of the Once-for-All encoding, MACs at most those of the middle
  subnet (issue targets: ≤ 2 s wall, ≥ 19,000 candidates scored per second);
- ``ofa-mbv3``: a numpy MLP of the reference predictor's shape (encoding → 400 → 400 → 400 → 1,
  ReLU; random weights) and the reference's 400 MFLOPs constraint (its "FLOPs" count
  multiply-accumulates, as ``supernet.cost.macs`` does).

The baseline is timed over ``--baseline-generations`` generations and reported per candidate.
BLAS runs on one thread by default (threadpoolctl): the MLP's small matrix products are ~40x
slower with two OpenBLAS threads on 2 shared cores.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from supernet.cost import macs
from supernet.search import Constraint, EvolutionConfig, evolutionary_search
from supernet.space import (
    ArchConfig,
    ConfigBatch,
    SearchSpace,
    encode,
    encode_batch,
    encoding_size,
    get_space,
)

OFA_MACS_LIMIT = 400e6  # the reference's 400 MFLOPs (multiply-accumulates)


def _linear(space: SearchSpace) -> Callable[[np.ndarray], np.ndarray]:
    weights = np.random.default_rng(0).normal(size=encoding_size(space)).astype(np.float32)
    return lambda x: x @ weights


def _mlp(space: SearchSpace, hidden: int = 400) -> Callable[[np.ndarray], np.ndarray]:
    """The reference accuracy predictor's shape (3 hidden layers of 400, ReLU), random weights."""
    rng = np.random.default_rng(0)
    sizes = [encoding_size(space), hidden, hidden, hidden, 1]
    layers = [
        (rng.normal(0, n_in**-0.5, (n_in, n_out)).astype(np.float32), np.zeros(n_out, np.float32))
        for n_in, n_out in itertools.pairwise(sizes)
    ]

    def predict(x: np.ndarray) -> np.ndarray:
        for i, (w, b) in enumerate(layers):
            x = x @ w + b
            if i < len(layers) - 1:
                x = np.maximum(x, 0.0)
        return x[:, 0]

    return predict


def setting(name: str) -> tuple[SearchSpace, Callable[[np.ndarray], np.ndarray], float]:
    """(space, score of an encoding, MACs limit) of a bench setting."""
    space = get_space(name)
    if name == "ofa-mbv3":
        return space, _mlp(space), OFA_MACS_LIMIT
    limit = float(macs([space.middle()], space)[0])
    return space, _linear(space), limit


def _per_config_evolution(
    space: SearchSpace,
    predict: Callable[[np.ndarray], np.ndarray],
    limit: float,
    config: EvolutionConfig,
) -> int:
    """The reference EvolutionFinder's loop on this library's per-config API; returns the number
    of candidates scored. Rejection sampling is capped (at 10,000 draws) only so it ends."""
    rng = np.random.default_rng(config.seed)

    def feasible(c: ArchConfig) -> bool:
        return bool(macs([c], space)[0] <= limit)

    def until_feasible(draw: Callable[[], ArchConfig]) -> ArchConfig:
        for _ in range(10_000):
            c = draw()
            if feasible(c):
                return c
        raise RuntimeError("no feasible subnet in 10,000 draws")

    def score(configs: list[ArchConfig]) -> list[float]:
        return predict(encode(configs, space)).tolist()

    population = [until_feasible(lambda: space.sample(rng)) for _ in range(config.population)]
    scored = list(zip(score(population), population, strict=True))
    n_scored = len(population)
    for _ in range(config.generations):
        parents = sorted(scored, key=lambda t: t[0], reverse=True)[: config.num_parents]
        children = []
        for _ in range(config.num_mutations):
            parent = parents[rng.integers(len(parents))][1]
            children.append(
                until_feasible(
                    lambda p=parent: space.mutate(
                        p,
                        rng,
                        prob=config.mutate_prob,
                        resolution_prob=config.resolution_mutate_prob,
                    )
                )
            )
        for _ in range(config.population - config.num_mutations):
            a = parents[rng.integers(len(parents))][1]
            b = parents[rng.integers(len(parents))][1]
            children.append(until_feasible(lambda a=a, b=b: space.crossover(a, b, rng)))
        scored = parents + list(zip(score(children), children, strict=True))
        n_scored += len(children)
    return n_scored


def search_speed(
    space_name: str, population: int, generations: int, repeats: int, baseline_generations: int
) -> dict[str, float]:
    """Median wall time and candidates/s of the batched search, and candidates/s of the
    per-config baseline (``baseline_generations`` generations, one run)."""
    space, predict, limit = setting(space_name)
    constraint = Constraint("macs", lambda b: macs(b, space), limit)

    def score(batch: ConfigBatch) -> np.ndarray:
        return predict(encode_batch(batch, space))

    config = EvolutionConfig(population=population, generations=generations)
    results = [evolutionary_search(space, score, [constraint], config) for _ in range(repeats)]
    seconds = statistics.median(r.seconds for r in results)
    best = results[0]

    base_config = EvolutionConfig(population=population, generations=baseline_generations)
    start = time.perf_counter()
    base_scored = _per_config_evolution(space, predict, limit, base_config)
    base_rate = base_scored / (time.perf_counter() - start)
    rate = best.candidates_scored / seconds
    return {
        "macs_limit": limit,
        "seconds": seconds,
        "candidates_scored": best.candidates_scored,
        "candidates_checked": best.candidates_checked,
        "candidates_per_s": rate,
        "best_score": best.best_score,
        "best_macs": best.best_costs["macs"],
        "baseline_candidates_per_s": base_rate,
        "speedup": rate / base_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--generations", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-generations", type=int, default=10)
    parser.add_argument("--spaces", nargs="+", default=["mbv3-tiny", "ofa-mbv3"])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = parser.parse_args()
    with threadpool_limits(limits=args.threads, user_api="blas"):
        run(args)


def run(args: argparse.Namespace) -> None:
    print(f"numpy {np.__version__}, {args.threads} BLAS threads; population {args.population}, "
          f"{args.generations} generations, median of {args.repeats}; baseline over "
          f"{args.baseline_generations} generations")  # fmt: skip
    for name in args.spaces:
        r = search_speed(name, args.population, args.generations, args.repeats,
                         args.baseline_generations)  # fmt: skip
        print(f"{name}: MACs <= {r['macs_limit']:.4g}: {r['seconds']:.2f} s, "
              f"{r['candidates_scored']} scored ({r['candidates_per_s']:,.0f}/s), "
              f"{r['candidates_checked']} constraint-checked; best score {r['best_score']:.4g} "
              f"at {r['best_macs']:.4g} MACs")  # fmt: skip
        print(f"  per-config baseline: {r['baseline_candidates_per_s']:,.0f} candidates/s; "
              f"batched vs baseline: {r['speedup']:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
