"""The victim network of the DLG paper's image experiments: a LeNet-style CNN with sigmoid.

Three 5×5 convolutions (12 channels; strides 2, 2, 1; padding 2) each followed by a sigmoid, then
one linear layer; every weight and bias uniform in [−0.5, 0.5]. The sigmoid is twice
differentiable and the network has no pooling, which is what lets gradient matching reach pixel
accuracy (DLG, Sec. 4.1). The authors' code (mit-han-lab/dlg) defines it for 3×32×32 CIFAR
inputs and 100 classes; here channels, size and classes are arguments.

Reference: Zhu, Liu, Han, "Deep Leakage from Gradients", NeurIPS'19, arXiv 1906.08935, Sec. 4.1.
"""

from __future__ import annotations

import torch
from torch import nn

from supernet.errors import ConfigError

__all__ = ["LeNet", "make_lenet"]


class LeNet(nn.Module):
    """LeNet with sigmoid activations (DLG's victim).

    Shapes: ``[B, in_channels, image_size, image_size]`` → logits ``[B, num_classes]``;
    ``image_size`` must be a multiple of 4 (two stride-2 convolutions).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 100, image_size: int = 32):
        super().__init__()
        if image_size < 4 or image_size % 4:
            raise ConfigError(f"image_size = {image_size} must be a multiple of 4 (>= 4)")
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 12, kernel_size=5, padding=2, stride=2),
            nn.Sigmoid(),
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=2),
            nn.Sigmoid(),
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=1),
            nn.Sigmoid(),
        )
        self.fc = nn.Linear(12 * (image_size // 4) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).flatten(1))


def make_lenet(
    *, in_channels: int = 3, num_classes: int = 100, image_size: int = 32, seed: int = 0
) -> LeNet:
    """A :class:`LeNet` with the paper's initialisation: every weight and bias drawn uniformly
    from [−0.5, 0.5] (seeded CPU generator), in eval mode.

    Raises:
        ConfigError: ``image_size`` not a multiple of 4.
    """
    model = LeNet(in_channels, num_classes, image_size)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=generator) - 0.5)
    return model.eval()
