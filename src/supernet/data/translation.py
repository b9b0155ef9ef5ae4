"""Token batches for translation: encode sentence pairs, group them by length under a token budget.

Batches hold sentences of similar length so little compute goes to padding (fairseq's
``--max-tokens`` batching, which HAT trains with). The decoder is teacher-forced: its input is
``bos + target`` and its labels ``target + eos``; the source ends with ``eos``.

Reference: HAT (arXiv 2005.14187), Sec. 4 (fairseq training setup); Transformer (arXiv
1706.03762) Sec. 5.1 (batches by approximate sequence length).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from supernet.data.subword import BOS_ID, EOS_ID, PAD_ID, SubwordTokenizer
from supernet.errors import ConfigError

__all__ = ["TranslationBatch", "encode_pairs", "make_batches", "shuffled"]

EncodedPair = tuple[list[int], list[int]]


@dataclass(frozen=True)
class TranslationBatch:
    """One batch: ``src`` ``[B, S]`` (ends with eos), ``tgt_in`` ``[B, T]`` (starts with bos),
    ``tgt_out`` ``[B, T]`` (ends with eos); int64, right-padded with the pad id."""

    src: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor

    @property
    def target_tokens(self) -> int:
        """Number of non-pad labels (what the loss averages over)."""
        return int((self.tgt_out != PAD_ID).sum())


def encode_pairs(
    pairs: Sequence[tuple[str, str]], tokenizer: SubwordTokenizer, *, max_tokens: int
) -> list[EncodedPair]:
    """Token ids of each pair; pairs whose source or target (plus its eos / bos) would exceed
    ``max_tokens`` are dropped (so every batch fits the positional table).

    Raises:
        ConfigError: ``max_tokens`` < 2.
    """
    if max_tokens < 2:
        raise ConfigError(f"max_tokens = {max_tokens} must be >= 2 (one token plus eos)")
    sources = tokenizer.encode([s for s, _ in pairs])
    targets = tokenizer.encode([t for _, t in pairs])
    return [
        (s, t)
        for s, t in zip(sources, targets, strict=True)
        if 0 < len(s) < max_tokens and 0 < len(t) < max_tokens
    ]


def _pad(rows: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def make_batches(encoded: Sequence[EncodedPair], *, max_tokens: int) -> list[TranslationBatch]:
    """Group pairs, sorted by (target, source) length, into batches whose padded size
    ``B * max(S, T)`` stays within ``max_tokens`` (a longer pair gets a batch of its own).
    Deterministic: the same pairs give the same batches.

    Raises:
        ConfigError: ``max_tokens`` < 1 or no pairs.
    """
    if max_tokens < 1:
        raise ConfigError(f"max_tokens = {max_tokens} must be >= 1")
    if not encoded:
        raise ConfigError("no sentence pairs to batch")
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][1]), len(encoded[i][0]), i))
    batches: list[TranslationBatch] = []
    group: list[EncodedPair] = []
    longest = 0
    for i in order:
        s, t = encoded[i]
        size = max(len(s), len(t)) + 1
        if group and max(longest, size) * (len(group) + 1) > max_tokens:
            batches.append(_collate(group))
            group, longest = [], 0
        group.append((s, t))
        longest = max(longest, size)
    batches.append(_collate(group))
    return batches


def _collate(group: list[EncodedPair]) -> TranslationBatch:
    return TranslationBatch(
        src=_pad([[*s, EOS_ID] for s, _ in group]),
        tgt_in=_pad([[BOS_ID, *t] for _, t in group]),
        tgt_out=_pad([[*t, EOS_ID] for _, t in group]),
    )


def shuffled(
    batches: Sequence[TranslationBatch], generator: torch.Generator
) -> list[TranslationBatch]:
    """The batches in a random order drawn from ``generator`` (one call per epoch)."""
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
