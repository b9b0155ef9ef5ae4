"""Lite residual modules: a small, low-resolution branch beside each frozen MBConv block.

TinyTL (Cai, Gan, Zhu, Han; NeurIPS'20; arXiv 2007.11622), Sec. 3.2, Eq. 4: the memory a
trainable layer costs is its stored input, so the learned refinement works on a 2×-downsampled
copy of the block input with a cheap group convolution and no inverted bottleneck:

    a_{i+1} = F_{w_i}(a_i) + R_{w_r}(a'_i),    a'_i = downsample(a_i)

``R`` = avg-pool 2×2 → group conv (groups 2, kernel 5; stride = the block's stride) → norm → ReLU
→ 1×1 conv → norm (γ initialised to 0) → bilinear upsample to the main branch's size. With γ = 0
the branch outputs exactly 0, so inserting it leaves the network's function unchanged.

Choices made here (the paper leaves them open):

- kernel: shrunk by 2 while the pooled resolution is below it (7×7 input → 3×3 pooled → kernel 3);
  when pooling would leave one pixel or none, the branch pools globally and uses kernel 1.
- hidden channels: the block's input channels rounded up to a multiple of 8.
- norm follows the subnet. Group-norm subnet: ``GroupNorm`` (8 channels per group) with
  weight-standardized convs. Batch-norm subnet: :class:`FrozenBatchNorm2d` — statistics frozen at
  their initial values (mean 0, variance 1), i.e. a learned per-channel affine op, like every
  other BN of a transfer model: batch statistics over 8 (or 1) images of a 2×2 pooled map are
  noise, and one regime for the whole model keeps batch-1 training possible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from supernet.errors import ConfigError
from supernet.nn.blocks import MBConv, MobileNetV3, WSConv2d, make_norm
from supernet.transfer.frozen_bn import freeze_batch_norm

__all__ = [
    "LiteResidual",
    "LiteResidualConfig",
    "LiteResidualMBConv",
    "block_input_resolutions",
    "insert_lite_residuals",
    "lite_residual_kernel_size",
]


@dataclass(frozen=True)
class LiteResidualConfig:
    """Hyperparameters of the lite residual branch (defaults: TinyTL, arXiv 2007.11622, Sec. 3.2
    and Sec. 4.1 — kernel 5, 2 groups, 2× downsampling, bilinear upsampling).

    Attributes:
        kernel_size: largest (odd) kernel of the group conv.
        groups: groups of that conv.
        downsample: avg-pool factor (1: no pooling).
        channel_divisor: hidden channels = input channels rounded up to a multiple of this.
        upsample_mode: ``F.interpolate`` mode back to the main branch's size.
    """

    kernel_size: int = 5
    groups: int = 2
    downsample: int = 2
    channel_divisor: int = 8
    upsample_mode: str = "bilinear"

    def validate(self) -> LiteResidualConfig:
        """Raises ConfigError naming the first field out of range."""
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"lite residual kernel_size = {self.kernel_size} must be odd, >= 1")
        for name in ("groups", "downsample", "channel_divisor"):
            if getattr(self, name) < 1:
                raise ConfigError(f"lite residual {name} = {getattr(self, name)} must be >= 1")
        if self.upsample_mode not in ("bilinear", "nearest"):
            raise ConfigError(
                f"lite residual upsample_mode = {self.upsample_mode!r} is not allowed; "
                "choose from ('bilinear', 'nearest')"
            )
        return self


def lite_residual_kernel_size(
    input_resolution: int, kernel_size: int = 5, downsample: int = 2
) -> int:
    """Kernel of the branch's group conv for a block whose input is ``input_resolution`` pixels
    wide: ``kernel_size`` shrunk by 2 while the pooled resolution is below it; 1 if pooling leaves
    at most one pixel (the branch then pools globally).

    Example: 14 → pooled 7 → 5; 7 → pooled 3 → 3; 4 → pooled 2 → 1.
    """
    pooled = input_resolution // downsample
    if pooled <= 1:
        return 1
    while kernel_size > 1 and pooled < kernel_size:
        kernel_size -= 2
    return kernel_size


class LiteResidual(nn.Module):
    """The lite residual branch ``R`` of TinyTL (arXiv 2007.11622, Sec. 3.2, Eq. 4).

    Children: ``pool`` → ``conv`` (group conv) → ``norm`` → ``act`` (ReLU) → ``project`` (1×1) →
    ``final_norm`` (γ = 0 at init); ``forward`` then upsamples to ``size``.

    Shapes: ``[B, in_channels, H, W]`` → ``[B, out_channels, *size]``.

    Args:
        in_channels, out_channels: the wrapped block's input and output channels.
        input_resolution: the block's input width in pixels (picks the kernel and pooling).
        stride: the block's stride.
        norm: ``"bn"`` (frozen-statistics batch norm) or ``"gn"`` (group norm + WS convs).
        config: hyperparameters; ``generator``: RNG of the conv initialisation.

    Raises:
        ConfigError: ``config.groups`` does not divide ``in_channels`` or the hidden channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        input_resolution: int,
        stride: int,
        norm: str,
        config: LiteResidualConfig = LiteResidualConfig(),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        config.validate()
        d = config.channel_divisor
        mid = math.ceil(in_channels / d) * d
        if in_channels % config.groups or mid % config.groups:
            raise ConfigError(
                f"lite residual groups = {config.groups} must divide the block's input channels "
                f"({in_channels}) and the hidden channels ({mid})"
            )
        k = lite_residual_kernel_size(input_resolution, config.kernel_size, config.downsample)
        if input_resolution // config.downsample <= 1:
            self.pool: nn.Module = nn.AdaptiveAvgPool2d(1)
        elif config.downsample > 1:
            self.pool = nn.AvgPool2d(config.downsample)
        else:
            self.pool = nn.Identity()
        conv_cls = WSConv2d if norm == "gn" else nn.Conv2d
        self.conv = conv_cls(in_channels, mid, k, stride=stride, padding=k // 2,
                             groups=config.groups, bias=False)  # fmt: skip
        self.norm = self._norm(norm, mid)
        self.act = nn.ReLU(inplace=True)
        self.project = conv_cls(mid, out_channels, 1, bias=False)
        self.final_norm = self._norm(norm, out_channels)
        self.upsample_mode = config.upsample_mode
        for conv in (self.conv, self.project):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", generator=generator)
        nn.init.zeros_(self.final_norm.weight)

    @staticmethod
    def _norm(kind: str, channels: int) -> nn.Module:
        norm = make_norm(kind, channels)
        freeze_batch_norm(norm)  # a batch norm keeps its initial statistics (mean 0, var 1)
        return norm

    def forward(self, x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
        x = self.pool(x)
        x = self.final_norm(self.project(self.act(self.norm(self.conv(x)))))
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        align = False if self.upsample_mode == "bilinear" else None
        return F.interpolate(x, size=tuple(size), mode=self.upsample_mode, align_corners=align)


class LiteResidualMBConv(MBConv):
    """An :class:`MBConv` with a lite residual beside its convolutions:
    ``out = project(se(depthwise(expand(x)))) + lite_residual(x)``, then ``x + out`` when the block
    has its identity shortcut. The block's own submodules keep their names (``expand``,
    ``depthwise``, ``se``, ``project``); the branch adds ``lite_residual.*``.

    Shapes: as the wrapped block. Reference: TinyTL, arXiv 2007.11622, Sec. 3.2, Eq. 4.
    """

    def __init__(self, block: MBConv, lite_residual: LiteResidual) -> None:
        nn.Module.__init__(self)  # the block's modules are reused, not rebuilt
        self.expand, self.depthwise, self.se = block.expand, block.depthwise, block.se
        self.project = block.project
        self.use_residual = block.use_residual
        self.lite_residual = lite_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.project(self.se(self.depthwise(self.expand(x))))
        out = main + self.lite_residual(x, main.shape[-2:])
        return x + out if self.use_residual else out


@torch.no_grad()
def block_input_resolutions(model: MobileNetV3, resolution: int) -> list[int]:
    """Input width (pixels) of every block of ``model`` for ``resolution``² inputs, traced with one
    zero image (the model's mode is restored).

    Shapes: probes ``[1, C_in, resolution, resolution]``.
    """
    widths: list[int] = []
    hooks = [b.register_forward_pre_hook(lambda _m, args: widths.append(args[0].shape[-1]))
             for b in model.blocks]  # fmt: skip
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        shape = (1, _input_channels(model), resolution, resolution)
        model.forward_features(torch.zeros(shape, dtype=param.dtype, device=param.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return widths


def _input_channels(model: MobileNetV3) -> int:
    return next(m for m in model.stem.modules() if isinstance(m, nn.Conv2d)).in_channels


def _block_norm(block: MBConv) -> str:
    return "gn" if any(isinstance(m, nn.GroupNorm) for m in block.modules()) else "bn"


def insert_lite_residuals(
    model: MobileNetV3,
    *,
    resolution: int,
    config: LiteResidualConfig = LiteResidualConfig(),
    generator: torch.Generator | None = None,
) -> list[int]:
    """Wrap every MBConv block of ``model`` but the first in a :class:`LiteResidualMBConv`, in
    place; returns the indices (into ``model.blocks``) of the wrapped blocks.

    The branch's norm follows the block's (group norm → group norm + WS convs, otherwise frozen
    BN); its kernel follows :func:`lite_residual_kernel_size` of the block's input width at
    ``resolution`` (traced with a dummy forward). The new modules get the dtype and device of the
    block's parameters.

    Raises:
        ConfigError: a block already has a lite residual, or ``config`` is out of range.

    Reference: TinyTL, arXiv 2007.11622, Sec. 3.2.
    """
    config.validate()
    widths = block_input_resolutions(model, resolution)
    wrapped = []
    for i, block in enumerate(model.blocks):
        if isinstance(block, LiteResidualMBConv):
            raise ConfigError(f"block {i} already has a lite residual module")
        if i == 0 or not isinstance(block, MBConv):
            continue
        dw = block.depthwise[0]
        in_channels = dw.in_channels if isinstance(block.expand, nn.Identity) else (
            block.expand[0].in_channels)  # fmt: skip
        branch = LiteResidual(
            in_channels,
            block.project[0].out_channels,
            input_resolution=widths[i],
            stride=dw.stride[0],
            norm=_block_norm(block),
            config=config,
            generator=generator,
        )
        param = dw.weight
        model.blocks[i] = LiteResidualMBConv(block, branch.to(param.device, param.dtype))
        wrapped.append(i)
    return wrapped
