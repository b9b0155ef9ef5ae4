"""Channel importance sorting before elastic width (expand ratio) is trained.

Each block's hidden channels are reordered by the L1 norm of the weights that read them (the
projection conv), so the first ``c`` channels — the ones a narrower subnet keeps — are the most
important; the squeeze-and-excitation hidden units are sorted the same way. The permutation is
applied consistently to every tensor indexed by those channels, so the network's function is
unchanged. Reference: Once-for-All, arXiv 1908.09791, Sec. 3.2 "Elastic Width", Fig. 4.
"""

from __future__ import annotations

import torch
from torch import nn

from supernet.nn.elastic import ElasticBatchNorm2d, ElasticMBConv

__all__ = ["sort_channels"]


def _permute_bn(bn: ElasticBatchNorm2d, order: torch.Tensor) -> None:
    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        t.copy_(t[order])


@torch.no_grad()
def _sort_block(block: ElasticMBConv) -> None:
    importance = block.project_conv.weight.abs().sum(dim=(0, 2, 3))  # [max_mid]
    order = torch.argsort(importance, descending=True, stable=True)
    w = block.expand_conv.weight
    w.copy_(w[order])
    _permute_bn(block.expand_bn, order)
    dw = block.depthwise_conv.weight
    dw.copy_(dw[order])
    _permute_bn(block.depthwise_bn, order)
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
    """Reorder every elastic block's hidden channels by importance, in place.

    Optimizer state indexed by those channels (momentum) no longer matches afterwards: sort at a
    phase boundary, before the optimizer is created.
    """
    for module in supernet.modules():
        if isinstance(module, ElasticMBConv):
            _sort_block(module)
            module.depthwise_conv.clear_cache()
