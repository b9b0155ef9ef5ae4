"""HAT's search (validation-loss fitness under a latency budget) and the specialize pipeline, on
tiny random-weight SuperTransformers."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from supernet.cost.transformer_latency import sample_distinct_configs
from supernet.cost.transformer_predictor import LatencyPredictorTraining, fit_latency_predictor
from supernet.data.parallel import ParallelCorpus
from supernet.data.translation import make_batches
from supernet.errors import ConfigError
from supernet.nn.transformer import SuperTransformer, save_supertransformer
from supernet.report.transformer_search import (
    HAT_EVOLUTION,
    check_latency_budget,
    pick_batches,
    search_subtransformer,
)
from supernet.search import EvolutionConfig
from supernet.space.transformer import get_transformer_space
from supernet.train.subtransformer import reinitialize, train_subtransformer
from supernet.train.transformer import SuperTransformerTraining, validation_loss

SMALL = dataclasses.replace(
    get_transformer_space("hat-tiny"),
    name="hat-test",
    encoder_embed_dims=(16, 24),
    decoder_embed_dims=(16, 24),
    ffn_dims=(16, 32),
    qkv_dim=8,
    max_positions=16,
    dropout=0.0,
)
VOCAB = 20
EVOLUTION = EvolutionConfig(population=8, generations=3, parent_ratio=0.25, mutation_ratio=0.5,
                            mutate_prob=0.3, seed=0)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def latency_ms(configs) -> np.ndarray:
    """A synthetic latency: grows with the decoder's depth and width (as measured ones do)."""
    ffn = [np.mean(c.active("decoder_ffn_dim")) for c in configs]
    per_layer = [c.decoder_embed_dim / 8 + f / 16 for c, f in zip(configs, ffn, strict=True)]
    return np.array(
        [
            1.0 + c.decoder_layers * p + c.encoder_embed_dim / 16
            for c, p in zip(configs, per_layer, strict=True)
        ]
    )


def valid_batches() -> list:
    rng = np.random.default_rng(5)
    pairs = []
    for _ in range(24):
        src = rng.integers(4, VOCAB, size=int(rng.integers(2, 6))).tolist()
        pairs.append((src, [4 + (t * 3) % (VOCAB - 4) for t in src]))
    return make_batches(pairs, max_tokens=48)


@pytest.fixture(scope="module")
def model() -> SuperTransformer:
    torch.manual_seed(0)
    return SuperTransformer(SMALL, vocab_size=VOCAB).eval()


def test_search_meets_the_budget_and_scores_by_validation_loss(model) -> None:
    valid = valid_batches()
    low, high = latency_ms([SMALL.smallest(), SMALL.largest()])
    budget = float(low + 0.4 * (high - low))
    found = search_subtransformer(model, valid, latency_ms, budget, evolution=EVOLUTION)
    assert latency_ms([found.best])[0] <= budget
    assert found.predicted_latency_ms == pytest.approx(latency_ms([found.best])[0])
    assert found.valid_loss == pytest.approx(validation_loss(model, valid, found.best))
    assert np.all(np.diff(found.history) <= 1e-12)  # best-so-far loss never rises
    assert found.candidates_scored == 8 * (1 + 3)
    assert found.distinct_scored <= found.candidates_scored
    # the search beats random feasible SubTransformers of the same budget
    rng = np.random.default_rng(1)
    feasible = [c for c in (SMALL.sample(rng) for _ in range(200)) if latency_ms([c])[0] <= budget]
    randoms = [validation_loss(model, valid, c) for c in feasible[:8]]
    assert found.valid_loss <= min(randoms) + 1e-9


def test_same_seed_same_search_and_resume(model, tmp_path) -> None:
    valid = valid_batches()
    low, high = latency_ms([SMALL.smallest(), SMALL.largest()])
    budget = float((low + high) / 2)
    a = search_subtransformer(model, valid, latency_ms, budget, evolution=EVOLUTION)
    b = search_subtransformer(model, valid, latency_ms, budget, evolution=EVOLUTION)
    assert a.best == b.best and a.history == b.history
    path = a.save(tmp_path / "search.json")
    back = type(a).load(path, SMALL)
    assert back.best == a.best and back.settings == a.settings
    assert json.loads(path.read_text())["settings"]["mutate_prob"] == 0.3


def test_bad_budget_names_both_bounds(model) -> None:
    low, high = latency_ms([SMALL.smallest(), SMALL.largest()])
    bounds = rf"{low:.2f} ms for the smallest and {high:.2f} ms for the largest"
    with pytest.raises(ConfigError, match=rf"budget 0\.5 ms is below the fastest .*{bounds}"):
        search_subtransformer(model, valid_batches(), latency_ms, 0.5, evolution=EVOLUTION)
    with pytest.raises(ConfigError, match=rf"above the slowest SubTransformer .*{bounds}"):
        check_latency_budget(SMALL, latency_ms, float(high) + 1)
    with pytest.raises(ConfigError, match="need >= 1 validation batch"):
        pick_batches([], 3)


def test_hat_defaults() -> None:
    assert (HAT_EVOLUTION.generations, HAT_EVOLUTION.num_parents) == (30, 25)
    assert HAT_EVOLUTION.num_mutations == 50 and HAT_EVOLUTION.mutate_prob == 0.3
    assert HAT_EVOLUTION.population - HAT_EVOLUTION.num_mutations == 50  # crossovers


def test_finetune_and_from_scratch(model) -> None:
    valid = valid_batches()
    config = SMALL.sample(np.random.default_rng(3))
    inherited = model.get_subnet(config)
    before = validation_loss(model, valid, config)
    train_subtransformer(inherited, valid, SuperTransformerTraining(steps=30, lr=1e-2,
                                                                   warmup_steps=3))  # fmt: skip
    after = _loss(inherited, valid)
    assert after < before - 0.1
    scratch = reinitialize(model.get_subnet(config), seed=1)
    w_super = model.decoder_layers[0].fc1.weight[: config.decoder_ffn_dim[0], :24]
    w_scratch = scratch.decoder_layers[0].fc1.weight
    assert not torch.allclose(w_scratch, w_super[:, : scratch.decoder_dim])
    assert torch.all(scratch.embed.weight[0] == 0)  # the pad row
    again = reinitialize(model.get_subnet(config), seed=1)
    assert torch.equal(again.embed.weight, scratch.embed.weight)


@torch.no_grad()
def _loss(subnet, batches) -> float:
    from supernet.train.transformer import label_smoothed_loss

    subnet.eval()
    total = sum(
        float(label_smoothed_loss(subnet(b.src, b.tgt_in), b.tgt_out, smoothing=0.0))
        * b.target_tokens for b in batches
    )  # fmt: skip
    return total / sum(b.target_tokens for b in batches)


WORDS = ["file", "open", "save", "close", "window", "name", "new", "copy", "text", "help"]
GERMAN = ["datei", "öffnen", "speichern", "schließen", "fenster", "name", "neu", "kopie", "text",
          "hilfe"]  # fmt: skip


def toy_corpus() -> ParallelCorpus:
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(150):
        idx = rng.integers(0, len(WORDS), size=int(rng.integers(1, 4)))
        pairs.append((" ".join(WORDS[i] for i in idx), " ".join(GERMAN[i] for i in idx)))
    pairs = sorted(set(pairs))
    splits = {"train": pairs[::3] + pairs[1::3], "valid": pairs[2::6], "test": pairs[5::6]}
    return ParallelCorpus(splits=splits, source_lang="en", target_lang="de", origin="toy")


def make_run(run_dir, corpus, *, record_corpus: bool = True):
    """A ``hat`` run directory: tokenizer, random-weight SuperTransformer, latency predictor
    (fitted on the synthetic latency); returns the predictor."""
    from supernet.data.subword import train_subword_tokenizer

    tok = train_subword_tokenizer([s for p in corpus.splits["train"] for s in p], vocab_size=300)
    tok.save(run_dir / "tokenizer.model")
    torch.manual_seed(0)
    model = SuperTransformer(SMALL, vocab_size=tok.vocab_size)
    extra = {"corpus": corpus.record()} if record_corpus else {}
    save_supertransformer(run_dir / "supertransformer.pt", model, extra=extra)
    configs = sample_distinct_configs(SMALL, 40, seed=0)
    info = {"settings": {"source_tokens": 8, "target_tokens": 8, "threads": 1}}
    fit = LatencyPredictorTraining(steps=300, hidden_dim=32)
    pred = fit_latency_predictor(SMALL, configs, latency_ms(configs), fit, info=info)
    pred.save(run_dir / "latency_predictor.pt")
    return pred


@pytest.mark.slow
def test_specialize_pipeline_writes_result_and_resumes(tmp_path) -> None:
    pytest.importorskip("sentencepiece")
    pytest.importorskip("sacrebleu")
    from supernet.report.transformer_specialize import SpecializeTransformer, specialize_transformer

    corpus = toy_corpus()
    pred = make_run(tmp_path, corpus)
    low, high = pred.predict_ms([SMALL.smallest(), SMALL.largest()])
    settings = SpecializeTransformer(
        latency_ms=float((low + high) / 2), evolution=EVOLUTION, valid_batches=2,
        train_mode="finetune", training=SuperTransformerTraining(steps=3, warmup_steps=1),
        test_sentences=5, max_tokens=64,
    )  # fmt: skip
    first = specialize_transformer(tmp_path, corpus, settings, out_dir=tmp_path / "out")
    assert not first["resumed_search"]
    assert first["predicted_latency_ms"] <= settings.latency_ms
    assert first["bleu_signature"].startswith("nrefs:1|")
    assert first["train_steps"] == 3 and first["bleu_trained"] is not None
    text = (tmp_path / "out" / "result.md").read_text()
    assert "BLEU signature: `nrefs:1|" in text and "measured latency" in text
    measured, predicted = first["extremes_measured_ms"], first["extremes_predicted_ms"]
    ratio = np.sqrt(np.prod(np.divide(measured, predicted)))
    assert first["speed_ratio"] == pytest.approx(ratio)
    untrained = dataclasses.replace(settings, train_mode="none")
    second = specialize_transformer(tmp_path, corpus, untrained, out_dir=tmp_path / "out")
    assert second["resumed_search"] and second["config"] == first["config"]
    other = dataclasses.replace(settings, evolution=dataclasses.replace(EVOLUTION, seed=1))
    with pytest.raises(ConfigError, match=r"other settings \(seed\)"):
        specialize_transformer(tmp_path, corpus, other, out_dir=tmp_path / "out")
    wrong = dataclasses.replace(corpus, splits={**corpus.splits, "test": corpus.splits["test"][1:]})
    with pytest.raises(ConfigError, match="is not the run's"):
        specialize_transformer(tmp_path, wrong, settings, out_dir=tmp_path / "out")


@pytest.mark.slow
def test_cli_search_transformer(tmp_path) -> None:
    pytest.importorskip("sentencepiece")
    pytest.importorskip("sacrebleu")
    from typer.testing import CliRunner

    from supernet.cli.app import app

    corpus = toy_corpus()
    tsv = tmp_path / "corpus.tsv"
    pairs = [p for name in ("train", "valid", "test") for p in corpus.splits[name]]
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    pred = make_run(tmp_path, corpus, record_corpus=False)
    low, high = pred.predict_ms([SMALL.smallest(), SMALL.largest()])
    base = ["search-transformer", "--run-dir", str(tmp_path), "--corpus-tsv", str(tsv),
            "--population", "4", "--generations", "1", "--valid-batches", "1",
            "--train-steps", "2", "--test-sentences", "3"]  # fmt: skip
    result = CliRunner().invoke(app, [*base, "--latency-ms", "0.01"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "budget 0.01 ms is below the fastest SubTransformer of space 'hat-test'" in text
    assert f"{low:.2f} ms for the smallest and {high:.2f} ms for the largest" in text
    budget = f"{(low + high) / 2:.3f}"
    result = CliRunner().invoke(app, [*base, "--latency-ms", budget, "--train", "scratch"])
    assert result.exit_code == 0, result.output
    out = tmp_path / f"hat-search-{float(budget):g}ms"
    saved = json.loads((out / "result.json").read_text())
    assert saved["train_mode"] == "scratch" and saved["predicted_latency_ms"] <= float(budget)
    assert "test BLEU inherited" in result.output and (out / "result.md").exists()
