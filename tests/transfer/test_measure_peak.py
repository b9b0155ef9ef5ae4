"""The real peak of one measured training step (CPU: torch.profiler memory events)."""

from __future__ import annotations

import torch
from torch import nn

from supernet.transfer.measure import measure_training_memory


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 16 * 16, 10))  # fmt: skip


def _batch(b: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 1, 16, 16, generator=g), torch.randint(0, 10, (b,), generator=g)


def test_cpu_peak_is_measured_and_bounds_what_the_step_keeps():
    m = measure_training_memory(_net(), *_batch(16), optimizer="adam")
    assert m.peak_source == "profiler memory events"
    assert m.peak_step_bytes is not None
    # everything saved at the end of the forward pass is alive at once, and so are the
    # gradients with the optimizer state at the end of the step
    assert m.peak_step_bytes >= m.saved_activation_bytes
    assert m.peak_step_bytes >= m.grad_bytes + m.optimizer_bytes
    # a peak, not the sum of all allocations: below what the parts add up to plus one more copy
    assert m.peak_step_bytes < 3 * (m.saved_activation_bytes + m.grad_bytes + m.optimizer_bytes)


def test_cpu_peak_grows_with_the_batch():
    small = measure_training_memory(_net(), *_batch(8)).peak_step_bytes
    large = measure_training_memory(_net(), *_batch(64)).peak_step_bytes
    activations_per_image = 4 * 8 * 16 * 16  # the conv output, kept by ReLU / the linear layer
    assert large - small >= 56 * activations_per_image
