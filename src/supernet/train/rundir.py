"""A run directory: ``config.yaml``, ``checkpoint.pt``, ``metrics.csv``, later eval/report files.

No existing run is overwritten without ``force``; resuming checks the saved config matches.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import yaml

from supernet.checkpoint import write_text_atomic  # re-exported: run files are written atomically
from supernet.errors import ConfigError, RunDirError
from supernet.train.config import PhaseConfig, TrainConfig, load_config
from supernet.train.derived import remove_derived

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "METRICS",
    "check_run_dir",
    "config_digest",
    "prepare_run_dir",
    "read_run_config",
    "write_csv_atomic",
    "write_metrics",
    "write_text_atomic",
]

CONFIG, CHECKPOINT, METRICS = "config.yaml", "checkpoint.pt", "metrics.csv"
DATASET_RECORD = "dataset.json"  # an image folder's classes and mean/std (train/data.py)
RUN_FILES = (CONFIG, CHECKPOINT, METRICS, DATASET_RECORD)  # and the files derived (derived.py)
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
    "image_limit": None,
    "image_size": None,
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
        RunDirError: when the directory does not exist or holds no ``config.yaml``.
        ConfigError: when the saved config is truncated or not YAML (missing keys, no phases),
            or invalid (names the file and the field).
    """
    path = Path(run_dir) / CONFIG
    if not Path(run_dir).exists():
        raise RunDirError(f"run directory {str(run_dir)!r} does not exist")
    if not path.is_file():
        raise RunDirError(f"{str(run_dir)!r} holds no supernet run (no {CONFIG})")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (ValueError, yaml.YAMLError, RecursionError):
        data = None
    advice = (
        "the run's saved config cannot be read; restore it, or start the run again with --force"
    )
    try:
        config = load_config(path=path)
    except ConfigError as exc:
        if not isinstance(data, dict):
            raise ConfigError(f"{exc}; the file is truncated or not YAML: {advice}") from exc
        missing = _missing_keys(data)
        if missing and not set(data) - {f.name for f in dataclasses.fields(TrainConfig)}:
            raise ConfigError(_truncated(path, missing, advice)) from exc
        raise
    missing = _missing_keys(data, phases=False) if isinstance(data, dict) else []
    if missing:  # valid, but not the whole file this library writes
        raise ConfigError(_truncated(path, missing, advice))
    return config


def _missing_keys(data: dict[str, Any], *, phases: bool = True) -> list[str]:
    """Keys a run's ``config.yaml`` always holds (it is written whole) that ``data`` lacks; with
    ``phases``, the phases' keys too (only asked of a file that fails to load: runs saved before
    a phase key existed lack it and still load); without, a phase lacking keys the first phase
    has (the file was cut inside its last phase)."""
    keys = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _LATER_KEYS]
    missing = [k for k in keys if k not in data or (k == "phases" and not data[k])]
    phase_keys = [f.name for f in dataclasses.fields(PhaseConfig)]
    listed = [p for p in (data.get("phases") or []) if isinstance(p, dict)]
    for i, phase in enumerate(listed):
        if phases:
            missing += [f"phases[{i}].{k}" for k in phase_keys if k not in phase]
        else:  # every phase is written with the same keys: one that lacks some was cut short
            missing += [f"phases[{i}].{k}" for k in listed[0] if k not in phase]
    return missing


def _truncated(path: Path, missing: list[str], advice: str) -> str:
    more = "..." if len(missing) > 4 else ""
    return f"{str(path)!r} is truncated or not YAML (missing {missing[:4]}{more}): {advice}"


def check_run_dir(run_dir: str | Path, config: TrainConfig, *, resume: bool, force: bool) -> None:
    """Check that ``config`` may train into ``run_dir`` as asked, writing nothing.

    Raises:
        ConfigError: both ``resume`` and ``force`` (one continues the run, the other deletes it).
        RunDirError: the directory holds a run and neither ``resume`` nor ``force`` is given;
            ``resume`` without a checkpoint to resume; it holds a different run than ``config``
            (names the differing keys); it holds files that are not a supernet run; or it is
            not a directory.
    """
    run_dir = Path(run_dir)
    if resume and force:
        raise ConfigError(
            "--resume and --force contradict each other: --resume continues the run in "
            f"{str(run_dir)!r}, --force deletes it and starts again; give one of them"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{str(run_dir)!r} is a file, not a run directory")
    has_run = (run_dir / CONFIG).is_file()
    if resume and not (run_dir / CHECKPOINT).is_file():
        if not run_dir.exists():
            raise RunDirError(
                f"nothing to resume: {str(run_dir)!r} does not exist; start the run without "
                "--resume"
            )
        if has_run:
            raise RunDirError(
                f"nothing to resume: {str(run_dir)!r} holds a run that stopped before its first "
                f"checkpoint (no {CHECKPOINT}); start it again with --force"
            )
        raise RunDirError(
            f"nothing to resume: {str(run_dir)!r} holds no supernet run (no {CHECKPOINT}); "
            "start the run without --resume"
        )
    if force or not run_dir.exists():
        return
    if has_run and not resume:
        raise RunDirError(
            f"{str(run_dir)!r} already holds a run; pass --resume to continue it "
            "or --force to overwrite it"
        )
    if has_run:
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


def prepare_run_dir(
    run_dir: str | Path, config: TrainConfig, *, resume: bool, force: bool
) -> tuple[Path, list[str]]:
    """Check ``run_dir`` (:func:`check_run_dir`), create it and write ``config.yaml``; return
    the directory and the names of the files ``force`` removed.

    With ``force`` the old run's files and every file derived from its checkpoint
    (:data:`~supernet.train.derived.DERIVED_FILES`: evaluation, accuracy dataset, predictor,
    specializations, report) are deleted first, and their names logged as a warning.

    Raises:
        ConfigError, RunDirError: see :func:`check_run_dir`.
    """
    check_run_dir(run_dir, config, resume=resume, force=force)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if force:
        removed = remove_derived(run_dir)
        for name in RUN_FILES:
            if (run_dir / name).exists():
                (run_dir / name).unlink()
                removed.append(name)
        if removed:
            log.info("--force: removed the old run's %s from %s", ", ".join(removed), run_dir)
    write_text_atomic(run_dir / CONFIG, config.to_yaml())
    return run_dir, removed if force else []
