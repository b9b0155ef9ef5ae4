"""Progressive shrinking vs. no progressive shrinking vs. training each subnet alone.

Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Fig. 4 / Table 1: the subnets of a supernet
trained by progressive shrinking (PS) against (b) one supernet trained with every elastic
dimension from the start for the same total epochs, and (c) each subnet trained from scratch for
the same epochs. Four subnets are compared: the space's largest and smallest and two uniform
middle ones (every block at one middle choice), because a from-scratch subnet is trained through
a one-choice phase, which restricts choices space-wide.

Every arm is an ordinary training run in its own directory under ``run_dir`` (``ps/``,
``no-ps/``, ``scratch-<subnet>/``), started or resumed from its checkpoint, so an interrupted
ablation continues where it stopped. The table is written as ``ablate_ps.csv`` and
``ablate_ps.md``, the plot as ``ablate_ps.png``.

Deviation: arms (b) and (c) run at the run's ``train_limit`` for every epoch, while PS phases
may set their own ``train_limit``; the table gives each arm's training images seen.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from supernet.checkpoint import write_text_atomic
from supernet.data import BatchLoader, load_dataset
from supernet.errors import ConfigError
from supernet.space import ArchConfig, SearchSpace
from supernet.train import calibration_loader, evaluate_subnet, train
from supernet.train.config import PhaseConfig, TrainConfig
from supernet.train.rundir import CHECKPOINT
from supernet.train.trainer import build_supernet

__all__ = ["ARMS", "AblationRow", "ablation_subnets", "no_ps_config", "run_ps_ablation",
           "scratch_config"]  # fmt: skip

ARMS = ("ps", "no-ps", "scratch")


@dataclass(frozen=True)
class AblationRow:
    """One subnet under one arm: test accuracy (%) and training images seen by the arm."""

    arm: str
    subnet: str
    config: str
    test_accuracy: float
    train_images: int


def _middle(values: tuple[int, ...]) -> int:
    return sorted(values)[len(values) // 2]


def ablation_subnets(space: SearchSpace) -> list[tuple[str, ArchConfig]]:
    """``[(label, config)]``: largest, two uniform middle subnets, smallest."""

    def uniform(k: int, e: int, d: int, r: int) -> ArchConfig:
        return ArchConfig(
            resolution=r,
            kernel_size=(k,) * space.num_blocks,
            expand_ratio=(e,) * space.num_blocks,
            depth=(d,) * space.num_stages,
        )

    ks, es, ds, rs = space.kernel_sizes, space.expand_ratios, space.depths, space.resolutions
    return [
        ("largest", space.largest()),
        ("middle-a", uniform(_middle(ks), _middle(es), _middle(ds), max(rs))),
        ("middle-b", uniform(max(ks), min(es), max(ds), _middle(rs))),
        ("smallest", space.smallest()),
    ]


def _total_epochs(config: TrainConfig) -> int:
    return sum(p.epochs for p in config.phases)


def no_ps_config(config: TrainConfig) -> TrainConfig:
    """Arm (b): one phase, every elastic dimension from the start, sandwich sampling, the PS
    run's total epochs and its first phase's LR and warm-up; no distillation (no trained teacher
    exists before the first phase)."""
    first = config.phases[0]
    per_step = max(2, *(p.subnets_per_step for p in config.phases))
    phase = PhaseConfig(name="all", epochs=_total_epochs(config), lr=first.lr,
                        subnets_per_step=per_step, sandwich=True, distill=False,
                        warmup_epochs=first.warmup_epochs)  # fmt: skip
    return replace(config, preset=f"{config.preset}-no-ps", phases=[phase])


def scratch_config(config: TrainConfig, arch: ArchConfig) -> TrainConfig:
    """Arm (c): ``arch`` alone (a uniform or extreme subnet: one choice per dimension) for the PS
    run's total epochs at its first phase's LR.

    Raises:
        ConfigError: ``arch`` uses more than one choice of a dimension.
    """
    dims = {"kernel_sizes": set(arch.kernel_size), "expand_ratios": set(arch.expand_ratio),
            "depths": set(arch.depth)}  # fmt: skip
    mixed = [name for name, values in dims.items() if len(values) != 1]
    if mixed:
        raise ConfigError(f"a from-scratch subnet needs one choice per dimension; {mixed} vary")
    first = config.phases[0]
    phase = PhaseConfig(name="alone", epochs=_total_epochs(config), lr=first.lr, distill=False,
                        warmup_epochs=first.warmup_epochs, resolutions=[arch.resolution],
                        **{k: sorted(v) for k, v in dims.items()})  # fmt: skip
    return replace(config, preset=f"{config.preset}-scratch", phases=[phase])


def _images(config: TrainConfig, n_train: int) -> int:
    return sum(p.epochs * min(n_train, config.train_images(p) or n_train) for p in config.phases)


def run_ps_ablation(
    config: TrainConfig, run_dir: str | Path, *, test_limit: int | None = None
) -> list[AblationRow]:
    """Train (or resume) the three arms under ``run_dir`` and score the four subnets on the
    test split; write the table and plot. Returns the rows (arm × subnet).

    Raises:
        ConfigError / RunDirError / CheckpointError: from the training runs.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 4.1, Fig. 4 and Table 1.
    """
    run_dir = Path(run_dir)
    splits = load_dataset(config.dataset)
    space, _ = build_supernet(config, splits)
    subnets = ablation_subnets(space)
    calib = calibration_loader(splits.train, config.bn_calib_images, config.eval_batch_size, 0)
    test = BatchLoader(splits.test, config.eval_batch_size, shuffle=False, augment=False,
                       limit=test_limit)  # fmt: skip
    n_train = len(splits.train)
    arms: list[tuple[str, TrainConfig, Path, list[tuple[str, ArchConfig]]]] = [
        ("ps", config, run_dir / "ps", subnets),
        ("no-ps", no_ps_config(config), run_dir / "no-ps", subnets),
    ]
    arms += [("scratch", scratch_config(config, arch), run_dir / f"scratch-{label}",
              [(label, arch)]) for label, arch in subnets]  # fmt: skip
    rows: list[AblationRow] = []
    for arm, cfg, path, scored in arms:
        # each arm resumes where it stopped (`--resume` now refuses a run with no checkpoint)
        model = train(cfg, path, resume=(path / CHECKPOINT).is_file()).supernet
        for label, arch in scored:
            score, _ = evaluate_subnet(model, arch, calib=calib, data=test, device=_device(model))
            rows.append(AblationRow(arm, label, arch.to_json(), round(score.accuracy, 3),
                                    _images(cfg, n_train)))  # fmt: skip
    _write(run_dir, rows, [label for label, _ in subnets])
    return rows


def _device(model):
    return next(model.parameters()).device


def _write(run_dir: Path, rows: list[AblationRow], labels: list[str]) -> None:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(asdict(rows[0])))
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    write_text_atomic(run_dir / "ablate_ps.csv", buf.getvalue())
    acc = {(r.arm, r.subnet): r.test_accuracy for r in rows}
    lines = ["| subnet | " + " | ".join(ARMS) + " | PS − best other |", "|---" * 5 + "|"]
    for label in labels:
        ps, others = acc[("ps", label)], [acc[(a, label)] for a in ARMS[1:]]
        lines.append(f"| {label} | " + " | ".join(f"{acc[(a, label)]:.2f}" for a in ARMS)
                     + f" | {ps - max(others):+.2f} |")  # fmt: skip
    write_text_atomic(run_dir / "ablate_ps.md", "\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.27
    for i, arm in enumerate(ARMS):
        xs = [j + (i - 1) * width for j in range(len(labels))]
        ax.bar(xs, [acc[(arm, label)] for label in labels], width, label=arm)
    ax.set_xticks(range(len(labels)), labels)
    values = list(acc.values())
    ax.set_ylim(max(0.0, min(values) - 5.0), min(100.0, max(values) + 3.0))  # the gaps show
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Progressive shrinking vs. alternatives (OFA Fig. 4)")
    ax.legend(loc="upper center", ncols=len(ARMS), fontsize=8)
    save_png(fig, run_dir / "ablate_ps.png")


def save_png(fig, path: Path) -> None:
    """Lay out ``fig``, write it to ``path`` as PNG (120 dpi) through a temporary file renamed
    into place, and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    tmp.replace(path)
