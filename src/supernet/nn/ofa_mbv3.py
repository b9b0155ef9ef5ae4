"""The Once-for-All MobileNetV3 supernet: elastic resolution, kernel size, depth and expand ratio.

Reads top to bottom: the supernet, then its builder. Its subnets are plain
:class:`~supernet.nn.blocks.MobileNetV3` modules.

Reference: Once-for-All (Cai, Gan, Wang, Zhang, Han; ICLR'20; arXiv 1908.09791), Sec. 3 and 4.
"""

from __future__ import annotations

import torch
from torch import nn

from supernet.errors import ConfigError
from supernet.nn.blocks import NORMS, ConvBNAct, MBConv, MobileNetV3, make_activation
from supernet.nn.elastic import ElasticMBConv, clone_module, cyclic_gc_paused
from supernet.space import ArchConfig, SearchSpace

__all__ = ["OFAMobileNetV3", "build_ofa_mbv3"]


class OFAMobileNetV3(nn.Module):
    """Weight-sharing MobileNetV3 supernet over a :class:`SearchSpace`.

    ``set_active(config)`` picks a subnet in place; ``forward`` then runs it. Elastic resolution is
    the input's size: resize batches to ``config.resolution`` before calling (the trainer does).

    Shapes: ``[B, space.input_channels, R, R]`` → logits ``[B, num_classes]``.

    Args:
        space: the search space (widths, strides, choices).
        num_classes: classifier outputs (default ``space.num_classes``).
        dropout: dropout rate before the classifier.
        norm: ``"bn"`` — batch norm (Once-for-All); ``"gn"`` — group norm with 8 channels per
            group, and weight standardization on every conv followed by a norm (TinyTL's batch-1
            setting). The feature-mix and SE convs have no norm after them and are never
            standardized. With ``"gn"`` the last norm of every residual block starts with γ = 0.

    Raises:
        ConfigError: ``dropout`` outside [0, 1), or ``norm`` not one of
            :data:`~supernet.nn.blocks.NORMS`.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.1-3.2 and Sec. 4 (MobileNetV3 space);
    group norm + weight standardization: TinyTL, arXiv 2007.11622, Sec. 3.2.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        num_classes: int | None = None,
        dropout: float = 0.1,
        norm: str = "bn",
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout = {dropout} must be in [0, 1)")
        if norm not in NORMS:
            raise ConfigError(f"norm = {norm!r} is not allowed; choose from {NORMS}")
        self.space = space
        self.norm = norm
        self.num_classes = num_classes or space.num_classes
        self.stem = ConvBNAct(
            space.input_channels,
            space.stem_width,
            3,
            stride=space.stem_stride,
            act=space.head_act,
            norm=norm,
        )
        self.first_block = MBConv(
            space.stem_width,
            space.first_block_width,
            kernel_size=3,
            stride=1,
            mid_channels=space.stem_width,
            act="relu",
            expand=False,
            norm=norm,
        )
        blocks, in_channels = [], space.first_block_width
        for stage in space.stages:
            for i in range(stage.max_depth):
                blocks.append(
                    ElasticMBConv(
                        in_channels,
                        stage.width,
                        kernel_sizes=space.kernel_sizes,
                        expand_ratios=space.expand_ratios,
                        stride=stage.stride if i == 0 else 1,
                        act=stage.act,
                        use_se=stage.use_se,
                        norm=norm,
                    )
                )
                in_channels = stage.width
        self.blocks = nn.ModuleList(blocks)
        self.final_expand = ConvBNAct(
            in_channels, space.final_expand_width, 1, act=space.head_act, norm=norm
        )
        self.feature_mix = nn.Sequential(
            nn.Conv2d(space.final_expand_width, space.feature_mix_width, 1, bias=False),
            make_activation(space.head_act),
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(space.feature_mix_width, self.num_classes)
        self._init_weights()
        self.active_config = space.largest()
        self._active_blocks: list[int] = []
        self.set_active(self.active_config)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        if self.norm == "gn":
            # Zero-γ: each residual block starts as the identity (Goyal et al., arXiv 1706.02677,
            # Sec. 5.1). Without it a group-norm supernet sits at chance for its first tens of
            # steps when the resolution changes from step to step.
            lasts = [self.first_block.project[1]] + [b.project_bn for b in self.blocks]
            for block, last in zip((self.first_block, *self.blocks), lasts, strict=True):
                if block.use_residual:
                    nn.init.zeros_(last.weight)

    # --- elastic state --------------------------------------------------------------------------
    def set_active(self, config: ArchConfig) -> None:
        """Make ``config`` the active subnet (kernel size and expand ratio per block, depth per
        stage); resolution is recorded in ``active_config``.

        Raises:
            ConfigError: when ``config`` is not valid in this supernet's space.
        """
        config.validate(self.space)
        for block, k, e in zip(self.blocks, config.kernel_size, config.expand_ratio, strict=True):
            block.active_kernel_size = k
            block.active_expand_ratio = e
        self._active_blocks = config.active_blocks(self.space.stage_max_depths)
        self.active_config = config

    # --- forward ----------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, R, R]`` → pooled features ``[B, feature_mix_width]`` of the active subnet."""
        x = self.first_block(self.stem(x))
        for i in self._active_blocks:
            x = self.blocks[i](x)
        x = self.final_expand(x)
        x = self.feature_mix(x.mean((2, 3), keepdim=True))
        return torch.flatten(x, 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, feature_mix_width]`` → logits ``[B, num_classes]``."""
        return self.classifier(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # --- subnet extraction ----------------------------------------------------------------------
    def get_subnet(self, config: ArchConfig | None = None) -> MobileNetV3:
        """Extract ``config`` (default: the active config) as a plain module with copied weights.

        The subnet holds the transformed kernels, the active channel slices and the sliced BN
        statistics; in eval mode its outputs equal the supernet's for the same config. A group-norm
        supernet's subnet is made of :class:`~supernet.nn.blocks.WSConv2d` and ``GroupNorm`` and
        equals it in train mode too (no running statistics; dropout aside).
        The parts that are not elastic (stem, first block, head) are copy-on-write copies
        (``clone_module(copy_on_write=True)``): they share the supernet's memory until either side
        writes them, and behave as copies (a write through either copies the data first).
        Python's cyclic garbage collector is paused until the subnet is returned
        (:class:`~supernet.nn.elastic.cyclic_gc_paused`: fewer collections, same objects freed).

        Raises:
            ConfigError: when ``config`` is not valid in this supernet's space.
        """
        config = self.active_config if config is None else config.validate(self.space)
        mode = self.training
        with cyclic_gc_paused(), torch.no_grad():  # no_grad exits first, inside the pause
            blocks: list[nn.Module] = [self._copy_fixed(self.first_block, mode)]
            supernet_blocks = list(self.blocks)  # indexing a ModuleList is a Python call each
            for i in config.active_blocks(self.space.stage_max_depths):
                block = supernet_blocks[i]
                blocks.append(block.to_static(config.kernel_size[i], config.expand_ratio[i]))
            subnet = MobileNetV3(
                self._copy_fixed(self.stem, mode),
                blocks,
                self._copy_fixed(self.final_expand, mode),
                self._copy_fixed(self.feature_mix, mode),
                self._copy_fixed(self.classifier, mode),
                dropout=self.dropout.p,
                config=config,
            )
            subnet.training = subnet.blocks.training = subnet.dropout.training = mode
        return subnet  # nothing allocated after the pause ends (see cyclic_gc_paused)

    @staticmethod
    def _copy_fixed(module: nn.Module, training: bool) -> nn.Module:
        """A subnet's copy of a part that is not elastic (stem, first block, head): copy-on-write
        (:func:`~supernet.nn.elastic.clone_module`), as these hold the same tensors in every
        subnet (10.7 MB of the 15.7-24.5 MB an ``ofa-mbv3`` subnet holds, mostly the head's 1x1
        convs and classifier) and most extracted subnets are only evaluated, measured or
        exported."""
        return clone_module(module, training=training, copy_on_write=True)


def build_ofa_mbv3(
    space: SearchSpace,
    *,
    num_classes: int | None = None,
    dropout: float = 0.1,
    norm: str = "bn",
) -> OFAMobileNetV3:
    """Builder registered as ``"ofa-mbv3"`` in :mod:`supernet.nn.registry` (arguments as
    :class:`OFAMobileNetV3`).

    Raises:
        ConfigError: ``dropout`` outside [0, 1), or an unknown ``norm``.
    """
    return OFAMobileNetV3(space, num_classes=num_classes, dropout=dropout, norm=norm)
