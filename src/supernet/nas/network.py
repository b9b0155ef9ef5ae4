"""The over-parameterized network of ProxylessNAS over a MobileNetV3 search space.

Every block slot of the space becomes a :class:`~supernet.nas.mixed_op.MixedOp` over static
:class:`~supernet.nn.MBConv` candidates, one per kernel size x expand ratio of the space, each
with its own weights (no weight sharing between candidates, as in the paper). A slot beyond the
smallest depth of its stage may also be dropped: it gets a *skip* candidate. The stem, the
fixed first block and the head are those of the space's
:class:`~supernet.nn.OFAMobileNetV3` (same widths, strides, activations and SE).

The derived architecture (argmax path per slot) is returned as the space's
:class:`~supernet.space.ArchConfig`: the kept blocks of a stage, in order, become its first
``depth`` slots. Skipped slots are the identity and every non-first slot of a stage has the
same shape (stride 1, ``width → width``), so the derived subnet computes the same function as
the over-parameterized network with those paths, and its latency-table keys are the same.

Deviation: residual candidates start with their last BN's γ at 0 (each starts as the
identity), for short searches (see ``ProxylessSupernet._mbconv``); the expand ratios are the
space's (``mbv3-tiny``: 3/4/6; the paper: 3/6).

Reference: ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332), Sec. 3.1 and Sec. 4
(MBConv candidates with kernel 3/5/7 and expand 3/6, zero op to learn depth).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from supernet.errors import ConfigError
from supernet.nas.mixed_op import SKIP, MixedOp
from supernet.nn import ElasticSqueezeExcite, MBConv, OFAMobileNetV3, mbconv_mid_channels
from supernet.space import ArchConfig, SearchSpace

__all__ = ["ProxylessSupernet", "candidate_ops", "skippable_slots"]


def candidate_ops(space: SearchSpace) -> list[tuple[int, int] | None]:
    """Every op of the space in a fixed order: ``(kernel, expand)`` kernel-major, then
    :data:`SKIP` last. Columns of α-history and latency matrices follow this order."""
    return [(k, e) for k in space.kernel_sizes for e in space.expand_ratios] + [SKIP]


def skippable_slots(space: SearchSpace) -> list[bool]:
    """Per block slot: may it be skipped (its position in the stage >= the smallest depth)?

    Raises:
        ConfigError: the space's depths are not every integer from the smallest to each stage's
            max depth (a derived depth could then fall outside the choices).
    """
    low = min(space.depths)
    for s, stage in enumerate(space.stages):
        needed = tuple(range(low, stage.max_depth + 1))
        if not set(needed) <= set(space.depths):
            raise ConfigError(
                f"space {space.name!r}: ProxylessNAS learns depth by skipping slots, so every "
                f"depth from {low} to stage {s}'s max depth {stage.max_depth} must be a choice; "
                f"the space has depths {space.depths}"
            )
    return [p >= low for st in space.stages for p in range(st.max_depth)]


class ProxylessSupernet(nn.Module):
    """Over-parameterized network: stem, first block, one mixed op per slot, head.

    Shapes: ``[B, space.input_channels, R, R]`` → logits ``[B, num_classes]``.

    Args:
        space: the search space (widths, strides, kernel sizes, expand ratios, depths).
        dropout: dropout before the classifier.
        alpha_init_std: std of α's normal init (reference ``arch_init_ratio``: 1e-3).
        generator: draws the initial α (weights use torch's global generator, as
            :class:`OFAMobileNetV3`).

    Raises:
        ConfigError: see :func:`skippable_slots`; ``dropout`` outside [0, 1).

    Reference: ProxylessNAS, arXiv 1812.00332, Sec. 3.1.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        dropout: float = 0.1,
        alpha_init_std: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.space = space
        self.all_ops = candidate_ops(space)
        skippable = skippable_slots(space)
        base = OFAMobileNetV3(space, dropout=dropout)  # fixed parts, same init as the supernet
        self.stem, self.first_block = base.stem, base.first_block
        self.final_expand, self.feature_mix = base.final_expand, base.feature_mix
        self.dropout, self.classifier = base.dropout, base.classifier
        mixed = []
        for block, can_skip in zip(base.blocks, skippable, strict=True):
            ops = [op for op in self.all_ops if op is not SKIP or can_skip]
            paths = [nn.Identity() if op is SKIP else self._mbconv(block, *op) for op in ops]
            mixed.append(MixedOp(ops, paths, alpha_init_std=alpha_init_std, generator=generator))
        self.blocks = nn.ModuleList(mixed)
        # column of each slot's ops in candidate_ops(space)
        self.columns = [[self.all_ops.index(op) for op in m.ops] for m in self.blocks]

    @staticmethod
    def _mbconv(block: nn.Module, kernel_size: int, expand_ratio: int) -> MBConv:
        """A fresh static MBConv of the elastic slot ``block``'s shape, initialized as
        :class:`OFAMobileNetV3` initializes its convolutions (He, fan-out); a residual one with
        its last BN's γ at 0."""
        mid = mbconv_mid_channels(block.in_channels, expand_ratio)
        se_mid = ElasticSqueezeExcite.mid_channels(mid) if block.se is not None else None
        conv = MBConv(block.in_channels, block.out_channels, kernel_size=kernel_size,
                      stride=block.stride, mid_channels=mid, act=block.act_name,
                      se_mid_channels=se_mid)  # fmt: skip
        for m in conv.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
        if conv.use_residual:
            # Zero-γ (Goyal et al., arXiv 1706.02677, Sec. 5.1): a residual candidate starts as
            # the identity. Not in the paper; without it a short search on Fashion-MNIST stayed
            # at chance through its warm-up (each candidate is trained about 1/9 of the steps,
            # and 20 random, rarely trained residual branches add noise of unit variance each).
            nn.init.zeros_(conv.project[1].weight)
        return conv

    # --- parameters ---------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """α of every slot (one parameter per slot)."""
        return [m.alpha for m in self.blocks]

    def weight_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter but α."""
        return (p for name, p in self.named_parameters() if not name.endswith(".alpha"))

    # --- sampling -------------------------------------------------------------------------------
    def sample_one(self, generator: torch.Generator) -> None:
        """Weight step: one path per slot (see :meth:`MixedOp.sample_one`)."""
        for m in self.blocks:
            m.sample_one(generator)

    def sample_two(self, generator: torch.Generator) -> None:
        """Architecture step: two paths per slot (see :meth:`MixedOp.sample_two`)."""
        for m in self.blocks:
            m.sample_two(generator)

    def probs_matrix(self, *, sampled: bool = False) -> torch.Tensor:
        """Path probabilities ``[num_slots, len(candidate_ops)]`` (0 where a slot lacks an op):
        ``softmax(α)`` per slot, or with ``sampled`` the step's two-path probabilities
        (:meth:`MixedOp.sampled_probs`). Differentiable in α."""
        rows = []
        for m, cols in zip(self.blocks, self.columns, strict=True):
            p = m.sampled_probs() if sampled else m.probs()
            row = torch.zeros(len(self.all_ops), dtype=p.dtype, device=p.device)
            rows.append(row.index_put((torch.tensor(cols, device=p.device),), p))
        return torch.stack(rows)

    # --- forward --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_block(self.stem(x))
        for m in self.blocks:
            x = m(x)
        x = self.final_expand(x)
        x = torch.flatten(self.feature_mix(x.mean((2, 3), keepdim=True)), 1)
        return self.classifier(self.dropout(x))

    # --- the result -----------------------------------------------------------------------------
    def chosen_ops(self) -> list[tuple[int, int] | None]:
        """The most likely op of every slot (argmax of α)."""
        return [m.ops[m.chosen()] for m in self.blocks]

    def derive_config(self, resolution: int) -> ArchConfig:
        """The derived architecture (argmax path per slot) as an arch config of the space.

        Raises:
            ConfigError: ``resolution`` is not one of the space's.
        """
        return ops_to_config(self.space, self.chosen_ops(), resolution)


def ops_to_config(
    space: SearchSpace, ops: list[tuple[int, int] | None], resolution: int
) -> ArchConfig:
    """Per-slot ops (:data:`SKIP` for a dropped slot) → arch config: per stage, the kept ops in
    order fill the first slots and set the depth; the slots beyond it get the smallest kernel
    size and expand ratio (inactive, any valid value).

    Raises:
        ConfigError: wrong number of ops, a skip where the stage would fall below its smallest
            depth, or a config not valid in ``space``.
    """
    if len(ops) != space.num_blocks:
        raise ConfigError(
            f"{len(ops)} ops given; space {space.name!r} has {space.num_blocks} block slots"
        )
    kernels, expands, depths, start = [], [], [], 0
    for s, stage in enumerate(space.stages):
        kept = [op for op in ops[start : start + stage.max_depth] if op is not SKIP]
        if len(kept) < min(space.depths):
            raise ConfigError(f"stage {s} keeps {len(kept)} blocks; the space's smallest depth "
                              f"is {min(space.depths)}")  # fmt: skip
        pad = [(min(space.kernel_sizes), min(space.expand_ratios))] * (stage.max_depth - len(kept))
        kernels += [k for k, _ in kept + pad]
        expands += [e for _, e in kept + pad]
        depths.append(len(kept))
        start += stage.max_depth
    return ArchConfig(resolution, tuple(kernels), tuple(expands), tuple(depths)).validate(space)
