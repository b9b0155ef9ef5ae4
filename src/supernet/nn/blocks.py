"""Static blocks that extracted subnets are made of: no elastic dimension, no overhead.

Reference: MobileNetV3 (Howard et al., ICCV'19, arXiv 1905.02244), Sec. 5 (MBConv with
squeeze-and-excitation, h-swish); Once-for-All (arXiv 1908.09791) uses the same blocks.
"""

from __future__ import annotations

import torch
from torch import nn

from supernet.space import ArchConfig

__all__ = ["ConvBNAct", "MBConv", "MobileNetV3", "SqueezeExcite", "make_activation"]


def make_activation(name: str | None) -> nn.Module:
    """``"relu"`` → ReLU, ``"h_swish"`` → Hardswish, ``None`` → Identity."""
    if name is None:
        return nn.Identity()
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"activation = {name!r} is not allowed; choose from ('relu', 'h_swish', None)")


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) → BatchNorm2d → activation.

    Shapes: ``[B, in_channels, H, W]`` → ``[B, out_channels, ceil(H / stride), ceil(W / stride)]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu",
    ) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            make_activation(act),
        )


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool → 1x1 reduce → ReLU → 1x1 expand → h-sigmoid → scale.

    Shapes: ``[B, C, H, W]`` → ``[B, C, H, W]``.
    Reference: Hu et al., CVPR'18 (arXiv 1709.01507); h-sigmoid gate from MobileNetV3 Sec. 5.2.
    """

    def __init__(self, channels: int, mid_channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, mid_channels, 1, bias=True)
        self.expand = nn.Conv2d(mid_channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = torch.relu(self.reduce(s))
        return x * nn.functional.hardsigmoid(self.expand(s))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand → kxk depthwise → [SE] → 1x1 project, identity shortcut when
    the stride is 1 and the channel count is kept.

    Shapes: ``[B, in_channels, H, W]`` → ``[B, out_channels, H / stride, W / stride]``.
    Reference: MobileNetV2 (arXiv 1801.04381) Sec. 3.3; MobileNetV3 (arXiv 1905.02244) Sec. 5.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        stride: int,
        mid_channels: int,
        act: str,
        se_mid_channels: int | None = None,
        expand: bool = True,
    ) -> None:
        super().__init__()
        self.expand = ConvBNAct(in_channels, mid_channels, 1, act=act) if expand else nn.Identity()
        self.depthwise = ConvBNAct(
            mid_channels, mid_channels, kernel_size, stride=stride, groups=mid_channels, act=act
        )
        self.se = SqueezeExcite(mid_channels, se_mid_channels) if se_mid_channels else nn.Identity()
        self.project = ConvBNAct(mid_channels, out_channels, 1, act=None)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + out if self.use_residual else out


class MobileNetV3(nn.Module):
    """A plain (static) MobileNetV3: what :meth:`OFAMobileNetV3.get_subnet` returns.

    Shapes: ``[B, C_in, R, R]`` → logits ``[B, num_classes]``.

    Attributes:
        config: the :class:`ArchConfig` this subnet was extracted for (``None`` if built by hand).
    """

    def __init__(
        self,
        stem: nn.Module,
        blocks: list[nn.Module],
        final_expand: nn.Module,
        feature_mix: nn.Module,
        classifier: nn.Linear,
        *,
        dropout: float = 0.0,
        config: ArchConfig | None = None,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = final_expand
        self.feature_mix = feature_mix
        self.dropout = nn.Dropout(dropout)
        self.classifier = classifier
        self.config = config

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, R, R]`` → pooled features ``[B, feature_mix_width]``."""
        x = self.final_expand(self.blocks(self.stem(x)))
        x = self.feature_mix(x.mean((2, 3), keepdim=True))
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.forward_features(x)))
