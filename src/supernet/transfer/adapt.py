"""Feature-extractor adaptation: pick the subnet of the supernet that suits the target dataset
under a training-memory budget, instead of always the largest.

TinyTL (Cai, Gan, Zhu, Han; NeurIPS'20; arXiv 2007.11622), Sec. 3.3 / Sec. 4.2 takes the feature
extractor for each target from a once-for-all supernet. Here the choice is made without any
backward pass:

1. candidates: the largest, smallest and middle subnet plus ``samples`` seeded random ones;
2. each candidate's training-memory need for the method at the batch size — the paper's
   ``B · A + P`` of the transfer model as it would be built
   (:func:`~supernet.transfer.memory.training_memory`, no training); candidates above the
   budget are dropped;
3. each remaining candidate is scored by a backprop-free proxy: its batch norms re-calibrated on
   the target's training images (as every subnet is, Once-for-All arXiv 1908.09791 Sec. 3.2),
   then a closed-form ridge classifier (scikit-learn ``RidgeClassifier`` on standardized pooled
   features, i.e. a linear probe) fit on the target's train split and scored on its val split;
4. the best score wins (ties: the smaller memory need).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from supernet.data import BatchLoader, DatasetSplits, ImageDataset, resize
from supernet.errors import ConfigError, SearchError
from supernet.nn import OFAMobileNetV3
from supernet.nn.blocks import MobileNetV3
from supernet.space import ArchConfig, SearchSpace, describe
from supernet.train import recalibrate_bn
from supernet.transfer.memory import training_memory
from supernet.transfer.methods import build_transfer_model
from supernet.units import format_bytes, parse_size

__all__ = [
    "Adaptation",
    "Candidate",
    "adapt_feature_extractor",
    "candidate_configs",
    "extract_features",
    "parse_memory",
    "prepare_subnet",
    "proxy_score",
    "transfer_memory_need",
]

MB = 10**6  # the TinyTL paper's unit (its tables); printouts use supernet.units (KiB/MiB)
Progress = Callable[[int, int, str], None]


def parse_memory(text: str | int) -> int:
    """Bytes from ``"1500000"``, ``"512kB"``, ``"2.5 MB"``, ``"1GiB"``: the one size convention
    of :func:`supernet.units.parse_size` (KiB/MiB/GiB = 2¹⁰/2²⁰/2³⁰ bytes, kB/MB/GB =
    10³/10⁶/10⁹ bytes; case-insensitive), rounded down.

    Raises:
        ConfigError: not a positive number with one of those units (the value is named).
    """
    return parse_size(text, name="memory")


def candidate_configs(
    space: SearchSpace, *, samples: int, seed: int
) -> list[tuple[str, ArchConfig]]:
    """``[(name, config)]``: ``largest``, ``smallest``, ``middle``, then ``sample-1`` … drawn by
    ``space.sample(np.random.default_rng(seed))``; a config already listed is not repeated (so
    fewer than ``samples`` random ones may appear).

    Raises:
        ConfigError: ``samples`` is not an int >= 0.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ConfigError(f"samples = {samples!r} must be an int >= 0")
    named = [("largest", space.largest()), ("smallest", space.smallest()),
             ("middle", space.middle())]  # fmt: skip
    rng = np.random.default_rng(seed)
    named += [(f"sample-{i + 1}", space.sample(rng)) for i in range(samples)]
    out, seen = [], set()
    for name, config in named:
        if config not in seen:
            seen.add(config)
            out.append((name, config))
    return out


def _batches(dataset: ImageDataset, resolution: int, batch_size: int, limit: int | None = None):
    loader = BatchLoader(dataset, batch_size, shuffle=False, augment=False, limit=limit)
    for x, y in loader:
        yield resize(x, resolution), y


def prepare_subnet(
    supernet: OFAMobileNetV3,
    config: ArchConfig,
    train: ImageDataset,
    *,
    calib_images: int = 2000,
    batch_size: int = 250,
    device: torch.device | str = "cpu",
) -> MobileNetV3:
    """Extract ``config`` from ``supernet`` and re-calibrate its batch norms on the first
    ``calib_images`` images of the target's ``train`` split (resized to the subnet's resolution);
    a group-norm subnet is only extracted. Returns the subnet in eval mode on ``device``; the
    supernet is not changed.

    Shapes: ``train`` holds images ``[N, C, H, W]`` with the supernet's channel count.

    Raises:
        ConfigError: ``config`` is not valid in the supernet's space; ``calib_images`` < 1.

    Reference: Once-for-All (arXiv 1908.09791), Sec. 3.2 (BN re-calibration of a subnet).
    """
    if isinstance(calib_images, bool) or not isinstance(calib_images, int) or calib_images < 1:
        raise ConfigError(f"calib_images = {calib_images!r} must be an int >= 1")
    subnet = supernet.get_subnet(config).to(device)
    recalibrate_bn(subnet, (x.to(device) for x, _ in _batches(
        train, config.resolution, batch_size, min(calib_images, len(train)))))  # fmt: skip
    return subnet.eval()


@torch.no_grad()
def extract_features(
    model: MobileNetV3,
    dataset: ImageDataset,
    resolution: int,
    *,
    batch_size: int = 250,
    limit: int | None = None,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features (the classifier's input) of the first ``limit`` images of ``dataset``.

    Shapes: → features float64 ``[N, F]`` (``model.forward_features``), labels int64 ``[N]``.
    """
    model.eval()
    feats, labels = [], []
    for x, y in _batches(dataset, resolution, batch_size, limit):
        feats.append(model.forward_features(x.to(device)).double().cpu().numpy())
        labels.append(y.numpy())
    width = model.classifier.in_features
    if not feats:
        return np.zeros((0, width)), np.zeros(0, np.int64)
    return np.concatenate(feats), np.concatenate(labels)


def proxy_score(
    model: MobileNetV3,
    splits: DatasetSplits,
    resolution: int,
    *,
    alpha: float = 1.0,
    max_train_images: int = 2000,
    batch_size: int = 250,
    device: torch.device | str = "cpu",
) -> float:
    """Backprop-free transfer score of a feature extractor: top-1 accuracy (%) on
    ``splits.val`` of a ridge classifier (``alpha``) fit in closed form on the standardized
    pooled features of the first ``max_train_images`` images of ``splits.train``.

    Shapes: the splits hold images ``[N, C, H, W]``, resized to ``resolution``.

    Raises:
        ConfigError: the train split holds fewer than 2 classes, or the val split is empty.

    Reference: linear probing of frozen features (e.g. Kornblith, Shlens, Le, "Do Better
    ImageNet Models Transfer Better?", arXiv 1805.08974, Sec. 3), used here to rank the
    candidates of TinyTL's feature-extractor adaptation (arXiv 2007.11622, Sec. 3.3).
    """
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, train_y = extract_features(model, splits.train, resolution, batch_size=batch_size,
                                        limit=max_train_images, device=device)  # fmt: skip
    val_x, val_y = extract_features(model, splits.val, resolution, batch_size=batch_size,
                                    device=device)  # fmt: skip
    if len(np.unique(train_y)) < 2:
        raise ConfigError("the proxy needs training images of at least 2 classes")
    if len(val_y) == 0:
        raise ConfigError("the proxy needs a non-empty validation split")
    probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=alpha))
    probe.fit(train_x, train_y)
    return 100.0 * float((probe.predict(val_x) == val_y).mean())


def transfer_memory_need(
    subnet: MobileNetV3, num_classes: int, method: str, *, batch_size: int, resolution: int
) -> int:
    """Paper training memory ``B · A + P`` (bytes) of ``subnet`` set up for ``method`` — the
    transfer model built as training would build it (memory-efficient modules; frozen weights
    counted at 8 bits by the accounting itself).

    Raises:
        ConfigError: unknown ``method``, ``num_classes`` < 2 or bad sizes.

    Reference: TinyTL (arXiv 2007.11622), Fig. 1 and Sec. 4.1 (memory accounting).
    """
    model = build_transfer_model(subnet, num_classes, method, resolution=resolution)
    report = training_memory(model, batch_size=batch_size, resolution=resolution)
    return report.paper_total_bytes(batch_size)


@dataclass(frozen=True)
class Candidate:
    """One candidate feature extractor.

    Attributes:
        memory_bytes: paper ``B · A + P`` for the method at the batch size (bytes).
        fits: ``memory_bytes`` is within the budget (always True without a budget).
        score: proxy validation accuracy (%), ``None`` when not scored (over budget).
        seconds: wall time of its memory model and proxy.
    """

    name: str
    config: ArchConfig
    memory_bytes: int
    fits: bool
    score: float | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """One ``candidates.csv`` row."""
        return {"name": self.name, "config": describe(self.config),
                "memory_bytes": self.memory_bytes, "fits": self.fits,
                "proxy_val_accuracy": None if self.score is None else round(self.score, 2),
                "seconds": round(self.seconds, 2),
                "config_json": self.config.to_json()}  # fmt: skip


@dataclass(frozen=True)
class Adaptation:
    """The candidates of one adaptation and the chosen one (see the module docstring)."""

    method: str
    batch_size: int
    budget_bytes: int | None
    candidates: tuple[Candidate, ...]
    chosen: Candidate


def adapt_feature_extractor(
    supernet: OFAMobileNetV3,
    space: SearchSpace,
    splits: DatasetSplits,
    method: str,
    *,
    batch_size: int,
    memory_budget: int | None = None,
    samples: int = 8,
    seed: int = 0,
    calib_images: int = 2000,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> Adaptation:
    """Choose the subnet of ``supernet`` to transfer to ``splits`` with ``method`` at
    ``batch_size`` within ``memory_budget`` bytes (paper accounting; ``None``: no limit).

    ``progress(done, total, what)`` is called before each candidate and at the end.

    Shapes: the splits hold images ``[N, C, H, W]`` with the supernet's channel count.

    Raises:
        SearchError: no candidate fits ``memory_budget``; the message gives the smallest need
            found (bytes and MiB, and which subnet) so the user knows what is achievable.
        ConfigError: unknown ``method``, bad ``samples`` / ``memory_budget`` / ``batch_size``.

    Reference: TinyTL (arXiv 2007.11622), Sec. 3.3 (feature extractor adaptation).
    """
    if memory_budget is not None and (
        isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1
    ):
        raise ConfigError(f"memory_budget = {memory_budget!r} must be None or bytes >= 1")
    configs = candidate_configs(space, samples=samples, seed=seed)
    report = progress or (lambda done, total, what: None)
    candidates = []
    for i, (name, config) in enumerate(configs):
        report(i, len(configs), f"{name}: {describe(config)}")
        start = time.perf_counter()
        subnet = prepare_subnet(supernet, config, splits.train, calib_images=calib_images,
                                device=device)  # fmt: skip
        need = transfer_memory_need(subnet, splits.num_classes, method, batch_size=batch_size,
                                    resolution=config.resolution)  # fmt: skip
        fits = memory_budget is None or need <= memory_budget
        score = proxy_score(subnet, splits, config.resolution, device=device) if fits else None
        candidates.append(Candidate(name, config, need, fits, score,
                                    time.perf_counter() - start))  # fmt: skip
    report(len(configs), len(configs), "done")
    fitting = [c for c in candidates if c.fits]
    if not fitting:
        least = min(candidates, key=lambda c: c.memory_bytes)
        raise SearchError(
            f"memory budget {format_bytes(memory_budget)} fits none of the {len(candidates)} "
            f"candidate subnets for {method} at batch size {batch_size}; the smallest need found "
            f"is {format_bytes(least.memory_bytes)} ({least.name}: {describe(least.config)})"
        )
    chosen = max(fitting, key=lambda c: (c.score, -c.memory_bytes))
    return Adaptation(method, batch_size, memory_budget, tuple(candidates), chosen)
