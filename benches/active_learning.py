"""Does active learning beat random picking at the same number of measured subnets?

    PYTHONPATH=src:. python -m benches.active_learning [--initial 40] [--rounds 3] [--round 20]
        [--seeds 0,1] [--noise 0.21] [--test 300] [--pool 1000] [--members 4] [--epochs 200]
        [--final-epochs 500]

A small experiment on a synthetic oracle (not a trained supernet: measuring hundreds of real
subnets per arm is out of this VM's budget): a subnet's true accuracy (%) is a fixed random
linear function of its Once-for-All encoding plus a penalty for subnets both shallow and at a
low resolution (a corner of the space a uniform sample rarely covers); a label is the truth plus
Gaussian noise of ``--noise`` points (0.21: the label noise measured on the quick preset's run,
docs/results/predictor.md). Both arms start from the same ``--initial`` random subnets
(``subnet_sequence``); the random arm adds random ones, the active arm ``--rounds`` rounds of
``--round`` subnets picked by :func:`supernet.predict.active.propose_subnets`. A predictor with
the library defaults is then fit on each arm's labels and scored on ``--test`` other random
subnets: Kendall tau and RMSE against their noisy labels and against the truth.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from supernet.predict.accuracy import fit_predictor, summary_map
from supernet.predict.active import candidate_pool, propose_subnets
from supernet.predict.dataset import subnet_sequence
from supernet.space import encode, get_space


def _oracle(space):
    rng = np.random.default_rng(123)
    f = encode([space.largest()], space).shape[1]
    weights = rng.normal(0.0, 0.15, f)
    matrix, offset = summary_map(space)

    def truth(configs):
        x = encode(configs, space).astype(np.float64)
        s = x @ matrix + offset  # each stage's depth and the resolution, scaled to [0, 1]
        base = 84.0 + x @ weights + 1.5 * s[:, -1] + 0.4 * s[:, :-1].sum(1)
        corner = np.clip(0.5 - s[:, -1], 0, None) * np.clip(0.5 - s[:, :-1].mean(1), 0, None)
        return base - 12.0 * corner

    return truth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--initial", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--round", type=int, default=20)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--noise", type=float, default=0.21)
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=200, help="per ensemble member")
    ap.add_argument("--final-epochs", type=int, default=500)
    args = ap.parse_args()
    space = get_space("mbv3-tiny")
    truth = _oracle(space)
    total = args.initial + args.rounds * args.round
    print(
        "| seed | arm | subnets | tau vs labels | RMSE vs labels | tau vs truth | RMSE vs truth |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for seed in (int(s) for s in args.seeds.split(",")):
        rng = np.random.default_rng(1000 + seed)

        def measure(configs, rng=rng):
            return truth(configs) + rng.normal(0.0, args.noise, len(configs))

        randoms = subnet_sequence(space, total, seed)[2:]  # random arm, no anchors
        test = candidate_pool(space, args.test, randoms, np.random.default_rng(9000 + seed))
        t_true = truth(test)
        t_label = t_true + np.random.default_rng(7000 + seed).normal(0.0, args.noise, len(test))
        arms = {"random": (randoms, measure(randoms))}
        configs = list(randoms[: args.initial])
        acc = arms["random"][1][: args.initial].copy()
        for r in range(args.rounds):
            picks = propose_subnets(configs, acc, space, args.round, pool=args.pool,
                                    members=args.members, epochs=args.epochs,
                                    seed=seed * 100 + r)  # fmt: skip
            configs += picks
            acc = np.concatenate([acc, measure(picks)])
        arms["active"] = (configs, acc)
        for arm, (c, y) in arms.items():
            fit = fit_predictor(encode(c, space), y, space, epochs=args.final_epochs, seed=seed)
            p = fit.predict_encoded(encode(test, space))
            row = [
                stats.kendalltau(t_label, p).statistic,
                np.sqrt(np.mean((p - t_label) ** 2)),
                stats.kendalltau(t_true, p).statistic,
                np.sqrt(np.mean((p - t_true) ** 2)),
            ]
            print(f"| {seed} | {arm} | {len(c)} | " + " | ".join(f"{v:.3f}" for v in row) + " |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
