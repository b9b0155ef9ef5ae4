"""A family added in a test file: search and predict run on it through the family protocol.

The toy family is an MLP of four hidden layers whose widths are elastic; a config is the tuple of
widths. Everything the family needs lives here (config, space, objectives): nothing outside this
file knows it, which is the point (issue 27: "a new family is a new folder, not edits across the
tree"). The HAT Transformer space runs through evolutionary search the same way.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import numpy as np
import pytest

from supernet.cost.transformer import transformer_params
from supernet.errors import ConfigError, SearchError
from supernet.predict.accuracy import train_predictor
from supernet.predict.dataset import AccuracyDataset
from supernet.search import (
    Constraint,
    EvolutionConfig,
    evolutionary_search,
    nsga2_search,
    pareto_front_mask,
    random_search,
)
from supernet.space import get_space
from supernet.space.family import ConfigList, GeneCoding, PerConfigBatching, Space
from supernet.space.transformer import get_transformer_space

WIDTHS = (8, 16, 32, 64, 128)
LAYERS = 4
INPUTS, OUTPUTS = 20, 10


@dataclass(frozen=True)
class MLPConfig:
    """Hidden widths of the toy MLP, one per layer."""

    widths: tuple[int, ...]

    def to_json(self) -> str:
        return json.dumps({"widths": list(self.widths)})


@dataclass(frozen=True)
class MLPSpace(PerConfigBatching, GeneCoding):
    """The toy family's space: each layer's width from ``WIDTHS`` (5**4 = 625 subnets)."""

    name: str = "toy-mlp"
    family: str = "toy-mlp"
    encoding_version: int = 1

    def sample(self, rng):
        return MLPConfig(tuple(int(w) for w in rng.choice(WIDTHS, size=LAYERS)))

    def mutate(self, config, rng, *, prob=0.2):
        coins, fresh = rng.random(LAYERS) < prob, rng.choice(WIDTHS, size=LAYERS)
        mixed = zip(config.widths, fresh, coins, strict=True)
        return MLPConfig(tuple(int(f) if c else w for w, f, c in mixed))

    def crossover(self, a, b, rng):
        pick = zip(a.widths, b.widths, rng.random(LAYERS) < 0.5, strict=True)
        return MLPConfig(tuple(x if p else y for x, y, p in pick))

    def largest(self):
        return MLPConfig((WIDTHS[-1],) * LAYERS)

    def smallest(self):
        return MLPConfig((WIDTHS[0],) * LAYERS)

    def size(self):
        return len(WIDTHS) ** LAYERS

    def validate(self, config):
        if not isinstance(config, MLPConfig) or len(config.widths) != LAYERS:
            raise ConfigError(f"{config!r} is not a config of space {self.name!r}")
        if any(w not in WIDTHS for w in config.widths):
            raise ConfigError(f"widths {config.widths} must be from {WIDTHS}")
        return config

    def describe(self, config):
        return "mlp " + "-".join(map(str, config.widths))

    def encode(self, configs):
        return np.array([[w / WIDTHS[-1] for w in c.widths] for c in configs], np.float32)

    def summary_map(self):
        return np.full((LAYERS, 1), 1.0 / LAYERS, np.float32), np.zeros(1, np.float32)

    def genes(self):
        return [WIDTHS] * LAYERS

    def to_genes(self, config):
        return list(config.widths)

    def from_genes(self, values):
        return MLPConfig(tuple(int(v) for v in values))


def params(batch) -> np.ndarray:
    """Weights of the toy MLP: a fake cost, ``[N]``."""
    sizes = [[INPUTS, *c.widths, OUTPUTS] for c in batch]
    return np.array([sum(a * b for a, b in itertools.pairwise(s)) for s in sizes], np.float64)


def accuracy(batch) -> np.ndarray:
    """A fake accuracy (%): saturating in each layer's width, the first layer counting most."""
    weight = np.array([4.0, 3.0, 2.0, 1.0])
    w = np.array([c.widths for c in batch], np.float64).reshape(-1, LAYERS)
    return 60.0 + (weight * np.log2(w)).sum(axis=1) - 0.002 * params(batch)


@pytest.fixture(scope="module")
def space() -> MLPSpace:
    return MLPSpace()


@pytest.fixture(scope="module")
def every(space) -> ConfigList:
    return space.batch([MLPConfig(w) for w in itertools.product(WIDTHS, repeat=LAYERS)])


def test_toy_and_hat_spaces_satisfy_the_protocol(space):
    assert isinstance(space, Space)
    assert isinstance(get_transformer_space("hat-tiny"), Space)
    rng = np.random.default_rng(0)
    batch = space.sample_batch(7, rng)
    indices = space.to_choice_indices(batch)
    assert indices.shape == (7, LAYERS)
    assert space.from_choice_indices(indices) == batch
    with pytest.raises(ConfigError, match="out of range"):
        space.from_choice_indices(np.full((1, LAYERS), len(WIDTHS)))
    with pytest.raises(ConfigError, match=r"config #1 .* not a subnet of space 'toy-mlp'"):
        space.to_choice_indices([space.largest(), MLPConfig((8, 8, 8, 9))])


def test_a_config_of_another_family_is_refused_with_both_names(space):
    cnn, hat = get_space("mbv3-tiny"), get_transformer_space("hat-tiny")
    with pytest.raises(ConfigError, match="'hat' config was given to the 'ofa-mbv3' space"):
        cnn.validate(hat.largest())
    with pytest.raises(ConfigError, match="'MLPConfig' config was given to the 'ofa-mbv3'"):
        cnn.batch([space.largest()])
    with pytest.raises(ConfigError, match="'ArchConfig' config was given to the 'hat' space"):
        hat.batch([cnn.largest()])


def test_evolution_finds_a_top_subnet_under_the_constraint(space, every):
    limit = 6000.0
    feasible = np.sort(accuracy(every)[params(every) <= limit])[::-1]  # 304 of 625 subnets
    config = EvolutionConfig(population=40, generations=15, mutate_prob=0.3, seed=1)
    result = evolutionary_search(space, accuracy, [Constraint("params", params, limit)], config)
    assert isinstance(result.best, MLPConfig)
    assert isinstance(result.population, ConfigList)
    assert len(result.population) == config.num_parents + config.population
    assert result.best_costs["params"] <= limit
    assert result.best_score == pytest.approx(float(accuracy([result.best])[0]))
    assert (feasible > result.best_score + 1e-9).sum() < 3  # among the best 1% of feasible ones
    assert (params(result.population) <= limit).all()
    assert np.all(np.diff(result.history) >= 0)
    again = evolutionary_search(space, accuracy, [Constraint("params", params, limit)], config)
    assert again.best == result.best and again.population == result.population


def test_evolution_names_the_toy_space_when_nothing_is_feasible(space):
    with pytest.raises(SearchError, match=r"(?s)toy-mlp.*smallest subnet \(mlp 8-8-8-8\)"):
        evolutionary_search(
            space, accuracy, [Constraint("params", params, 10.0)], EvolutionConfig(population=4)
        )


def test_random_search_keeps_the_best_of_its_feasible_draws(space):
    limit = 8000.0
    result = random_search(space, accuracy, [Constraint("params", params, limit)], n=60, seed=3)
    assert result.candidates_scored == 60
    assert (params(result.population) <= limit).all()
    assert result.best_score == pytest.approx(float(accuracy(result.population).max()))
    assert result.best == result.population[0]


def test_nsga2_front_is_nondominated_and_close_to_the_true_front(space, every):
    limit = 20000.0
    front = nsga2_search(
        space,
        accuracy,
        {"params": params},
        [Constraint("params", params, limit)],
        population=40,
        generations=25,
        mutate_prob=0.3,
        seed=0,
    )
    assert isinstance(front.configs, ConfigList)
    assert front.objective_names == ("score", "params")
    np.testing.assert_allclose(front.objectives[:, 0], accuracy(front.configs))
    assert (front.objectives[:, 1] <= limit).all()
    assert pareto_front_mask(front.objectives, maximize=[True, False]).all()
    # Against the front of all 625 subnets: most found points are on it.
    ok = params(every) <= limit
    truth = np.column_stack([accuracy(every), params(every)])[ok]
    true_front = {tuple(r) for r in truth[pareto_front_mask(truth, maximize=[True, False])]}
    on_front = [tuple(r) in true_front for r in front.objectives]
    assert np.mean(on_front) >= 0.5
    assert front.objectives[0, 0] == pytest.approx(max(r[0] for r in true_front))


def test_predictor_fits_and_ranks_the_toy_family(space, every):
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(every))[:200]
    configs = tuple(every[rows])
    measured = accuracy(every[rows]) + rng.normal(scale=0.2, size=len(rows))
    dataset = AccuracyDataset(space, 0, configs, measured, images=0)
    predictor, report = train_predictor(
        dataset, epochs=200, lr=1e-2, weight_decay=1e-3, hidden=(64, 64), seed=0
    )
    assert report.n_holdout == 40 and report.n_train == 160
    assert report.kendall_tau > 0.8
    assert report.rmse < 0.25 * report.baseline_rmse
    predicted = predictor.predict_accuracy(space.batch(configs[:5]))
    assert predicted.shape == (5,)
    np.testing.assert_allclose(predicted, predictor.predict_accuracy(list(configs[:5])))


def test_hat_space_runs_through_evolutionary_search():
    hat = get_transformer_space("hat-tiny")

    def size(batch):
        return transformer_params(list(batch), hat, vocab_size=1000).astype(np.float64)

    limit = float(np.median(size(hat.sample_batch(50, np.random.default_rng(0)))))
    config = EvolutionConfig(population=16, generations=5, mutate_prob=0.3, seed=0)
    # Score: the largest SubTransformer under the size limit (a stand-in for accuracy).
    result = evolutionary_search(hat, size, [Constraint("params", size, limit)], config)
    assert hat.validate(result.best) is result.best
    assert result.best_costs["params"] <= limit
    assert result.best_score == result.best_costs["params"]
    initial_best = result.history[0]
    assert result.best_score >= initial_best
    assert len(result.population) == config.num_parents + config.population
