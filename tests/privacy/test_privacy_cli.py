"""`supernet privacy dlg`: the command on a tiny LeNet writes its table and plots; bad input
gets one clear line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.privacy import DEFENSES

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


def test_dlg_on_a_tiny_lenet_writes_table_grid_and_curves(tmp_path):
    out = tmp_path / "dlg"
    args = [
        "privacy",
        "dlg",
        "--model",
        "lenet",
        "--dataset",
        "digits",
        "--image-size",
        "8",
        "--seeds",
        "1",
        "--iterations",
        "2",
        "--defense",
        "none",
        "--defense",
        "pruning:0.5",
        "--threads",
        "1",
        "--out-dir",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "privacy.md",
        "privacy.json",
        "reconstructions.png",
        "psnr_curves.png",
    }
    md = (out / "privacy.md").read_text()
    assert "| LeNet (sigmoid) on digits 8×8 | – | none | dlg |" in md
    assert "| pruning:0.5 |" in md
    rows = json.loads((out / "privacy.json").read_text())
    assert [(r["defense"], len(r["seeds"])) for r in rows] == [("none", 1), ("pruning:0.5", 1)]
    assert all(len(s["psnr_curve"]) == 3 for r in rows for s in r["seeds"])  # 2 steps + final
    assert (out / "reconstructions.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_defense_lists_the_allowed_ones(tmp_path):
    result = runner.invoke(
        app,
        ["privacy", "dlg", "--model", "lenet", "--defense", "blur:2", "--out-dir", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert f"error: defense = 'blur:2' is not known; allowed: {', '.join(DEFENSES)}" in _text(
        result
    )
    assert "Traceback" not in result.output


def test_batch_size_above_the_attacks_limit(tmp_path):
    result = runner.invoke(
        app,
        [
            "privacy",
            "dlg",
            "--model",
            "lenet",
            "--dataset",
            "digits",
            "--batch-size",
            "9",
            "--out-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "batch size = 9 is not supported by the attack; allowed: 1..8" in _text(result)


def test_a_run_or_the_lenet_is_needed_and_run_is_an_alias(tmp_path):
    result = runner.invoke(app, ["privacy", "dlg"])
    assert result.exit_code == 2
    assert "give --run-dir (a trained supernet) or --model lenet" in _text(result)
    result = runner.invoke(
        app, ["privacy", "dlg", "--run-dir", str(tmp_path), "--run", str(tmp_path)]
    )
    assert "--run-dir is given twice (--run-dir" in _text(result)
    result = runner.invoke(app, ["privacy", "dlg", "--model", "lenet", "--method", "full"])
    assert "--method needs --model transfer" in _text(result)
    result = runner.invoke(app, ["privacy", "dlg", "--run", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
