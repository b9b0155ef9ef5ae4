"""``supernet train`` for the ``hat`` family: a tiny config trains end to end into a run
directory that the search-transformer code path loads; bad values and reused run dirs refused."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from supernet.errors import ConfigError, RunDirError
from supernet.space.transformer import get_transformer_space
from supernet.train.transformer_run import (
    TransformerRunConfig,
    is_transformer_preset,
    load_transformer_config,
    train_transformer_run,
)

pytest.importorskip("sentencepiece")
pytest.importorskip("sacrebleu")

SMALL = dataclasses.replace(
    get_transformer_space("hat-tiny"), name="hat-test", encoder_embed_dims=(16, 24),
    decoder_embed_dims=(16, 24), ffn_dims=(16, 32), qkv_dim=8, max_positions=16, dropout=0.0,
)  # fmt: skip
WORDS = ["file", "open", "save", "close", "window", "name", "new", "copy", "text", "help"]
GERMAN = ["datei", "öffnen", "speichern", "schließen", "fenster", "name", "neu", "kopie", "text",
          "hilfe"]  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tsv(tmp_path):
    rng = np.random.default_rng(0)
    pairs = set()
    for _ in range(400):
        idx = rng.integers(0, len(WORDS), size=int(rng.integers(1, 5)))
        pairs.add((" ".join(WORDS[i] for i in idx), " ".join(GERMAN[i] for i in idx)))
    path = tmp_path / "corpus.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in sorted(pairs)), encoding="utf-8")
    return path


def tiny(tsv, **kw) -> TransformerRunConfig:
    base = {"corpus": str(tsv), "vocab_size": 300, "max_tokens": 256, "steps": 6,
            "warmup_steps": 1, "log_every": 2, "test_sentences": 4,
            "max_decode_tokens": 8}  # fmt: skip
    return TransformerRunConfig(**{**base, **kw})


@pytest.mark.slow
def test_tiny_run_end_to_end_loads_in_the_search_path(tsv, tmp_path) -> None:
    from supernet.cost.transformer_latency import sample_distinct_configs
    from supernet.cost.transformer_predictor import LatencyPredictorTraining, fit_latency_predictor
    from supernet.data.parallel import load_tsv_corpus
    from supernet.data.subword import SubwordTokenizer
    from supernet.nn.transformer import load_supertransformer
    from supernet.report.transformer_specialize import SpecializeTransformer, specialize_transformer
    from supernet.search import EvolutionConfig

    run = tmp_path / "run"
    result = train_transformer_run(tiny(tsv, train_limit=100), run, space_override=SMALL)
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "tokenizer.model", "supertransformer.pt", "metrics.csv"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temp files left behind
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,train_loss,seconds" and [r.split(",")[0] for r in rows[1:]] == [
        "2", "4", "6"
    ]  # fmt: skip
    assert result["train_pairs"] == 100
    for name in ("largest", "smallest"):
        assert np.isfinite(result[name]["valid_loss"]) and result[name]["valid_loss"] > 0
        assert 0.0 <= result[name]["test_bleu"] <= 100.0 and result[name]["test_sentences"] == 4
    assert result["bleu_signature"].startswith("nrefs:1|")
    assert json.loads((run / "result.json").read_text())["largest"] == result["largest"]
    # what search-transformer reads: the checkpoint, the tokenizer, the same corpus's record
    model, meta = load_supertransformer(run / "supertransformer.pt")
    assert model.space == SMALL and meta["steps"] == 6
    corpus = load_tsv_corpus(tsv)
    assert meta["corpus"]["sha256"] == corpus.checksum()  # the whole corpus, not the limit
    tok = SubwordTokenizer.load(run / "tokenizer.model")
    assert tok.vocab_size == model.embed.num_embeddings
    assert load_transformer_config(run / "config.yaml") == tiny(
        tsv, train_limit=100, preset="custom"
    )
    # the search-transformer code path runs on this directory (plus a latency predictor)
    configs = sample_distinct_configs(SMALL, 30, seed=0)
    synthetic = np.array([1.0 + c.decoder_layers + c.decoder_embed_dim / 8 for c in configs])
    info = {"settings": {"source_tokens": 8, "target_tokens": 8, "threads": 1}}
    pred = fit_latency_predictor(
        SMALL, configs, synthetic, LatencyPredictorTraining(steps=200, hidden_dim=16), info=info
    )
    pred.save(run / "latency_predictor.pt")
    low, high = pred.predict_ms([SMALL.smallest(), SMALL.largest()])
    settings = SpecializeTransformer(
        latency_ms=float((low + high) / 2),
        evolution=EvolutionConfig(population=4, generations=1, parent_ratio=0.25,
                                  mutation_ratio=0.5, mutate_prob=0.3, seed=0), valid_batches=1,
        train_mode="none", test_sentences=3, max_tokens=64,
    )  # fmt: skip
    found = specialize_transformer(run, corpus, settings)
    assert found["predicted_latency_ms"] <= settings.latency_ms
    assert (run / f"hat-search-{settings.latency_ms:g}ms" / "result.md").is_file()


def test_existing_run_dir_needs_force_and_resume_is_refused(tsv, tmp_path) -> None:
    run = tmp_path / "run"
    train_transformer_run(tiny(tsv, steps=1, test_sentences=1), run, space_override=SMALL)
    with pytest.raises(RunDirError, match="--force"):
        train_transformer_run(tiny(tsv, steps=1), run, space_override=SMALL)
    with pytest.raises(ConfigError, match="--resume is not supported"):
        train_transformer_run(tiny(tsv, steps=1), run, resume=True, space_override=SMALL)
    again = train_transformer_run(
        tiny(tsv, steps=2, test_sentences=1), run, force=True, space_override=SMALL
    )
    assert again["steps"] == 2
    assert (run / "metrics.csv").read_text().splitlines()[-1].startswith("2,")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("steps", 0, "steps = 0 must be an integer >= 1"),
        ("space", "hat-huge", "space = 'hat-huge'; choose from"),
        ("family", "mbv3", "family = 'mbv3'"),
        ("train_limit", -3, "train_limit = -3"),
        ("lr", 0.0, "lr = 0.0 must be > 0"),
    ],
)
def test_bad_value_is_named(key, value, match) -> None:
    with pytest.raises(ConfigError, match=match):
        TransformerRunConfig(**{key: value})


def test_preset_and_overrides(tmp_path) -> None:
    from supernet.train.config import PRESET_DIR

    preset = PRESET_DIR / "de-en-hat-tiny.yaml"
    assert is_transformer_preset(preset)
    assert not is_transformer_preset(PRESET_DIR / "smoke.yaml")
    cfg = load_transformer_config(preset, overrides={"steps": 7}, preset="de-en-hat-tiny")
    assert cfg.steps == 7 and cfg.space == "hat-tiny" and cfg.preset == "de-en-hat-tiny"
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['stepz'\]"):
        load_transformer_config(preset, overrides={"stepz": 7})


def test_cli_train_dispatches_on_family(tsv, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    import supernet.train.transformer_run as tr
    from supernet.cli.app import app

    config = tmp_path / "hat.yaml"
    config.write_text(tiny(tsv, steps=2, test_sentences=2).to_yaml())
    real = tr.train_transformer_run
    monkeypatch.setattr(
        tr, "train_transformer_run", lambda c, d, **kw: real(c, d, space_override=SMALL, **kw)
    )
    run = tmp_path / "run"
    args = ["train", "--config", str(config), "--run-dir", str(run), "--set", "steps=3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "largest SubTransformer: valid loss" in result.output
    assert load_transformer_config(run / "config.yaml").steps == 3
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "--force" in " ".join(result.output.split())
    bad = CliRunner().invoke(app, [*args, "--force", "--set", "vocab_size=2"])
    assert bad.exit_code != 0 and "vocab_size = 2" in " ".join(bad.output.split())
