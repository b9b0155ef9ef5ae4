"""Knowledge distillation from the full network.

Reference: Hinton et al., arXiv 1503.02531; Once-for-All (arXiv 1908.09791), Sec. 3.2 ("we use
the knowledge distillation technique ... using both the soft labels given by the largest network and
the real labels"), loss = CE(real) + kd_ratio · CE(soft target).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["soft_target_cross_entropy"]


def soft_target_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum(p_teacher * log_softmax(student))``.

    Shapes: ``logits`` and ``target_probs`` are ``[B, num_classes]``; returns a scalar.
    """
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
