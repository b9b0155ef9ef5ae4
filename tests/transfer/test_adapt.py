"""Feature-extractor adaptation: memory sizes, candidates, the backprop-free proxy, the budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.transfer.helpers import RESOLUTION, make_subnet

from supernet.data import DatasetSplits
from supernet.errors import ConfigError, SearchError
from supernet.space import get_space
from supernet.train import load_run
from supernet.transfer import build_transfer_model
from supernet.transfer.adapt import (
    adapt_feature_extractor,
    candidate_configs,
    extract_features,
    parse_memory,
    proxy_score,
    transfer_memory_need,
)
from supernet.transfer.memory import training_memory
from supernet.transfer.targets import load_target
from supernet.units import format_bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1500", 1500), ("2.5MB", 2_500_000), ("2.5 mb", 2_500_000), ("512KiB", 524_288),
     ("3KB", 3000), ("1GiB", 2**30), ("1e3B", 1000), (4096, 4096)],
)  # fmt: skip
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "2 XB", "1.5.2MB", "0", "0.1B"])
def test_parse_memory_refuses_non_sizes(text):
    with pytest.raises(ConfigError, match="memory = "):
        parse_memory(text)


def test_candidates_are_the_extremes_the_middle_and_seeded_samples():
    space = get_space("mbv3-tiny")
    got = candidate_configs(space, samples=3, seed=0)
    assert [n for n, _ in got] == ["largest", "smallest", "middle", "sample-1", "sample-2",
                                   "sample-3"]  # fmt: skip
    assert got[0][1] == space.largest() and got[1][1] == space.smallest()
    assert got == candidate_configs(space, samples=3, seed=0)
    assert got[3:] != candidate_configs(space, samples=3, seed=1)[3:]
    with pytest.raises(ConfigError, match="samples = -1"):
        candidate_configs(space, samples=-1, seed=0)


@pytest.fixture(scope="module")
def digits28():
    s = load_target("digits", input_size=28, input_channels=1, mean=(0.3,), std=(0.35,)).splits
    return DatasetSplits(s.train.subset(range(300)), s.val.subset(range(120)),
                         s.test.subset(range(10)))  # fmt: skip


def test_features_are_the_classifier_input(digits28):
    subnet = make_subnet("bn")
    feats, labels = extract_features(subnet, digits28.val, RESOLUTION, batch_size=50, limit=70)
    assert feats.shape == (70, subnet.classifier.in_features) and labels.shape == (70,)
    x = (digits28.val.images[:3].float() / 255 - 0.3) / 0.35
    with torch.no_grad():
        expected = subnet.forward_features(x).double().numpy()
    np.testing.assert_allclose(feats[:3], expected, rtol=1e-5, atol=1e-6)


def test_proxy_ranks_a_clearly_better_feature_extractor_higher(digits28):
    good = make_subnet("bn")
    blind = make_subnet("bn")
    with torch.no_grad():  # constant features: nothing about the image reaches the classifier
        blind.feature_mix[0].weight.zero_()
    good_score = proxy_score(good, digits28, RESOLUTION)
    blind_score = proxy_score(blind, digits28, RESOLUTION)
    assert good_score > blind_score + 30
    assert blind_score < 25  # about chance (10 classes)


def test_memory_need_is_the_paper_total_of_the_transfer_model():
    subnet = make_subnet("bn")
    need = transfer_memory_need(subnet, 10, "tinytl-l+b", batch_size=8, resolution=RESOLUTION)
    model = build_transfer_model(subnet, 10, "tinytl-l+b", resolution=RESOLUTION)
    assert need == training_memory(model, batch_size=8, resolution=RESOLUTION).paper_total_bytes()
    full = transfer_memory_need(subnet, 10, "full", batch_size=8, resolution=RESOLUTION)
    assert full > need


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run, device="cpu")


def _adapt(run, splits, budget):
    return adapt_feature_extractor(run.supernet, run.space, splits, "tinytl-l+b", batch_size=8,
                                   memory_budget=budget, samples=1, calib_images=64)  # fmt: skip


@pytest.fixture(scope="module")
def free(run, digits28):
    return _adapt(run, digits28, None)


def test_budget_filters_candidates_and_the_best_proxy_wins(run, digits28, free):
    assert [c.name for c in free.candidates] == ["largest", "smallest", "middle", "sample-1"]
    assert all(c.fits and c.score is not None for c in free.candidates)
    assert free.chosen.score == max(c.score for c in free.candidates)
    needs = sorted(c.memory_bytes for c in free.candidates)
    assert needs[0] < needs[-1]
    budget = needs[1]
    limited = _adapt(run, digits28, budget)
    for c in limited.candidates:
        assert c.fits == (c.memory_bytes <= budget)
        assert (c.score is None) == (not c.fits)
    assert limited.chosen.fits and limited.chosen.memory_bytes <= budget
    assert sum(c.fits for c in limited.candidates) == 2


def test_a_budget_nothing_fits_reports_the_smallest_need(run, digits28, free):
    smallest = min(c.memory_bytes for c in free.candidates)
    with pytest.raises(SearchError) as err:
        _adapt(run, digits28, smallest - 1)
    message = str(err.value)
    assert f"memory budget {format_bytes(smallest - 1)} fits none of the 4" in message
    assert f"smallest need found is {format_bytes(smallest)} (smallest:" in message
