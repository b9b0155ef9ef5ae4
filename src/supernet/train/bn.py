"""Batch-norm re-calibration: a subnet's BN statistics are recomputed before it is evaluated.

Weight-shared BN statistics are a mixture over all sampled subnets, so each subnet's running mean
and variance are re-estimated on a few thousand training images (exact averages, momentum None).
Reference: Once-for-All (arXiv 1908.09791), Sec. 3.2 / 4; Yu et al., "Universally Slimmable
Networks" (arXiv 1903.05134), Sec. 3.2. A network without batch norm (group norm, ``norm="gn"``)
keeps no statistics: re-calibration is a no-op there.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["recalibrate_bn"]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Reset and re-estimate every BatchNorm's running statistics from ``batches``.

    Shapes: each batch is ``[B, C, R, R]`` at the subnet's resolution, normalized like training.
    Returns the number of images seen; the model is left in eval mode. A model without batch norm
    is only put in eval mode: no batch is read and 0 is returned.

    Raises:
        ValueError: when ``batches`` is empty (and the model has batch norm).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        model.eval()
        return 0
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    seen = 0
    try:
        for x in batches:
            model(x)
            seen += x.shape[0]
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
        model.eval()
    if seen == 0:
        raise ValueError("BN re-calibration got no images")
    return seen
