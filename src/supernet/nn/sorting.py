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

Stage-wise re-sort (``trained_expand_ratios``): before a later expand phase the channels are
sorted *within bands* whose edges are the hidden widths of the expand ratios trained already, as
the reference's ``re_organize_middle_weights(expand_ratio_stage=1)`` does before its second
expand phase (it pushes the channels past each trained width down by a large constant, then sorts
all). No channel crosses a trained width, so a subnet trained in the earlier phase keeps exactly
its channels, only reordered among themselves — its outputs do not change.

Deviation (deliberate): the squeeze-and-excitation hidden units are banded the same way, at the
SE hidden width of each trained hidden width. The reference re-sorts its SE hidden units over all
of them at every stage, which changes the SE of the e=4 subnets; banding them keeps those subnets'
outputs exactly unchanged (``tests/nn/test_nn_sorting_stages.py``).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from supernet.nn.elastic import ElasticMBConv

__all__ = ["banded_channel_order", "channel_order", "sort_channels"]


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


def banded_channel_order(
    importance: torch.Tensor, edges: tuple[int, ...] = (), group_size: int = 1
) -> torch.Tensor:
    """:func:`channel_order` applied inside each band ``[0, e1), [e1, e2), ..., [ek, C)`` of the
    sorted, distinct interior ``edges``: no channel leaves its band.

    Shapes: ``importance [C]`` → ``order [C]`` (int64).
    Reference: Once-for-All code, ``re_organize_middle_weights(expand_ratio_stage)``
    (mit-han-lab/once-for-all, ``elastic_nn/modules/dynamic_layers.py``).

    Raises:
        ValueError: an edge is outside ``(0, C)`` or a band is not a multiple of ``group_size``.
    """
    c = importance.numel()
    inner = sorted(set(edges))
    if any(not 0 < e < c for e in inner):
        raise ValueError(f"band edges {inner} must lie strictly between 0 and {c} channels")
    bounds = [0, *inner, c]
    parts = [
        channel_order(importance[lo:hi], group_size) + lo for lo, hi in itertools.pairwise(bounds)
    ]
    return torch.cat(parts)


def _edges(widths: tuple[int, ...], full: int) -> tuple[int, ...]:
    return tuple(sorted({w for w in widths if 0 < w < full}))


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
def _sort_block(block: ElasticMBConv, trained_expand_ratios: tuple[float, ...]) -> None:
    max_mid = block.project_conv.weight.shape[1]
    applied = block.project_conv.applied_weight(max_mid, block.out_channels)
    importance = applied.abs().sum(dim=(0, 2, 3))  # [max_mid]
    widths = tuple(block.mid_channels(e) for e in trained_expand_ratios)
    edges = _edges(widths, max_mid)
    order = banded_channel_order(importance, edges, _group_size(block.expand_bn))
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
        se_full = reduce.weight.shape[0]
        se_edges = _edges(tuple(block.se.mid_channels(w) for w in widths), se_full)
        se_order = banded_channel_order(expand.weight.abs().sum(dim=(0, 2, 3)), se_edges)
        reduce.weight.copy_(reduce.weight[se_order])
        reduce.bias.copy_(reduce.bias[se_order])
        expand.weight.copy_(expand.weight[:, se_order])


def sort_channels(supernet: nn.Module, trained_expand_ratios: tuple[float, ...] = ()) -> None:
    """Reorder every elastic block's hidden channels by importance, in place (whole groups of
    channels for group norm); the full-width network computes the same function afterwards.

    ``trained_expand_ratios``: the expand ratios earlier phases trained. Channels are sorted
    within the bands between their hidden widths (a stage-wise re-sort), so every subnet of
    those ratios keeps its channels and its outputs; ``()`` (or only the largest ratio) sorts all
    channels at once, as before the first expand phase.

    Optimizer state indexed by those channels (momentum) no longer matches afterwards: sort at a
    phase boundary, before the optimizer is created.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.2 "Elastic Width"; the stage-wise bands
    follow the reference code's ``re_organize_middle_weights(expand_ratio_stage)``.
    """
    for module in supernet.modules():
        if isinstance(module, ElasticMBConv):
            _sort_block(module, tuple(trained_expand_ratios))
            module.depthwise_conv.clear_cache()
