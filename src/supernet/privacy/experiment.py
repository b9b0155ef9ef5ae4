"""One DLG measurement: attack a victim's (defended) update for several seeds and score each
reconstruction with PSNR, SSIM and the label recovery rate.

Per seed: build the victim (its private batch and any new weights are drawn from the seed),
compute the update it would share, apply the defense, run the attack, pair reconstructed with
true images (:func:`~supernet.privacy.metrics.match_images`) and score the reconstruction of
lowest gradient distance — the one an attacker, who never sees the true image, would keep.
The PSNR of the dummy images after every iteration gives the PSNR-vs-iteration curve.

Reference: DLG, arXiv 1906.08935, Sec. 4-5 (batch-1 reconstructions, defenses).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from supernet.errors import ConfigError
from supernet.privacy.defenses import Defense
from supernet.privacy.dlg import dlg_attack, shared_gradient
from supernet.privacy.metrics import match_images, psnr, require_skimage, ssim, to_pixels
from supernet.privacy.victims import Victim

__all__ = ["PSNR_LEAK_DB", "AttackRow", "SeedResult", "attack_seed", "run_dlg"]

PSNR_LEAK_DB = 30.0
"""A reconstruction at or above this PSNR counts as recovered pixel for pixel."""


@dataclass(frozen=True, eq=False)
class SeedResult:
    """The attack on one seed's victim.

    Shapes: ``true_pixels`` and ``reconstructed_pixels`` ``[B, C, H, W]`` in [0, 1], the
    reconstruction in the order paired with the true images; ``psnr_curve`` one value (dB, mean
    over the batch) per iteration.

    Attributes:
        psnr_db / ssim: of the lowest-distance reconstruction, mean over the batch.
        label_rate: fraction of the batch whose label was recovered (0..1).
        best_iteration: the iteration of lowest gradient distance.
        seconds: wall time of the attack alone.
        diverged: the gradient distance became NaN or infinite.
    """

    seed: int
    psnr_db: float
    ssim: float
    label_rate: float
    best_iteration: int
    final_distance: float
    seconds: float
    diverged: bool
    psnr_curve: tuple[float, ...]
    true_pixels: torch.Tensor
    reconstructed_pixels: torch.Tensor
    true_labels: tuple[int, ...]
    recovered_labels: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class AttackRow:
    """All seeds of one (victim, defense) setting; the summary is over seeds."""

    setting: str
    method: str
    defense: str
    label_strategy: str
    iterations: int
    shared_params: int
    seeds: tuple[SeedResult, ...] = field(default_factory=tuple)

    @property
    def psnr_median_db(self) -> float:
        """Median PSNR (dB) over seeds."""
        values = sorted(s.psnr_db for s in self.seeds)
        n = len(values)
        return (values[n // 2] + values[(n - 1) // 2]) / 2 if n else math.nan

    @property
    def leaked(self) -> int:
        """Seeds whose reconstruction reached :data:`PSNR_LEAK_DB`."""
        return sum(s.psnr_db >= PSNR_LEAK_DB for s in self.seeds)

    @property
    def ssim_mean(self) -> float:
        """Mean SSIM over seeds."""
        return sum(s.ssim for s in self.seeds) / len(self.seeds) if self.seeds else math.nan

    @property
    def label_rate(self) -> float:
        """Mean label recovery rate over seeds (0..1)."""
        return sum(s.label_rate for s in self.seeds) / len(self.seeds) if self.seeds else math.nan

    @property
    def seconds_mean(self) -> float:
        """Mean wall time of one attack (s)."""
        return sum(s.seconds for s in self.seeds) / len(self.seeds) if self.seeds else math.nan


def _batch_psnr(true: torch.Tensor, recon: torch.Tensor, order: Sequence[int]) -> float:
    values = [psnr(true[i], recon[j]) for i, j in enumerate(order)]
    return sum(min(v, 100.0) for v in values) / len(values)  # identical images: cap inf at 100


def attack_seed(
    victim: Victim,
    defense: Defense,
    *,
    seed: int,
    iterations: int,
    label_strategy: str = "dlg",
    patience: int | None = None,
) -> SeedResult:
    """Attack ``victim``'s update, defended by ``defense``, once (dummy data from ``seed``).

    Raises:
        ConfigError: see :func:`~supernet.privacy.dlg.dlg_attack`.
        MissingDependencyError: scikit-image is missing.
    """
    require_skimage()
    update = shared_gradient(victim.model, victim.images, victim.labels, victim.shared_names)
    shared = defense.apply(update, seed=seed)
    true = to_pixels(victim.images, victim.mean, victim.std)
    curve: list[float] = []

    def on_step(step: int, distance: float, images: torch.Tensor) -> None:
        pixels = to_pixels(images, victim.mean, victim.std)
        curve.append(_batch_psnr(true, pixels, match_images(true, pixels)))

    result = dlg_attack(
        victim.model,
        shared,
        input_shape=tuple(victim.images.shape),
        num_classes=victim.num_classes,
        iterations=iterations,
        label_strategy=label_strategy,
        seed=seed,
        patience=patience,
        on_step=on_step,
    )
    recon = to_pixels(result.images, victim.mean, victim.std)
    order = match_images(true, recon)
    labels = result.labels.cpu()
    true_labels = victim.labels.cpu()
    scores = [ssim(true[i], recon[j]) for i, j in enumerate(order)]
    hits = [int(labels[j]) == int(true_labels[i]) for i, j in enumerate(order)]
    return SeedResult(
        seed=seed,
        psnr_db=_batch_psnr(true, recon, order),
        ssim=sum(scores) / len(scores),
        label_rate=sum(hits) / len(hits),
        best_iteration=result.best_iteration,
        final_distance=result.distances[result.best_iteration],
        seconds=result.seconds,
        diverged=result.diverged,
        psnr_curve=tuple(curve),
        true_pixels=true,
        reconstructed_pixels=recon[list(order)],
        true_labels=tuple(int(v) for v in true_labels),
        recovered_labels=tuple(int(labels[j]) for j in order),
    )


def run_dlg(
    make_victim: Callable[[int], Victim],
    defense: Defense,
    *,
    seeds: Sequence[int],
    iterations: int = 300,
    label_strategy: str = "dlg",
    setting: str = "",
    method: str = "",
    patience: int | None = None,
    on_seed: Callable[[SeedResult], None] | None = None,
) -> AttackRow:
    """Attack ``make_victim(seed)`` for every seed and collect the results in one row.

    Raises:
        ConfigError: no seeds, or anything :func:`attack_seed` raises.
        MissingDependencyError: scikit-image is missing.

    Reference: DLG, arXiv 1906.08935, Sec. 4.1 and 5.
    """
    if not seeds:
        raise ConfigError("seeds is empty; give at least one seed")
    results = []
    shared_params = 0
    for seed in seeds:
        victim = make_victim(seed)
        shared_params = sum(
            p.numel() for n, p in victim.model.named_parameters() if n in set(victim.shared_names)
        )
        result = attack_seed(
            victim,
            defense,
            seed=seed,
            iterations=iterations,
            label_strategy=label_strategy,
            patience=patience,
        )
        results.append(result)
        if on_seed is not None:
            on_seed(result)
    return AttackRow(
        setting or victim.description,
        method,
        str(defense),
        label_strategy,
        iterations,
        shared_params,
        tuple(results),
    )
