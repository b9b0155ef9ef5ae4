"""Training configuration: typed dataclass defaults ← YAML preset ← command-line overrides.

Unknown keys are errors; the resolved config is saved as ``config.yaml`` in the run directory.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from supernet.data import FOLDER_PREFIX, check_dataset_name
from supernet.errors import ConfigError
from supernet.space import list_spaces, tinynas_space_names
from supernet.train.overrides import apply_overrides, parse_overrides

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
SANDWICH_RESOLUTIONS = ("step", "extremes")
TEACHER_NORMS = ("eval", "batch")
WARMUPS = ("linear", "constant")
NORMS = ("bn", "gn")
MAX_THREADS = 1024  # more is a typo, and torch would start that many threads


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
    ``sandwich_resolution``: the input resolution of a sandwich step's largest and smallest
    subnets. ``"step"`` — every subnet of a step sees the step's random resolution (Once-for-All,
    arXiv 1908.09791, Sec. 3.2, elastic resolution per batch); ``"extremes"`` — resolution is one
    of the dimensions the sandwich rule takes to its extremes, so the largest subnet trains at the
    phase's largest resolution and the smallest at its smallest, each on the step's images resized,
    while the random subnets keep the step's random resolution (the sandwich rule of BigNAS,
    arXiv 2003.11142, Sec. 3.1, with resolution as one more elastic dimension). Under
    ``teacher: frozen`` with ``"extremes"`` the teacher sees the largest resolution too.
    ``teacher_norm`` (``teacher: frozen`` only): ``"eval"`` — the frozen teacher normalizes with
    its running statistics; ``"batch"`` — with the batch's statistics (batch norm in train mode,
    dropout off), as the Once-for-All reference code, which calls ``teacher_model.train()``
    before its soft labels (its teacher has dropout 0).
    ``warmup``: ``"linear"`` — the LR rises linearly from ~0 over a phase's ``warmup_epochs``;
    ``"constant"`` — it stays at the phase's LR over them, then the cosine runs over the rest, as
    the reference's ``warmup_lr = -1`` (its warm-up epochs come on top of its cosine epochs: give
    ``epochs`` as their sum). ``decay_kernel_transforms``: apply weight decay to the kernel
    transformation matrices too, as the reference (its ``no_decay_keys`` exempt only norm
    parameters and biases); off by default (see docs/results/fidelity.md).
    ``image_limit``: a cap on every image count of the run, for quick runs (the ``smoke``
    preset): training images per epoch in every phase (over ``train_limit`` and the phases' own
    ``train_limit``), validation images, BN calibration images, and the test images that
    ``supernet eval`` and ``specialize`` score (``None``: no cap).
    ``image_size``: the side in pixels a folder dataset's images are decoded to (the ImageNet
    recipe's shorter-side resize and centre crop, :func:`supernet.data.read_image`); ``None``:
    the space's largest resolution. Set it to the images' own size (28 for Fashion-MNIST written
    as PNGs) to keep them pixel for pixel, as a built-in dataset is kept: the trainer then resizes
    every batch to each subnet's resolution from the same pixels. Folder datasets only.
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
    sandwich_resolution: str = "step"
    teacher_norm: str = "eval"
    warmup: str = "linear"
    decay_kernel_transforms: bool = False
    dropout: float = 0.1
    train_limit: int | None = None
    image_limit: int | None = None
    image_size: int | None = None
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
        if not isinstance(self.phases, list):
            raise ConfigError(f"phases = {self.phases!r} must be a list of phases")
        self.phases = [
            p if isinstance(p, PhaseConfig) else _from_mapping(PhaseConfig, p, f"phases[{i}]")
            for i, p in enumerate(self.phases)
        ]
        self.validate()

    def validate(self) -> None:
        """Check every field's type and range, and the phases against each other.

        Numbers must be finite and of the field's type (an integer field takes no float or
        bool, a float field takes an int but no bool, a bool field takes only true/false).

        Raises: ConfigError naming the field, value and what is allowed.
        """
        for name in ("preset", "device"):
            _check_str(name, getattr(self, name))
        # the registered spaces and the TinyNAS (width, resolution) family of mbv3-tiny
        _check_choice("space", self.space, (*list_spaces(), *tinynas_space_names()))
        check_dataset_name(self.dataset)
        _check_int("seed", self.seed, 0)
        for name in ("batch_size", "eval_batch_size", "bn_calib_images"):
            _check_int(name, getattr(self, name), 1)
        for name in ("train_limit", "image_limit", "val_limit", "threads", "checkpoint_every",
                     "image_size"):  # fmt: skip
            _check_int(name, getattr(self, name), 1, optional=True)
        if self.image_size is not None and not self.dataset.startswith(FOLDER_PREFIX):
            raise ConfigError(
                f"image_size = {self.image_size} applies to folder datasets only; dataset = "
                f"{self.dataset!r} keeps its native size (set image_size: null)"
            )
        if self.threads is not None and self.threads > MAX_THREADS:
            raise ConfigError(f"threads = {self.threads} must be null or in [1, {MAX_THREADS}]")
        for name in ("weight_decay", "kd_ratio", "momentum"):
            _check_number(name, getattr(self, name), low=0.0)
        _check_number("label_smoothing", self.label_smoothing, low=0.0, below=1.0)
        _check_number("dropout", self.dropout, low=0.0, below=1.0)
        for name in ("nesterov", "augment", "channels_last", "decay_kernel_transforms"):
            _check_bool(name, getattr(self, name))
        if not isinstance(self.amp, bool | str):
            raise ConfigError(f"amp = {self.amp!r} must be true, false or a name such as 'auto'")
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("norm", self.norm, NORMS)
        _check_choice("teacher", self.teacher, TEACHERS)
        _check_choice("sandwich_resolution", self.sandwich_resolution, SANDWICH_RESOLUTIONS)
        _check_choice("teacher_norm", self.teacher_norm, TEACHER_NORMS)
        _check_choice("warmup", self.warmup, WARMUPS)
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov: true needs momentum > 0 with optimizer sgd; got 0")
        if not isinstance(self.phases, list) or not self.phases:
            raise ConfigError("phases is empty; give at least one progressive-shrinking phase")
        for i, p in enumerate(self.phases):
            self._validate_phase(f"phases[{i}] ({p.name!r})", p)
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ConfigError(f"phase names must be unique, got {names}")
        if self.phases[0].distill:
            raise ConfigError(
                f"phases[0] ({self.phases[0].name!r}) has distill: true, but the teacher is the "
                "full network trained before the first distilling phase; set distill: false"
            )

    def _validate_phase(self, where: str, p: PhaseConfig) -> None:
        if not isinstance(p.name, str) or not p.name:
            raise ConfigError(f"{where}.name must be a non-empty string")
        _check_int(f"{where}.epochs", p.epochs, 1)
        _check_number(f"{where}.lr", p.lr, low=0.0)
        if p.lr == 0:
            raise ConfigError(f"{where}.lr = {p.lr!r} must be > 0")
        _check_int(f"{where}.subnets_per_step", p.subnets_per_step, 1)
        _check_int(f"{where}.train_limit", p.train_limit, 1, optional=True)
        for name in ("distill", "sort_channels", "sandwich"):
            _check_bool(f"{where}.{name}", getattr(p, name))
        if p.sandwich and p.subnets_per_step < 2:
            raise ConfigError(
                f"{where}.sandwich needs subnets_per_step >= 2, got {p.subnets_per_step}"
            )
        if self.teacher == "inplace" and p.distill and not p.sandwich:
            raise ConfigError(
                f"{where} has distill: true with teacher: inplace, which takes the soft "
                "labels from the largest subnet trained first in the step; set sandwich: true"
            )
        _check_number(f"{where}.warmup_epochs", p.warmup_epochs, low=0.0)
        if not p.warmup_epochs <= p.epochs:
            raise ConfigError(f"{where}.warmup_epochs = {p.warmup_epochs} not in [0, epochs]")
        for dim in ("kernel_sizes", "expand_ratios", "depths", "resolutions"):
            value = getattr(p, dim)
            ok = (isinstance(value, str) and value in ("all", "max", "min")) or (
                isinstance(value, list)
                and value
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            )
            if not ok:
                raise ConfigError(
                    f"{where}.{dim} = {value!r}; use 'all', 'max', 'min' or a list of choices"
                )

    def train_images(self, phase: PhaseConfig) -> int | None:
        """Training images per epoch of ``phase``: its ``train_limit``, else the run's, capped
        by ``image_limit`` (``None``: the whole training split)."""
        return _cap(phase.train_limit or self.train_limit, self.image_limit)

    @property
    def val_images(self) -> int | None:
        """Validation images scored after each epoch (``val_limit`` capped by ``image_limit``)."""
        return _cap(self.val_limit, self.image_limit)

    @property
    def calib_images(self) -> int:
        """BN re-calibration images (``bn_calib_images`` capped by ``image_limit``)."""
        return min(self.bn_calib_images, self.image_limit or self.bn_calib_images)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (phases as dicts)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The YAML text saved as ``config.yaml``."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _cap(limit: int | None, cap: int | None) -> int | None:
    """The smaller of two optional image counts (``None``: no limit)."""
    if limit is None or cap is None:
        return cap if limit is None else limit
    return min(limit, cap)


def _check_str(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} = {value!r} must be a non-empty string")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name} = {value!r}; choose from {choices}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} = {value!r} must be true or false")


def _check_int(name: str, value: Any, low: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        null = "null or " if optional else ""
        raise ConfigError(f"{name} = {value!r} must be {null}an integer >= {low}")


def _check_number(name: str, value: Any, *, low: float, below: float | None = None) -> None:
    """A finite int or float (not a bool) in ``[low, below)`` (``below`` None: no upper bound)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < low
        or (below is not None and value >= below)
    ):
        upper = f", below {below}" if below is not None else ""
        raise ConfigError(f"{name} = {value!r} must be a finite number >= {low}{upper}")


def _from_mapping(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    known = [f.name for f in fields(cls)]
    unknown = sorted((k for k in data if k not in known), key=str)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known keys: {known}")
    try:
        return cls(**data)
    except TypeError as exc:  # missing required keys
        raise ConfigError(f"{where}: {exc}") from exc


def list_presets() -> list[str]:
    """Names of the YAML presets shipped in ``configs/``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(
    preset: str | None = None,
    *,
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Resolve a :class:`TrainConfig` from a preset name or a YAML file, then overrides.

    ``overrides`` (from :func:`parse_overrides`) may use dotted keys into the phases
    (:func:`~supernet.train.overrides.apply_overrides`).

    Raises:
        ConfigError: unknown preset (lists them), unreadable YAML, unknown keys or bad values.
            The message names the real source: ``config file 'PATH': ...`` when the file is wrong
            by itself, ``--set KEYS: ...`` when the overrides made a good file or preset wrong.
    """
    data: dict[str, Any] = {}
    if preset is not None and path is not None:
        raise ConfigError("give a preset name or a config file, not both")
    if preset is not None:
        if preset not in list_presets():
            raise ConfigError(f"unknown preset {preset!r}; choose from {list_presets()}")
        path = PRESET_DIR / f"{preset}.yaml"
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_bytes().decode("utf-8"))
        except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:
            reason = " ".join(str(exc).split())  # UnicodeDecodeError is a ValueError
            raise ConfigError(f"cannot read config file {str(path)!r}: {reason}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping")
        data.update(loaded)
        data.setdefault("preset", preset or Path(path).stem)
    if not overrides:
        return _resolve(data, preset, path)
    merged = apply_overrides(data, overrides)  # a bad dotted key names itself
    if preset is None and path is None:  # the overrides are the whole config
        return _from_mapping(TrainConfig, merged, "the training config")
    try:
        return _from_mapping(TrainConfig, merged, "the training config")
    except ConfigError as exc:
        try:
            _resolve(data, preset, path)
        except ConfigError as base_exc:  # the file is wrong by itself: blame it ...
            if str(base_exc).endswith(str(exc)):
                raise base_exc from None
        keys = ", ".join(map(str, overrides))  # ... else the overrides made it wrong
        raise ConfigError(f"--set {keys}: {exc}") from exc


def _resolve(data: dict[str, Any], preset: str | None, path: str | Path | None) -> TrainConfig:
    """``data`` as a config; errors of a config file start with the file's path."""
    try:
        return _from_mapping(TrainConfig, data, "the training config")
    except ConfigError as exc:
        if preset is not None or path is None:
            raise
        raise ConfigError(f"config file {str(path)!r}: {exc}") from exc
