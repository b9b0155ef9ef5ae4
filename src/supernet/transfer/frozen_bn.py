"""Batch norm with frozen running statistics: the batch-1 regime of TinyTL for BN subnets.

On a device that fine-tunes with batch 8 or 1, batch statistics are noise; TinyTL trains in that
regime (arXiv 2007.11622, Sec. 3.2) with group norm. A BN subnet instead keeps the statistics it
was trained (and re-calibrated) with: every BatchNorm normalizes with its running mean and
variance in training too, which makes it a per-channel affine op ``y = s · x + t`` whose γ and β
may still train.
"""

from __future__ import annotations

from torch import nn

__all__ = ["FrozenBatchNorm2d", "freeze_batch_norm"]


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that stays in eval mode: ``train()`` leaves it normalizing with (and
    never updating) its running statistics. γ and β train if they require grad.

    Shapes: ``[B, C, H, W]`` → same.
    """

    def train(self, mode: bool = True) -> FrozenBatchNorm2d:
        return super().train(False)


def freeze_batch_norm(model: nn.Module) -> int:
    """Make every ``nn.BatchNorm2d`` of ``model`` a :class:`FrozenBatchNorm2d`, in place.

    The swap is a class change only (the frozen class adds no state), so parameters, buffers,
    their names and any optimizer references stay as they are. Other BN subclasses are left
    alone. Returns the number of modules changed.
    """
    count = 0
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = FrozenBatchNorm2d
            module.train(False)
            count += 1
    return count
