"""TinyNAS search-space optimization: pick the (width multiplier, resolution) space that suits an
MCU's SRAM and Flash budget before searching inside it.

For each candidate space, sample random subnets, keep those whose int8 SRAM (peak activation
memory under a memory planner) and Flash fit the budget, and look at the MACs of the fitting
ones. MCUNet's heuristic: under the same memory budget, a space whose fitting models have more
MACs holds more accurate models, so the space with the highest **mean MACs of its fitting
samples** is chosen (ties: the larger fraction of fitting samples). Spaces with no fitting
sample rank last.

Reference: MCUNet (Lin et al., NeurIPS'20, arXiv 2007.10319), Sec. 3.1 and Fig. 3 (CDF of the
FLOPs of the models that satisfy the memory constraint, per search space).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from supernet.cost.macs import SubnetShapes
from supernet.cost.mcu import check_planner
from supernet.cost.mcu_batch import flash_of_shapes, sram_of_shapes
from supernet.errors import ConfigError, SearchError
from supernet.space import ConfigBatch, get_space, sample_batch, tinynas_space_names
from supernet.space.presets import TINYNAS_RESOLUTIONS, TINYNAS_WIDTHS

__all__ = ["SpaceScore", "TinyNASResult", "naive_shrink_space", "rank_spaces"]


@dataclass(frozen=True)
class SpaceScore:
    """What TinyNAS saw in one space.

    Attributes:
        space: the space's name; width_mult, resolution: its parameters.
        samples: subnets sampled; fitting_macs: sorted MACs of those within budget ``[F]``.
        min_sram_bytes, min_flash_bytes: the smallest int8 SRAM / Flash among the samples.
    """

    space: str
    width_mult: float
    resolution: int
    samples: int
    fitting_macs: np.ndarray
    min_sram_bytes: int
    min_flash_bytes: int

    @property
    def fitting(self) -> int:
        """Number of sampled subnets within budget."""
        return int(self.fitting_macs.size)

    @property
    def fraction_fitting(self) -> float:
        """Fitting samples / samples."""
        return self.fitting / self.samples

    @property
    def mean_macs(self) -> float:
        """Mean MACs of the fitting samples (the ranking statistic); NaN when none fits."""
        return float(self.fitting_macs.mean()) if self.fitting else float("nan")


@dataclass(frozen=True)
class TinyNASResult:
    """The ranking: ``scores`` best first; ``chosen`` the first space's name; the budget (bytes)
    and the planner it was checked with."""

    scores: tuple[SpaceScore, ...]
    max_sram_bytes: float
    max_flash_bytes: float
    planner: str

    @property
    def chosen(self) -> str:
        """The space TinyNAS picks."""
        return self.scores[0].space


def _score(space_name: str, samples: int, seed: int, index: int, budget: tuple[float, float],
           planner: str) -> SpaceScore:  # fmt: skip
    space = get_space(space_name)
    rng = np.random.default_rng([seed, index])
    batch = ConfigBatch.concat([sample_batch(space, samples - 1, rng),
                                ConfigBatch.from_configs([space.smallest()], space)])  # fmt: skip
    shapes = SubnetShapes.from_configs(batch, space)
    sram, flash = sram_of_shapes(shapes, planner), flash_of_shapes(shapes)
    fits = (sram <= budget[0]) & (flash <= budget[1])
    return SpaceScore(
        space=space_name,
        width_mult=space.width_mult,
        resolution=space.resolutions[0],
        samples=len(batch),
        fitting_macs=np.sort(shapes.macs()[fits]),
        min_sram_bytes=int(sram.min()),
        min_flash_bytes=int(flash.min()),
    )


def rank_spaces(
    max_sram_bytes: float,
    max_flash_bytes: float,
    *,
    planner: str = "tinyengine",
    spaces: Sequence[str] | None = None,
    samples: int = 1000,
    seed: int = 0,
) -> TinyNASResult:
    """Rank TinyNAS spaces for a budget by the mean MACs of their fitting subnets.

    Each space gets ``samples`` subnets: ``samples - 1`` random ones plus its smallest, each
    scored with int8 SRAM under ``planner`` (:func:`~supernet.cost.mcu_batch.sram_bytes`) and
    int8 Flash (:func:`~supernet.cost.mcu_batch.flash_bytes`); a subnet fits when both are at
    most the budget.

    Args:
        max_sram_bytes, max_flash_bytes: the budget in bytes.
        planner: ``naive``, ``tinyengine`` or ``tflm``.
        spaces: space names (default: every ``mbv3-tiny-w{W}-r{R}`` space).
        samples: subnets per space (>= 2).
        seed: sampling seed (same seed, same ranking).

    Shapes: S spaces → ``TinyNASResult.scores`` of S entries.

    Raises:
        ConfigError: a bad budget, planner, sample count or space name.
        SearchError: no sample of any space fits (names the smallest SRAM and Flash found and
            the spaces they come from).

    Reference: MCUNet, arXiv 2007.10319, Sec. 3.1, Fig. 3.
    """
    check_planner(planner)
    for name, value in (("max_sram_bytes", max_sram_bytes), ("max_flash_bytes", max_flash_bytes)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(f"{name} = {value!r} must be a positive number of bytes")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ConfigError(f"samples = {samples!r} must be an integer >= 2")
    names = list(spaces) if spaces is not None else tinynas_space_names()
    if not names:
        raise ConfigError("spaces is empty; give at least one space name")
    budget = (float(max_sram_bytes), float(max_flash_bytes))
    scores = [_score(n, samples, seed, i, budget, planner) for i, n in enumerate(names)]
    if not any(s.fitting for s in scores):
        by_sram = min(scores, key=lambda s: s.min_sram_bytes)
        by_flash = min(scores, key=lambda s: s.min_flash_bytes)
        raise SearchError(
            f"no subnet of any of the {len(scores)} spaces fits SRAM <= {budget[0]:.0f} bytes "
            f"and Flash <= {budget[1]:.0f} bytes (int8, {planner} planner, {samples} samples "
            f"per space incl. its smallest subnet); smallest found: SRAM "
            f"{by_sram.min_sram_bytes} bytes ({by_sram.space}), Flash "
            f"{by_flash.min_flash_bytes} bytes ({by_flash.space}); raise the budget",
            cheapest={
                "sram_bytes": by_sram.min_sram_bytes,
                "flash_bytes": by_flash.min_flash_bytes,
            },
        )
    order = sorted(
        range(len(scores)),
        key=lambda i: (
            scores[i].fitting == 0,
            -np.nan_to_num(scores[i].mean_macs),
            -scores[i].fraction_fitting,
            i,
        ),
    )
    return TinyNASResult(tuple(scores[i] for i in order), budget[0], budget[1], planner)


def naive_shrink_space(
    max_sram_bytes: float,
    max_flash_bytes: float,
    *,
    planner: str = "tinyengine",
    base: str = "mbv3-tiny",
) -> str:
    """The baseline TinyNAS is measured against: shrink the network uniformly until it fits.

    Keeps the largest resolution of the TinyNAS grid and takes the largest width multiplier whose
    *largest* subnet fits both budgets (int8 SRAM under ``planner``, Flash) — so every subnet of
    the returned space fits, as when a designer scales a model's width down until it fits the
    device. MCUNet compares TinyNAS with this kind of scaling (arXiv 2007.10319, Sec. 3.1 and
    Fig. 3: the space picked by the fitting models' MACs beats a uniformly shrunk one).

    Args:
        max_sram_bytes, max_flash_bytes: the budget in bytes.
        planner: ``naive``, ``tflm`` or ``tinyengine``.
        base: the TinyNAS family's base space.

    Returns:
        A space name such as ``mbv3-tiny-w0.5-r32``.

    Raises:
        ConfigError: a bad planner.
        SearchError: not even the narrowest width's largest subnet fits (names its SRAM and Flash).
    """
    check_planner(planner)
    resolution = max(TINYNAS_RESOLUTIONS)
    last = None
    for width in sorted(TINYNAS_WIDTHS, reverse=True):
        name = f"{base}-w{width:g}-r{resolution}"
        space = get_space(name)
        shapes = SubnetShapes.from_configs(
            ConfigBatch.from_configs([space.largest()], space), space
        )
        sram = int(sram_of_shapes(shapes, planner)[0])
        flash = int(flash_of_shapes(shapes)[0])
        if sram <= max_sram_bytes and flash <= max_flash_bytes:
            return name
        last = (name, sram, flash)
    assert last is not None
    raise SearchError(
        f"no width of {base} at resolution {resolution} fits SRAM <= {max_sram_bytes:.0f} and "
        f"Flash <= {max_flash_bytes:.0f} bytes with its largest subnet; the narrowest, "
        f"{last[0]}, needs SRAM {last[1]} and Flash {last[2]} bytes"
    )
