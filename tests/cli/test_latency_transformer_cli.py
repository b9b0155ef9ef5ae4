"""`supernet latency build-transformer` / `fit-transformer`: files written, messages."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from supernet.cli.app import app

runner = CliRunner()


def test_build_then_fit(tmp_path) -> None:
    data = tmp_path / "lat.json"
    args = ["latency", "build-transformer", "--out", str(data), "--vocab-size", "50",
            "--configs", "4", "--repeats", "1", "--warmup", "0", "--source-tokens", "3",
            "--target-tokens", "3"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 SubTransformers in" in result.output
    rows = json.loads(data.read_text())["rows"]
    assert len(rows) == 4 and all(r["cpu_ms"] > 0 for r in rows)
    pred = tmp_path / "pred.pt"
    args = ["latency", "fit-transformer", "--dataset", str(data), "--out", str(pred),
            "--holdout", "2", "--steps", "3", "--statistic", "cpu"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "held out 2 of 4 configs (trained on 2): MAPE" in result.output
    assert pred.exists()


def test_bad_input_is_named(tmp_path) -> None:
    result = runner.invoke(app, ["latency", "build-transformer", "--out", str(tmp_path / "a.json"),
                                 "--space", "mbv3-tiny"])  # fmt: skip
    assert result.exit_code == 2
    assert "unknown transformer space 'mbv3-tiny'" in result.output
    result = runner.invoke(app, ["latency", "fit-transformer", "--dataset", str(tmp_path / "no"),
                                 "--out", str(tmp_path / "p.pt")])  # fmt: skip
    assert result.exit_code == 2 and "does not exist" in result.output
