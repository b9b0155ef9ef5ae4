"""Settings of a ProxylessNAS run (search + retrain), as one typed, validated dataclass.

Defaults follow the released search code where it makes sense at Fashion-MNIST scale
(``search/imagenet_arch_search.py``): SGD with Nesterov momentum 0.9, weight decay 4e-5, label
smoothing 0.1, cosine LR; α initialized ``N(0, 1e-3²)``, updated by Adam (β1 = 0, β2 = 0.999)
every 5 weight steps; a weights-only warm-up before α moves; latency loss ``add#linear``
(λ = 0.1) or ``mul#log`` (α = 0.2, β = 0.3). The reference searches 40 warm-up + 120 epochs
with ``arch_lr`` 1e-3; short runs need a larger ``arch_lr`` (the CLI says which it used).

Reference: ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332), Sec. 3 and App.; released
code ``mit-han-lab/proxylessnas``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from supernet.data import check_dataset_name
from supernet.errors import ConfigError
from supernet.nas.latency import LATENCY_LOSSES
from supernet.space import get_space

__all__ = ["ProxylessConfig"]


@dataclass(frozen=True)
class ProxylessConfig:
    """One ProxylessNAS run.

    Attributes:
        target_latency_ms: the latency target (ms) of the latency loss.
        space: search space name; dataset: dataset name (see :func:`supernet.data.load_dataset`).
        resolution: input resolution of search and retraining (``None``: the space's largest).
        warmup_epochs: weights-only epochs (random paths from the uniform α) before α moves.
        search_epochs: epochs of alternating weight / α steps.
        retrain_epochs: epochs of training the derived subnet from scratch.
        image_limit: training images per epoch, and cap on validation / test images.
        arch_update_every: weight steps per α step (reference: 5).
        checkpoint_every: also checkpoint every this many search steps (``None``: per epoch).
    """

    target_latency_ms: float
    space: str = "mbv3-tiny"
    dataset: str = "fashion-mnist"
    resolution: int | None = None
    seed: int = 0
    batch_size: int = 128
    eval_batch_size: int = 500
    warmup_epochs: int = 1
    search_epochs: int = 2
    retrain_epochs: int = 3
    image_limit: int | None = None
    lr: float = 0.05
    retrain_lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    dropout: float = 0.1
    arch_lr: float = 1e-3
    arch_update_every: int = 5
    alpha_init_std: float = 1e-3
    latency_loss: str = "add#linear"
    latency_lambda: float = 0.1
    latency_alpha: float = 0.2
    latency_beta: float = 0.3
    checkpoint_every: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises: ConfigError naming the field, the value and what is allowed."""
        space = get_space(self.space)  # raises for an unknown name
        check_dataset_name(self.dataset)
        if self.resolution is not None and self.resolution not in space.resolutions:
            raise ConfigError(f"resolution = {self.resolution!r} is not allowed in space "
                              f"{self.space!r}; choose from {space.resolutions}")  # fmt: skip
        for name in ("batch_size", "eval_batch_size", "search_epochs", "retrain_epochs",
                     "arch_update_every"):  # fmt: skip
            _int(name, getattr(self, name), 1)
        _int("seed", self.seed, 0)
        _int("warmup_epochs", self.warmup_epochs, 0)
        for name in ("image_limit", "checkpoint_every"):
            if getattr(self, name) is not None:
                _int(name, getattr(self, name), 1)
        for name in ("lr", "retrain_lr", "arch_lr", "target_latency_ms", "latency_alpha"):
            _number(name, getattr(self, name), low=0.0, strict=True)
        for name in ("weight_decay", "latency_lambda", "latency_beta", "alpha_init_std",
                     "momentum"):  # fmt: skip
            _number(name, getattr(self, name), low=0.0)
        _number("label_smoothing", self.label_smoothing, low=0.0, below=1.0)
        _number("dropout", self.dropout, low=0.0, below=1.0)
        if self.latency_loss not in LATENCY_LOSSES:
            raise ConfigError(f"latency_loss = {self.latency_loss!r}; choose from "
                              f"{LATENCY_LOSSES}")  # fmt: skip
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"device = {self.device!r} must be a name such as 'cpu' or 'auto'")

    def search_resolution(self) -> int:
        """``resolution``, or the space's largest."""
        return self.resolution or max(get_space(self.space).resolutions)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProxylessConfig:
        """Raises: ConfigError for unknown or missing keys (named) or bad values."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown}; known keys: {known}")
        if "target_latency_ms" not in data:
            raise ConfigError("target_latency_ms is missing")
        return cls(**data)

    def differences(self, other: ProxylessConfig) -> list[str]:
        """Names of the fields whose values differ."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if a[k] != b[k]]


def _int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} = {value!r} must be an integer >= {low}")


def _number(
    name: str, value: Any, *, low: float, below: float | None = None, strict: bool = False
) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if strict else value >= low) and (below is None or value < below)
    if not ok:
        bound = f"> {low}" if strict else f">= {low}"
        upper = f" and < {below}" if below is not None else ""
        raise ConfigError(f"{name} = {value!r} must be a finite number {bound}{upper}")
