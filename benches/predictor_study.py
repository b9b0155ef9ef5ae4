"""How good can the accuracy predictor get on a run: learning curve and measurement-noise floor.

    PYTHONPATH=. python -m benches.predictor_study --run-dir runs/fashion-mnist-quick
        [--sizes 200,400,600,800,1000] [--seeds 0,1,2] [--noise-subnets 100]

Learning curve: the first ``N + 2`` rows of the run's ``acc_dataset.csv`` are what
``supernet predict collect --n N`` gives, so for each N the predictor is fitted with
``train_predictor``'s defaults (20% held out, one split per seed) and, for comparison, with the
paper's predictor (no summary features) at the former weight decay 1e-2. Collect enough rows
first (``supernet predict collect --run-dir RUN --n 1000``).

Noise floor: for ``--noise-subnets`` random subnets of the run (BN re-calibrated as in
``collect``), the per-image correctness on the validation split gives each subnet's accuracy
noise that no architecture-based predictor can learn: the variance of the difference of two
subnets' measured accuracies is their per-image disagreement variance over the image count
(a paired binomial), half of its mean over pairs is one subnet's share. A normal model then
gives the RMSE and Kendall tau of a perfect predictor scored against labels with that noise.
The per-image noise variance is :func:`supernet.predict.noise.paired_noise_variance`; numbers
in docs/results/predictor.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from supernet.data import BatchLoader, resize
from supernet.predict import ACC_DATASET, AccuracyDataset, read_accuracy_dataset, train_predictor
from supernet.predict.noise import paired_noise_variance
from supernet.space import get_space
from supernet.train import calibration_loader, load_run, read_run_config, recalibrate_bn


def learning_curve(run_dir: Path, sizes: list[int], seeds: list[int]) -> list[str]:
    """Markdown rows: held-out RMSE and Kendall tau per dataset size, mean over ``seeds``."""
    space = get_space(read_run_config(run_dir).space)
    data = read_accuracy_dataset(run_dir / ACC_DATASET, space)
    rows = ["| subnets | predictor | RMSE (pts) | mean-only RMSE | Kendall τ | Spearman ρ |",
            "|---:|---|---:|---:|---:|---:|"]  # fmt: skip
    settings = {
        "default (summary features, wd 1e-1)": {},
        "paper's MLP, wd 1e-2": {"summary_features": False, "weight_decay": 1e-2},
    }
    for n in sizes:
        if n + 2 > len(data):
            print(f"skipping N = {n}: {len(data)} rows in {run_dir / ACC_DATASET}")
            continue
        part = AccuracyDataset(space, data.seed, data.configs[: n + 2],
                               data.val_accuracy[: n + 2], data.images)  # fmt: skip
        for name, kwargs in settings.items():
            reports = [train_predictor(part, seed=s, **kwargs)[1] for s in seeds]
            mean = {k: float(np.mean([getattr(r, k) for r in reports]))
                    for k in ("rmse", "baseline_rmse", "kendall_tau", "spearman_rho")}  # fmt: skip
            rows.append(f"| {n + 2} | {name} | {mean['rmse']:.3f} | {mean['baseline_rmse']:.3f} "
                        f"| {mean['kendall_tau']:.3f} | {mean['spearman_rho']:.3f} |")  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def noise_floor(run_dir: Path, subnets: int, holdout: int = 200) -> list[str]:
    """Lines: the per-subnet measurement noise and what a perfect predictor would score."""
    run = load_run(run_dir, device="cpu")
    config, space, splits = run.config, run.space, run.splits
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    calib = [x for x, _ in calibration_loader(splits.train, config.bn_calib_images,
                                              config.eval_batch_size, 0)]  # fmt: skip
    val = list(BatchLoader(splits.val, config.eval_batch_size, shuffle=False, augment=False))
    rng = np.random.default_rng(0)
    correct = []
    for _ in range(subnets):
        arch = space.sample(rng)
        subnet = run.supernet.get_subnet(arch).to(memory_format=fmt)
        recalibrate_bn(subnet, [resize(x, arch.resolution).to(memory_format=fmt) for x in calib])
        with torch.inference_mode():
            hits = [subnet(resize(x, arch.resolution).to(memory_format=fmt)).argmax(1) == y
                    for x, y in val]  # fmt: skip
        correct.append(torch.cat(hits).numpy())
    c = np.asarray(correct, dtype=np.float64)  # [subnets, images]
    images = c.shape[1]
    acc = 100.0 * c.mean(1)
    noise_var = paired_noise_variance(c)  # points^2, one subnet's idiosyncratic share
    half_a, half_b = 100.0 * c[:, 0::2].mean(1), 100.0 * c[:, 1::2].mean(1)
    split_tau = float(stats.kendalltau(half_a, half_b).statistic)
    true_var = max(float(acc.var()) - noise_var, 1e-12)
    sim = np.random.default_rng(1)
    taus, rmses = [], []
    for _ in range(2000):
        truth = sim.normal(0.0, np.sqrt(true_var), holdout)
        label = truth + sim.normal(0.0, np.sqrt(noise_var), holdout)
        taus.append(stats.kendalltau(truth, label).statistic)
        rmses.append(np.sqrt(np.mean((truth - label) ** 2)))
    lines = [
        f"{subnets} random subnets on {images} validation images: accuracy std "
        f"{acc.std():.3f} points ({acc.min():.2f}-{acc.max():.2f}%)",
        f"measurement noise per subnet: {np.sqrt(noise_var):.3f} points "
        f"({np.sqrt(2 * noise_var):.3f} on half the images)",
        f"two halves of the validation split: Kendall tau {split_tau:.3f}",
        f"a perfect predictor against these labels ({holdout} held out, normal model): RMSE "
        f"{np.mean(rmses):.3f} points, Kendall tau {np.mean(taus):.3f} "
        f"(5-95%: {np.percentile(taus, 5):.3f}-{np.percentile(taus, 95):.3f})",
    ]
    for line in lines:
        print(line, flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--sizes", default="200,400,600,800,1000",
                        help="random subnets N (besides the largest and smallest)")  # fmt: skip
    parser.add_argument("--seeds", default="0,1,2", help="split and initialisation seeds")
    parser.add_argument("--noise-subnets", type=int, default=100,
                        help="subnets for the noise floor (0 skips it)")  # fmt: skip
    args = parser.parse_args()
    learning_curve(args.run_dir, [int(s) for s in args.sizes.split(",")],
                   [int(s) for s in args.seeds.split(",")])  # fmt: skip
    if args.noise_subnets > 1:
        noise_floor(args.run_dir, args.noise_subnets)


if __name__ == "__main__":
    main()
