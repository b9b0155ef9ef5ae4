"""Defenses: pruning drops exactly the smallest p%, noise and rounding are what they claim, and an
unknown defense is refused with the allowed spellings."""

from __future__ import annotations

import pytest
import torch

from supernet.errors import ConfigError
from supernet.privacy import DEFENSES, Defense, parse_defense, prune_smallest


@pytest.mark.parametrize(("numel", "fraction"), [(1000, 0.2), (1000, 0.0), (37, 0.5), (10, 0.75)])
def test_pruning_removes_exactly_the_smallest_fraction(numel, fraction):
    g = torch.randn(numel, generator=torch.Generator().manual_seed(numel)) + 0.01
    pruned = prune_smallest(g, fraction)
    dropped = pruned == 0
    assert int(dropped.sum()) == round(fraction * numel)
    if dropped.any():
        assert g[dropped].abs().max() <= g[~dropped].abs().min()
    assert torch.equal(pruned[~dropped], g[~dropped])


def test_pruning_defense_prunes_every_shared_tensor():
    update = {"a": torch.randn(10, 10) + 0.01, "b": torch.randn(50) + 0.01}
    out = parse_defense("pruning:0.2").apply(update)
    assert {k: int((v == 0).sum()) for k, v in out.items()} == {"a": 20, "b": 10}
    assert all(v.shape == update[k].shape for k, v in out.items())


def test_noise_is_seeded_and_of_the_stated_scale():
    update = {"g": torch.zeros(200_000)}
    gauss = Defense("gaussian", 0.1)
    a, b = gauss.apply(update, seed=3)["g"], gauss.apply(update, seed=3)["g"]
    assert torch.equal(a, b)
    assert not torch.equal(a, gauss.apply(update, seed=4)["g"])
    assert a.std().item() == pytest.approx(0.1, rel=0.01)
    lap = Defense("laplacian", 0.1).apply(update, seed=0)["g"]
    assert lap.abs().mean().item() == pytest.approx(0.1, rel=0.01)  # E|X| = b for Laplace(0, b)


def test_rounding_defenses():
    g = torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 1e-3
    half = Defense("fp16").apply({"g": g})["g"]
    assert half.dtype == torch.float32
    assert torch.equal(half, g.half().float())
    int8 = Defense("int8").apply({"g": g})["g"]
    scale = g.abs().max() / 127
    assert (int8 - g).abs().max() <= scale / 2 + 1e-12
    assert len(torch.unique(int8)) <= 255
    assert torch.equal(Defense("none").apply({"g": g})["g"], g)


def test_parse_defense_spellings():
    assert parse_defense("pruning:0.2") == Defense("pruning", 0.2)
    assert parse_defense("Gaussian:1e-3") == Defense("gaussian", 1e-3)
    assert str(parse_defense("laplacian:0.01")) == "laplacian:0.01"
    assert str(parse_defense("int8")) == "int8"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dropout:0.1", "defense = 'dropout:0.1' is not known; allowed: " + ", ".join(DEFENSES)),
        ("pruning:1.5", "the pruned fraction must be in [0, 1)"),
        ("pruning", "pruning needs a number after the colon, e.g. pruning:0.2"),
        ("gaussian:-1", "the noise scale must be a positive number"),
        ("fp16:2", "fp16 takes no strength"),
    ],
)
def test_bad_defenses_are_refused_with_what_is_allowed(text, message):
    with pytest.raises(ConfigError) as info:
        parse_defense(text)
    assert message in str(info.value)
