"""ProxylessNAS search loop, exact resume, retraining and the whole run (tiny digits data)."""

from __future__ import annotations

import json

import pytest
import torch

from supernet.data import load_dataset
from supernet.errors import CheckpointError, ConfigError, RunDirError, TrainingInterrupted
from supernet.nas.config import ProxylessConfig
from supernet.nas.latency import LatencyModel
from supernet.nas.run import run_proxyless
from supernet.nas.search import search
from supernet.space import get_space

SPACE_NAME = "mbv3-tiny-w0.25-r20"  # the TinyNAS space of mbv3-tiny at width 0.25: fast steps
SPACE = get_space(SPACE_NAME)


@pytest.fixture(scope="module")
def table(make_table):
    return make_table(SPACE_NAME)


def _mid(table) -> float:
    lo, hi = _latency(table).bounds_ms()
    return (lo + hi) / 2


def tiny(**kw) -> ProxylessConfig:
    """2 steps per epoch of 32 digits at 20x20; one warm-up epoch, one search epoch."""
    base = {"target_latency_ms": 5.0, "space": SPACE_NAME, "dataset": "digits",
            "resolution": 20, "batch_size": 32,
            "eval_batch_size": 64, "warmup_epochs": 1, "search_epochs": 1, "retrain_epochs": 1,
            "image_limit": 64, "arch_update_every": 1, "arch_lr": 0.1}  # fmt: skip
    return ProxylessConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _latency(table) -> LatencyModel:
    return LatencyModel.from_table(table, SPACE, 20)


def _state(result) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in result.network.state_dict().items()}


@pytest.mark.slow
def test_resuming_mid_search_gives_exactly_the_uninterrupted_result(digits, table, tmp_path):
    config = tiny()
    whole = search(config, digits, _latency(table), tmp_path / "a")
    assert whole.history.shape == (1 + 2, SPACE.num_blocks, 10)  # warm-up end + 2 α steps
    assert not torch.equal(whole.history[0], whole.history[-1])  # α moved
    with pytest.raises(TrainingInterrupted, match="after 3 steps"):  # mid search epoch
        search(config, digits, _latency(table), tmp_path / "b", stop_after_steps=3)
    resumed = search(config, digits, _latency(table), tmp_path / "b", resume=True)
    a, b = _state(whole), _state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(whole.history, resumed.history)
    assert whole.config == resumed.config
    assert [r["train_loss"] for r in whole.metrics] == [r["train_loss"] for r in resumed.metrics]


def test_resume_refuses_another_runs_checkpoint(digits, table, tmp_path):
    with pytest.raises(TrainingInterrupted):
        search(tiny(), digits, _latency(table), tmp_path, stop_after_steps=1)
    with pytest.raises(CheckpointError):
        search(tiny(seed=1), digits, _latency(table), tmp_path, resume=True)


def test_search_refuses_a_target_outside_the_bounds(digits, table, tmp_path):
    lo, hi = _latency(table).bounds_ms()
    with pytest.raises(ConfigError, match=f"fastest path {lo:.4f} ms, slowest path {hi:.4f}"):
        search(tiny(target_latency_ms=lo / 2), digits, _latency(table), tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_a_strong_latency_loss_drives_the_search_to_faster_paths(digits, table, tmp_path):
    lo, _ = _latency(table).bounds_ms()
    config = tiny(target_latency_ms=lo, latency_lambda=50.0, arch_lr=0.3, search_epochs=4,
                  warmup_epochs=0)  # fmt: skip
    found = search(config, digits, _latency(table), tmp_path)
    first, last = found.history[0], found.history[-1]
    model = _latency(table)
    assert len(found.history) == 1 + 8
    drop = float(model.expected_ms(first.double()) - model.expected_ms(last.double()))
    assert drop > 0.3  # ms, of a 3.1..8.5 ms range (1.2 with 16 α steps, 0.6 with 8 here)
    assert found.predicted_latency_ms == pytest.approx(table.predict([found.config])[0])


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="arch_update_every = 0"):
        tiny(arch_update_every=0)
    with pytest.raises(ConfigError, match="latency_loss = 'l2'"):
        tiny(latency_loss="l2")
    with pytest.raises(ConfigError, match="resolution = 24"):
        tiny(resolution=24)
    with pytest.raises(ConfigError, match="unknown key"):
        ProxylessConfig.from_dict({"target_latency_ms": 1.0, "epochs": 3})


@pytest.mark.slow
def test_the_whole_run_writes_its_files_and_resumes_without_redoing(digits, table, tmp_path):
    run = tmp_path / "run"
    result = run_proxyless(tiny(), run, table, export=False)
    for name in ("proxyless.json", "search.pt", "retrain.pt", "search.csv", "retrain.csv",
                 "arch.json", "alpha_history.png", "result.json"):  # fmt: skip
        assert (run / name).is_file(), name
    arch = json.loads((run / "arch.json").read_text())
    assert arch["config"] == result.search.config.to_dict()
    assert arch["predicted_latency_ms"] == pytest.approx(table.predict([result.search.config])[0])
    assert 0.0 <= result.summary["test_accuracy"] <= 100.0
    with pytest.raises(RunDirError, match="--resume"):
        run_proxyless(tiny(), run, table, export=False)
    with pytest.raises(ConfigError, match="other settings"):
        run_proxyless(tiny(seed=3), run, table, resume=True, export=False)
    again = run_proxyless(tiny(), run, table, resume=True, export=False)  # finished: no retraining
    assert again.summary["test_accuracy"] == result.summary["test_accuracy"]
    assert again.search.config == result.search.config
