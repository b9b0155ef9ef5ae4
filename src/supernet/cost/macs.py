"""Multiply-accumulate counts and parameter counts of subnets: measured on one module, or
computed analytically for many arch configs at once.

- :func:`measure_macs` / :func:`count_params` run PyTorch's own FLOP counter on an extracted
  subnet. ``torch.utils.flop_counter.FlopCounterMode`` counts FLOPs of convolutions and matrix
  products as 2 × MACs; element-wise work (BN folded at inference, activations, SE scaling,
  residual adds, pooling) is not counted, as in the papers' MACs.
- :func:`macs` / :func:`params` compute the same numbers from a :class:`SearchSpace` alone, batched
  over N configs with numpy (no module is built). They equal the measured ones exactly (tested).

What is counted (batch 1): every convolution — stem, MBConv 1x1 expand, kxk depthwise, the two 1x1
convolutions of squeeze-and-excitation (on the pooled 1x1 map), 1x1 project, final 1x1 expand,
feature-mix 1x1 — and the linear classifier, as ``weights × output positions`` without bias terms.
This is also how the Once-for-All code counts MACs (``ofa/utils/flops_counter.py``: conv
``C_in / groups × k² × output elements``, linear ``in × out``).

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 4 (MACs of subnets of the
MobileNetV3 space); MobileNetV3 (Howard et al., arXiv 1905.02244), Sec. 5 (block structure).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from supernet.errors import ConfigError
from supernet.nn import ElasticSqueezeExcite, mbconv_mid_channels
from supernet.space import ArchConfig, ConfigBatch, SearchSpace

__all__ = ["SubnetShapes", "count_params", "macs", "measure_macs", "params"]

# Fixed layers of OFAMobileNetV3 (supernet.nn.ofa_mbv3): a 3x3 stem conv and a first MBConv with a
# 3x3 depthwise conv, stride 1, no expand conv and no SE.
STEM_KERNEL_SIZE = 3
FIRST_BLOCK_KERNEL_SIZE = 3


@torch.no_grad()
def measure_macs(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass of ``module`` on a zero input of ``input_shape``.

    Shapes: ``input_shape`` is ``(B, C, H, W)``; the count is for the whole batch.
    """
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    try:
        with FlopCounterMode(display=False) as counter:
            module(torch.zeros(input_shape, device=device))
    finally:
        module.train(was_training)
    return counter.get_total_flops() // 2


def count_params(module: nn.Module) -> int:
    """Number of parameters (weights and biases; BN running statistics excluded)."""
    return sum(p.numel() for p in module.parameters())


# --- analytic, batched ------------------------------------------------------------------------


def _config_arrays(
    configs: Sequence[ArchConfig] | ConfigBatch, space: SearchSpace
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(resolution [N], kernel_size [N, S], expand_ratio [N, S], depth [N, stages])`` as int64,
    checked against ``space`` with numpy; the first invalid config is re-checked by
    :meth:`ArchConfig.validate` (or :meth:`ConfigBatch.validate`), which raises with the field,
    value and choices."""
    if isinstance(configs, ConfigBatch):
        configs.validate(space)
        return configs.resolution, configs.kernel_size, configs.expand_ratio, configs.depth
    n, s = len(configs), space.num_blocks
    try:
        resolution = np.array([c.resolution for c in configs], dtype=np.int64).reshape(n)
        kernel = np.array([c.kernel_size for c in configs], dtype=np.int64).reshape(n, s)
        expand = np.array([c.expand_ratio for c in configs], dtype=np.int64).reshape(n, s)
        depth = np.array([c.depth for c in configs], dtype=np.int64).reshape(n, space.num_stages)
    except ValueError:  # ragged or wrong-length tuples
        first_bad = 0
    else:
        valid = (
            np.isin(resolution, space.resolutions)
            & np.isin(kernel, space.kernel_sizes).all(axis=1)
            & np.isin(expand, space.expand_ratios).all(axis=1)
            & np.isin(depth, space.depths).all(axis=1)
        )
        if valid.all():
            return resolution, kernel, expand, depth
        first_bad = int(np.argmin(valid))
    for config in configs[first_bad:]:
        config.validate(space)
    raise ConfigError(f"configs do not fit space {space.name!r}")  # validate raised before this


@dataclass(frozen=True, eq=False)
class _SlotTables:
    """What every subnet of a space shares, per block slot ``[S]`` (built once per space)."""

    in_channels: np.ndarray
    out_channels: np.ndarray
    stride: np.ndarray
    use_se: np.ndarray
    slot_in_stage: np.ndarray
    slot_stage: np.ndarray
    mid_table: np.ndarray  # [S, |expand_ratios|] from the supernet's own width rules
    se_table: np.ndarray  # [S, |expand_ratios|], 0 without SE


@functools.lru_cache(maxsize=16)
def _slot_tables(space: SearchSpace) -> _SlotTables:
    in_ch, out_ch, stride, use_se = [], [], [], []
    c = space.first_block_width
    for stage in space.stages:
        for i in range(stage.max_depth):
            in_ch.append(c)
            out_ch.append(stage.width)
            stride.append(stage.stride if i == 0 else 1)
            use_se.append(stage.use_se)
            c = stage.width
    mid_table = np.array(
        [[mbconv_mid_channels(ci, e) for e in space.expand_ratios] for ci in in_ch], np.int64
    )
    se_table = np.array(
        [
            [ElasticSqueezeExcite.mid_channels(int(m)) if se else 0 for m in row]
            for row, se in zip(mid_table, use_se, strict=True)
        ],
        np.int64,
    )
    tables = _SlotTables(
        in_channels=np.array(in_ch, np.int64),
        out_channels=np.array(out_ch, np.int64),
        stride=np.array(stride, np.int64),
        use_se=np.array(use_se, dtype=bool),
        slot_in_stage=np.concatenate([np.arange(st.max_depth) for st in space.stages]),
        slot_stage=np.repeat(np.arange(space.num_stages), space.stage_max_depths),
        mid_table=mid_table,
        se_table=se_table,
    )
    for arr in vars(tables).values():
        arr.flags.writeable = False  # shared by every SubnetShapes of the space
    return tables


@dataclass(frozen=True, eq=False)
class SubnetShapes:
    """Every layer shape of N subnets of one space, as integer arrays (built once, then shared by
    :func:`macs`, :func:`params` and :mod:`supernet.cost.memory`).

    Shapes: per config ``[N]``; per block slot ``[N, S]`` (S = ``space.num_blocks``; inactive
    slots hold their would-be values and ``active`` is False); fixed per slot ``[S]``.
    Sizes are feature-map heights (= widths) in pixels.

    Attributes:
        space: the search space.
        resolution: input size ``[N]``.
        stem_size: stem output size ``[N]`` (also the first block's input and output).
        active: ``[N, S]`` bool, slot is one of the first ``depth`` blocks of its stage.
        kernel_size, mid_channels, se_mid_channels: ``[N, S]``; ``se_mid_channels`` is 0 without
            SE.
        in_size, out_size: ``[N, S]`` input / output size of each slot (strides of inactive slots
            are not applied).
        final_size: ``[N]`` size of the last block's output.
        in_channels, out_channels: ``[S]``; residual: ``[S]`` bool (stride 1 and same channels);
            use_se: ``[S]`` bool.
    """

    space: SearchSpace
    resolution: np.ndarray
    stem_size: np.ndarray
    active: np.ndarray
    kernel_size: np.ndarray
    mid_channels: np.ndarray
    se_mid_channels: np.ndarray
    in_size: np.ndarray
    out_size: np.ndarray
    final_size: np.ndarray
    in_channels: np.ndarray
    out_channels: np.ndarray
    residual: np.ndarray
    use_se: np.ndarray

    @classmethod
    def from_configs(
        cls, configs: Sequence[ArchConfig] | ConfigBatch, space: SearchSpace
    ) -> SubnetShapes:
        """Shapes of ``configs`` — a list of :class:`ArchConfig` or a :class:`ConfigBatch`
        (validated against ``space``).

        Shapes: N configs → the arrays listed in the class docstring.

        Raises:
            ConfigError: for the first config that is not valid in ``space`` (names the field,
                the value and the choices).
        """
        if not isinstance(configs, ConfigBatch):
            configs = list(configs)
        resolution, kernel, expand, depth = _config_arrays(configs, space)
        t = _slot_tables(space)
        slots = np.arange(space.num_blocks)[None, :]
        e_index = np.searchsorted(np.array(space.expand_ratios), expand)
        active = t.slot_in_stage[None, :] < depth[:, t.slot_stage]

        stem_size = -(-resolution // space.stem_stride)  # ceil: padding k // 2, odd k
        # Sizes shrink by ceil division at each active strided slot; nested ceil divisions by
        # integers compose (ceil(ceil(x / a) / b) = ceil(x / ab)), so one cumulative product does.
        step = np.where(active, t.stride[None, :], 1)
        divisor = np.cumprod(step, axis=1)  # through slot s
        in_size = -(-stem_size[:, None] // (divisor // step))  # before slot s
        out_size = -(-in_size // t.stride[None, :])
        size = -(-stem_size // divisor[:, -1])
        return cls(
            space=space,
            resolution=resolution,
            stem_size=stem_size,
            active=active,
            kernel_size=kernel,
            mid_channels=t.mid_table[slots, e_index],
            se_mid_channels=t.se_table[slots, e_index],
            in_size=in_size,
            out_size=out_size,
            final_size=size,
            in_channels=t.in_channels,
            out_channels=t.out_channels,
            residual=(t.stride == 1) & (t.in_channels == t.out_channels),
            use_se=t.use_se,
        )

    @property
    def first_block_residual(self) -> bool:
        """The fixed first MBConv (stride 1) has a skip when it keeps the stem's channels."""
        return self.space.stem_width == self.space.first_block_width

    @property
    def last_width(self) -> int:
        """Channels entering the final 1x1 expand conv."""
        return int(self.out_channels[-1])

    def macs(self) -> np.ndarray:
        """MACs per config, ``[N]`` int64 (see :func:`macs`)."""
        sp = self.space
        stem_area = self.stem_size**2
        total = stem_area * sp.input_channels * sp.stem_width * STEM_KERNEL_SIZE**2
        total = total + stem_area * sp.stem_width * FIRST_BLOCK_KERNEL_SIZE**2  # 1st depthwise
        total = total + stem_area * sp.stem_width * sp.first_block_width  # first project
        mid, k, se = self.mid_channels, self.kernel_size, self.se_mid_channels
        blocks = (
            self.in_size**2 * self.in_channels * mid  # 1x1 expand
            + self.out_size**2 * mid * k**2  # kxk depthwise
            + 2 * mid * se  # SE reduce + expand on the pooled 1x1 map
            + self.out_size**2 * mid * self.out_channels  # 1x1 project
        )
        total = total + np.where(self.active, blocks, 0).sum(axis=1)
        total = total + self.final_size**2 * self.last_width * sp.final_expand_width
        head = sp.final_expand_width * sp.feature_mix_width + sp.feature_mix_width * sp.num_classes
        return (total + head).astype(np.int64)

    def params(self) -> np.ndarray:
        """Parameters per config, ``[N]`` int64 (see :func:`params`)."""
        sp = self.space
        stem, first = sp.stem_width, sp.first_block_width
        fixed = sp.input_channels * stem * STEM_KERNEL_SIZE**2 + 2 * stem  # conv + BN affine
        fixed += stem * FIRST_BLOCK_KERNEL_SIZE**2 + 2 * stem + stem * first + 2 * first
        fixed += self.last_width * sp.final_expand_width + 2 * sp.final_expand_width
        fixed += sp.final_expand_width * sp.feature_mix_width  # no bias, no BN
        fixed += sp.feature_mix_width * sp.num_classes + sp.num_classes  # linear with bias
        mid, k, se = self.mid_channels, self.kernel_size, self.se_mid_channels
        out = self.out_channels
        blocks = (
            self.in_channels * mid + 2 * mid  # expand conv + BN
            + mid * k**2 + 2 * mid  # depthwise conv + BN
            + np.where(se > 0, 2 * mid * se + se + mid, 0)  # SE convs with biases
            + mid * out + 2 * out  # project conv + BN
        )  # fmt: skip
        return (fixed + np.where(self.active, blocks, 0).sum(axis=1)).astype(np.int64)


def macs(configs: Sequence[ArchConfig] | ConfigBatch, space: SearchSpace) -> np.ndarray:
    """MACs of each config's subnet at its resolution, batch 1, computed without building it.

    Equals ``measure_macs(supernet.get_subnet(config), (1, C, R, R))`` exactly: convolutions
    (SE's 1x1 convs included) and the classifier, ``weights × output positions``, no biases,
    BN, activations, pooling or element-wise ops. The classifier has ``space.num_classes`` outputs.

    Shapes: N configs (a list or a :class:`ConfigBatch`) → ``[N]`` int64 (MACs).

    Raises:
        ConfigError: for the first config that is not valid in ``space``.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 4 (MACs, the paper's efficiency measure).
    """
    return SubnetShapes.from_configs(configs, space).macs()


def params(configs: Sequence[ArchConfig] | ConfigBatch, space: SearchSpace) -> np.ndarray:
    """Parameter count of each config's subnet, computed without building it.

    Equals ``count_params(supernet.get_subnet(config))``: conv weights, SE and classifier biases,
    BN affine weights and biases (running statistics are buffers, not counted).

    Shapes: N configs (a list or a :class:`ConfigBatch`) → ``[N]`` int64 (parameters).

    Raises:
        ConfigError: for the first config that is not valid in ``space``.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 4.
    """
    return SubnetShapes.from_configs(configs, space).params()
