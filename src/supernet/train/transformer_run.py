"""``supernet train`` for the ``hat`` family: corpus → sentencepiece tokenizer → SuperTransformer,
written as a run directory that ``supernet search-transformer`` reads.

A preset selects this path with ``family: hat`` (:func:`is_transformer_preset`). The run
directory holds ``config.yaml`` (the resolved :class:`TransformerRunConfig`), ``tokenizer.model``
(BPE trained on the training split), ``supertransformer.pt`` (weights, space, the corpus record
and the steps; :func:`~supernet.nn.transformer.save_supertransformer`), ``metrics.csv`` (one row
per logged step) and ``result.json`` (validation loss and test BLEU of the largest and smallest
SubTransformer). Every file is written atomically.

The corpus record in the checkpoint is that of the *whole* corpus (so ``search-transformer``
recognises the same corpus); ``train_limit`` only caps the training pairs the run reads.

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 3.2 (SuperTransformer training,
one random SubTransformer per step) and Sec. 4 (BLEU of the extremes of the space).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import yaml

from supernet.checkpoint import write_text_atomic
from supernet.data.parallel import ParallelCorpus, load_gettext_corpus, load_tsv_corpus
from supernet.data.subword import train_subword_tokenizer
from supernet.data.translation import encode_pairs, make_batches
from supernet.errors import ConfigError, RunDirError
from supernet.nn.transformer import SuperTransformer, save_supertransformer
from supernet.space.transformer import get_transformer_space, list_transformer_spaces
from supernet.train.overrides import apply_overrides
from supernet.train.rundir import write_csv_atomic
from supernet.train.transformer import (
    SuperTransformerTraining,
    evaluate_bleu,
    train_supertransformer,
    validation_loss,
)

__all__ = [
    "RUN_FILES",
    "TransformerRunConfig",
    "is_transformer_preset",
    "load_transformer_config",
    "train_transformer_run",
]

RUN_FILES = ("config.yaml", "tokenizer.model", "supertransformer.pt", "metrics.csv", "result.json")


@dataclass(frozen=True)
class TransformerRunConfig:
    """A ``hat`` training run; saved verbatim as ``config.yaml``.

    Attributes:
        preset: the preset's name (informational).
        family: must be ``"hat"``.
        space: a ``hat`` space name (``hat-tiny``, ``hat-wmt``).
        corpus: ``"gettext"`` (English → ``target_lang`` from the Debian catalogs) or the path
            of a UTF-8 TSV file, ``source<TAB>target`` per line.
        target_lang: the gettext catalogs' language (``corpus: gettext`` only).
        train_limit: cap on the training pairs read (tokenizer and training); ``None``: all.
        vocab_size: BPE vocabulary, including the 4 special ids and 256 byte pieces.
        max_tokens: tokens (source + target) per batch.
        steps / lr / warmup_steps / label_smoothing / sandwich / seed: the training
            (:class:`~supernet.train.transformer.SuperTransformerTraining`).
        log_every: steps between rows of ``metrics.csv`` (mean training loss of the steps).
        valid_batches: validation batches for the final loss (0 = all).
        test_sentences: test pairs translated for BLEU (0 = all).
        max_decode_tokens: longest greedy translation (tokens).

    Raises:
        ConfigError: a bad value (named, with what is allowed).
    """

    preset: str = "custom"
    family: str = "hat"
    space: str = "hat-tiny"
    corpus: str = "gettext"
    target_lang: str = "de"
    train_limit: int | None = None
    vocab_size: int = 3000
    max_tokens: int = 4096
    steps: int = 2000
    lr: float = 1e-3
    warmup_steps: int = 200
    label_smoothing: float = 0.1
    sandwich: bool = False
    seed: int = 0
    log_every: int = 10
    valid_batches: int = 0
    test_sentences: int = 200
    max_decode_tokens: int = 64

    def __post_init__(self) -> None:
        if self.family != "hat":
            raise ConfigError(f"family = {self.family!r}; this trainer is for family 'hat' only")
        if self.space not in list_transformer_spaces():
            raise ConfigError(f"space = {self.space!r}; choose from {list_transformer_spaces()}")
        if not isinstance(self.corpus, str) or not self.corpus:
            raise ConfigError(f"corpus = {self.corpus!r}; give 'gettext' or a TSV file's path")
        ints = {"vocab_size": 8, "max_tokens": 4, "steps": 1, "warmup_steps": 0, "seed": 0,
                "log_every": 1, "valid_batches": 0, "test_sentences": 0,
                "max_decode_tokens": 1}  # fmt: skip
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} = {value!r} must be an integer >= {low}")
        limit = self.train_limit
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ConfigError(f"train_limit = {limit!r} must be null or an integer >= 1")
        if not isinstance(self.sandwich, bool):
            raise ConfigError(f"sandwich = {self.sandwich!r} must be true or false")
        self.training()  # checks lr and label_smoothing

    def training(self) -> SuperTransformerTraining:
        """The training recipe of this run."""
        return SuperTransformerTraining(
            steps=self.steps, lr=self.lr, warmup_steps=self.warmup_steps,
            label_smoothing=self.label_smoothing, sandwich=self.sandwich, seed=self.seed,
        )  # fmt: skip

    def to_yaml(self) -> str:
        """The config as YAML (what ``config.yaml`` holds)."""
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"cannot read config file {str(path)!r}: {reason}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping")
    return loaded


def is_transformer_preset(path: str | Path) -> bool:
    """Whether the YAML config at ``path`` is a ``hat`` run (``family: hat``); a file that
    cannot be read answers False (the CNN loader then reports it)."""
    try:
        return _read_yaml(Path(path)).get("family") == "hat"
    except ConfigError:
        return False


def load_transformer_config(
    path: str | Path, *, overrides: dict[str, Any] | None = None, preset: str | None = None
) -> TransformerRunConfig:
    """A :class:`TransformerRunConfig` from the YAML file at ``path`` with ``overrides``
    (``--set KEY=VALUE``) applied.

    Raises:
        ConfigError: unreadable file, unknown keys (lists the known ones) or a bad value.
    """
    data = _read_yaml(Path(path))
    data.setdefault("preset", preset or Path(path).stem)
    data = apply_overrides(data, overrides or {})
    known = [f.name for f in fields(TransformerRunConfig)]
    unknown = sorted((k for k in data if k not in known), key=str)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {str(path)!r}; known keys: {known}")
    return TransformerRunConfig(**data)


def _load_corpus(config: TransformerRunConfig) -> ParallelCorpus:
    if config.corpus == "gettext":
        return load_gettext_corpus(target_lang=config.target_lang)
    return load_tsv_corpus(config.corpus)


def _prepare(run_dir: Path, config: TransformerRunConfig, *, force: bool, resume: bool) -> None:
    if resume:
        raise ConfigError(
            "--resume is not supported for family 'hat' runs (they checkpoint only at the end); "
            "start again with --force"
        )
    present = [n for n in RUN_FILES if (run_dir / n).exists()]
    if present and not force:
        raise RunDirError(
            f"run directory {str(run_dir)!r} already holds a run ({', '.join(present)}); "
            "give --force to overwrite it or another --run-dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in present:
        (run_dir / name).unlink()
    for old in run_dir.glob("hat-search-*"):  # searches of the old SuperTransformer
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    write_text_atomic(run_dir / "config.yaml", config.to_yaml())


def train_transformer_run(
    config: TransformerRunConfig,
    run_dir: str | Path,
    *,
    force: bool = False,
    resume: bool = False,
    space_override: Any = None,
) -> dict[str, Any]:
    """Run ``config`` into ``run_dir`` (files: see the module docstring); returns the result
    (also written as ``result.json``): corpus record, steps, seconds, and per extreme
    (``largest`` / ``smallest``) the validation loss (nats per token) and test BLEU.

    ``space_override``: a :class:`~supernet.space.transformer.TransformerSpace` used instead of
    ``config.space`` (tests use a smaller space).

    Raises:
        RunDirError: ``run_dir`` already holds a run and ``force`` is False.
        ConfigError: ``resume`` (not supported for this family), or a corpus / tokenizer error.
        DataNotFoundError: the corpus is missing.
    """
    run_dir = Path(run_dir)
    _prepare(run_dir, config, force=force, resume=resume)
    started = time.perf_counter()
    corpus = _load_corpus(config)
    train_pairs = corpus.splits["train"][: config.train_limit]
    tokenizer = train_subword_tokenizer(
        [s for p in train_pairs for s in p], vocab_size=config.vocab_size
    )
    tokenizer.save(run_dir / "tokenizer.model")
    space = space_override or get_transformer_space(config.space)
    limit = space.max_positions

    def batches(pairs: list) -> list:
        return make_batches(
            encode_pairs(pairs, tokenizer, max_tokens=limit), max_tokens=config.max_tokens
        )

    train = batches(train_pairs)
    torch.manual_seed(config.seed)
    model = SuperTransformer(space, vocab_size=tokenizer.vocab_size)
    rows: list[dict[str, Any]] = []
    window: list[float] = []
    train_start = time.perf_counter()

    def on_step(step: int, loss: float) -> None:
        window.append(loss)
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            rows.append({"step": step + 1, "train_loss": sum(window) / len(window),
                         "seconds": round(time.perf_counter() - train_start, 3)})  # fmt: skip
            window.clear()

    train_supertransformer(model, train, config.training(), on_step=on_step)
    train_seconds = time.perf_counter() - train_start
    write_csv_atomic(run_dir / "metrics.csv", rows)
    save_supertransformer(
        run_dir / "supertransformer.pt", model,
        extra={"corpus": corpus.record(), "steps": config.steps, "preset": config.preset},
    )  # fmt: skip
    valid = batches(corpus.splits["valid"])
    valid = valid[: config.valid_batches] if config.valid_batches else valid
    test = corpus.splits["test"]
    test = test[: config.test_sentences] if config.test_sentences else test
    max_len = max(1, min(limit, config.max_decode_tokens))
    result: dict[str, Any] = {
        "corpus": corpus.record(), "train_pairs": len(train_pairs), "steps": config.steps,
        "train_seconds": round(train_seconds, 1),
    }  # fmt: skip
    model.eval()
    for name, sub in (("largest", space.largest()), ("smallest", space.smallest())):
        loss = validation_loss(model, valid, sub) if valid else float("nan")
        model.set_active(sub)
        bleu = evaluate_bleu(model, tokenizer, test, max_len=max_len) if test else None
        result[name] = {"valid_loss": loss, "test_bleu": None if bleu is None else bleu.score,
                        "test_sentences": len(test)}  # fmt: skip
        if bleu is not None:
            result["bleu_signature"] = bleu.signature
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    write_text_atomic(run_dir / "result.json", json.dumps(result, indent=2) + "\n")
    return result
