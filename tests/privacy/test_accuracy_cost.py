"""The accuracy cost of a defense: the transfer task trained on defended updates only."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.errors import ConfigError
from supernet.privacy import Defense, defense_accuracy_cost, parse_defense


def test_the_baseline_trains_first_and_each_defense_reports_its_drop(trained_run):
    seen = []
    rows = defense_accuracy_cost(
        trained_run, "bias+last", [parse_defense("gaussian:1000"), Defense("none")],
        epochs=1, train_limit=64, on_result=seen.append,
    )  # fmt: skip
    assert [r.defense for r in rows] == ["none", "gaussian:1000"] == [r.defense for r in seen]
    none, noisy = rows
    assert none.drop_points == 0.0
    assert noisy.drop_points == pytest.approx(none.test_accuracy - noisy.test_accuracy)
    assert none.steps == noisy.steps == 8  # 64 images in batches of 8
    # noise a million times larger than the gradients leaves the classifier at chance or below
    assert noisy.test_accuracy < none.test_accuracy
    again = defense_accuracy_cost(trained_run, "bias+last", [Defense("none")], epochs=1,
                                  train_limit=64)  # fmt: skip
    assert again[0].test_accuracy == none.test_accuracy  # same weights, order and recipe


def test_no_defense_is_refused(trained_run):
    with pytest.raises(ConfigError, match="defenses is empty"):
        defense_accuracy_cost(trained_run, "bias+last", [])


def test_the_cli_writes_the_table_with_none_first(trained_run, tmp_path):
    out = tmp_path / "cost"
    result = CliRunner().invoke(app, [
        "privacy", "cost", "--run-dir", str(trained_run), "--method", "last", "--defense",
        "int8", "--epochs", "1", "--train-limit", "32", "--out-dir", str(out), "--threads", "1",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = (out / "privacy_cost.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| last |")]
    assert [r.split("|")[2].strip() for r in rows] == ["none", "int8"]
    assert "| +0.00 |" in rows[0]
    payload = json.loads((out / "privacy_cost.json").read_text())
    assert [r["defense"] for r in payload["rows"]] == ["none", "int8"]
    bad_args = ["--defense", "pruning:2", "--out-dir", str(tmp_path / "x")]
    bad = CliRunner().invoke(app, ["privacy", "cost", "--run-dir", str(trained_run), *bad_args])
    assert bad.exit_code == 2
    assert "pruning:2" in bad.output and not (tmp_path / "x").exists()
