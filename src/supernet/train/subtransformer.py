"""Train one extracted SubTransformer: fine-tune its inherited weights, or train it from scratch.

After the search, HAT trains the chosen SubTransformer *from scratch* (Sec. 3.4, "we train the
searched SubTransformer from scratch"; Table 5 also reports that inherited weights alone come
close). Both are supported: :func:`reinitialize` resets an extracted SubTransformer to fresh
weights drawn as the SuperTransformer's are (fairseq's initialization), and
:func:`train_subtransformer` runs the same recipe as the SuperTransformer's training (Adam,
warm-up + cosine, label smoothing) on that one architecture.

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 3.4 and Table 5.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from supernet.data.translation import TranslationBatch
from supernet.errors import ConfigError
from supernet.nn.transformer import SubTransformer
from supernet.train.transformer import (
    SuperTransformerTraining,
    TrainingHistory,
    label_smoothed_loss,
    run_steps,
)

__all__ = ["reinitialize", "train_subtransformer"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def reinitialize(model: SubTransformer, *, seed: int = 0) -> SubTransformer:
    """Draw fresh weights for ``model`` in place (training from scratch): linear layers get
    PyTorch's default initialization, layer norms ones and zeros, the token table
    ``N(0, width^-1/2)`` with a zero pad row (fairseq / HAT). Returns ``model``.

    Raises:
        ConfigError: ``seed`` < 0.
    """
    if seed < 0:
        raise ConfigError(f"seed = {seed} must be >= 0")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.LayerNorm)):
                module.reset_parameters()
        width = model.embed.embedding_dim
        nn.init.normal_(model.embed.weight, std=width**-0.5)
        model.embed.weight[model.pad_id].zero_()
    return model


def train_subtransformer(
    model: nn.Module,
    batches: Sequence[TranslationBatch],
    config: SuperTransformerTraining,
) -> TrainingHistory:
    """Train a plain encoder–decoder ``model`` (an extracted SubTransformer) in place for
    ``config.steps`` steps over ``batches`` (reshuffled every pass) with the SuperTransformer's
    recipe (``config.sandwich`` does not apply and is ignored).

    Shapes: batches of ``src [B, S]``, ``tgt_in [B, T]``, ``tgt_out [B, T]``; the model maps
    ``(src, tgt_in)`` to logits ``[B, T, vocab]``.

    Raises:
        ConfigError: no batches.
    """

    def step_loss(src: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor) -> float:
        loss = label_smoothed_loss(model(src, tgt_in), tgt_out, smoothing=config.label_smoothing)
        loss.backward()
        return float(loss.detach())

    device = next(model.parameters()).device
    history = run_steps(model, batches, config, step_loss, device, TrainingHistory(),
                        label="SubTransformer step")  # fmt: skip
    model.eval()
    return history
