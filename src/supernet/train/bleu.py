"""Corpus BLEU with sacreBLEU, reported with its signature (so numbers are comparable).

We call sacreBLEU (Post, WMT'18, arXiv 1804.08771) rather than compute BLEU ourselves: its
signature fixes the tokenizer, smoothing and casing a score was computed with, which HAT's
numbers (and every WMT number) depend on.

Reference: BLEU (Papineni et al., ACL'02); HAT (arXiv 2005.14187), Sec. 4 (BLEU on test sets).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from supernet.errors import ConfigError, MissingExtraError

__all__ = ["BleuScore", "corpus_bleu"]


@dataclass(frozen=True)
class BleuScore:
    """Corpus BLEU in points (0–100) and sacreBLEU's signature string, e.g.
    ``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``."""

    score: float
    signature: str

    def __str__(self) -> str:
        return f"BLEU = {self.score:.2f} ({self.signature})"


def _sacrebleu() -> Any:
    try:
        return importlib.import_module("sacrebleu")
    except ImportError as exc:
        raise MissingExtraError(
            f"sacrebleu is not importable ({exc}); it comes with the hat extra: "
            "pip install 'supernet[hat]'"
        ) from exc


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[str], *, tokenize: str = "13a"
) -> BleuScore:
    """BLEU of detokenized ``hypotheses`` against one reference each (same order).

    ``tokenize`` is sacreBLEU's tokenizer (``"13a"``, WMT's default; ``"intl"``, ``"none"``...).

    Raises:
        ConfigError: the two lists differ in length or are empty, or ``tokenize`` is unknown.
        MissingExtraError: sacrebleu is not installed.
    """
    if len(hypotheses) != len(references):
        raise ConfigError(
            f"BLEU needs one reference per hypothesis: got {len(hypotheses)} hypotheses and "
            f"{len(references)} references"
        )
    if not hypotheses:
        raise ConfigError("BLEU of an empty corpus is undefined: no hypotheses given")
    sacrebleu = _sacrebleu()
    try:
        metric = sacrebleu.metrics.BLEU(tokenize=tokenize)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"sacreBLEU tokenize = {tokenize!r} is unknown: {exc}") from exc
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return BleuScore(float(result.score), str(metric.get_signature()))
