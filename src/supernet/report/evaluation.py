"""Evaluate a finished (or partial) run: the largest, a middle and the smallest subnet on the test
set, each extracted and BN re-calibrated; the table is written to the run directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from supernet.cost import count_params, measure_macs
from supernet.data import BatchLoader
from supernet.errors import ConfigError
from supernet.runtime import detect_runtime
from supernet.space import ArchConfig, describe
from supernet.train import (
    calibration_loader,
    evaluate_subnet,
    load_run,
)
from supernet.train.derived import record_derived
from supernet.train.distributed import distributed_session, is_main_process, shard_map
from supernet.train.rundir import write_csv_atomic, write_text_atomic

__all__ = ["SPLITS", "RunEvaluation", "SubnetRow", "evaluate_run"]

SPLITS = ("test", "val")


@dataclass(frozen=True)
class SubnetRow:
    """One evaluated subnet: accuracy in %, MACs and params as counts (batch 1)."""

    name: str
    config: ArchConfig
    macs: int
    params: int
    accuracy: float
    images: int

    def as_dict(self) -> dict[str, object]:
        """One ``eval.csv`` row."""
        return {
            "subnet": self.name,
            "config": describe(self.config),
            "resolution": self.config.resolution,
            "macs": self.macs,
            "params": self.params,
            "accuracy": round(self.accuracy, 2),
            "images": self.images,
            "config_json": self.config.to_json(),
        }


@dataclass(frozen=True)
class RunEvaluation:
    """The evaluated subnets of one run on one split, and whether training had finished."""

    run_dir: Path
    split: str
    finished: bool
    progress: str
    rows: list[SubnetRow]
    calib_images: int

    def markdown(self) -> str:
        """The table as markdown (``eval.md``)."""
        lines = [
            f"Subnets of `{self.run_dir}` on the {self.split} split ({self.progress}); "
            f"each extracted and BN re-calibrated on {self.calib_images:,} training images.",
            "",
            "| subnet | config | MACs (M) | params (M) | top-1 (%) |",
            "|---|---|---:|---:|---:|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.name} | `{describe(r.config)}` | {r.macs / 1e6:.2f} | "
                f"{r.params / 1e6:.3f} | {r.accuracy:.2f} |"
            )
        return "\n".join(lines) + "\n"


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    device: str = "auto",
    progress: Callable[[int, int, str], None] | None = None,
) -> RunEvaluation:
    """Evaluate the largest, middle and smallest subnet of the run's space on ``split``.

    ``progress(done, 3, what)`` is called once the run is loaded and after each subnet.

    Writes ``eval.csv`` and ``eval.md`` into the run directory. Under ``torchrun`` the subnets
    are split across ranks and rank 0 writes the files.

    Raises:
        ConfigError: an unknown split (lists the allowed ones).
        RunDirError: ``run_dir`` holds no run.
        CheckpointError: the checkpoint is missing, unreadable or of another run.
    """
    if split not in SPLITS:
        raise ConfigError(f"split = {split!r} is not allowed; choose from {SPLITS}")
    with distributed_session(detect_runtime(device, amp=False)):
        say = progress or (lambda done, total, what: None)
        run = load_run(run_dir, device=device)
        say(0, 3, "run loaded")
        config, space, supernet, splits = run.config, run.space, run.supernet, run.splits
        calib = calibration_loader(splits.train, config.calib_images, config.eval_batch_size, 0)
        data_split = splits.test if split == "test" else splits.val
        data = BatchLoader(
            data_split,
            config.eval_batch_size,
            shuffle=False,
            augment=False,
            limit=config.image_limit,
        )

        done: list[str] = []

        def row(item: tuple[str, ArchConfig]) -> SubnetRow:
            name, arch = item
            score, subnet = evaluate_subnet(
                supernet, arch, calib=calib, data=data, device=run.device,
                channels_last=config.channels_last,
            )  # fmt: skip
            shape = (1, space.input_channels, arch.resolution, arch.resolution)
            with torch.no_grad():
                macs = measure_macs(subnet, shape)
            done.append(name)
            say(len(done), 3, f"{name}: {score.accuracy:.2f}%")
            return SubnetRow(name, arch, macs, count_params(subnet), score.accuracy, score.images)

        # under torchrun the subnets are split across ranks; every rank gets all rows
        extremes = [("largest", space.largest()), ("middle", space.middle()),
                    ("smallest", space.smallest())]  # fmt: skip
        rows = shard_map(row, extremes)
        result = RunEvaluation(
            run.run_dir, split, run.finished, run.progress, rows, calib.num_samples
        )
        if not is_main_process():
            return result
    write_csv_atomic(run.run_dir / "eval.csv", [r.as_dict() for r in rows])
    write_text_atomic(run.run_dir / "eval.md", result.markdown())
    for name in ("eval.csv", "eval.md"):
        record_derived(run.run_dir, name, run.checkpoint_digest)
    return result
