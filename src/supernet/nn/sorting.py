"""Channel importance sorting before elastic width (expand ratio) is trained.

Each block's hidden channels are reordered by the L1 norm of the weights that read them (the
projection conv), so the first ``c`` channels — the ones a narrower subnet keeps — are the most
important; the squeeze-and-excitation hidden units are sorted the same way. The permutation is
applied consistently to every tensor indexed by those channels, so the network's function is
unchanged. Reference: Once-for-All, arXiv 1908.09791, Sec. 3.2 "Elastic Width", Fig. 4.

Group norm (``norm="gn"``) is not invariant to moving a channel into another group, so there whole
groups move: groups are ordered by the summed importance of their channels, and channels keep
their order inside a group. Every hidden width is a multiple of 8 (``mbconv_mid_channels`` rounds
with ``make_divisible(..., 8)``), so a narrower subnet keeps whole groups of 8 — the most important
ones. With weight standardization the importance is taken from the standardized (applied) weight.
"""

from __future__ import annotations

import torch
from torch import nn

from supernet.nn.elastic import ElasticMBConv

__all__ = ["channel_order", "sort_channels"]


def channel_order(importance: torch.Tensor, group_size: int = 1) -> torch.Tensor:
    """The permutation that sorts channels by descending ``importance`` (stable), moving whole
    consecutive groups of ``group_size`` channels by their summed importance and keeping the
    order inside each group (``group_size=1``: a plain sort).

    Shapes: ``importance [C]`` → ``order [C]`` (int64), ``C`` a multiple of ``group_size``.

    Raises:
        ValueError: ``C`` is not a multiple of ``group_size``.
    """
    c = importance.numel()
    if group_size < 1 or c % group_size:
        raise ValueError(f"{c} channels do not split into groups of {group_size}")
    group_importance = importance.view(c // group_size, group_size).sum(1)
    groups = torch.argsort(group_importance, descending=True, stable=True)
    inside = torch.arange(group_size, device=importance.device)
    return (groups[:, None] * group_size + inside).flatten()


def _permute_norm(norm: nn.Module, order: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        t = getattr(norm, name, None)
        if t is not None:
            t.copy_(t[order])


def _group_size(norm: nn.Module) -> int:
    if isinstance(norm, nn.GroupNorm):
        return norm.num_channels // norm.num_groups
    return 1


@torch.no_grad()
def _sort_block(block: ElasticMBConv) -> None:
    max_mid = block.project_conv.weight.shape[1]
    applied = block.project_conv.applied_weight(max_mid, block.out_channels)
    importance = applied.abs().sum(dim=(0, 2, 3))  # [max_mid]
    order = channel_order(importance, _group_size(block.expand_bn))
    w = block.expand_conv.weight
    w.copy_(w[order])
    _permute_norm(block.expand_bn, order)
    dw = block.depthwise_conv.weight
    dw.copy_(dw[order])
    _permute_norm(block.depthwise_bn, order)
    pw = block.project_conv.weight
    pw.copy_(pw[:, order])
    if block.se is not None:
        reduce, expand = block.se.reduce, block.se.expand
        reduce.weight.copy_(reduce.weight[:, order])
        expand.weight.copy_(expand.weight[order])
        assert expand.bias is not None and reduce.bias is not None
        expand.bias.copy_(expand.bias[order])
        se_order = torch.argsort(
            expand.weight.abs().sum(dim=(0, 2, 3)), descending=True, stable=True
        )
        reduce.weight.copy_(reduce.weight[se_order])
        reduce.bias.copy_(reduce.bias[se_order])
        expand.weight.copy_(expand.weight[:, se_order])


def sort_channels(supernet: nn.Module) -> None:
    """Reorder every elastic block's hidden channels by importance, in place (whole groups of
    channels for group norm); the full-width network computes the same function afterwards.

    Optimizer state indexed by those channels (momentum) no longer matches afterwards: sort at a
    phase boundary, before the optimizer is created.
    """
    for module in supernet.modules():
        if isinstance(module, ElasticMBConv):
            _sort_block(module)
            module.depthwise_conv.clear_cache()
