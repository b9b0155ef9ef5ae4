"""Progressive shrinking's subnets vs. the same family scaled along one dimension alone.

Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 4.2 and Fig. 9 compare OFA's
specialized subnets with models scaled by one knob (the MobileNetV3 width multiplier, or the input
resolution), each trained from scratch. Here the knobs are the space's own elastic dimensions,
applied uniformly to the largest subnet: *width* is the expand ratio of every block (this space's
width elasticity; there is no channel multiplier), *depth* the block count of every stage,
*resolution* the input size. Each scaled baseline is trained alone from scratch for the PS run's
total epochs (:func:`~supernet.ablate.ps.scratch_config`), in ``scratch-<label>/`` under the run
directory, so a baseline that ``supernet ablate ps`` already trained in the same folder
(``scratch-largest``) is reused.

The supernet's side: every baseline's arch config and ``n_random`` seeded random subnets are
extracted from the PS supernet (``ps/``), BN re-calibrated and scored on the test split. For each
baseline the table gives the best of those subnets whose latency is within the baseline's: a
specialization by exhaustive evaluation of the candidates (no predictor needed). Latency is the
latency table's prediction (ms, batch 1), the same for both sides.

Writes ``ablate_scaled.csv`` (every scored point), ``ablate_scaled.md`` (one row per baseline) and
``ablate_scaled.png`` (the Pareto front and the scaled baselines).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from supernet.ablate.ps import _images, save_png, scratch_config
from supernet.checkpoint import write_text_atomic
from supernet.cost.lut import LatencyTable
from supernet.data import BatchLoader, load_dataset
from supernet.errors import ConfigError
from supernet.space import ArchConfig, SearchSpace
from supernet.train import calibration_loader, evaluate_subnet, train
from supernet.train.config import TrainConfig
from supernet.train.rundir import CHECKPOINT
from supernet.train.trainer import build_supernet

__all__ = ["ScaledPoint", "best_within", "pareto_front", "run_scaled_ablation", "scaled_baselines"]

SCALED_DIMS = ("width", "depth", "resolution")


@dataclass(frozen=True)
class ScaledPoint:
    """One scored subnet: ``source`` is ``"scratch"`` (a scaled baseline trained alone) or
    ``"supernet"`` (extracted from the PS supernet); latency in ms (table prediction, batch 1),
    test accuracy in %, ``train_images`` seen by the network's training run."""

    source: str
    label: str
    config: str
    latency_ms: float
    test_accuracy: float
    train_images: int


def scaled_baselines(
    space: SearchSpace, per_dim: int | None = None
) -> list[tuple[str, ArchConfig]]:
    """``[(label, config)]``: the largest subnet (``"largest"``), then the largest with the expand
    ratio of every block (``"width-e<E>"``), the depth of every stage (``"depth-d<D>"``) or the
    resolution (``"resolution-r<R>"``) set to each smaller choice, everything else at its maximum.
    ``per_dim`` keeps only that many smallest choices per dimension (``None``: all).

    Raises:
        ConfigError: ``per_dim`` < 1.
    """
    if per_dim is not None and per_dim < 1:
        raise ConfigError(f"per_dim = {per_dim} must be >= 1 (or None for every choice)")

    def smaller(values: tuple[int, ...]) -> list[int]:
        below = sorted(values, reverse=True)[1:]
        return below if per_dim is None else below[-per_dim:]

    big = space.largest()
    out = [("largest", big)]
    for e in smaller(space.expand_ratios):
        out.append((f"width-e{e}", replace(big, expand_ratio=(e,) * space.num_blocks)))
    for d in smaller(space.depths):
        out.append((f"depth-d{d}", replace(big, depth=(d,) * space.num_stages)))
    for r in smaller(space.resolutions):
        out.append((f"resolution-r{r}", replace(big, resolution=r)))
    return out


def run_scaled_ablation(
    config: TrainConfig,
    run_dir: str | Path,
    table: LatencyTable,
    *,
    n_random: int = 24,
    per_dim: int | None = None,
    seed: int = 0,
    test_limit: int | None = None,
) -> list[ScaledPoint]:
    """Train (or resume) the PS supernet and every scaled baseline under ``run_dir``, score them
    and ``n_random`` random subnets of the supernet on the test split, and write the table and
    plot. Returns every scored point (baselines first). ``per_dim``: as
    :func:`scaled_baselines`. The scaled-down baselines train before the largest (which
    ``supernet ablate ps`` may be training in the same folder).

    Raises:
        ConfigError: ``n_random`` < 0 or ``per_dim`` < 1.
        LatencyTableError: ``table`` is for another space.
        RunDirError / CheckpointError: from the training runs.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 4.2, Fig. 9 (OFA vs. scaled MobileNetV3).
    """
    if n_random < 0:
        raise ConfigError(f"n_random = {n_random} must be >= 0")
    run_dir = Path(run_dir)
    splits = load_dataset(config.dataset)
    space, _ = build_supernet(config, splits)
    baselines = scaled_baselines(space, per_dim)  # checks per_dim before any training
    table.check_space(space)
    calib = calibration_loader(splits.train, config.bn_calib_images, config.eval_batch_size, 0)
    test = BatchLoader(splits.test, config.eval_batch_size, shuffle=False, augment=False,
                       limit=test_limit)  # fmt: skip
    n_train = len(splits.train)
    scored: dict[str, ScaledPoint] = {}
    for label, arch in baselines[1:] + baselines[:1]:
        cfg = scratch_config(config, arch)
        path = run_dir / f"scratch-{label}"
        model = train(cfg, path, resume=(path / CHECKPOINT).is_file()).supernet
        scored[label] = _score(model, "scratch", label, arch, table, calib, test,
                               _images(cfg, n_train))  # fmt: skip
    points = [scored[label] for label, _ in baselines]
    ps = run_dir / "ps"
    supernet = train(config, ps, resume=(ps / CHECKPOINT).is_file()).supernet
    rng = np.random.default_rng(seed)
    candidates = list(baselines) + [(f"random-{i}", space.sample(rng)) for i in range(n_random)]
    ps_images = _images(config, n_train)
    for label, arch in candidates:
        points.append(_score(supernet, "supernet", label, arch, table, calib, test, ps_images))
    _write(run_dir, points)
    return points


def _score(model, source, label, arch, table, calib, test, images) -> ScaledPoint:
    device = next(model.parameters()).device
    score, _ = evaluate_subnet(model, arch, calib=calib, data=test, device=device)
    latency = float(table.predict([arch])[0])
    return ScaledPoint(source, label, arch.to_json(), round(latency, 4),
                       round(score.accuracy, 3), images)  # fmt: skip


def best_within(points: list[ScaledPoint], latency_ms: float) -> ScaledPoint | None:
    """The supernet point of highest test accuracy whose latency is ≤ ``latency_ms``."""
    within = [p for p in points if p.source == "supernet" and p.latency_ms <= latency_ms + 1e-9]
    return max(within, key=lambda p: p.test_accuracy, default=None)


def pareto_front(points: list[ScaledPoint]) -> list[ScaledPoint]:
    """The supernet points no other supernet point beats in both latency and accuracy, by
    increasing latency."""
    front: list[ScaledPoint] = []
    for p in sorted((p for p in points if p.source == "supernet"),
                    key=lambda p: (p.latency_ms, -p.test_accuracy)):  # fmt: skip
        if not front or p.test_accuracy > front[-1].test_accuracy:
            front.append(p)
    return front


def _write(run_dir: Path, points: list[ScaledPoint]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(asdict(points[0])))
    writer.writeheader()
    writer.writerows(asdict(p) for p in points)
    write_text_atomic(run_dir / "ablate_scaled.csv", buf.getvalue())
    lines = [
        "| scaled baseline | latency (ms) | from scratch (%) | PS subnet within latency (%) "
        "| its latency (ms) | PS − scratch |",
        "|---" * 6 + "|",
    ]
    for p in (p for p in points if p.source == "scratch"):
        best = best_within(points, p.latency_ms)
        if best is None:
            lines.append(f"| {p.label} | {p.latency_ms:.3f} | {p.test_accuracy:.2f} | — | — | — |")
            continue
        lines.append(f"| {p.label} | {p.latency_ms:.3f} | {p.test_accuracy:.2f} | "
                     f"{best.test_accuracy:.2f} ({best.label}) | {best.latency_ms:.3f} | "
                     f"{best.test_accuracy - p.test_accuracy:+.2f} |")  # fmt: skip
    write_text_atomic(run_dir / "ablate_scaled.md", "\n".join(lines) + "\n")
    _plot(run_dir, points)


def _plot(run_dir: Path, points: list[ScaledPoint]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    sup = [p for p in points if p.source == "supernet"]
    ax.scatter([p.latency_ms for p in sup], [p.test_accuracy for p in sup], s=12, c="0.7",
               label="PS supernet subnets")  # fmt: skip
    front = pareto_front(points)
    ax.plot([p.latency_ms for p in front], [p.test_accuracy for p in front], "-o", ms=4,
            label="PS Pareto front")  # fmt: skip
    scratch = {p.label: p for p in points if p.source == "scratch"}
    for dim, marker in zip(SCALED_DIMS, ("s", "^", "D"), strict=True):
        line = [scratch["largest"]] + [p for k, p in scratch.items() if k.startswith(dim + "-")]
        line.sort(key=lambda p: p.latency_ms)
        ax.plot([p.latency_ms for p in line], [p.test_accuracy for p in line], "--" + marker,
                ms=5, label=f"scaled by {dim}, from scratch")  # fmt: skip
    ax.set_xlabel("latency (ms, latency table)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("PS subnets vs. scaled baselines (OFA Fig. 9)")
    ax.legend(fontsize=8)
    save_png(fig, run_dir / "ablate_scaled.png")
