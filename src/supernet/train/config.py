"""Training configuration: typed dataclass defaults ← YAML preset ← command-line overrides.

Unknown keys are errors; the resolved config is saved as ``config.yaml`` in the run directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from supernet.errors import ConfigError

__all__ = [
    "PRESET_DIR",
    "PhaseConfig",
    "TrainConfig",
    "list_presets",
    "load_config",
    "parse_overrides",
]

# Presets live in the repository's configs/ folder (DESIGN.md); editable installs find them here.
PRESET_DIR = Path(__file__).resolve().parents[3] / "configs"

Choice = str | list[int]
OPTIMIZERS = ("sgd", "adamw")
TEACHERS = ("frozen", "inplace")
NORMS = ("bn", "gn")


@dataclass
class PhaseConfig:
    """One phase of progressive shrinking: which choices are elastic, for how long, at what LR.

    ``kernel_sizes`` / ``expand_ratios`` / ``depths`` / ``resolutions`` are ``"all"``, ``"max"``,
    ``"min"`` or a list of choices of the space. Reference: Once-for-All (arXiv 1908.09791),
    Sec. 3.2 and Fig. 2 (full network → elastic kernel → elastic depth → elastic width).

    ``sandwich``: of the ``subnets_per_step`` subnets, the first two are the phase's largest and
    smallest, the rest random — the sandwich rule of Universally Slimmable Networks (Yu & Huang,
    arXiv 1903.05134, Sec. 3.1) and BigNAS (arXiv 2003.11142, Sec. 3.1), beyond Once-for-All's
    purely random sampling; it keeps the extremes of the space trained in short schedules.
    """

    name: str
    epochs: int
    lr: float
    kernel_sizes: Choice = "all"
    expand_ratios: Choice = "all"
    depths: Choice = "all"
    resolutions: Choice = "all"
    subnets_per_step: int = 1
    distill: bool = True
    sort_channels: bool = False
    sandwich: bool = False
    warmup_epochs: float = 0.0
    train_limit: int | None = None  # images per epoch for this phase (default: the run's)


@dataclass
class TrainConfig:
    """Everything a training run needs; saved verbatim as ``config.yaml``.

    ``teacher`` picks where distilling phases take their soft labels: ``"frozen"`` — a frozen copy
    of the full network as trained by the first phase (Once-for-All, arXiv 1908.09791, Sec. 3.2);
    ``"inplace"`` — the full network of the same step, which the sandwich rule trains first, its
    output detached (in-place distillation, BigNAS, arXiv 2003.11142, Sec. 3.1). In-place saves the
    teacher's forward pass and keeps the teacher improving; it needs ``sandwich: true``.

    ``norm``: ``"bn"`` (batch norm, Once-for-All) or ``"gn"`` (group norm with 8 channels per group
    plus weight standardization, the batch-1 setting of TinyTL, arXiv 2007.11622, Sec. 3.2).
    ``checkpoint_every``: also checkpoint every this many optimizer steps inside an epoch (``None``:
    only at epoch ends); a killed run loses at most that many steps.
    """

    preset: str = "custom"
    space: str = "mbv3-tiny"
    dataset: str = "fashion-mnist"
    seed: int = 0
    batch_size: int = 128
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    augment: bool = True
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    kd_ratio: float = 1.0
    teacher: str = "frozen"
    dropout: float = 0.1
    train_limit: int | None = None
    val_limit: int | None = 2000
    bn_calib_images: int = 2000
    eval_batch_size: int = 500
    device: str = "auto"
    amp: str = "auto"
    threads: int | None = None
    channels_last: bool = True
    norm: str = "bn"
    checkpoint_every: int | None = None
    phases: list[PhaseConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.phases = [
            p if isinstance(p, PhaseConfig) else _from_mapping(PhaseConfig, p, "phases[]")
            for p in self.phases
        ]
        self.validate()

    def validate(self) -> None:
        """Raises: ConfigError naming the field, value and what is allowed."""
        positive = ("batch_size", "eval_batch_size", "bn_calib_images")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} = {value!r} must be an integer >= 1")
        for name in ("train_limit", "val_limit", "threads", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} = {value!r} must be null or an integer >= 1")
        for name in ("weight_decay", "kd_ratio", "momentum"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} = {getattr(self, name)} must be >= 0")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer = {self.optimizer!r}; choose from {OPTIMIZERS}")
        if self.norm not in NORMS:
            raise ConfigError(f"norm = {self.norm!r}; choose from {NORMS}")
        if self.teacher not in TEACHERS:
            raise ConfigError(f"teacher = {self.teacher!r}; choose from {TEACHERS}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing = {self.label_smoothing} must be in [0, 1)")
        if not self.phases:
            raise ConfigError("phases is empty; give at least one progressive-shrinking phase")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ConfigError(f"phase names must be unique, got {names}")
        for i, p in enumerate(self.phases):
            where = f"phases[{i}] ({p.name!r})"
            if not isinstance(p.epochs, int) or p.epochs < 1:
                raise ConfigError(f"{where}.epochs = {p.epochs!r} must be an integer >= 1")
            if not p.lr > 0:
                raise ConfigError(f"{where}.lr = {p.lr!r} must be > 0")
            if not isinstance(p.subnets_per_step, int) or p.subnets_per_step < 1:
                raise ConfigError(f"{where}.subnets_per_step = {p.subnets_per_step!r} must be >= 1")
            if p.sandwich and p.subnets_per_step < 2:
                raise ConfigError(
                    f"{where}.sandwich needs subnets_per_step >= 2, got {p.subnets_per_step}"
                )
            if p.train_limit is not None and (
                not isinstance(p.train_limit, int) or p.train_limit < 1
            ):
                raise ConfigError(f"{where}.train_limit = {p.train_limit!r} must be null or >= 1")
            if self.teacher == "inplace" and p.distill and not p.sandwich:
                raise ConfigError(
                    f"{where} has distill: true with teacher: inplace, which takes the soft "
                    "labels from the largest subnet trained first in the step; set sandwich: true"
                )
            if not 0 <= p.warmup_epochs <= p.epochs:
                raise ConfigError(f"{where}.warmup_epochs = {p.warmup_epochs} not in [0, epochs]")
            for dim in ("kernel_sizes", "expand_ratios", "depths", "resolutions"):
                value = getattr(p, dim)
                ok = value in ("all", "max", "min") or (
                    isinstance(value, list) and value and all(isinstance(v, int) for v in value)
                )
                if not ok:
                    raise ConfigError(
                        f"{where}.{dim} = {value!r}; use 'all', 'max', 'min' or a list of choices"
                    )
        if self.phases[0].distill:
            raise ConfigError(
                f"phases[0] ({self.phases[0].name!r}) has distill: true, but the teacher is the "
                "full network trained before the first distilling phase; set distill: false"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (phases as dicts)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The YAML text saved as ``config.yaml``."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _from_mapping(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known keys: {known}")
    try:
        return cls(**data)
    except TypeError as exc:  # missing required keys
        raise ConfigError(f"{where}: {exc}") from exc


def list_presets() -> list[str]:
    """Names of the YAML presets shipped in ``configs/``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["batch_size=64", "train_limit=null"]`` → ``{"batch_size": 64, "train_limit": None}``.

    Values are parsed as YAML. Raises: ConfigError for an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def load_config(
    preset: str | None = None,
    *,
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Resolve a :class:`TrainConfig` from a preset name or a YAML file, then overrides.

    Raises:
        ConfigError: unknown preset (lists them), unreadable YAML, unknown keys or bad values.
    """
    data: dict[str, Any] = {}
    if preset is not None and path is not None:
        raise ConfigError("give a preset name or a config file, not both")
    if preset is not None:
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown preset {preset!r}; choose from {list_presets()}")
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping")
        data.update(loaded)
        data.setdefault("preset", preset or Path(path).stem)
    data.update(overrides or {})
    return _from_mapping(TrainConfig, data, "the training config")
