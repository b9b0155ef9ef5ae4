"""int8 test accuracy beside float32, and top-1 agreement between two models' logits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch

from supernet.errors import ConfigError
from supernet.quant.ptq import QuantizedSubnet

__all__ = ["Int8Accuracy", "int8_accuracy", "top1_agreement"]


@dataclass(frozen=True)
class Int8Accuracy:
    """float32 and int8 top-1 accuracy (%) on the same images, and how often they agree.

    Attributes:
        fp32_accuracy: top-1 accuracy of the BN-folded float32 subnet, in %.
        int8_accuracy: top-1 accuracy of the int8 subnet (PyTorch's simulation), in %.
        agreement: % of images where both predict the same class.
        images: number of images.
    """

    fp32_accuracy: float
    int8_accuracy: float
    agreement: float
    images: int

    @property
    def drop(self) -> float:
        """``fp32_accuracy - int8_accuracy``, in percentage points."""
        return self.fp32_accuracy - self.int8_accuracy

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "drop": self.drop}


@torch.no_grad()
def int8_accuracy(
    quantized: QuantizedSubnet, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> Int8Accuracy:
    """Top-1 accuracy of ``quantized`` and of its float32 source on the same labelled batches.

    Shapes: ``batches`` yields ``(x float [B, C, R, R], y int64 [B])`` at the subnet's
    resolution, normalized like training.

    Raises:
        ConfigError: no images.
    """
    fp32_correct = int8_correct = same = n = 0
    for x, y in batches:
        x = x.to("cpu", torch.float32)
        y = y.to("cpu")
        fp32 = quantized.float_model(x).argmax(1)
        int8 = quantized(x).argmax(1)
        fp32_correct += int((fp32 == y).sum())
        int8_correct += int((int8 == y).sum())
        same += int((fp32 == int8).sum())
        n += len(y)
    if n == 0:
        raise ConfigError("int8_accuracy needs at least one labelled image, got none")
    return Int8Accuracy(100.0 * fp32_correct / n, 100.0 * int8_correct / n, 100.0 * same / n, n)


def top1_agreement(logits_a: torch.Tensor, logits_b: torch.Tensor) -> float:
    """% of rows where ``logits_a`` and ``logits_b`` have the same argmax.

    Shapes: both ``[N, num_classes]``, N >= 1.

    Raises:
        ConfigError: the shapes differ or N is 0.
    """
    a, b = torch.as_tensor(logits_a), torch.as_tensor(logits_b)
    if a.shape != b.shape or a.ndim != 2 or len(a) == 0:
        raise ConfigError(
            f"top1_agreement needs two [N >= 1, classes] logits, got {list(a.shape)} and "
            f"{list(b.shape)}"
        )
    return 100.0 * float((a.argmax(1) == b.argmax(1)).float().mean())
