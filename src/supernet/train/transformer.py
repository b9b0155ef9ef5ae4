"""Train a SuperTransformer the HAT way: one random SubTransformer per step; evaluate its
SubTransformers by validation loss (HAT's search fitness) and by BLEU of greedy translations.

Recipe (HAT's released ``configs/*/supertransformer/*.yml``): Adam (betas 0.9, 0.98), linear
warm-up to the peak learning rate then cosine annealing, label-smoothed cross-entropy (0.1), no
gradient clipping; every step trains the SubTransformer ``space.sample(rng)`` drew. With
``sandwich=True`` a step also adds the largest and the smallest SubTransformer's gradients (the
sandwich rule of BigNAS / slimmable networks; HAT does not use it).

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 3.2 ("in each training step we
uniformly sample a SubTransformer") and Sec. 3.4 (validation loss as the search's fitness);
label smoothing (Szegedy et al., CVPR'16, arXiv 1512.00567).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supernet.data.subword import BOS_ID, EOS_ID, PAD_ID, SubwordTokenizer
from supernet.data.translation import TranslationBatch, shuffled
from supernet.errors import ConfigError
from supernet.nn.transformer import SuperTransformer
from supernet.space.transformer_config import TransformerConfig
from supernet.train.bleu import BleuScore, corpus_bleu

__all__ = [
    "SuperTransformerTraining",
    "TrainingHistory",
    "evaluate_bleu",
    "label_smoothed_loss",
    "learning_rate",
    "train_supertransformer",
    "translate",
    "validation_loss",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuperTransformerTraining:
    """How to train a SuperTransformer (defaults: HAT's released WMT recipe, shortened).

    Attributes:
        steps: optimizer steps.
        lr: peak learning rate (HAT: ``max-lr 0.001``).
        warmup_steps: linear warm-up steps from ``lr / 1000`` to ``lr``; then cosine to 0.
        label_smoothing: label smoothing of the cross-entropy (HAT: 0.1).
        weight_decay: Adam weight decay (HAT: 0).
        clip_norm: gradient-norm clipping, 0 = none (HAT: 0).
        sandwich: also train the largest and smallest SubTransformer every step.
        seed: seeds the SubTransformer draws and the batch order.

    Raises:
        ConfigError: a value out of range (named).
    """

    steps: int = 2000
    lr: float = 1e-3
    warmup_steps: int = 200
    label_smoothing: float = 0.1
    weight_decay: float = 0.0
    clip_norm: float = 0.0
    sandwich: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.warmup_steps < 0:
            raise ConfigError(
                f"steps = {self.steps} must be >= 1, warmup_steps = {self.warmup_steps} >= 0"
            )
        if not self.lr > 0 or not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(
                f"lr = {self.lr} must be > 0 and label_smoothing = {self.label_smoothing} in [0, 1)"
            )


@dataclass
class TrainingHistory:
    """Per step: the training loss (label-smoothed, per target token), the learning rate and the
    wall time of the step in seconds; and the SubTransformer trained at each step."""

    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    configs: list[TransformerConfig] = field(default_factory=list)


def label_smoothed_loss(
    logits: torch.Tensor, target: torch.Tensor, *, smoothing: float, pad_id: int = PAD_ID
) -> torch.Tensor:
    """Mean label-smoothed cross-entropy over the non-pad targets (nats per token).

    Shapes: ``logits`` ``[B, T, V]``, ``target`` ``[B, T]`` → scalar.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        target.reshape(-1),
        ignore_index=pad_id,
        label_smoothing=smoothing,
    )


def learning_rate(step: int, config: SuperTransformerTraining) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then cosine annealing to 0
    (HAT's ``lr-scheduler: cosine`` with ``warmup-updates``)."""
    if step < config.warmup_steps:
        return config.lr * (1e-3 + (1 - 1e-3) * (step + 1) / config.warmup_steps)
    span = max(config.steps - config.warmup_steps, 1)
    return 0.5 * config.lr * (1 + math.cos(math.pi * (step - config.warmup_steps) / span))


def train_supertransformer(
    model: SuperTransformer,
    batches: Sequence[TranslationBatch],
    config: SuperTransformerTraining,
    *,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainingHistory:
    """Train ``model`` in place for ``config.steps`` steps over ``batches`` (reshuffled every
    pass), one random SubTransformer per step; ``on_step(step, loss)`` is called after each.

    Raises:
        ConfigError: no batches.
    """
    rng = np.random.default_rng(config.seed)
    space = model.space

    def step_loss(src: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor) -> float:
        sampled = space.sample(rng)
        subnets = [sampled] + ([space.largest(), space.smallest()] if config.sandwich else [])
        for sub in subnets:
            model.set_active(sub)
            logits = model(src, tgt_in)
            loss = label_smoothed_loss(logits, tgt_out, smoothing=config.label_smoothing)
            loss.backward()
            if sub is sampled:
                sampled_loss = float(loss.detach())
        history.configs.append(sampled)
        return sampled_loss

    history = TrainingHistory()
    device = model.embed.weight.device  # batches follow the model (chosen once by the caller)
    return run_steps(model, batches, config, step_loss, device, history, on_step=on_step)


def run_steps(
    model: nn.Module,
    batches: Sequence[TranslationBatch],
    config: SuperTransformerTraining,
    step_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], float],
    device: torch.device,
    history: TrainingHistory,
    *,
    on_step: Callable[[int, float], None] | None = None,
    label: str = "step",
) -> TrainingHistory:
    """The training loop both the SuperTransformer and an extracted SubTransformer use: Adam
    (β 0.9/0.98), the warm-up + inverse-sqrt LR of :func:`learning_rate`, batches reshuffled every
    pass, gradient clipping; ``step_loss(src, tgt_in, tgt_out)`` runs the backward passes of one
    step and returns its loss (nats/token). Appends loss, LR and seconds per step to ``history``.

    Raises:
        ConfigError: no batches.
    """
    if not batches:
        raise ConfigError("no training batches")
    order_gen = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay
    )
    model.train()
    queue: list[TranslationBatch] = []
    for step in range(config.steps):
        started = time.perf_counter()
        if not queue:
            queue = shuffled(batches, order_gen)
        batch = queue.pop()
        lr = learning_rate(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        src, tgt_in, tgt_out = (t.to(device) for t in (batch.src, batch.tgt_in, batch.tgt_out))
        loss = step_loss(src, tgt_in, tgt_out)
        if config.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        optimizer.step()
        history.loss.append(loss)
        history.lr.append(lr)
        history.step_seconds.append(time.perf_counter() - started)
        if on_step is not None:
            on_step(step, loss)
        if step % 100 == 0:
            logger.info("%s %d loss %.3f lr %.2e", label, step, loss, lr)
    return history


@torch.no_grad()
def validation_loss(
    model: SuperTransformer, batches: Sequence[TranslationBatch], config: TransformerConfig
) -> float:
    """Cross-entropy (nats per target token, no smoothing) of SubTransformer ``config`` with the
    SuperTransformer's weights, in eval mode: HAT's search fitness (Sec. 3.4).

    Raises:
        ConfigError: no batches, or ``config`` not of the model's space.
    """
    if not batches:
        raise ConfigError("no validation batches")
    was_training, active = model.training, model.active_config
    model.eval()
    model.set_active(config)
    total, tokens = 0.0, 0
    try:
        device = model.embed.weight.device
        for batch in batches:
            logits = model(batch.src.to(device), batch.tgt_in.to(device))
            n = batch.target_tokens
            loss = label_smoothed_loss(logits, batch.tgt_out.to(device), smoothing=0.0)
            total += float(loss) * n
            tokens += n
    finally:
        model.set_active(active)
        model.train(was_training)
    return total / tokens


@torch.no_grad()
def translate(
    model: torch.nn.Module,
    tokenizer: SubwordTokenizer,
    sources: Sequence[str],
    *,
    max_len: int = 64,
    batch_size: int = 64,
) -> list[str]:
    """Greedy translations of ``sources`` by ``model`` (a SuperTransformer's active
    SubTransformer, or an extracted SubTransformer), in eval mode, in the input order."""
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        encoded = tokenizer.encode(sources)
        for start in range(0, len(encoded), batch_size):
            rows = [[*ids[: max_len - 1], EOS_ID] for ids in encoded[start : start + batch_size]]
            src = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)
            for i, row in enumerate(rows):
                src[i, : len(row)] = torch.tensor(row)
            device = next(model.parameters(), torch.empty(0)).device
            ids = model.greedy_decode(src.to(device), bos_id=BOS_ID, eos_id=EOS_ID, max_len=max_len)
            out.extend(tokenizer.decode(ids.tolist()))
    finally:
        model.train(was_training)
    return out


def evaluate_bleu(
    model: torch.nn.Module,
    tokenizer: SubwordTokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    max_len: int = 64,
    batch_size: int = 64,
) -> BleuScore:
    """Corpus BLEU (sacreBLEU, with signature) of greedy translations of ``pairs``' sources
    against their targets."""
    hypotheses = translate(
        model, tokenizer, [s for s, _ in pairs], max_len=max_len, batch_size=batch_size
    )
    return corpus_bleu(hypotheses, [t for _, t in pairs])
