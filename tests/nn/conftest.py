"""Fixtures for supernet.nn tests: non-trivial weights and BN statistics.

A freshly built supernet is a poor test subject: the depthwise kaiming init (fan_out = C * k * k),
identity kernel transforms, all-zero BN means, unit BN variances and a classifier initialised with
std 0.01 make the logits ~1e-10, so "the subnet equals the supernet" would hold even for wrong
slicing. :func:`randomize_` gives every weight, BN affine parameter, kernel transformation matrix
and the classifier random values of a sane scale; :func:`calibrate_` then sets the BN running
statistics from one batch of the config under test (so activations neither vanish nor explode over
20 blocks) and perturbs them, so eval mode does not simply equal batch normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from supernet.nn import ElasticDepthwiseConv2d, ElasticPointwiseConv2d
from supernet.space import ArchConfig


@torch.no_grad()
def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every conv, BN/GN, kernel transform and linear layer of ``module`` random values."""
    g = torch.Generator().manual_seed(seed)

    def normal_(t: torch.Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(mean + std * torch.randn(t.shape, generator=g))

    def uniform_(t: torch.Tensor, low: float, high: float) -> None:
        t.copy_(low + (high - low) * torch.rand(t.shape, generator=g))

    for m in module.modules():
        if isinstance(m, (nn.Conv2d, ElasticPointwiseConv2d, ElasticDepthwiseConv2d)):
            w = m.weight
            normal_(w, 1.0 / math.sqrt(w.shape[1] * w.shape[2] * w.shape[3]))
            if getattr(m, "bias", None) is not None:
                normal_(m.bias, 0.1)
        if isinstance(m, ElasticDepthwiseConv2d):
            for mat in m.transforms.values():
                normal_(mat, 0.1)
                mat.add_(torch.eye(mat.shape[0]))
        elif isinstance(m, nn.BatchNorm2d):
            uniform_(m.weight, 0.5, 1.5)
            normal_(m.bias, 0.2)
            normal_(m.running_mean, 0.2)
            uniform_(m.running_var, 0.5, 2.0)
        elif isinstance(m, nn.GroupNorm):
            uniform_(m.weight, 0.5, 1.5)
            normal_(m.bias, 0.2)
        elif isinstance(m, nn.Linear):
            normal_(m.weight, 1.0 / math.sqrt(m.weight.shape[1]))
            normal_(m.bias, 0.1)
    return module


@torch.no_grad()
def calibrate_(model: nn.Module, config: ArchConfig, x: torch.Tensor, seed: int = 0) -> None:
    """Set the BN running statistics of ``config``'s active channels from batch ``x``, perturb
    every running statistic, and leave ``model`` in eval mode with ``config`` active."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 1.0
    model.train()
    model.set_active(config)
    model(x)
    for bn, momentum in zip(bns, momenta, strict=True):
        bn.momentum = momentum
        noise = torch.randn(bn.running_mean.shape, generator=g)
        bn.running_mean.add_(0.1 * noise * bn.running_var.sqrt())
        bn.running_var.mul_(0.8 + 0.4 * torch.rand(bn.running_var.shape, generator=g))
    model.eval()


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread for these small tensors (the autouse fixture of tests/conftest.py,
    which sets 2, runs first). On 2 cores this is about twice as fast as 2 threads, and it does
    not collapse when another process holds a core: 2 spinning OpenMP threads then wait on each
    other, which made single forwards take seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def randomize() -> Callable[..., nn.Module]:
    return randomize_


@pytest.fixture(scope="session")
def calibrate() -> Callable[..., None]:
    return calibrate_
