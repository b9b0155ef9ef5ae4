"""A run directory: ``config.yaml``, ``checkpoint.pt``, ``metrics.csv``, later eval/report files.

No existing run is overwritten without ``force``; resuming checks the saved config matches.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

import yaml

from supernet.checkpoint import write_text_atomic  # re-exported: run files are written atomically
from supernet.errors import RunDirError
from supernet.train.config import TrainConfig, load_config

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "METRICS",
    "config_digest",
    "prepare_run_dir",
    "read_run_config",
    "write_csv_atomic",
    "write_metrics",
    "write_text_atomic",
]

CONFIG, CHECKPOINT, METRICS = "config.yaml", "checkpoint.pt", "metrics.csv"
DATASET_RECORD = "dataset.json"  # an image folder's classes and mean/std (train/data.py)
RUN_FILES = (CONFIG, CHECKPOINT, METRICS, "eval.csv", "eval.md", DATASET_RECORD)
# Where a run executes does not change what it computes: these keys may differ on resume.
RUNTIME_KEYS = ("device", "amp", "threads", "checkpoint_every")
# Keys added after runs were made: at these defaults they stay out of the digest, so older runs
# (whose config.yaml lacks them) still resume and load.
_LATER_KEYS = {
    "norm": "bn",
    "sandwich_resolution": "step",
    "teacher_norm": "eval",
    "warmup": "linear",
    "decay_kernel_transforms": False,
}


def config_digest(config: TrainConfig) -> str:
    """SHA-256 (first 16 hex digits) of the config without its runtime-only keys."""
    data = {k: v for k, v in config.to_dict().items()
            if k not in RUNTIME_KEYS and _LATER_KEYS.get(k, ()) != v}  # fmt: skip
    return hashlib.sha256(yaml.safe_dump(data, sort_keys=True).encode()).hexdigest()[:16]


def write_csv_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (header: the first row's keys) to ``path`` atomically; none, no file."""
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.csv`` from all rows so far (the checkpoint holds the same rows)."""
    write_csv_atomic(run_dir / METRICS, rows)


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The resolved config saved in a run directory.

    The file is read with ``yaml.safe_load`` and checked like any config file
    (:func:`~supernet.train.config.load_config`): unknown keys and bad values are errors.

    Raises:
        RunDirError: when the directory holds no ``config.yaml``.
        ConfigError: when the saved config is not UTF-8 YAML, not a mapping, or invalid (names
            the file and the field).
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunDirError(f"{str(run_dir)!r} holds no supernet run (no {CONFIG})")
    return load_config(path=path)


def prepare_run_dir(run_dir: str | Path, config: TrainConfig, *, resume: bool, force: bool) -> Path:
    """Create or check ``run_dir`` and write ``config.yaml``; return the directory.

    Raises:
        RunDirError: the directory holds a run and neither ``resume`` nor ``force`` is given; it
            holds a different run than ``config`` (names the differing keys); or it holds files
            that are not a supernet run.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    has_run = (run_dir / CONFIG).is_file()
    if force:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        has_run = False
    elif has_run and not resume:
        raise RunDirError(
            f"{str(run_dir)!r} already holds a run; pass --resume to continue it "
            "or --force to overwrite it"
        )
    elif has_run:
        saved = read_run_config(run_dir)
        if config_digest(saved) != config_digest(config):
            a, b = saved.to_dict(), config.to_dict()
            diff = sorted(k for k in a if k not in RUNTIME_KEYS and a[k] != b.get(k))
            raise RunDirError(
                f"{str(run_dir)!r} holds a different run (preset {saved.preset!r}); "
                f"differing keys: {diff}. Use another --run-dir or --force to overwrite it"
            )
    elif any(run_dir.iterdir()):
        raise RunDirError(
            f"{str(run_dir)!r} is not empty and holds no supernet run; "
            "choose an empty directory or pass --force"
        )
    write_text_atomic(run_dir / CONFIG, config.to_yaml())
    return run_dir
