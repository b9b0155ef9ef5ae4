"""Multiply-accumulate counts of an extracted subnet, measured with PyTorch's own FLOP counter.

``torch.utils.flop_counter.FlopCounterMode`` counts FLOPs of convolutions and matrix products as
2 × MACs; element-wise work (BN folded at inference, activations, SE scaling) is not counted, as in
the papers' MACs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "measure_macs"]


@torch.no_grad()
def measure_macs(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass of ``module`` on a zero input of ``input_shape``.

    Shapes: ``input_shape`` is ``(B, C, H, W)``; the count is for the whole batch.
    """
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    try:
        with FlopCounterMode(display=False) as counter:
            module(torch.zeros(input_shape, device=device))
    finally:
        module.train(was_training)
    return counter.get_total_flops() // 2


def count_params(module: nn.Module) -> int:
    """Number of parameters (weights and biases; BN running statistics excluded)."""
    return sum(p.numel() for p in module.parameters())
