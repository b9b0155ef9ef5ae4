"""`supernet quantize`: help, the missing-extra message (exit 2) and bad inputs, without running
the (slow) converter."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import supernet.quant
from supernet.cli.app import app
from supernet.errors import MissingExtraError
from supernet.quant import INSTALL_HINT

runner = CliRunner()
WIDE = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}


@pytest.fixture
def extra_present(monkeypatch):
    """Pretend the MCU extra imports (the commands below fail before they would use it)."""
    monkeypatch.setattr(supernet.quant, "require", lambda module: None)


def _text(result):
    return " ".join(result.output.split())


def test_help_lists_every_option():
    result = runner.invoke(app, ["quantize", "--help"], env=WIDE)
    assert result.exit_code == 0
    text = _text(result)
    for option in ("--run-dir", "--out-dir", "--config", "--calib-images", "--qat-steps",
                   "--max-drop", "--test-images", "--tflm-images", "--seed"):  # fmt: skip
        assert option in text
    assert 'pip install -e ".[mcu]"' in text


def test_missing_extra_exits_2_with_the_install_hint(monkeypatch, tmp_path):
    def missing(module):
        raise MissingExtraError(f"{module} is not importable; install: {INSTALL_HINT}")

    monkeypatch.setattr(supernet.quant, "require", missing)
    result = runner.invoke(
        app, ["quantize", "--run-dir", str(tmp_path), "--out-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert f"error: litert_torch is not importable; install: {INSTALL_HINT}" in _text(result)
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--calib-images", "0"),
        ("--qat-steps", "-1"),
        ("--test-images", "0"),
        ("--max-drop", "-1"),
        ("--tflm-images", "0"),
    ],
)
def test_out_of_range_counts_are_refused(tmp_path, option, value):
    result = runner.invoke(
        app, ["quantize", "--run-dir", str(tmp_path), "--out-dir", str(tmp_path), option, value],
        env=WIDE,
    )  # fmt: skip
    assert result.exit_code == 2
    assert option in result.output


def test_a_directory_without_a_run_is_named(extra_present, tmp_path):
    result = runner.invoke(app, ["quantize", "--run-dir", str(tmp_path / "nope"), "--out-dir",
                                 str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 2
    assert "nope" in _text(result)
    assert "Traceback" not in result.output


def test_an_unknown_config_lists_the_allowed_forms(extra_present, trained_run, tmp_path):
    result = runner.invoke(app, ["quantize", "--run-dir", str(trained_run), "--out-dir",
                                 str(tmp_path), "--config", "biggest"])  # fmt: skip
    assert result.exit_code == 2
    assert "config = 'biggest' is not one of ('largest', 'middle', 'smallest')" in _text(result)
    assert not (tmp_path / "quant.json").exists()


def test_a_subnet_json_with_a_config_of_another_space_is_refused(extra_present, trained_run,
                                                                 tmp_path):  # fmt: skip
    path = tmp_path / "subnet.json"
    path.write_text(json.dumps({"config": {"resolution": 999, "kernel_size": [3],
                                           "expand_ratio": [3], "depth": [2]}}))  # fmt: skip
    result = runner.invoke(app, ["quantize", "--run-dir", str(trained_run), "--out-dir",
                                 str(tmp_path / "out"), "--config", str(path)])  # fmt: skip
    assert result.exit_code == 2
    assert f"config file '{path}'" in _text(result)
