"""Evaluate subnets of a supernet: extract, BN re-calibrate, measure accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supernet.data import BatchLoader, ImageDataset, resize
from supernet.nn import OFAMobileNetV3
from supernet.space import ArchConfig
from supernet.train.bn import recalibrate_bn

__all__ = ["SubnetScore", "accuracy", "calibration_loader", "evaluate_subnet"]


@dataclass(frozen=True)
class SubnetScore:
    """Top-1 accuracy (%) and mean cross-entropy of one subnet on one split."""

    config: ArchConfig
    accuracy: float
    loss: float
    images: int


def calibration_loader(train: ImageDataset, images: int, batch_size: int, seed: int) -> BatchLoader:
    """The same fixed, seeded, un-augmented subset of training images on every pass (BN
    re-calibration must not depend on how often it ran before)."""
    n = min(images, len(train))
    indices = np.sort(np.random.default_rng(seed).permutation(len(train))[:n])
    return BatchLoader(train.subset(indices), batch_size, shuffle=False, augment=False)


@torch.no_grad()
def accuracy(
    model: nn.Module,
    loader: BatchLoader,
    resolution: int,
    device: torch.device,
    *,
    channels_last: bool = False,
) -> tuple[float, float, int]:
    """Top-1 accuracy in %, mean cross-entropy and image count of ``model`` on ``loader``."""
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for x, y in loader:
        x = resize(x, resolution).to(device, memory_format=fmt)
        y = y.to(device)
        logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
        n += y.numel()
    return 100.0 * correct / max(n, 1), loss_sum / max(n, 1), n


def evaluate_subnet(
    supernet: OFAMobileNetV3,
    config: ArchConfig,
    *,
    calib: BatchLoader,
    data: BatchLoader,
    device: torch.device,
    channels_last: bool = False,
) -> tuple[SubnetScore, nn.Module]:
    """Extract ``config``, re-calibrate its BN on ``calib``, measure it on ``data``.

    The supernet is not modified. Returns the score and the calibrated subnet (eval mode).

    Raises:
        ConfigError: when ``config`` is not valid in the supernet's space.
    """
    subnet = supernet.get_subnet(config)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    subnet = subnet.to(device, memory_format=fmt)
    recalibrate_bn(
        subnet,
        (resize(x, config.resolution).to(device, memory_format=fmt) for x, _ in calib),
    )
    acc, loss, n = accuracy(subnet, data, config.resolution, device, channels_last=channels_last)
    return SubnetScore(config, acc, loss, n), subnet
