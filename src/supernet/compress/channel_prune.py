"""Channel pruning of a static MobileNetV3 subnet: which channels can go, how many MACs each one
costs, which ones to keep (L1 magnitude), and the least-squares refit of the next layer.

What is pruned: the *expanded* (middle) channels of every MBConv block that has a 1x1 expand
convolution. Those channels are the expand conv's outputs, the depthwise conv's channels (and its
BatchNorm's), the squeeze-and-excitation's input/output channels, and the project conv's inputs,
all pruned together. Block outputs are not pruned: they feed identity shortcuts (residual adds),
so pruning them would tie whole stages together. Every other layer (stem, first block without an
expand conv, final expand, feature mix, classifier) keeps its width; its MACs are the *fixed*
part of the budget. The block's MACs are linear in its middle width, so a policy's MACs are
``fixed_macs + sum(macs_per_channel[i] * kept[i])`` (checked against PyTorch's FLOP counter in
the tests).

Channel choice and refit follow AMC (He et al., ECCV'18, arXiv 1802.03494), Sec. 3.3 and its
reference code's channel pruning (He, Zhang, Sun, ICCV'17, arXiv 1707.06168, Sec. 3.1): keep the
input channels of the project conv with the largest L1 weight norm, then refit the project conv's
weights by least squares so that its outputs (before BatchNorm), sampled at a few positions of
feature maps of the *unpruned* subnet, are reproduced from the kept channels alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from supernet.cost import measure_macs
from supernet.errors import ConfigError
from supernet.nn import MBConv, SqueezeExcite
from supernet.nn.blocks import DepthwiseConv2d

__all__ = [
    "BlockFeatures",
    "PrunableBlock",
    "collect_features",
    "find_prunable_blocks",
    "least_squares_refit",
    "policy_macs",
    "prune_subnet",
    "select_channels",
]


@dataclass(frozen=True)
class PrunableBlock:
    """One MBConv block whose middle channels may be pruned.

    Attributes:
        index: position among the prunable blocks (0-based).
        name: module path in the subnet (e.g. ``"blocks.3"``).
        in_channels, mid_channels, out_channels: widths of the unpruned block.
        kernel_size, stride: of the depthwise conv.
        in_size, out_size: feature map side (pixels) at the block's input and output.
        has_se: whether the block has squeeze-and-excitation.
        macs_per_channel: MACs (batch 1) that each middle channel costs: expand
            ``in_channels * in_size²`` + depthwise ``kernel_size² * out_size²`` + SE
            ``2 * se_mid_channels`` + project ``out_channels * out_size²``.
    """

    index: int
    name: str
    in_channels: int
    mid_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    in_size: int
    out_size: int
    has_se: bool
    macs_per_channel: int

    @property
    def macs(self) -> int:
        """MACs of the unpruned block's channel-dependent layers (batch 1)."""
        return self.macs_per_channel * self.mid_channels


@dataclass(frozen=True)
class BlockFeatures:
    """What the least-squares refit of one block needs, from the *unpruned* subnet.

    Shapes: ``block_inputs`` ``[B, in_channels, H, W]`` (the block's input maps),
    ``positions`` ``[B, P]`` (sampled flat positions of the project conv's output map),
    ``outputs`` ``[B * P, out_channels]`` (the project conv's output before BatchNorm there).

    The project conv's *inputs* are recomputed through the pruned block at refit time, so
    that squeeze-and-excitation (whose gates change when channels go) is accounted for, as in
    He et al.'s channel pruning (arXiv 1707.06168, Sec. 3.1: inputs from the pruned network).
    """

    block_inputs: torch.Tensor
    positions: torch.Tensor
    outputs: torch.Tensor

    def sample(self, maps: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` maps at :attr:`positions` → ``[B * P, C]``."""
        idx = self.positions[:, None].expand(-1, maps.shape[1], -1)
        return maps.flatten(2).gather(2, idx).permute(0, 2, 1).reshape(-1, maps.shape[1])


def _check_block(name: str, block: MBConv) -> None:
    parts = [block.expand[0], block.depthwise[0], block.project[0]]
    norms = [block.expand[1], block.depthwise[1], block.project[1]]
    # plain convs only (not weight-standardized ones); the static subnets' depthwise convs are
    # DepthwiseConv2d, nn.Conv2d with the supernet's fast weight gradient
    if any(type(c) not in (nn.Conv2d, DepthwiseConv2d) for c in parts) or any(
        not isinstance(n, nn.BatchNorm2d) for n in norms
    ):
        raise ConfigError(
            f"block {name!r}: channel pruning supports Conv2d + BatchNorm2d blocks "
            f"(norm='bn'), got {type(parts[0]).__name__} + {type(norms[0]).__name__}"
        )
    if not isinstance(block.se, (SqueezeExcite, nn.Identity)):
        raise ConfigError(
            f"block {name!r}: unknown SE module {type(block.se).__name__}; supported: "
            "SqueezeExcite, Identity"
        )


def find_prunable_blocks(
    model: nn.Module, input_shape: tuple[int, int, int, int]
) -> tuple[list[PrunableBlock], int]:
    """The prunable MBConv blocks of ``model`` and its fixed MACs (those no policy changes).

    Shapes: ``input_shape`` is ``(1, C, R, R)``.

    Returns:
        ``(blocks, fixed_macs)``: ``fixed_macs = measure_macs(model) - sum(b.macs)``.

    Raises:
        ConfigError: ``model`` has no MBConv block with an expand conv (nothing to prune; the
            supported block types are named), or a block of an unsupported kind (group norm).
    """
    named = [
        (n, m) for n, m in model.named_modules()
        if isinstance(m, MBConv) and isinstance(m.expand, nn.Sequential)
    ]  # fmt: skip
    if not named:
        kinds = sorted({type(m).__name__ for m in model.modules() if len(list(m.children())) == 0})
        raise ConfigError(
            f"{type(model).__name__} has no prunable layer: channel pruning supports "
            f"supernet.nn.MBConv blocks with a 1x1 expand conv; found layer types {kinds}"
        )
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [
        m.register_forward_hook(
            lambda _m, i, o, n=n: sizes.__setitem__(n, (i[0].shape[-1], o.shape[-1]))
        )
        for n, m in named
    ]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape))
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    blocks = []
    for i, (name, m) in enumerate(named):
        _check_block(name, m)
        dw = m.depthwise[0]
        in_size, out_size = sizes[name]
        se_mid = m.se.reduce.out_channels if isinstance(m.se, SqueezeExcite) else 0
        c_in, mid, c_out = m.expand[0].in_channels, dw.out_channels, m.project[0].out_channels
        per_channel = c_in * in_size**2 + dw.kernel_size[0] ** 2 * out_size**2 + 2 * se_mid
        per_channel += c_out * out_size**2
        blocks.append(PrunableBlock(i, name, c_in, mid, c_out, dw.kernel_size[0], dw.stride[0],
                                    in_size, out_size, se_mid > 0, per_channel))  # fmt: skip
    fixed = measure_macs(model, input_shape) - sum(b.macs for b in blocks)
    return blocks, fixed


def policy_macs(blocks: Sequence[PrunableBlock], fixed_macs: int, kept: Sequence[int]) -> int:
    """MACs (batch 1) of the subnet with ``kept[i]`` middle channels in block ``i``."""
    if len(kept) != len(blocks):
        raise ConfigError(f"a policy needs {len(blocks)} channel counts, got {len(kept)}")
    return fixed_macs + sum(b.macs_per_channel * int(k) for b, k in zip(blocks, kept, strict=True))


@torch.no_grad()
def collect_features(
    model: nn.Module,
    blocks: Sequence[PrunableBlock],
    images: torch.Tensor,
    *,
    points_per_image: int = 10,
    seed: int = 0,
) -> list[BlockFeatures]:
    """Keep every prunable block's input maps on ``images`` and sample its project conv's
    outputs (before BatchNorm) at random positions.

    ``points_per_image`` random positions per image and block (AMC's reference samples 10).

    Shapes: ``images`` ``[B, C, R, R]``; see :class:`BlockFeatures`.
    """
    modules = dict(model.named_modules())
    generator = torch.Generator().manual_seed(seed)
    inputs: dict[str, torch.Tensor] = {}
    found: dict[str, BlockFeatures] = {}

    def keep_input(name: str):
        return lambda _m, args: inputs.__setitem__(name, args[0].detach().clone())

    def keep_output(name: str):
        def _hook(_m: nn.Module, _args: tuple[torch.Tensor], y: torch.Tensor) -> None:
            b, _, h, w = y.shape
            positions = torch.randint(h * w, (b, points_per_image), generator=generator)
            probe = BlockFeatures(inputs[name], positions, torch.empty(0))
            found[name] = BlockFeatures(inputs[name], positions, probe.sample(y.detach()))

        return _hook

    hooks = []
    for b in blocks:
        block = modules[b.name]
        hooks.append(block.register_forward_pre_hook(keep_input(b.name)))
        hooks.append(block.project[0].register_forward_hook(keep_output(b.name)))
    was_training = model.training
    try:
        model.eval()
        model(images)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [found[b.name] for b in blocks]


def select_channels(block: MBConv, keep: int) -> torch.Tensor:
    """Indices (ascending) of the ``keep`` middle channels whose project-conv input weights have
    the largest L1 norm (summed over output channels and kernel).

    Reference: AMC, arXiv 1802.03494, Sec. 3.3 (magnitude-based channel selection).
    """
    weight = block.project[0].weight
    if not 1 <= keep <= weight.shape[1]:
        raise ConfigError(f"keep = {keep} middle channels; allowed 1..{weight.shape[1]}")
    importance = weight.detach().abs().sum(dim=(0, 2, 3))
    return torch.sort(torch.topk(importance, keep).indices).values


def least_squares_refit(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """Weights ``W`` ``[out, k]`` minimizing ``||inputs @ W.T - outputs||²`` (lstsq).

    Shapes: ``inputs`` ``[N, k]`` (kept channels), ``outputs`` ``[N, out]``.

    Reference: He, Zhang, Sun, ICCV'17 (arXiv 1707.06168), Sec. 3.1, Eq. 1 (the W step), as
    AMC's reference code uses it (arXiv 1802.03494, Sec. 3.3).
    """
    solution = torch.linalg.lstsq(inputs.double(), outputs.double()).solution
    return solution.T.to(inputs.dtype)


def _slice_conv(conv: nn.Conv2d, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None,
                groups: int = 1) -> nn.Conv2d:  # fmt: skip
    w = conv.weight.detach()
    w = w[out_idx] if out_idx is not None else w
    w = w[:, in_idx] if in_idx is not None else w
    in_ch = w.shape[1] * groups
    new = nn.Conv2d(in_ch, w.shape[0], conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, groups=groups, bias=conv.bias is not None)  # fmt: skip
    new.weight.data.copy_(w)
    if conv.bias is not None:
        b = conv.bias.detach()
        new.bias.data.copy_(b[out_idx] if out_idx is not None else b)
    return new


def _slice_bn(bn: nn.BatchNorm2d, idx: torch.Tensor) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(idx), eps=bn.eps, momentum=bn.momentum)
    for name in ("weight", "bias"):
        getattr(new, name).data.copy_(getattr(bn, name).detach()[idx])
    for name in ("running_mean", "running_var"):
        getattr(new, name).copy_(getattr(bn, name)[idx])
    return new


def _prune_block(block: MBConv, idx: torch.Tensor, features: BlockFeatures | None) -> None:
    keep = len(idx)
    block.expand[0] = _slice_conv(block.expand[0], idx, None)
    block.expand[1] = _slice_bn(block.expand[1], idx)
    block.depthwise[0] = _slice_conv(block.depthwise[0], idx, None, groups=keep)
    block.depthwise[1] = _slice_bn(block.depthwise[1], idx)
    if isinstance(block.se, SqueezeExcite):
        block.se.reduce = _slice_conv(block.se.reduce, None, idx)
        block.se.expand = _slice_conv(block.se.expand, idx, None)
    project = _slice_conv(block.project[0], None, idx)
    block.project[0] = project
    if features is not None:
        with torch.no_grad():
            maps = block.se(block.depthwise(block.expand(features.block_inputs)))
        w = least_squares_refit(features.sample(maps), features.outputs)
        project.weight.data.copy_(w.view_as(project.weight))


def prune_subnet(
    model: nn.Module,
    blocks: Sequence[PrunableBlock],
    kept: Sequence[int],
    features: Sequence[BlockFeatures] | None = None,
) -> nn.Module:
    """A pruned copy of ``model``: block ``i`` keeps ``kept[i]`` middle channels (L1 choice);
    with ``features``, each project conv is refit by least squares. ``model`` is not changed.

    Shapes: the copy maps ``[B, C, R, R]`` to the same logits shape as ``model``.

    Raises:
        ConfigError: ``kept`` has the wrong length or a count outside ``1..mid_channels``.

    Reference: AMC, arXiv 1802.03494, Sec. 3.3.
    """
    if len(kept) != len(blocks):
        raise ConfigError(f"a policy needs {len(blocks)} channel counts, got {len(kept)}")
    pruned = copy.deepcopy(model)
    modules = dict(pruned.named_modules())
    for i, (b, k) in enumerate(zip(blocks, kept, strict=True)):
        if int(k) == b.mid_channels:
            continue
        block = modules[b.name]
        idx = select_channels(block, int(k))
        _prune_block(block, idx, features[i] if features is not None else None)
    return pruned
