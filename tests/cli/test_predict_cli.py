"""`supernet predict collect|fit`: help, exact error messages, a small end-to-end."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.cli.predict import PREDICTOR_FILE
from supernet.predict import ACC_DATASET, DEFAULT_SUBNETS, AccuracyDataset, load_predictor
from supernet.space import get_space
from supernet.train.rundir import write_csv_atomic

runner = CliRunner()


def test_help_lists_the_commands_and_options():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "predict" in result.output
    result = runner.invoke(app, ["predict", "--help"])
    assert result.exit_code == 0 and "collect" in result.output and "fit" in result.output
    collect_help = runner.invoke(app, ["predict", "collect", "--help"]).output
    for option in ("--run-dir", "--n", "--seed", "--val-images", "--torch-device", "--force"):
        assert option in collect_help
    assert f"[default: {DEFAULT_SUBNETS}]" in collect_help
    fit_help = runner.invoke(app, ["predict", "fit", "--help"]).output
    for option in ("--run-dir", "--epochs", "--lr", "--holdout", "--seed", "--plot", "--out"):
        assert option in fit_help


def test_collect_without_a_run_is_one_red_line(tmp_path):
    result = runner.invoke(app, ["predict", "collect", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "holds no supernet run (no config.yaml)" in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def synthetic_run(tmp_path, tiny_config):
    """A run directory holding only config.yaml and a synthetic acc_dataset.csv (fit needs no
    checkpoint)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(tiny_config().to_yaml())
    space = get_space("mbv3-tiny")
    rng = np.random.default_rng(0)
    configs = tuple(space.sample(rng) for _ in range(30))
    acc = np.array([80.0 + c.resolution / 4 + sum(c.depth) / 5 for c in configs])
    rows = AccuracyDataset(space, 0, configs, acc, 100).rows()
    return run_dir, rows


def test_fit_without_a_dataset_says_how_to_collect_one(synthetic_run):
    run_dir, _ = synthetic_run
    result = runner.invoke(app, ["predict", "fit", "--run-dir", str(run_dir)])
    assert result.exit_code == 2
    assert f"error: no accuracy dataset at {run_dir / ACC_DATASET}; collect one with" in (
        " ".join(result.output.split())
    )


def test_fit_refuses_bad_values(synthetic_run):
    run_dir, rows = synthetic_run
    write_csv_atomic(run_dir / ACC_DATASET, rows[:4])
    result = runner.invoke(app, ["predict", "fit", "--run-dir", str(run_dir)])
    assert result.exit_code == 2
    assert "leave 3 to train and 1 to test; each needs >= 2 (collect more subnets)" in result.output
    result = runner.invoke(app, ["predict", "fit", "--run-dir", str(run_dir), "--holdout", "1"])
    assert result.exit_code == 2 and "--holdout 1.0 must be a fraction in (0, 1)" in result.output
    write_csv_atomic(run_dir / ACC_DATASET, [{**r, "space": "ofa-mbv3"} for r in rows])
    result = runner.invoke(app, ["predict", "fit", "--run-dir", str(run_dir)])
    assert result.exit_code == 2
    assert "was collected in space 'ofa-mbv3'; this run's space is 'mbv3-tiny'" in result.output


def test_fit_prints_the_table_and_saves_predictor_and_plot(synthetic_run):
    run_dir, rows = synthetic_run
    write_csv_atomic(run_dir / ACC_DATASET, rows)
    plot = run_dir / "plots" / "predictor.png"
    result = runner.invoke(app, ["predict", "fit", "--run-dir", str(run_dir), "--epochs", "30",
                                 "--plot", str(plot)])  # fmt: skip
    assert result.exit_code == 0, result.output
    for text in ("RMSE (pts)", "Kendall τ", "Spearman ρ", f"saved {run_dir / PREDICTOR_FILE}"):
        assert text in result.output
    _, meta = load_predictor(run_dir / PREDICTOR_FILE, get_space("mbv3-tiny"))
    assert meta["metrics"]["n_train"] == 24 and meta["metrics"]["n_holdout"] == 6
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_collect_then_fit_on_a_trained_run(tmp_path, trained_run):
    run_dir = shutil.copytree(trained_run, tmp_path / "run")
    args = ["predict", "collect", "--run-dir", str(run_dir), "--n", "4", "--val-images", "100"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"saved {run_dir / ACC_DATASET}" in result.output
    with open(run_dir / ACC_DATASET, newline="") as f:
        assert len(list(csv.DictReader(f))) == 6
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "(0 measured now" in again.output
    other = runner.invoke(app, [*args, "--seed", "3"])
    assert other.exit_code == 2
    assert "was collected with seed 0, this call uses seed 3" in other.output
    fit = runner.invoke(app, ["predict", "fit", "--run-dir", str(run_dir), "--epochs", "5",
                              "--holdout", "0.4"])  # fmt: skip
    assert fit.exit_code == 0, fit.output
    assert (run_dir / PREDICTOR_FILE).is_file()


def test_fit_reports_the_split_half_noise_ceiling_beside_rmse_and_tau(synthetic_run):
    from supernet.predict.halves import HALVES_FILE, halves_row

    run_dir, rows = synthetic_run
    write_csv_atomic(run_dir / ACC_DATASET, rows)
    args = ["predict", "fit", "--run-dir", str(run_dir), "--epochs", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "no noise ceiling: this dataset has no half accuracies" in (
        " ".join(result.output.split())
    )
    rng = np.random.default_rng(1)
    halves = [
        halves_row(
            i,
            float(r["val_accuracy"]) + rng.normal(0, 0.3),
            float(r["val_accuracy"]) + rng.normal(0, 0.3),
        )
        for i, r in enumerate(rows)
    ]
    write_csv_atomic(run_dir / HALVES_FILE, halves)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "noise ceiling (split-half, 30 subnets): a perfect predictor would score RMSE" in text
    assert "× the noise, τ" in text and "of the ceiling" in text
    assert "| noise ceiling (perfect predictor) |" in (run_dir / "predictor.md").read_text()


def test_collect_active_measures_random_then_picked_subnets_and_resumes(tmp_path, trained_run):
    from supernet.predict import read_accuracy_dataset, subnet_sequence

    run_dir = shutil.copytree(trained_run, tmp_path / "run")
    args = ["predict", "collect", "--run-dir", str(run_dir), "--n", "4", "--val-images", "60",
            "--active", "--active-round", "2"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    space = get_space("mbv3-tiny")
    data = read_accuracy_dataset(run_dir / ACC_DATASET, space)
    assert len(data) == 6
    assert list(data.configs[:4]) == subnet_sequence(space, 2, 0)  # anchors + n // 2 random
    keys = {c.to_json() for c in data.configs}
    assert len(keys) == 6  # the picks are new subnets
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "(0 measured now" in again.output
