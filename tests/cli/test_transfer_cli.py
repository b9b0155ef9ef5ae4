"""`supernet transfer`: help with units, exact error messages, a fast end-to-end --compare."""

from __future__ import annotations

import csv
import json
import re

import pytest
from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.transfer import METHODS
from supernet.transfer.recipe import DEFAULT_EPOCHS, DEFAULT_SHIFT

runner = CliRunner()
WIDE = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}


def test_help_explains_every_option_with_units():
    result = runner.invoke(app, ["transfer", "--help"], env=WIDE)
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())  # help lines wrap inside the box
    for option in ("--run-dir", "--target", "--method", "--batch-size", "--subnet",
                   "--memory-budget", "--epochs", "--lr", "--seed", "--quantize-frozen",
                   "--no-quantize-frozen",
                   "--efficient", "--plain-autograd", "--out-dir", "--compare", "--batch-one",
                   "--force", "--train-limit", "--shift"):  # fmt: skip
        assert option in text
    for unit in ("Images per training step", "KiB/MiB/GiB (1024-based", "8 bits",
                 "kB/MB/GB (SI, 1000-based", "1 MiB = 1,048,576 bytes", "folder:PATH",
                 "largest, smallest, middle, adapt"):  # fmt: skip
        assert unit in text
    assert f"split [default: {DEFAULT_EPOCHS}]" in text  # the library's defaults, not a copy
    assert f"(0: none) [default: {DEFAULT_SHIFT}]" in text


def test_unknown_method_lists_the_known_ones(tmp_path):
    result = runner.invoke(app, ["transfer", "--run-dir", str(tmp_path), "--method", "lora"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"error: method = 'lora' is not known; choose from {METHODS}" in text
    assert "Traceback" not in result.output


def test_bad_memory_budget_is_named(tmp_path):
    result = runner.invoke(app, ["transfer", "--run-dir", str(tmp_path), "--subnet", "adapt",
                                 "--memory-budget", "lots"])  # fmt: skip
    assert result.exit_code == 2
    assert "memory = 'lots' is not a size" in " ".join(result.output.split())


def test_budget_without_adapt_is_refused(tmp_path):
    result = runner.invoke(app, ["transfer", "--run-dir", str(tmp_path), "--memory-budget", "2MB"])
    assert result.exit_code == 2
    assert "--memory-budget needs --subnet adapt" in " ".join(result.output.split())


def test_a_missing_run_is_one_red_line(tmp_path):
    result = runner.invoke(app, ["transfer", "--run-dir", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "Traceback" not in result.output


@pytest.mark.slow
def test_compare_writes_csv_md_and_png_with_every_method(trained_run, tmp_path):
    out = tmp_path / "cmp"
    args = ["transfer", "--run-dir", str(trained_run), "--compare", "--subnet", "smallest",
            "--epochs", "1", "--train-limit", "16", "--batch-size", "16", "--torch-device", "cpu",
            "--threads", "1", "--out-dir", str(out)]  # fmt: skip
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    with open(out / "transfer.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["key"] for r in rows] == [*METHODS, "tinytl-l+b/fp32-frozen"]
    assert [r["quantize_frozen"] for r in rows] == ["True"] * 6 + ["False"]
    md = (out / "transfer.md").read_text()
    for key in (*METHODS, "tinytl-l+b/fp32-frozen"):
        assert f"| {key} | 16 |" in md
    assert "× less (paper)" in md and "measured/modelled" in md
    assert (out / "transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads((out / "transfer.json").read_text())["rows"]) == 7
    # a rerun continues: everything is kept
    again = runner.invoke(app, args, env=WIDE)
    assert again.exit_code == 0
    assert "kept from an earlier run: full, last" in " ".join(again.output.split())


def test_a_budget_no_candidate_fits_names_the_smallest_need(trained_run, tmp_path):
    result = runner.invoke(app, ["transfer", "--run-dir", str(trained_run), "--subnet", "adapt",
                                 "--memory-budget", "1KB", "--adapt-samples", "0", "--threads",
                                 "1", "--out-dir", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert (
        "error: memory budget 1,000 B fits none of the 3 candidate subnets for tinytl-l+b at "
        "batch size 8; the smallest need found is" in text
    )
    assert re.search(r"is [0-9,]+ B \([0-9.]+ (KiB|MiB)\) \(smallest: r20", text)


@pytest.mark.slow
def test_adapt_chooses_a_subnet_and_reports_the_candidates(trained_run, tmp_path):
    result = runner.invoke(app, ["transfer", "--run-dir", str(trained_run), "--subnet", "adapt",
                                 "--adapt-samples", "0", "--method", "last", "--epochs", "1",
                                 "--train-limit", "16", "--threads", "1", "--out-dir",
                                 str(tmp_path)], env=WIDE)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "adaptation chose" in result.output
    with open(tmp_path / "candidates.csv", newline="") as f:
        assert [r["name"] for r in csv.DictReader(f)] == ["largest", "smallest", "middle"]
    assert "## Feature-extractor adaptation (last, batch 8, budget none)" in (
        tmp_path / "transfer.md").read_text()  # fmt: skip
