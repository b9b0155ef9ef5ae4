"""`SearchSpace`: the choices of a supernet's elastic dimensions and its fixed widths.

The space is pure data (no torch): the supernet builder reads the widths from it, training samples
subnets from it, and search mutates and crosses configs inside it.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.1 (elastic resolution,
kernel size, depth, width) and Sec. 3.4 / App. (evolutionary search: mutate, crossover).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from supernet.errors import ConfigError
from supernet.space.config import ArchConfig

if TYPE_CHECKING:
    from supernet.space.batch import ConfigBatch

__all__ = ["ACTIVATIONS", "SearchSpace", "StageSpec", "make_divisible"]

ACTIVATIONS = ("relu", "relu6", "h_swish")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor``, never dropping below 90% of it.

    Reference: MobileNetV3 (Howard et al., ICCV'19, arXiv 1905.02244) channel rounding.
    """
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass(frozen=True)
class StageSpec:
    """One elastic stage of MBConv blocks.

    Attributes:
        width: output channels of every block in the stage.
        max_depth: number of block slots (the largest depth choice).
        stride: stride of the stage's first block.
        act: activation, ``"relu"``, ``"relu6"`` or ``"h_swish"``.
        use_se: whether blocks carry squeeze-and-excitation.
    """

    width: int
    max_depth: int
    stride: int
    act: str
    use_se: bool

    def __post_init__(self) -> None:
        if self.act not in ACTIVATIONS:
            raise ConfigError(f"stage act = {self.act!r} is not allowed; choose from {ACTIVATIONS}")
        if self.stride not in (1, 2):
            raise ConfigError(f"stage stride = {self.stride} is not allowed; choose from (1, 2)")
        if self.width < 1 or self.max_depth < 1:
            raise ConfigError(f"stage width and max_depth must be >= 1, got {self}")


@dataclass(frozen=True)
class SearchSpace:
    """Choices per elastic dimension plus the fixed (non-elastic) layers of a MobileNetV3 supernet.

    Layout (Once-for-All MobileNetV3, arXiv 1908.09791 Sec. 4 and its released code): stem conv
    (3x3, ``stem_stride``, ``stem_width``, ``head_act``) → one fixed MBConv (expand 1, kernel 3,
    relu) to ``first_block_width`` → elastic ``stages`` → 1x1 conv to ``final_expand_width``
    (``head_act``) → global average pool → 1x1 conv to ``feature_mix_width`` (``head_act``) →
    dropout → linear classifier. ``head_act`` is h-swish in MobileNetV3 spaces.

    Raises:
        ConfigError: when the choices are empty, unsorted or inconsistent with the stages.
    """

    name: str
    input_channels: int
    num_classes: int
    resolutions: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    expand_ratios: tuple[int, ...]
    depths: tuple[int, ...]
    stages: tuple[StageSpec, ...]
    stem_width: int
    stem_stride: int
    first_block_width: int
    final_expand_width: int
    feature_mix_width: int
    width_mult: float = 1.0
    reference: str = ""
    head_act: str = "h_swish"

    def __post_init__(self) -> None:
        if self.head_act not in ACTIVATIONS:
            raise ConfigError(
                f"head_act = {self.head_act!r} is not allowed; choose from {ACTIVATIONS}"
            )
        for field in ("resolutions", "kernel_sizes", "expand_ratios", "depths"):
            values = tuple(getattr(self, field))
            object.__setattr__(self, field, values)
            if not values or list(values) != sorted(set(values)):
                raise ConfigError(f"{field} must be non-empty, sorted and unique, got {values}")
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise ConfigError(f"kernel_sizes must be odd, got {self.kernel_sizes}")
        object.__setattr__(self, "stages", tuple(self.stages))
        too_deep = [s.max_depth for s in self.stages if s.max_depth < max(self.depths)]
        if too_deep:
            raise ConfigError(
                f"every stage needs max_depth >= max(depths) = {max(self.depths)}, got {too_deep}"
            )

    # --- shape of the space -------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def num_blocks(self) -> int:
        """Number of block slots (entries of ``kernel_size`` / ``expand_ratio``)."""
        return sum(s.max_depth for s in self.stages)

    @property
    def stage_max_depths(self) -> tuple[int, ...]:
        return tuple(s.max_depth for s in self.stages)

    def size(self, *, with_resolution: bool = True) -> int:
        """Number of distinct subnets.

        Blocks beyond a stage's depth are inactive, so a stage of depth ``d`` has
        ``(|kernel_sizes| * |expand_ratios|) ** d`` variants; stages multiply, and resolutions
        multiply again when ``with_resolution``. For ``ofa-mbv3`` without resolution this is
        ``((9**2) + (9**3) + (9**4)) ** 5 ≈ 2.2e19`` (the paper's "> 10^19", Sec. 4).
        """
        per_block = len(self.kernel_sizes) * len(self.expand_ratios)
        per_stage = sum(per_block**d for d in self.depths)
        total = per_stage**self.num_stages
        return total * len(self.resolutions) if with_resolution else total

    def restrict(
        self,
        *,
        resolutions: tuple[int, ...] | None = None,
        kernel_sizes: tuple[int, ...] | None = None,
        expand_ratios: tuple[int, ...] | None = None,
        depths: tuple[int, ...] | None = None,
    ) -> SearchSpace:
        """A sub-space with fewer choices (used by progressive shrinking phases).

        Raises:
            ConfigError: when a requested choice is not in this space (names it and the choices).
        """
        changes = {}
        for field, values in (
            ("resolutions", resolutions),
            ("kernel_sizes", kernel_sizes),
            ("expand_ratios", expand_ratios),
            ("depths", depths),
        ):
            if values is None:
                continue
            allowed = getattr(self, field)
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise ConfigError(
                    f"{field} = {tuple(values)} is not a subset of space {self.name!r}'s "
                    f"choices {allowed}"
                )
            changes[field] = tuple(sorted(set(values)))
        return replace(self, **changes)

    # --- canonical configs --------------------------------------------------------------------
    def _uniform(self, pick: int) -> ArchConfig:
        def choose(choices: tuple[int, ...]) -> int:
            return choices[pick if pick >= 0 else len(choices) + pick]

        return ArchConfig(
            resolution=choose(self.resolutions),
            kernel_size=(choose(self.kernel_sizes),) * self.num_blocks,
            expand_ratio=(choose(self.expand_ratios),) * self.num_blocks,
            depth=(choose(self.depths),) * self.num_stages,
        )

    def largest(self) -> ArchConfig:
        """Every dimension at its largest choice (the full network)."""
        return self._uniform(-1)

    def smallest(self) -> ArchConfig:
        """Every dimension at its smallest choice."""
        return self._uniform(0)

    def middle(self) -> ArchConfig:
        """Every dimension at its middle choice (the lower middle for an even count)."""

        def mid(choices: tuple[int, ...]) -> int:
            return choices[(len(choices) - 1) // 2]

        return ArchConfig(
            resolution=mid(self.resolutions),
            kernel_size=(mid(self.kernel_sizes),) * self.num_blocks,
            expand_ratio=(mid(self.expand_ratios),) * self.num_blocks,
            depth=(mid(self.depths),) * self.num_stages,
        )

    # --- sampling and evolution ---------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> ArchConfig:
        """A uniformly random config (each choice independent), drawn from ``rng`` only."""
        n, s = self.num_blocks, self.num_stages
        return ArchConfig(
            resolution=int(rng.choice(self.resolutions)),
            kernel_size=tuple(int(v) for v in rng.choice(self.kernel_sizes, size=n)),
            expand_ratio=tuple(int(v) for v in rng.choice(self.expand_ratios, size=n)),
            depth=tuple(int(v) for v in rng.choice(self.depths, size=s)),
        )

    def mutate(
        self,
        config: ArchConfig,
        rng: np.random.Generator,
        *,
        prob: float = 0.1,
        resolution_prob: float = 0.5,
    ) -> ArchConfig:
        """Redraw each block's kernel size and expand ratio together on one coin of probability
        ``prob`` (both resampled when it lands), each stage's depth with probability ``prob`` and
        the resolution with probability ``resolution_prob``.

        Reference: Once-for-All evolutionary search (arXiv 1908.09791, Sec. 3.4; defaults from its
        released ``EvolutionFinder``: mutate_prob 0.1, resolution_mutate_prob 0.5; one coin per
        block for kernel size and expand ratio as in its ``MobileNetArchEncoder.mutate_arch``).

        Raises:
            ConfigError: when a probability is outside [0, 1].
        """
        for label, p in (("prob", prob), ("resolution_prob", resolution_prob)):
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"mutate {label} = {p} must be in [0, 1]")

        def resample(
            values: tuple[int, ...], choices: tuple[int, ...], mask: np.ndarray
        ) -> tuple[int, ...]:
            fresh = rng.choice(choices, size=len(values))
            return tuple(int(f) if m else v for v, f, m in zip(values, fresh, mask, strict=True))

        resolution = config.resolution
        if rng.random() < resolution_prob:
            resolution = int(rng.choice(self.resolutions))
        block_coin = rng.random(len(config.kernel_size)) < prob  # one coin: kernel and expand
        return ArchConfig(
            resolution=resolution,
            kernel_size=resample(config.kernel_size, self.kernel_sizes, block_coin),
            expand_ratio=resample(config.expand_ratio, self.expand_ratios, block_coin),
            depth=resample(config.depth, self.depths, rng.random(len(config.depth)) < prob),
        )

    def crossover(self, a: ArchConfig, b: ArchConfig, rng: np.random.Generator) -> ArchConfig:
        """Take every choice from ``a`` or ``b`` with equal probability (uniform crossover).

        Reference: Once-for-All evolutionary search (arXiv 1908.09791, Sec. 3.4).
        """

        def mix(x: tuple[int, ...], y: tuple[int, ...]) -> tuple[int, ...]:
            pick = rng.random(len(x)) < 0.5
            return tuple(u if p else v for u, v, p in zip(x, y, pick, strict=True))

        return ArchConfig(
            resolution=a.resolution if rng.random() < 0.5 else b.resolution,
            kernel_size=mix(a.kernel_size, b.kernel_size),
            expand_ratio=mix(a.expand_ratio, b.expand_ratio),
            depth=mix(a.depth, b.depth),
        )

    def encode(self, configs: list[ArchConfig]) -> np.ndarray:
        """Once-for-All one-hot encoding, ``[N, F]`` float32 (:mod:`supernet.space.encoding`)."""
        from supernet.space.encoding import encode  # encoding imports this module

        return encode(configs, self)

    def validate(self, config: ArchConfig) -> ArchConfig:
        """Same as ``config.validate(self)``.

        Raises:
            ConfigError: ``config`` is not valid in this space, or is another family's config
                (names both families).
        """
        self._check_family(config)
        return config.validate(self)

    def _check_family(self, config: object) -> None:
        if not isinstance(config, ArchConfig):
            other = getattr(config, "family", type(config).__name__)
            raise ConfigError(
                f"a {other!r} config was given to the {self.family!r} space {self.name!r}"
            )

    # --- the family protocol (supernet.space.family.Space) -------------------------------------
    @property
    def family(self) -> str:
        """``"ofa-mbv3"``: the MobileNetV3-like CNN family."""
        return "ofa-mbv3"

    @property
    def encoding_version(self) -> int:
        """:data:`supernet.space.ENCODING_VERSION`."""
        from supernet.space.encoding import ENCODING_VERSION

        return ENCODING_VERSION

    def describe(self, config: ArchConfig) -> str:
        """:func:`supernet.space.describe` of ``config``."""
        from supernet.space.config import describe

        return describe(config)

    def summary_map(self) -> tuple[np.ndarray, np.ndarray]:
        """Each stage's depth and the resolution from the encoding (:mod:`~.encoding`)."""
        from supernet.space.encoding import summary_map

        return summary_map(self)

    def batch(self, configs: Sequence[ArchConfig]) -> ConfigBatch:
        """``ConfigBatch.from_configs(configs, self)`` (validated).

        Raises:
            ConfigError: a config is not valid in this space or of another family.
        """
        from supernet.space.batch import ConfigBatch

        configs = list(configs)
        for config in configs:
            self._check_family(config)
        return ConfigBatch.from_configs(configs, self)

    def concat(self, batches: Sequence[ConfigBatch]) -> ConfigBatch:
        """``ConfigBatch.concat(batches)``."""
        from supernet.space.batch import ConfigBatch

        return ConfigBatch.concat(batches)

    def sample_batch(self, n: int, rng: np.random.Generator) -> ConfigBatch:
        """:func:`supernet.space.sample_batch` (vectorized)."""
        from supernet.space.operators import sample_batch

        return sample_batch(self, n, rng)

    def mutate_batch(
        self,
        batch: ConfigBatch,
        rng: np.random.Generator,
        *,
        prob: float = 0.1,
        resolution_prob: float = 0.5,
    ) -> ConfigBatch:
        """:func:`supernet.space.mutate_batch` (vectorized)."""
        from supernet.space.operators import mutate_batch

        return mutate_batch(batch, self, rng, prob=prob, resolution_prob=resolution_prob)

    def crossover_batch(
        self, a: ConfigBatch, b: ConfigBatch, rng: np.random.Generator
    ) -> ConfigBatch:
        """:func:`supernet.space.crossover_batch` (vectorized)."""
        from supernet.space.operators import crossover_batch

        return crossover_batch(a, b, rng)

    def choice_counts(self) -> np.ndarray:
        """Choices per gene of :meth:`ConfigBatch.to_choice_indices`: ``[1 + 2B + S]`` int64."""
        b, s = self.num_blocks, self.num_stages
        counts = [len(self.resolutions)] + [len(self.kernel_sizes)] * b
        counts += [len(self.expand_ratios)] * b + [len(self.depths)] * s
        return np.asarray(counts, dtype=np.int64)

    def to_choice_indices(self, batch: ConfigBatch) -> np.ndarray:
        """``batch.to_choice_indices(self)``: ``[N, 1 + 2B + S]`` int64."""
        return batch.to_choice_indices(self)

    def from_choice_indices(self, indices: np.ndarray) -> ConfigBatch:
        """``ConfigBatch.from_choice_indices(indices, self)``."""
        from supernet.space.batch import ConfigBatch

        return ConfigBatch.from_choice_indices(indices, self)
