import numpy as np
import pytest
import torch

import supernet.space.encoding as encoding_module
from supernet.checkpoint import save_checkpoint
from supernet.errors import CheckpointError, ConfigError
from supernet.predict import (
    AccuracyDataset,
    AccuracyPredictor,
    load_predictor,
    save_predictor,
    subnet_sequence,
    summary_map,
    train_predictor,
)
from supernet.space import ENCODING_VERSION, encode, encode_batch, get_space, sample_batch

SMALL = {"hidden": (64, 64)}  # the default training recipe on a narrower MLP (fast)


def synthetic_dataset(n: int, seed: int = 0) -> AccuracyDataset:
    """Accuracy as a known function of the encoding: linear in resolution, depth, expand ratio
    and kernel size, plus a saturating term, in the range of real accuracies (percent)."""
    space = get_space("mbv3-tiny")
    configs = subnet_sequence(space, n - 2, seed)
    x = encode(configs, space).astype(np.float64)
    per_block = len(space.kernel_sizes) + len(space.expand_ratios)
    blocks = x[:, : space.num_blocks * per_block].reshape(len(configs), space.num_blocks, -1)
    kernel = blocks[:, :, :3] @ np.array([0.0, 0.02, 0.04])
    expand = blocks[:, :, 3:] @ np.array([0.0, 0.05, 0.1])
    depth = blocks.sum(axis=(1, 2)) / 2  # active blocks
    resolution = x[:, -4:] @ np.array([0.0, 0.6, 1.0, 1.2])
    linear = resolution + 0.08 * depth + kernel.sum(1) + expand.sum(1)
    acc = 86.0 + linear - 0.3 * np.tanh(linear - linear.mean()) ** 2
    return AccuracyDataset(space, seed, tuple(configs), acc, 10_000)


@pytest.fixture(scope="module")
def fitted():
    return train_predictor(synthetic_dataset(300), holdout=0.25, seed=0, **SMALL)


def test_predictor_learns_a_known_function_of_the_encoding(fitted):
    predictor, report = fitted
    assert (report.n_train, report.n_holdout) == (225, 75)
    assert report.baseline_rmse > 0.4  # the target varies; a constant does not fit it
    assert report.rmse < 0.2 * report.baseline_rmse  # measured: 0.09-0.12 over seeds 0-2
    assert report.kendall_tau > 0.9 and report.spearman_rho > 0.98
    configs = synthetic_dataset(300).configs
    held_out = [configs[i] for i in report.holdout_index]
    np.testing.assert_allclose(report.predicted, predictor.predict_accuracy(held_out))
    np.testing.assert_allclose(report.measured, synthetic_dataset(300).val_accuracy[
        report.holdout_index])  # fmt: skip


def test_an_untrained_predictor_does_not_pass_the_same_bar():
    _, report = train_predictor(synthetic_dataset(300), holdout=0.25, seed=0,
                                hidden=(64, 64), epochs=1, lr=1e-6)  # fmt: skip
    assert report.rmse > 0.5 * report.baseline_rmse


def test_the_largest_and_smallest_always_stay_in_training():
    data = synthetic_dataset(12)
    assert data.configs[0] == data.space.largest() and data.configs[1] == data.space.smallest()
    for seed in range(20):
        _, report = train_predictor(data, holdout=0.5, seed=seed, hidden=(8,), epochs=1)
        assert report.n_holdout == 6 and not {0, 1} & set(report.holdout_index.tolist())


def test_training_is_deterministic_for_a_seed_and_leaves_global_rng_alone():
    data = synthetic_dataset(40)
    state = torch.get_rng_state()
    a, ra = train_predictor(data, seed=1, hidden=(16,), epochs=20)
    assert torch.equal(torch.get_rng_state(), state)
    b, rb = train_predictor(data, seed=1, hidden=(16,), epochs=20)
    c, _ = train_predictor(data, seed=2, hidden=(16,), epochs=20)
    configs = list(data.configs)
    np.testing.assert_array_equal(a.predict_accuracy(configs), b.predict_accuracy(configs))
    assert ra.rmse == rb.rmse
    assert not np.array_equal(a.predict_accuracy(configs), c.predict_accuracy(configs))


def test_batched_prediction_shapes_and_units(fitted):
    predictor, _ = fitted
    configs = list(synthetic_dataset(12, seed=5).configs)
    preds = predictor.predict_accuracy(configs)
    assert preds.shape == (12,) and preds.dtype == np.float64
    assert preds.min() > 80 and preds.max() < 95  # accuracy points, not fractions
    x = encode(configs, predictor.space)
    np.testing.assert_array_equal(predictor.predict_encoded(x), preds)
    np.testing.assert_array_equal(predictor.predict_encoded(torch.from_numpy(x)), preds)
    assert predictor.predict_encoded(x[:0]).shape == (0,)
    batch = sample_batch(predictor.space, 50, np.random.default_rng(0))
    encoded = encode_batch(batch, predictor.space)  # what search passes
    np.testing.assert_array_equal(
        predictor.predict_accuracy(batch), predictor.predict_encoded(encoded)
    )
    with pytest.raises(ConfigError, match=r"shape \(12, 10\); .* takes \[N, 124\]"):
        predictor.predict_encoded(x[:, :10])


def test_default_predictor_is_ofa_sized():
    space = get_space("mbv3-tiny")
    predictor = AccuracyPredictor(space)
    widths = [m.out_features for m in predictor.mlp if isinstance(m, torch.nn.Linear)]
    assert widths == [400, 400, 400, 1]
    assert predictor.mlp[0].in_features == 124 + 5 + 1  # encoding, 5 stage depths, resolution
    assert AccuracyPredictor(space, summary_features=False).mlp[0].in_features == 124
    with pytest.raises(ConfigError, match="hidden"):
        AccuracyPredictor(space, hidden=())


@pytest.mark.parametrize("space_name", ["mbv3-tiny", "ofa-mbv3"])
def test_summary_features_are_stage_depths_and_resolution_scaled_to_unit_range(space_name):
    space = get_space(space_name)
    configs = [space.largest(), space.smallest()] + [
        space.sample(np.random.default_rng(i)) for i in range(20)
    ]
    matrix, offset = summary_map(space)
    got = encode(configs, space) @ matrix + offset
    low, high = min(space.depths), max(space.depths)
    r = np.asarray(space.resolutions)
    want = np.array([
        [(d - low) / (high - low) for d in c.depth]
        + [(c.resolution - r.min()) / (r.max() - r.min())]
        for c in configs
    ])  # fmt: skip
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got[0].tolist() == [1.0] * (space.num_stages + 1)  # largest
    assert got[1].tolist() == [0.0] * (space.num_stages + 1)  # smallest


def test_summary_features_change_the_prediction_and_can_be_turned_off(tmp_path):
    space = get_space("mbv3-tiny")
    plain = AccuracyPredictor(space, summary_features=False, base_accuracy=85.0)
    summary = AccuracyPredictor(space, base_accuracy=85.0)
    with torch.no_grad():  # same weights on the encoding, zero on the summary columns
        summary.mlp[0].weight.zero_()
        summary.mlp[0].weight[:, :124] = plain.mlp[0].weight
        summary.mlp[0].bias.copy_(plain.mlp[0].bias)
        for a, b in zip(summary.mlp[1:], plain.mlp[1:], strict=True):
            if isinstance(a, torch.nn.Linear):
                a.load_state_dict(b.state_dict())
    x = encode([space.sample(np.random.default_rng(i)) for i in range(8)], space)
    np.testing.assert_allclose(summary.predict_encoded(x), plain.predict_encoded(x), rtol=1e-6)
    with torch.no_grad():
        summary.mlp[0].weight[:, 124:] = 1.0
    assert not np.allclose(summary.predict_encoded(x), plain.predict_encoded(x))
    path = save_predictor(tmp_path / "plain.pt", plain, space)
    loaded, meta = load_predictor(path, space)
    assert meta["summary_features"] is False and not loaded.summary_features
    np.testing.assert_array_equal(loaded.predict_encoded(x), plain.predict_encoded(x))


def test_save_load_round_trip_gives_identical_predictions(fitted, tmp_path):
    predictor, report = fitted
    space = predictor.space
    path = save_predictor(tmp_path / "predictor.pt", predictor, space, report)
    loaded, meta = load_predictor(path, space)
    configs = [space.sample(np.random.default_rng(7)) for _ in range(30)]
    np.testing.assert_array_equal(loaded.predict_accuracy(configs),
                                  predictor.predict_accuracy(configs))  # fmt: skip
    assert meta["space"] == "mbv3-tiny" and meta["encoding_version"] == ENCODING_VERSION
    assert meta["num_features"] == 124 and meta["hidden"] == [64, 64]
    assert meta["metrics"]["rmse"] == pytest.approx(report.rmse)
    assert meta["metrics"]["kendall_tau"] == pytest.approx(report.kendall_tau)
    assert not loaded.training


def test_a_predictor_of_another_space_or_encoding_is_refused(fitted, tmp_path, monkeypatch):
    predictor, report = fitted
    path = save_predictor(tmp_path / "p.pt", predictor, predictor.space, report)
    with pytest.raises(CheckpointError, match="is for space 'mbv3-tiny', this run uses 'ofa-mbv3'"):
        load_predictor(path, get_space("ofa-mbv3"))
    # The space reports its encoding version (family protocol); the CNN space reads this constant.
    monkeypatch.setattr(encoding_module, "ENCODING_VERSION", ENCODING_VERSION + 1)
    with pytest.raises(
        CheckpointError,
        match=f"is for encoding_version {ENCODING_VERSION}, this run uses {ENCODING_VERSION + 1}",
    ):
        load_predictor(path, predictor.space)
    with pytest.raises(ConfigError, match="cannot be saved for 'ofa-mbv3'"):
        save_predictor(tmp_path / "q.pt", predictor, get_space("ofa-mbv3"))


def test_other_files_are_refused(tmp_path):
    space = get_space("mbv3-tiny")
    other = tmp_path / "checkpoint.pt"
    save_checkpoint(other, {"model": {}}, metadata={"kind": "supernet-train", "space": space.name})
    with pytest.raises(CheckpointError, match="is for kind 'supernet-train', this run uses "
                                              "'accuracy-predictor'"):  # fmt: skip
        load_predictor(other, space)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_predictor(tmp_path / "missing.pt", space)


def _tampered(path, tmp_path, *, metadata=None, state=None):
    """A well-formed checkpoint holding a saved predictor with its metadata or weights changed."""
    from supernet.checkpoint import load_checkpoint

    payload, meta = load_checkpoint(path)
    meta.update(metadata or {})
    payload["state_dict"].update(state or {})
    out = tmp_path / "tampered.pt"
    save_checkpoint(out, payload, metadata=meta)
    return out


def test_other_predictor_format_version_is_refused(fitted, tmp_path):
    predictor, report = fitted
    path = save_predictor(tmp_path / "p.pt", predictor, predictor.space, report)
    bad = _tampered(path, tmp_path, metadata={"predictor_format_version": 7})
    expected = r"tampered.pt is for predictor_format_version 7, this run uses 2; refit it.*fit"
    with pytest.raises(CheckpointError, match=expected):
        load_predictor(bad, predictor.space)


@pytest.mark.parametrize("hidden", [[64], [64, 65], "64,64", [64, 0], [64.0, 64], None, [True]])
def test_hidden_widths_that_do_not_fit_the_weights_are_refused(fitted, tmp_path, hidden):
    predictor, report = fitted
    path = save_predictor(tmp_path / "p.pt", predictor, predictor.space, report)
    bad = _tampered(path, tmp_path, metadata={"hidden": hidden})
    with pytest.raises(CheckpointError, match=r"tampered.pt.*hidden") as info:
        load_predictor(bad, predictor.space)
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize("flag", [False, None, 1, "true"])
def test_a_summary_features_flag_that_does_not_fit_the_weights_is_refused(fitted, tmp_path, flag):
    predictor, report = fitted
    path = save_predictor(tmp_path / "p.pt", predictor, predictor.space, report)
    bad = _tampered(path, tmp_path, metadata={"summary_features": flag})
    expected = r"state_dict\['mlp.0.weight'\] has shape \(64, 130\).*\(64, 124\)"
    with pytest.raises(CheckpointError, match=expected if flag is False else "summary_features"):
        load_predictor(bad, predictor.space)


def test_weights_of_the_wrong_shape_or_not_finite_are_refused(fitted, tmp_path):
    predictor, report = fitted
    path = save_predictor(tmp_path / "p.pt", predictor, predictor.space, report)
    bad = _tampered(path, tmp_path, state={"mlp.2.weight": torch.zeros(64, 63)})
    with pytest.raises(
        CheckpointError, match=r"state_dict\['mlp.2.weight'\] has shape \(64, 63\).*\(64, 64\)"
    ):
        load_predictor(bad, predictor.space)
    bad = _tampered(path, tmp_path, state={"base_accuracy": torch.tensor(float("nan"))})
    with pytest.raises(CheckpointError, match=r"non-finite values in \['base_accuracy'\]"):
        load_predictor(bad, predictor.space)


def test_bad_training_arguments_are_named():
    data = synthetic_dataset(10)
    with pytest.raises(ConfigError, match=r"holdout = 1.5 must be a fraction in \(0, 1\)"):
        train_predictor(data, holdout=1.5)
    with pytest.raises(ConfigError, match="leave 9 to train and 1 to test; each needs >= 2"):
        train_predictor(data, holdout=0.1)
    with pytest.raises(ConfigError, match="epochs = 0 must be an integer >= 1"):
        train_predictor(data, epochs=0)
    with pytest.raises(ConfigError, match="dataset of space 'mbv3-tiny', predictor space"):
        train_predictor(data, get_space("ofa-mbv3"))
