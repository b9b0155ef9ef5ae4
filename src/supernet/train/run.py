"""A training run read back from its directory: config, space, trained supernet and data splits.

Everything downstream of training (evaluation, accuracy dataset, search, export, transfer) starts
from :func:`load_run`, so that a run is always loaded the same checked way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from supernet.checkpoint import load_checkpoint
from supernet.data import DatasetSplits
from supernet.errors import CheckpointError
from supernet.nn import OFAMobileNetV3
from supernet.runtime import detect_runtime
from supernet.space import SearchSpace
from supernet.train.config import TrainConfig
from supernet.train.data import load_run_dataset
from supernet.train.derived import checkpoint_digest
from supernet.train.rundir import CHECKPOINT, read_run_config
from supernet.train.trainer import build_supernet, checkpoint_metadata

__all__ = ["LoadedRun", "load_run"]


@dataclass
class LoadedRun:
    """A run directory's trained supernet (eval mode, on ``device``) and what it was trained on.

    ``finished`` is False for a run stopped before its last phase; ``progress`` says where.
    ``checkpoint_digest`` identifies the checkpoint loaded (:mod:`supernet.train.derived`): the
    files derived from it record it.
    """

    run_dir: Path
    config: TrainConfig
    space: SearchSpace
    supernet: OFAMobileNetV3
    splits: DatasetSplits
    device: torch.device
    finished: bool
    progress: str
    checkpoint_digest: str | None = None


def load_run(run_dir: str | Path, *, device: str = "auto") -> LoadedRun:
    """Load the supernet checkpoint of ``run_dir`` (``weights_only=True``) with its dataset.

    Raises:
        RunDirError: ``run_dir`` holds no run.
        CheckpointError: the checkpoint is missing, unreadable or of another space/preset/config.
        DataNotFoundError: the run's dataset is not installed.
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if not (run_dir / CHECKPOINT).is_file():
        raise CheckpointError(
            f"{str(run_dir)!r} holds no {CHECKPOINT}: its training stopped before the first "
            f"checkpoint; train it with `supernet train --resume --run-dir {run_dir}` or again "
            "with --force"
        )
    payload, _ = load_checkpoint(run_dir / CHECKPOINT, expect=checkpoint_metadata(config))
    rt = detect_runtime(device, amp=False)
    splits = load_run_dataset(config, run_dir)
    space, supernet = build_supernet(config, splits)
    supernet.load_state_dict(payload["model"])
    supernet = supernet.to(rt.device).eval()
    phase_index = payload["phase_index"]
    finished = phase_index >= len(config.phases)
    progress = (
        "training finished"
        if finished
        else f"partial run: stopped in phase {config.phases[phase_index].name!r} "
        f"epoch {payload['epoch']}"
    )
    return LoadedRun(run_dir, config, space, supernet, splits, rt.device, finished, progress,
                     checkpoint_digest(run_dir))  # fmt: skip
