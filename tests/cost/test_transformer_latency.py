"""HAT's latency dataset (measured round-robin) and its MLP latency predictor."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from supernet.cost.transformer import transformer_macs
from supernet.cost.transformer_latency import (
    TransformerLatencyDataset,
    build_transformer_latency_dataset,
    measure_transformer_latencies,
    sample_distinct_configs,
)
from supernet.cost.transformer_predictor import (
    LatencyPredictorTraining,
    TransformerLatencyPredictor,
    fit_latency_predictor,
    holdout_split,
    latency_metrics,
)
from supernet.errors import CheckpointError, ConfigError
from supernet.nn.transformer import SuperTransformer
from supernet.space.transformer import get_transformer_space

TINY = get_transformer_space("hat-tiny")
SMALL = dataclasses.replace(
    TINY,
    name="hat-test",
    encoder_embed_dims=(16, 24),
    decoder_embed_dims=(16, 24),
    ffn_dims=(16, 32),
    qkv_dim=8,
    max_positions=16,
    dropout=0.0,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def synthetic_latency_ms(configs) -> np.ndarray:
    """A latency with HAT's structure: a constant, the encoder once, the decoder's MACs at every
    one of 30 steps, plus a per-layer call cost (what the MLP must learn from 10 features)."""
    macs = transformer_macs(configs, TINY, vocab_size=3000).astype(np.float64)
    layers = np.array([c.encoder_layers + 3 * c.decoder_layers for c in configs], dtype=float)
    return 2.0 + macs / 2e6 + 1.5 * layers


@pytest.mark.slow  # 1,000 Adam steps: ~8 s idle, ~25 s on the loaded 2-core VM
def test_predictor_learns_a_synthetic_latency() -> None:
    configs = sample_distinct_configs(TINY, 260, seed=1)
    y = synthetic_latency_ms(configs)
    train, test = holdout_split(len(configs), 60, seed=0)
    training = LatencyPredictorTraining(steps=1000, hidden_dim=128, seed=0)
    pred = fit_latency_predictor(TINY, [configs[i] for i in train], y[train], training)
    fit = latency_metrics(pred.predict_ms([configs[i] for i in test]), y[test])
    assert fit.n == 60
    assert fit.mape_percent < 3.0
    assert fit.kendall_tau > 0.9
    # a constant guess (the training mean) is far worse: the MLP learned the structure
    baseline = latency_metrics(np.full(60, y[train].mean()), y[test])
    assert baseline.mape_percent > 5 * fit.mape_percent


def test_predictor_save_load_round_trip(tmp_path) -> None:
    configs = sample_distinct_configs(TINY, 20, seed=2)
    y = synthetic_latency_ms(configs)
    pred = fit_latency_predictor(
        TINY, configs, y, LatencyPredictorTraining(steps=20, hidden_dim=16), info={"note": "x"}
    )
    pred.save(tmp_path / "p.pt")
    back = TransformerLatencyPredictor.load(tmp_path / "p.pt")
    np.testing.assert_array_equal(back.predict_ms(configs), pred.predict_ms(configs))
    assert back.info == {"note": "x"}
    assert back.space == TINY
    assert pred(configs).shape == (20,)


def test_measured_dataset_round_trip(tmp_path) -> None:
    data = build_transformer_latency_dataset(
        SMALL, vocab_size=20, num_configs=4, source_tokens=5, target_tokens=4, warmup=0,
        repeats=2, seed=3,
    )  # fmt: skip
    assert data.configs[:2] == [SMALL.largest(), SMALL.smallest()]
    assert len(set(data.configs)) == 4
    assert (data.latency_ms > 0).all() and (data.iqr_ms >= 0).all()
    assert data.settings["target_tokens"] == 4 and data.settings["repeats"] == 2
    path = data.save(tmp_path / "d.json")
    back = TransformerLatencyDataset.load(path)
    assert back.space == SMALL
    assert back.configs == data.configs
    np.testing.assert_array_equal(back.latency_ms, data.latency_ms)
    np.testing.assert_array_equal(back.iqr_ms, data.iqr_ms)
    np.testing.assert_array_equal(back.min_ms, data.min_ms)
    np.testing.assert_array_equal(back.latencies("cpu"), data.cpu_ms)
    with pytest.raises(ConfigError, match=r"statistic 'p90' is not one of \['cpu', 'median'"):
        back.latencies("p90")
    assert back.settings == data.settings and back.vocab_size == 20


def test_measurement_reports_progress_and_round_robin_counts() -> None:
    model = SuperTransformer(SMALL, vocab_size=20)
    seen = []
    configs = [SMALL.largest(), SMALL.smallest(), SMALL.largest()]
    timed = measure_transformer_latencies(
        model, configs, source_tokens=3, target_tokens=3, warmup=1, repeats=2,
        progress=lambda done, total, what: seen.append((done, total)),
    )  # fmt: skip
    assert sorted(timed) == ["cpu_ms", "iqr_ms", "median_ms", "min_ms"]
    assert all(v.shape == (3,) and (v >= 0).all() for v in timed.values())
    assert (timed["min_ms"] <= timed["median_ms"]).all()
    assert seen[-1] == (9, 9) and len(seen) == 3  # one call per round: 1 warm-up + 2 timed


def test_bad_input(tmp_path) -> None:
    model = SuperTransformer(SMALL, vocab_size=20)
    with pytest.raises(ConfigError, match=r"target_tokens = 17 must be <= 16 \(max_positions"):
        measure_transformer_latencies(model, [SMALL.largest()], target_tokens=17)
    with pytest.raises(ConfigError, match="repeats = 0 must be an integer >= 1"):
        measure_transformer_latencies(model, [SMALL.largest()], repeats=0)
    with pytest.raises(ConfigError, match="is not allowed in space 'hat-test'"):
        measure_transformer_latencies(model, [TINY.largest()], source_tokens=3, target_tokens=3)
    with pytest.raises(ConfigError, match=r"latency dataset .*nope\.json does not exist"):
        TransformerLatencyDataset.load(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="is not a transformer latency dataset"):
        TransformerLatencyDataset.load(tmp_path / "x.json")
    configs = [TINY.largest(), TINY.smallest(), TINY.largest()]
    with pytest.raises(ConfigError, match=r"latency_ms\[1\] = -1.0 must be a positive"):
        fit_latency_predictor(TINY, configs, np.array([3.0, -1.0, 2.0]))
    with pytest.raises(ConfigError, match="3 configs and 2 latencies"):
        fit_latency_predictor(TINY, configs, np.array([3.0, 1.0]))
    with pytest.raises(ConfigError, match="holdout = 9 must be >= 1 and leave >= 2 of the 10"):
        holdout_split(10, 9)
    with pytest.raises(ConfigError, match=r"lr = 0\.0 must be > 0"):
        LatencyPredictorTraining(lr=0.0)
    pred = fit_latency_predictor(TINY, configs, np.array([3.0, 1.0, 3.0]),
                                 LatencyPredictorTraining(steps=1, hidden_dim=4))  # fmt: skip
    with pytest.raises(ConfigError, match="'hat-tiny'"):
        pred.predict_ms([SMALL.largest()])
    torch.save({"x": 1}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError):
        TransformerLatencyPredictor.load(tmp_path / "bad.pt")


def test_groups_bounded_by_memory(monkeypatch) -> None:
    import supernet.cost.transformer_latency as tl

    model = SuperTransformer(SMALL, vocab_size=20)
    configs = [SMALL.largest(), SMALL.smallest(), SMALL.largest(), SMALL.smallest()]
    sizes = 4 * tl.transformer_params(configs, SMALL, vocab_size=20)
    monkeypatch.setattr(tl, "MAX_GROUP_BYTES", int(sizes[0] + sizes[1]))
    assert tl._groups(model, configs) == [(0, 2), (2, 4)]
    monkeypatch.setattr(tl, "MAX_GROUP_BYTES", 1)  # one config per group, never an empty group
    assert tl._groups(model, configs) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    seen = []
    timed = tl.measure_transformer_latencies(
        model, configs, source_tokens=3, target_tokens=2, warmup=0, repeats=1,
        progress=lambda done, total, what: seen.append((done, total, what)),
    )  # fmt: skip
    assert timed["median_ms"].shape == (4,) and (timed["median_ms"] > 0).all()
    assert [s[0] for s in seen] == [1, 2, 3, 4] and seen[-1][2] == "configs 4-4 of 4"
