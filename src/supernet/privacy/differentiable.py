"""Twice-differentiable stand-ins for MobileNetV3's hard activations, for the attack's double
backward.

DLG differentiates the gradient of the loss (``create_graph=True``), and PyTorch implements no
derivative of ``hardsigmoid_backward`` / ``hardswish_backward``. The stand-ins compute the same
functions from ``clamp``, whose backward is itself differentiable: ``h_sigmoid(x) =
clamp(x + 3, 0, 6) / 6`` and ``h_swish(x) = x · h_sigmoid(x)`` (MobileNetV3, Howard et al.,
arXiv 1905.02244, Sec. 5.2). Outputs agree with PyTorch's to float rounding; their second
derivative is zero almost everywhere, as the originals' would be.
"""

from __future__ import annotations

import torch
from torch import nn

from supernet.nn.blocks import SqueezeExcite

__all__ = ["ComposedHardswish", "ComposedSqueezeExcite", "make_twice_differentiable"]


def _hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


class ComposedHardswish(nn.Module):
    """``x · clamp(x + 3, 0, 6) / 6``, like ``nn.Hardswish`` but twice differentiable.

    Shapes: any → same.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * _hard_sigmoid(x)


class ComposedSqueezeExcite(SqueezeExcite):
    """:class:`~supernet.nn.blocks.SqueezeExcite` with the composed h-sigmoid gate.

    Shapes: ``[B, C, H, W]`` → same.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))
        return x * _hard_sigmoid(self.expand(s))


def make_twice_differentiable(model: nn.Module) -> int:
    """Swap every ``nn.Hardswish`` of ``model`` for :class:`ComposedHardswish` and every
    :class:`SqueezeExcite` for :class:`ComposedSqueezeExcite`, in place (parameters and their
    names unchanged). Returns the number of modules changed.
    """
    count = 0
    for module in list(model.modules()):
        if type(module) is SqueezeExcite:
            module.__class__ = ComposedSqueezeExcite
            count += 1
        for name, child in module.named_children():
            if isinstance(child, nn.Hardswish):
                setattr(module, name, ComposedHardswish())
                count += 1
    return count
