import csv

import numpy as np
import pytest
import torch

from supernet.data import BatchLoader, load_digits
from supernet.errors import ConfigError, DataNotFoundError
from supernet.nn import create_supernet
from supernet.predict import (
    ACC_DATASET,
    collect_accuracy_dataset,
    dataset,
    read_accuracy_dataset,
    subnet_sequence,
)
from supernet.predict.dataset import COLUMNS
from supernet.space import SearchSpace, StageSpec, encode, get_space
from supernet.train import calibration_loader, evaluate_subnet, load_run


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_rows(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)


def test_sequence_starts_with_the_extremes_and_has_distinct_subnets():
    space = get_space("mbv3-tiny")
    configs = subnet_sequence(space, 30, seed=3)
    assert len(configs) == 32
    assert configs[0] == space.largest() and configs[1] == space.smallest()
    assert len({encode([c], space).tobytes() for c in configs}) == 32
    assert subnet_sequence(space, 10, seed=3) == configs[:12]  # a longer run extends a shorter one
    assert subnet_sequence(space, 10, seed=4)[2:] != configs[2:12]


def test_sequence_of_a_space_with_too_few_subnets_is_refused():
    tiny = SearchSpace(
        name="predict-one-block", input_channels=1, num_classes=2, resolutions=(8,),
        kernel_sizes=(3,), expand_ratios=(2,), depths=(1,),
        stages=(StageSpec(8, 1, 1, "relu", False),), stem_width=8, stem_stride=1,
        first_block_width=8, final_expand_width=8, feature_mix_width=8,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="gave only 0 distinct random subnets"):
        subnet_sequence(tiny, 1, seed=0)
    with pytest.raises(ConfigError, match="n = -1 must be an integer >= 0"):
        subnet_sequence(get_space("mbv3-tiny"), -1, seed=0)


def test_collect_writes_the_csv_with_largest_and_smallest_first(run_dir):
    calls = []
    data = collect_accuracy_dataset(
        run_dir, n=3, seed=0, device="cpu", progress=lambda *a: calls.append(a)
    )
    rows = _csv_rows(run_dir / ACC_DATASET)
    space = data.space
    assert [int(r["index"]) for r in rows] == list(range(5)) == list(range(len(data)))
    assert tuple(rows[0]) == COLUMNS
    assert data.configs == tuple(subnet_sequence(space, 3, seed=0))
    assert data.configs[0] == space.largest() and data.configs[1] == space.smallest()
    assert [r["config"] for r in rows] == [c.to_json() for c in data.configs]
    assert [int(r["resolution"]) for r in rows] == [c.resolution for c in data.configs]
    np.testing.assert_allclose([float(r["val_accuracy"]) for r in rows], data.val_accuracy)
    assert ((data.val_accuracy >= 0) & (data.val_accuracy <= 100)).all()
    n_val = len(load_run(run_dir).splits.val)
    assert data.images == n_val and {int(r["images"]) for r in rows} == {n_val}
    assert data.measured == 5 and calls[0][:2] == (0, 5) and calls[-1][:2] == (5, 5)
    assert data.features().shape == (5, encode([space.largest()], space).shape[1])


def test_collected_accuracy_equals_evaluate_subnet(run_dir):
    data = collect_accuracy_dataset(run_dir, n=0, seed=0, val_images=50, device="cpu")
    run = load_run(run_dir, device="cpu")
    cfg = run.config
    calib = calibration_loader(run.splits.train, cfg.bn_calib_images, cfg.eval_batch_size, 0)
    val = BatchLoader(run.splits.val, cfg.eval_batch_size, shuffle=False, augment=False, limit=50)
    for config, acc in zip(data.configs, data.val_accuracy, strict=True):
        score, _ = evaluate_subnet(run.supernet, config, calib=calib, data=val, device=run.device,
                                   channels_last=cfg.channels_last)  # fmt: skip
        # BN is folded before scoring: equal up to one image (50 here) whose logits nearly tie
        assert acc == pytest.approx(score.accuracy, abs=100 / 50 + 1e-9)
        assert score.images == data.images == 50


def test_resume_after_truncation_continues_with_the_same_configs(run_dir):
    full = collect_accuracy_dataset(run_dir, n=4, seed=0, device="cpu")
    path = run_dir / ACC_DATASET
    _write_rows(path, _csv_rows(path)[:3])
    resumed = collect_accuracy_dataset(run_dir, n=4, seed=0, device="cpu")
    assert resumed.measured == 3
    assert resumed.configs == full.configs
    np.testing.assert_array_equal(resumed.val_accuracy, full.val_accuracy)
    assert len(_csv_rows(path)) == 6
    again = collect_accuracy_dataset(run_dir, n=4, seed=0, device="cpu")
    assert again.measured == 0 and again.configs == full.configs
    extended = collect_accuracy_dataset(run_dir, n=5, seed=0, device="cpu")
    assert extended.measured == 1 and extended.configs[:6] == full.configs
    shorter = collect_accuracy_dataset(run_dir, n=1, seed=0, device="cpu")
    assert shorter.measured == 0 and len(shorter) == 3 and len(_csv_rows(path)) == 7


def test_an_interrupted_collection_keeps_what_it_measured(run_dir):
    def stop_after_two(done, total, what):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect_accuracy_dataset(run_dir, n=4, seed=0, device="cpu", progress=stop_after_two)
    assert [int(r["index"]) for r in _csv_rows(run_dir / ACC_DATASET)] == [0, 1]
    assert collect_accuracy_dataset(run_dir, n=4, seed=0, device="cpu").measured == 4


def test_a_csv_of_another_seed_space_or_size_is_refused(run_dir):
    collect_accuracy_dataset(run_dir, n=1, seed=0, val_images=20, device="cpu")
    path = run_dir / ACC_DATASET
    with pytest.raises(ConfigError, match="collected with seed 0, this call uses seed 1"):
        collect_accuracy_dataset(run_dir, n=1, seed=1, val_images=20, device="cpu")
    with pytest.raises(ConfigError, match="measured on 20 validation images, this call uses 30"):
        collect_accuracy_dataset(run_dir, n=1, seed=0, val_images=30, device="cpu")
    rows = _csv_rows(path)
    _write_rows(path, [{**r, "space": "ofa-mbv3"} for r in rows])
    with pytest.raises(ConfigError, match="collected in space 'ofa-mbv3'; this run's space is"):
        collect_accuracy_dataset(run_dir, n=1, seed=0, val_images=20, device="cpu")
    swap = ("config", "resolution")
    swapped = [{**rows[0], **{k: rows[1][k] for k in swap}},
               {**rows[1], **{k: rows[0][k] for k in swap}}]  # fmt: skip
    _write_rows(path, swapped + rows[2:])
    with pytest.raises(ConfigError, match=r"row 0 holds .* but seed 0 gives"):
        collect_accuracy_dataset(run_dir, n=1, seed=0, val_images=20, device="cpu")
    fresh = collect_accuracy_dataset(run_dir, n=1, seed=1, val_images=20, device="cpu", force=True)
    assert fresh.seed == 1 and fresh.measured == 3


def test_reading_a_missing_or_foreign_csv(tmp_path):
    space = get_space("mbv3-tiny")
    with pytest.raises(DataNotFoundError, match="collect one with `supernet predict collect`"):
        read_accuracy_dataset(tmp_path / ACC_DATASET, space)
    (tmp_path / "eval.csv").write_text("subnet,accuracy\nlargest,90\n")
    with pytest.raises(ConfigError, match="is not an accuracy dataset"):
        read_accuracy_dataset(tmp_path / "eval.csv", space)


def test_bad_arguments_are_named(run_dir):
    with pytest.raises(ConfigError, match="val_images = 0 must be an integer >= 1"):
        collect_accuracy_dataset(run_dir, n=1, val_images=0)
    with pytest.raises(ConfigError, match="save_every = 0 must be an integer >= 1"):
        collect_accuracy_dataset(run_dir, n=1, save_every=0)


def _synthetic_rows(space, n=3):
    """Rows as collect writes them, for ``n`` configs, with made-up accuracies."""
    from supernet.predict import AccuracyDataset

    configs = tuple(subnet_sequence(space, n - 2, seed=0))
    data = AccuracyDataset(space, 0, configs, np.linspace(50.0, 90.0, n), 64)
    return data.rows()


def test_rows_carry_the_format_and_library_version(tmp_path):
    import supernet
    from supernet.predict.dataset import ACC_DATASET_FORMAT_VERSION

    space = get_space("mbv3-tiny")
    rows = _synthetic_rows(space)
    assert {r["format_version"] for r in rows} == {ACC_DATASET_FORMAT_VERSION}
    assert {r["library_version"] for r in rows} == {supernet.__version__}
    _write_rows(tmp_path / ACC_DATASET, rows)
    data = read_accuracy_dataset(tmp_path / ACC_DATASET, space)
    assert data.rows() == rows


def test_the_seven_column_layout_1_is_still_read(tmp_path):
    space = get_space("mbv3-tiny")
    rows = _synthetic_rows(space)
    path = tmp_path / ACC_DATASET
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS[:7]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    data = read_accuracy_dataset(path, space)
    np.testing.assert_allclose(data.val_accuracy, [r["val_accuracy"] for r in rows])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": "3"}, r"has format_version \['2', '3'\]; this supernet reads 2"),
        (
            {"val_accuracy": "nan"},
            r"row 1: val_accuracy = 'nan' must be a number in \[0.0, 100.0\]",
        ),
        ({"val_accuracy": "101"}, r"row 1: val_accuracy = '101' must be a number"),
        ({"val_accuracy": "high"}, r"row 1: val_accuracy = 'high' must be a number"),
        ({"config": "{"}, r"row 1: arch config is not valid JSON"),
        ({"config": "[]"}, r"row 1: an arch config must be a mapping, got list"),
        ({"resolution": "99"}, r"row 1: resolution = '99', its config's is"),
        ({"index": "x"}, r"index = 'x' must be an integer >= 0"),
        ({"index": "5"}, r"row 1: the index column is not 0..2 in order"),
        ({"seed": "s"}, r"mixes seeds"),
    ],
)
def test_malformed_rows_are_named(tmp_path, change, message):
    space = get_space("mbv3-tiny")
    rows = _synthetic_rows(space)
    rows[1].update(change)
    path = tmp_path / ACC_DATASET
    _write_rows(path, rows)
    with pytest.raises(ConfigError, match=message):
        read_accuracy_dataset(path, space)


def test_short_long_or_binary_files_are_refused(tmp_path):
    space = get_space("mbv3-tiny")
    path = tmp_path / ACC_DATASET
    rows = _synthetic_rows(space)
    _write_rows(path, rows)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], lines[2].rsplit(",", 2)[0], *lines[3:]]) + "\n")
    with pytest.raises(ConfigError, match="row 1 does not have 9 fields"):
        read_accuracy_dataset(path, space)
    path.write_text("\n".join([*lines[:2], lines[2] + ",extra", *lines[3:]]) + "\n")
    with pytest.raises(ConfigError, match="row 1 does not have 9 fields"):
        read_accuracy_dataset(path, space)
    path.write_bytes(b"\xff\xfe" + "\n".join(lines).encode())
    with pytest.raises(ConfigError, match="is not an accuracy dataset"):
        read_accuracy_dataset(path, space)
    path.write_text(lines[0] + "\n")
    with pytest.raises(ConfigError, match="holds no subnets"):
        read_accuracy_dataset(path, space)


def test_rows_of_another_library_version_are_read_with_a_warning(tmp_path, caplog):
    space = get_space("mbv3-tiny")
    rows = [{**r, "library_version": "0.0.1"} for r in _synthetic_rows(space)]
    _write_rows(tmp_path / ACC_DATASET, rows)
    with caplog.at_level("WARNING", logger="supernet.predict.dataset"):
        data = read_accuracy_dataset(tmp_path / ACC_DATASET, space)
    assert len(data) == 3
    assert any("0.0.1" in r.getMessage() for r in caplog.records)


def _scorer_configs(space):
    rng = np.random.default_rng(7)
    return [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(2))]


@pytest.mark.parametrize("cache_bytes", [1 << 30, 0], ids=["cached", "no-cache"])
def test_scorer_equals_evaluate_subnet_with_and_without_the_cache(
    trained_run, monkeypatch, cache_bytes
):
    """Resized batches are kept per resolution when they fit in the cache; the scores (BN folded)
    equal a full re-calibration and evaluation of each subnet either way, up to one image."""
    monkeypatch.setattr(dataset, "_CACHE_BYTES", cache_bytes)
    run = load_run(trained_run, device="cpu")
    cfg = run.config
    calib = calibration_loader(run.splits.train, cfg.bn_calib_images, cfg.eval_batch_size, 0)
    val = BatchLoader(run.splits.val, cfg.eval_batch_size, shuffle=False, augment=False, limit=250)
    scorer = dataset._SubnetScorer(run.supernet, calib, val, run.device, cfg.channels_last)
    configs = _scorer_configs(run.space)
    for config in configs:
        score, _ = evaluate_subnet(run.supernet, config, calib=calib, data=val, device=run.device,
                                   channels_last=cfg.channels_last)  # fmt: skip
        assert scorer(config)[0] == pytest.approx(score.accuracy, abs=100 / 250 + 1e-9)
    resolutions = {c.resolution for c in configs}
    assert set(scorer.cache) == (resolutions if cache_bytes else set())
    assert len({round(scorer(c)[0], 6) for c in configs}) > 1  # the subnets do differ


def test_scorer_of_a_group_norm_supernet_equals_evaluate_subnet():
    """Group norm keeps no statistics: nothing is folded and the scores are exact."""
    torch.manual_seed(0)
    splits = load_digits()
    space = get_space("mbv3-tiny", num_classes=10)
    model = create_supernet(space, norm="gn").eval()
    calib = calibration_loader(splits.train, 64, 64, seed=0)
    val = BatchLoader(splits.val, 100, shuffle=False, augment=False, limit=200)
    scorer = dataset._SubnetScorer(model, calib, val, torch.device("cpu"), channels_last=False)
    for config in _scorer_configs(space):
        score, _ = evaluate_subnet(model, config, calib=calib, data=val, device=torch.device("cpu"))
        assert scorer(config)[0] == pytest.approx(score.accuracy, abs=1e-9)
    assert scorer.cache


def test_collect_writes_each_subnets_accuracy_on_the_two_halves(run_dir):
    from supernet.predict.halves import HALVES_FILE

    data = collect_accuracy_dataset(run_dir, n=2, seed=0, val_images=101, device="cpu")
    rows = _csv_rows(run_dir / HALVES_FILE)
    assert [int(r["index"]) for r in rows] == list(range(4))
    halves = data.half_accuracy
    assert halves.shape == (4, 2) and not np.isnan(halves).any()
    # 51 even- and 50 odd-indexed images make up the accuracy on all 101
    np.testing.assert_allclose((halves[:, 0] * 51 + halves[:, 1] * 50) / 101, data.val_accuracy)
    np.testing.assert_allclose(read_accuracy_dataset(run_dir / ACC_DATASET,
                                                     data.space).half_accuracy, halves)  # fmt: skip
    (run_dir / HALVES_FILE).unlink()  # a dataset collected before the halves: NaN, still read
    assert np.isnan(read_accuracy_dataset(run_dir / ACC_DATASET, data.space).half_accuracy).all()
