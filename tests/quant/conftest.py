"""A tiny MobileNetV3 (every op kind of an mbv3-tiny subnet: h-swish, SE, residual, global pool)
with weights fitted to a synthetic 4-class task, so int8 and fp32 predictions can be compared."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from supernet.nn import ConvBNAct, MBConv, MobileNetV3

RESOLUTION = 12
CLASSES = 4


def tiny_mobilenet() -> MobileNetV3:
    blocks = [
        MBConv(8, 8, kernel_size=3, stride=1, mid_channels=16, act="relu", se_mid_channels=8),
        MBConv(8, 16, kernel_size=3, stride=2, mid_channels=24, act="h_swish", se_mid_channels=8),
    ]
    return MobileNetV3(
        ConvBNAct(1, 8, 3, stride=2, act="h_swish"),
        blocks,
        ConvBNAct(16, 32, 1, act="h_swish"),
        nn.Sequential(nn.Conv2d(32, 48, 1, bias=False), nn.Hardswish()),
        nn.Linear(48, CLASSES),
    )


def synthetic_batches(
    n_batches: int, batch: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Class k = a bright blob in image quadrant k, plus noise ([B, 1, 12, 12], normalized)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        y = torch.randint(0, CLASSES, (batch,), generator=g)
        x = 0.5 * torch.randn(batch, 1, RESOLUTION, RESOLUTION, generator=g)
        for k in range(CLASSES):
            r, c = divmod(k, 2)
            half = RESOLUTION // 2
            x[y == k, :, r * half : (r + 1) * half, c * half : (c + 1) * half] += 1.5
        out.append((x, y))
    return out


@pytest.fixture(scope="session")
def trained_tiny():
    """(eval-mode tiny MobileNetV3 trained 60 steps, train batches, test batches)."""
    torch.manual_seed(0)
    model = tiny_mobilenet()
    train = synthetic_batches(20, 32, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(60):
        x, y = train[step % len(train)]
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model, train, synthetic_batches(4, 64, seed=2)
