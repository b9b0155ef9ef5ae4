"""Specialize a trained SuperTransformer for a latency budget: search, extract, (fine-tune or train
from scratch), then BLEU, measured latency and size into ``result.md``.

A ``hat`` run directory holds ``supertransformer.pt``
(:func:`~supernet.nn.transformer.save_supertransformer`; its metadata may record the corpus as
``corpus`` = :meth:`ParallelCorpus.record`), ``tokenizer.model``
(:meth:`~supernet.data.subword.SubwordTokenizer.save`) and, by default,
``latency_predictor.pt`` (``supernet latency fit-transformer``). Outputs go to
``RUN_DIR/hat-search-<budget>ms/``: ``search.json`` (reused by a later call with the same
settings: resume), ``subtransformer.pt`` and ``result.md``.

Training after the search (``train_mode``): ``"none"`` keeps the inherited weights,
``"finetune"`` trains them further, ``"scratch"`` re-initializes and trains (HAT's choice).

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 3.4 and Table 5.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supernet.checkpoint import save_checkpoint, write_text_atomic
from supernet.cost.transformer import transformer_macs, transformer_params
from supernet.cost.transformer_latency import measure_transformer_latencies
from supernet.cost.transformer_predictor import TransformerLatencyPredictor
from supernet.data.parallel import ParallelCorpus
from supernet.data.subword import SubwordTokenizer
from supernet.data.translation import encode_pairs, make_batches
from supernet.errors import ConfigError
from supernet.nn.transformer import load_supertransformer
from supernet.report.transformer_search import (
    HAT_EVOLUTION,
    TransformerSearch,
    pick_batches,
    search_settings,
    search_subtransformer,
)
from supernet.search import EvolutionConfig
from supernet.search.result import ProgressFn
from supernet.train.subtransformer import reinitialize, train_subtransformer
from supernet.train.transformer import (
    SuperTransformerTraining,
    evaluate_bleu,
    label_smoothed_loss,
)

__all__ = ["TRAIN_MODES", "SpecializeTransformer", "specialize_transformer"]

logger = logging.getLogger(__name__)

TRAIN_MODES = ("none", "finetune", "scratch")


@dataclass(frozen=True)
class SpecializeTransformer:
    """Settings of :func:`specialize_transformer`.

    Attributes:
        latency_ms: the latency budget (predicted, ms per translation as the predictor's dataset
            measured it).
        evolution: search settings (default: HAT's).
        valid_batches: validation batches the fitness reads (HAT caps them too).
        train_mode: one of :data:`TRAIN_MODES`.
        training: recipe of the fine-tuning / from-scratch training.
        test_sentences: test pairs translated for BLEU (0 = the whole test split).
        max_tokens: padded tokens per batch.
        max_decode_tokens: longest translation BLEU decodes (capped by the space's positions).
        resume: reuse ``search.json`` when its settings match.

    Raises:
        ConfigError: an unknown ``train_mode`` or a count below its lowest value (named).
    """

    latency_ms: float
    evolution: EvolutionConfig = HAT_EVOLUTION
    valid_batches: int = 8
    train_mode: str = "finetune"
    training: SuperTransformerTraining = dataclasses.field(
        default_factory=lambda: SuperTransformerTraining(steps=300, warmup_steps=30)
    )
    test_sentences: int = 200
    max_tokens: int = 4096
    max_decode_tokens: int = 96
    resume: bool = True

    def __post_init__(self) -> None:
        if self.train_mode not in TRAIN_MODES:
            raise ConfigError(f"train_mode = {self.train_mode!r}; choose from {TRAIN_MODES}")
        if self.valid_batches < 1 or self.test_sentences < 0 or self.max_tokens < 2:
            raise ConfigError(
                f"valid_batches = {self.valid_batches} must be >= 1, test_sentences = "
                f"{self.test_sentences} >= 0, max_tokens = {self.max_tokens} >= 2"
            )


def _resume_or_search(path: Path, settings: SpecializeTransformer, run: dict[str, Any],
                      progress: ProgressFn | None) -> tuple[TransformerSearch, bool]:  # fmt: skip
    model, valid = run["model"], run["valid"]
    wanted = search_settings(settings.evolution, len(valid), settings.latency_ms)
    if settings.resume and path.exists():
        found = TransformerSearch.load(path, model.space)
        if found.settings == wanted:
            logger.info("reusing the search in %s", path)
            return found, True
        differ = sorted(k for k in wanted if found.settings.get(k) != wanted[k])
        raise ConfigError(
            f"{path} holds a search with other settings ({', '.join(differ)}); delete it or "
            "run without --resume to search again"
        )
    found = search_subtransformer(model, valid, run["predictor"], settings.latency_ms,
                                  evolution=settings.evolution, progress=progress)  # fmt: skip
    found.save(path)
    return found, False


def specialize_transformer(
    run_dir: str | Path,
    corpus: ParallelCorpus,
    settings: SpecializeTransformer,
    *,
    predictor_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Search ``run_dir``'s SuperTransformer under ``settings.latency_ms``, train the chosen
    SubTransformer as ``settings.train_mode`` says, and write ``result.md`` (see the module
    docstring). Returns the result as a dict (also in ``result.json``).

    Raises:
        ConfigError: the predictor is of another space than the SuperTransformer (both named),
            the corpus is not the one the run recorded, a budget outside the predicted range,
            or a resumed search with other settings.
        CheckpointError: a missing or unreadable run file.
    """
    run_dir = Path(run_dir)
    model, meta = load_supertransformer(run_dir / "supertransformer.pt")
    model.eval()
    predictor = TransformerLatencyPredictor.load(predictor_path or run_dir / "latency_predictor.pt")
    if predictor.space != model.space:
        raise ConfigError(
            f"the latency predictor is of space {predictor.space.name!r}, the SuperTransformer "
            f"of {model.space.name!r}; fit a predictor on the run's space"
        )
    recorded = meta.get("corpus", {}).get("sha256")
    if recorded and recorded != corpus.checksum():
        raise ConfigError(
            f"the corpus given (sha256 {corpus.checksum()[:12]}) is not the run's "
            f"(sha256 {recorded[:12]}, from {meta['corpus'].get('origin')})"
        )
    tokenizer = SubwordTokenizer.load(run_dir / "tokenizer.model")
    limit = model.space.max_positions

    def batches(split: str) -> list:
        pairs = encode_pairs(corpus.splits[split], tokenizer, max_tokens=limit)
        return make_batches(pairs, max_tokens=settings.max_tokens)

    out = Path(out_dir or run_dir / f"hat-search-{settings.latency_ms:g}ms")
    out.mkdir(parents=True, exist_ok=True)
    run = {"model": model, "predictor": predictor,
           "valid": pick_batches(batches("valid"), settings.valid_batches)}  # fmt: skip
    found, resumed = _resume_or_search(out / "search.json", settings, run, progress)
    best, space, vocab = found.best, model.space, model.embed.num_embeddings
    subnet = model.get_subnet(best).eval()
    test = corpus.splits["test"]
    test = test[: settings.test_sentences] if settings.test_sentences else test
    max_len = max(1, min(limit, settings.max_decode_tokens))
    inherited = evaluate_bleu(subnet, tokenizer, test, max_len=max_len)
    trained, history = None, None
    if settings.train_mode != "none":
        if settings.train_mode == "scratch":
            reinitialize(subnet, seed=settings.training.seed)
        history = train_subtransformer(subnet, batches("train"), settings.training)
        trained = evaluate_bleu(subnet, tokenizer, test, max_len=max_len)
    # measured latency, as the predictor's dataset was measured (round-robin with the extremes)
    lat_settings = predictor.info.get("settings", {})
    timed = measure_transformer_latencies(
        model, [best, space.smallest(), space.largest()],
        source_tokens=int(lat_settings.get("source_tokens", 30)),
        target_tokens=int(lat_settings.get("target_tokens", 30)),
        threads=int(lat_settings.get("threads", 1)), warmup=2, repeats=7,
    )  # fmt: skip
    statistic = predictor.info.get("training", {}).get("statistic", "median")
    measured = timed["cpu_ms" if statistic == "cpu" else "median_ms"]
    if statistic == "min":
        measured = timed["min_ms"]
    iqr = timed["iqr_ms"]
    predicted = predictor.predict_ms([best, space.smallest(), space.largest()])
    save_checkpoint(
        out / "subtransformer.pt", {"state_dict": subnet.state_dict()},
        metadata={"family": "hat", "space": space.name, "config": best.to_dict(),
                  "space_fields": dataclasses.asdict(space), "vocab_size": vocab,
                  "train_mode": settings.train_mode},
    )  # fmt: skip
    result = {
        "space": space.name,
        "config": best.to_dict(),
        "describe": space.describe(best),
        "search": found.to_dict(),
        "resumed_search": resumed,
        "valid_loss_inherited": found.valid_loss,
        "valid_loss_after": None,
        "params": int(transformer_params([best], space, vocab_size=vocab)[0]),
        "macs": int(transformer_macs([best], space, vocab_size=vocab)[0]),
        "measured_latency_ms": float(measured[0]),
        "measured_iqr_ms": float(iqr[0]),
        "measured_statistic": statistic,
        "measured_wall_median_ms": float(timed["median_ms"][0]),
        "predicted_latency_ms": float(predicted[0]),
        "extremes_measured_ms": [float(measured[1]), float(measured[2])],
        "extremes_predicted_ms": [float(predicted[1]), float(predicted[2])],
        # this machine's speed now against the predictor's dataset: measured / predicted of the
        # smallest and largest SubTransformer (geometric mean), as `supernet search` recalibrates
        "speed_ratio": float(np.sqrt(np.prod(measured[1:] / predicted[1:]))),
        "bleu_inherited": inherited.score,
        "bleu_trained": None if trained is None else trained.score,
        "bleu_signature": inherited.signature,
        "test_sentences": len(test),
        "train_mode": settings.train_mode,
        "train_steps": 0 if history is None else len(history.loss),
        "train_seconds": 0.0 if history is None else float(np.sum(history.step_seconds)),
    }
    if history is not None:
        valid = run["valid"]
        result["valid_loss_after"] = _loss_of(subnet, valid)
    write_text_atomic(out / "result.json", json.dumps(result, indent=1) + "\n")
    write_text_atomic(out / "result.md", result_markdown(result))
    return result


@torch.no_grad()
def _loss_of(subnet: torch.nn.Module, batches: list) -> float:
    """Validation loss of a plain SubTransformer (the search's fitness measure), eval mode."""
    subnet.eval()
    total, tokens = 0.0, 0
    for b in batches:
        logits = subnet(b.src, b.tgt_in)
        total += float(label_smoothed_loss(logits, b.tgt_out, smoothing=0.0)) * b.target_tokens
        tokens += b.target_tokens
    return total / tokens


def result_markdown(r: dict[str, Any]) -> str:
    """``result.md``: the chosen SubTransformer, its latency (predicted and measured), size and
    BLEU with sacreBLEU's signature."""
    s = r["search"]
    lines = [
        f"# HAT search on {r['space']}: latency budget {s['latency_budget_ms']:g} ms",
        "",
        f"SubTransformer: `{r['describe']}`",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| predicted latency | {r['predicted_latency_ms']:.2f} ms |",
        f"| measured latency ({r['measured_statistic']}, as the predictor was fitted) | "
        f"{r['measured_latency_ms']:.2f} ms |",
        f"| measured wall-clock median (IQR) | {r['measured_wall_median_ms']:.2f} ms "
        f"({r['measured_iqr_ms']:.2f}) |",
        f"| smallest / largest SubTransformer, measured | {r['extremes_measured_ms'][0]:.2f} / "
        f"{r['extremes_measured_ms'][1]:.2f} ms (predicted {r['extremes_predicted_ms'][0]:.2f}"
        f" / {r['extremes_predicted_ms'][1]:.2f}) |",
        f"| machine speed now vs. the predictor's dataset (measured / predicted, extremes) | "
        f"{r['speed_ratio']:.2f}x |",
        f"| measured latency / that ratio | {r['measured_latency_ms'] / r['speed_ratio']:.2f} ms |",
        f"| parameters | {r['params']:,} |",
        f"| MACs (30 + 30 tokens) | {r['macs']:,} |",
        f"| validation loss, inherited weights | {r['valid_loss_inherited']:.4f} |",
        f"| test BLEU, inherited weights ({r['test_sentences']} sentences) | "
        f"{r['bleu_inherited']:.2f} |",
    ]
    if r["bleu_trained"] is not None:
        lines += [
            f"| validation loss after {r['train_mode']} ({r['train_steps']} steps, "
            f"{r['train_seconds']:.0f} s) | {r['valid_loss_after']:.4f} |",
            f"| test BLEU after {r['train_mode']} | {r['bleu_trained']:.2f} |",
        ]
    lines += [
        f"| search | {s['candidates_scored']} candidates scored, {s['distinct_scored']} distinct,"
        f" {s['seconds']:.0f} s{' (resumed)' if r['resumed_search'] else ''} |",
        "",
        f"BLEU signature: `{r['bleu_signature']}`",
        "",
    ]
    return "\n".join(lines)
