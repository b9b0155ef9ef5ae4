"""``supernet proxyless``: the whole run from the command line, and its messages."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.nas import LatencyModel
from supernet.space import get_space

runner = CliRunner()
SPACE_NAME = "mbv3-tiny-w0.25-r20"
TINY = ["--space", SPACE_NAME, "--dataset", "digits", "--batch-size", "32", "--image-limit",
        "64", "--warmup-epochs", "1", "--search-epochs", "1", "--retrain-epochs", "1",
        "--arch-update-every", "1", "--measure-repeats", "0", "--no-export"]  # fmt: skip


def _out(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture
def lut(make_table, tmp_path):
    table = make_table(SPACE_NAME)
    return table, table.save(tmp_path / "lut.json")


def test_a_target_outside_the_bounds_is_refused_with_both(lut, tmp_path):
    table, path = lut
    lo, hi = LatencyModel.from_table(table, get_space(SPACE_NAME), 20).bounds_ms()
    run = tmp_path / "run"
    result = runner.invoke(app, ["proxyless", "--run-dir", str(run), "--lut", str(path),
                                 "--target-latency-ms", "0.5", *TINY])  # fmt: skip
    assert result.exit_code == 2
    assert f"fastest path {lo:.4f} ms, slowest path {hi:.4f} ms" in _out(result)
    assert not run.exists()


def test_a_table_of_another_space_is_refused(make_table, tmp_path):
    path = make_table("mbv3-tiny").save(tmp_path / "other.json")
    result = runner.invoke(app, ["proxyless", "--run-dir", str(tmp_path / "run"), "--lut",
                                 str(path), "--target-latency-ms", "5", *TINY])  # fmt: skip
    assert result.exit_code == 2
    assert "built for space 'mbv3-tiny', not 'mbv3-tiny-w0.25-r20'" in _out(result)


def test_no_table_says_what_to_give(tmp_path):
    result = runner.invoke(app, ["proxyless", "--run-dir", str(tmp_path), "--target-latency-ms",
                                 "5", *TINY])  # fmt: skip
    assert result.exit_code == 2
    assert "give --device (whose `lut` is used) or --lut" in _out(result)


@pytest.mark.slow
def test_the_command_searches_retrains_and_reports(lut, tmp_path):
    _, path = lut
    run = tmp_path / "run"
    result = runner.invoke(app, ["proxyless", "--run-dir", str(run), "--lut", str(path),
                                 "--target-latency-ms", "5", *TINY])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "result.json").read_text())
    assert f"test accuracy {summary['test_accuracy']:.2f}%" in _out(result)
    assert f"predicted {summary['predicted_latency_ms']:.3f} ms" in _out(result)
    assert "retrain epoch 1" in _out(result)
    assert (run / "alpha_history.png").stat().st_size > 1000


def test_a_device_without_a_table_says_how_to_build_one(tmp_path):
    result = runner.invoke(app, ["proxyless", "--run-dir", str(tmp_path / "run"), "--device",
                                 "cpu-ort", "--target-latency-ms", "5", *TINY])  # fmt: skip
    assert result.exit_code == 2
    expected = (
        "device 'cpu-ort' names no latency table (`lut`); build one with `supernet "
        f"latency build --space {SPACE_NAME} --runtime onnxruntime --out PATH`"
    )
    assert expected in _out(result)
