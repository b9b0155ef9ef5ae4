"""ProxylessNAS-Mobile, the network of TinyTL's tables, with group norm + weight standardization
and lite residual modules placed and sized as the TinyTL reference code does.

The block list is the published ``proxyless_mobile.config`` of ProxylessNAS (Cai, Zhu, Han,
ICLR'19, arXiv 1812.00332): a 3×3 stride-2 stem of 32 channels, 22 MBConv blocks (two of them
zero layers: identity only), a 1×1 feature-mix conv to 1280 channels, global average pooling
and a linear classifier; ReLU6 throughout. 4.08 M parameters with 1000 classes (without lite
residuals).

Lite residual placement (TinyTL, arXiv 2007.11622, Sec. 3.2; the reference's
``LiteResidualModule.insert_lite_residual``): every block but the first and the zero layers gets
one, fed by the block's input: 2×2 average pooling, a group conv (2 groups, hidden width = input
width rounded to a multiple of 8, the block's stride), norm, ReLU, 1×1 conv, norm, bilinear
upsampling to the main branch's size. Kernel size (``lite_kernel_rule``): ``"reference"`` — the
reference tracks a nominal resolution of 128 px whatever the input size (halved at each stride-2
stage), starts at 5 and shrinks by 2 while the block's pooled nominal resolution is below the
kernel (a global pool and 1×1 kernel where it reaches 1); ``"input"`` — the same rule on the
actual input resolution.

Shapes: ``[B, 3, R, R]`` → ``[B, num_classes]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supernet.errors import ConfigError
from supernet.nn.blocks import WSConv2d, group_norm_groups

__all__ = [
    "LITE_KERNEL_RULES",
    "PROXYLESS_MOBILE_BLOCKS",
    "REFERENCE_METHODS",
    "ProxylessBlock",
    "build_proxyless_mobile",
    "lite_residual_kernel_sizes",
    "set_reference_method",
]

REFERENCE_METHODS = ("full", "norm+last", "last", "bias+last", "tinytl-l", "tinytl-l+b")

PROXYLESS_MOBILE_BLOCKS: tuple[tuple[int, int, int, int, int] | None, ...] = (
    # (in_channels, out_channels, kernel_size, stride, expand_ratio); None: a zero layer
    (32, 16, 3, 1, 1),
    (16, 32, 5, 2, 3), (32, 32, 3, 1, 3), None, None,
    (32, 40, 7, 2, 3), (40, 40, 3, 1, 3), (40, 40, 5, 1, 3), (40, 40, 5, 1, 3),
    (40, 80, 7, 2, 6), (80, 80, 5, 1, 3), (80, 80, 5, 1, 3), (80, 80, 5, 1, 3),
    (80, 96, 5, 1, 6), (96, 96, 5, 1, 3), (96, 96, 5, 1, 3), (96, 96, 5, 1, 3),
    (96, 192, 7, 2, 6), (192, 192, 7, 1, 6), (192, 192, 7, 1, 3), (192, 192, 7, 1, 3),
    (192, 320, 7, 1, 6),
)  # fmt: skip
"""ProxylessNAS-Mobile's blocks in order (ProxylessNAS, arXiv 1812.00332, Fig. 4 / released
``proxyless_mobile.config``)."""

LITE_KERNEL_RULES = ("reference", "input")
_REFERENCE_RESOLUTION = 128  # the reference's fixed nominal resolution for lite residual kernels


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return WSConv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(group_norm_groups(c), c)


def _make_divisible(v: float, divisor: int = 8) -> int:
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class ProxylessBlock(nn.Module):
    """One block: main MBConv branch (``None``: a zero layer), optional lite residual, identity
    shortcut where input and output shapes match.

    Shapes: ``[B, in, H, W]`` → ``[B, out, H / stride, W / stride]``.
    """

    def __init__(self, spec: tuple[int, int, int, int, int] | None, channels: int) -> None:
        super().__init__()
        self.lite: nn.Sequential | None = None
        self.main: nn.Sequential | None = None
        if spec is None:
            self.identity_shortcut = True
            self.in_channels = self.out_channels = channels
            self.stride = 1
            return
        cin, cout, k, stride, e = spec
        self.in_channels, self.out_channels, self.stride = cin, cout, stride
        self.identity_shortcut = stride == 1 and cin == cout
        mid = round(cin * e)
        layers: list[nn.Module] = []
        if e != 1:
            layers += [_conv(cin, mid, 1), _norm(mid), nn.ReLU6()]
        layers += [_conv(mid, mid, k, stride, groups=mid), _norm(mid), nn.ReLU6()]
        layers += [_conv(mid, cout, 1), _norm(cout)]
        self.main = nn.Sequential(*layers)

    def add_lite_residual(self, kernel_size: int, global_pool: bool) -> None:
        """Attach a lite residual branch (reference sizes; module docstring)."""
        mid = _make_divisible(self.in_channels)
        pool = nn.AdaptiveAvgPool2d(1) if global_pool else nn.AvgPool2d(2, 2)
        self.lite = nn.Sequential(
            pool,
            _conv(self.in_channels, mid, kernel_size, self.stride, groups=2),
            _norm(mid),
            nn.ReLU(),
            _conv(mid, self.out_channels, 1),
            _norm(self.out_channels),
        )
        nn.init.zeros_(self.lite[-1].weight)  # the branch starts as a no-op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.main is None:
            return x
        out = self.main(x)
        if self.lite is not None:
            lite = F.interpolate(self.lite(x), size=out.shape[2:], mode="bilinear",
                                 align_corners=False)  # fmt: skip
            out = out + lite
        return out + x if self.identity_shortcut else out


def lite_residual_kernel_sizes(
    resolution: int = 224, rule: str = "reference", max_kernel: int = 5
) -> list[int | None]:
    """Kernel size of each block's lite residual (``None``: no lite residual; 1: global pool).

    Raises:
        ConfigError: ``rule`` not in :data:`LITE_KERNEL_RULES`.
    """
    if rule not in LITE_KERNEL_RULES:
        raise ConfigError(f"lite_kernel_rule = {rule!r}; choose from {LITE_KERNEL_RULES}")
    res = _REFERENCE_RESOLUTION if rule == "reference" else resolution // 2  # after the stem
    sizes: list[int | None] = [None]
    first_of_stage = True
    for spec in PROXYLESS_MOBILE_BLOCKS[1:]:
        if spec is None:
            sizes.append(None)
            continue
        cin, cout, _, stride, _ = spec
        first_of_stage = not (stride == 1 and cin == cout)
        s = stride if first_of_stage else 1
        block_res = max(1, res // 2)
        res //= s
        k = max_kernel
        if block_res == 1:
            k = 1
        else:
            while block_res < k:
                k -= 2
        sizes.append(k)
    return sizes


def build_proxyless_mobile(
    *,
    num_classes: int = 1000,
    lite_residual: bool = True,
    resolution: int = 224,
    lite_kernel_rule: str = "reference",
) -> nn.Module:
    """ProxylessNAS-Mobile with group norm + weight standardization (TinyTL's setting) and, with
    ``lite_residual``, lite residual modules as the TinyTL reference inserts them.

    Shapes: ``[B, 3, R, R]`` → ``[B, num_classes]``.

    Raises:
        ConfigError: ``num_classes`` < 1 or an unknown ``lite_kernel_rule``.

    Reference: ProxylessNAS (arXiv 1812.00332); TinyTL (arXiv 2007.11622), Sec. 3.2, 4.1.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes = {num_classes!r} must be an int >= 1")
    kernels = lite_residual_kernel_sizes(resolution, lite_kernel_rule)
    blocks, channels = [], 32
    for spec, k in zip(PROXYLESS_MOBILE_BLOCKS, kernels, strict=True):
        block = ProxylessBlock(spec, channels)
        if lite_residual and k is not None:
            block.add_lite_residual(k, global_pool=k == 1)
        channels = block.out_channels
        blocks.append(block)
    return nn.Sequential(
        _conv(3, 32, 3, 2), _norm(32), nn.ReLU6(),
        *blocks,
        _conv(320, 1280, 1), _norm(1280), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(1280, num_classes),
    )  # fmt: skip


def set_reference_method(net: nn.Module, method: str) -> nn.Module:
    """Set ``requires_grad`` as TinyTL's reference training script does for ``method``, lite
    residuals present in every method: everything frozen but the classifier (the last
    ``nn.Linear``), then ``full`` — everything; ``norm+last`` — every norm's γ and β (the lite
    residuals' too); ``bias+last`` — every parameter named ``bias``; ``tinytl-l`` — the lite
    residual branches; ``tinytl-l+b`` — both, less each lite residual's final-norm β.

    Raises:
        ConfigError: ``method`` not in :data:`REFERENCE_METHODS`.

    Reference: TinyTL (arXiv 2007.11622), Sec. 3-4; mit-han-lab/tinyml ``tinytl_fgvc_train.py``.
    """
    if method not in REFERENCE_METHODS:
        raise ConfigError(f"method = {method!r} is not known; choose from {REFERENCE_METHODS}")
    for p in net.parameters():
        p.requires_grad_(method == "full")
    head = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    for p in head.parameters():
        p.requires_grad_(True)
    for m in net.modules():
        if method == "norm+last" and isinstance(m, nn.GroupNorm | nn.modules.batchnorm._BatchNorm):
            for p in m.parameters():
                p.requires_grad_(True)
        if method in ("bias+last", "tinytl-l+b"):
            for name, p in m.named_parameters(recurse=False):
                if name == "bias":
                    p.requires_grad_(True)
    if method in ("tinytl-l", "tinytl-l+b"):
        for m in net.modules():
            if isinstance(m, ProxylessBlock) and m.lite is not None:
                for p in m.lite.parameters():
                    p.requires_grad_(True)
                if method == "tinytl-l+b":
                    m.lite[-1].bias.requires_grad_(False)
    return net
