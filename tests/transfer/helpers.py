"""Small static subnets (BN and GN) with non-trivial weights for the transfer tests.

They are built from the static blocks by hand (a few blocks, 28×28 inputs) so every test runs in
milliseconds and a group-norm subnet exists without a group-norm supernet. The layout at
resolution 28: stem stride 2 → 14; block 0 (no expansion, 8 channels) → 14; block 1 stride 2,
8 → 12 channels → 7 (its lite residual pools 14 → 7: kernel 5); block 2 stride 1, 12 channels,
SE and identity shortcut (pools 7 → 3: kernel 3; hidden 12 → 16 channels); block 3 stride 2,
12 → 16 channels → 4 (pools 7 → 3: kernel 3).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from supernet.nn.blocks import ConvBNAct, MBConv, MobileNetV3

RESOLUTION = 28
NUM_CLASSES = 5


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights of a sane scale, random norm affine parameters and BN statistics."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) / math.sqrt(fan_in))
            if m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
            m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=g))
    return model


def make_subnet(norm: str, *, seed: int = 0) -> MobileNetV3:
    """A 4-block MobileNetV3 of static blocks with ``norm`` ("bn" or "gn"), random weights."""

    def mb(cin: int, cout: int, k: int, s: int, mid: int, act: str, **kw) -> MBConv:
        return MBConv(cin, cout, kernel_size=k, stride=s, mid_channels=mid, act=act, norm=norm,
                      **kw)  # fmt: skip

    model = MobileNetV3(
        ConvBNAct(1, 8, 3, stride=2, act="h_swish", norm=norm),
        [
            mb(8, 8, 3, 1, 8, "relu", expand=False),
            mb(8, 12, 3, 2, 24, "relu"),
            mb(12, 12, 5, 1, 36, "h_swish", se_mid_channels=8),
            mb(12, 16, 3, 2, 32, "relu"),
        ],
        ConvBNAct(16, 32, 1, act="h_swish", norm=norm),
        nn.Sequential(nn.Conv2d(32, 40, 1, bias=False), nn.Hardswish(inplace=True)),
        nn.Linear(40, 10),
    )
    return randomize_(model, seed).eval()
