import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from supernet.checkpoint import load_checkpoint, new_file_mode
from supernet.cli.app import app

runner = CliRunner()


def test_help_explains_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "eval", "spaces"):
        assert command in result.output
    train_help = runner.invoke(app, ["train", "--help"]).output
    for option in ("--preset", "--run-dir", "--resume", "--force", "--set"):
        assert option in train_help
    assert "progressive shrinking" in train_help


def test_unknown_preset_is_one_line_and_exit_code_2():
    result = runner.invoke(app, ["train", "--preset", "nope", "--run-dir", "x"])
    assert result.exit_code == 2
    assert "error: unknown preset 'nope'; choose from" in result.output
    assert "Traceback" not in result.output


def test_bad_override_names_the_value():
    result = runner.invoke(
        app, ["train", "--preset", "fashion-mnist-quick", "--set", "batch_size=0", "--run-dir", "x"]
    )
    assert result.exit_code == 2
    assert "batch_size = 0 must be an integer >= 1" in result.output


def test_eval_of_a_directory_without_a_run(tmp_path):
    result = runner.invoke(app, ["eval", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "holds no supernet run (no config.yaml)" in result.output


def test_spaces_lists_presets():
    result = runner.invoke(app, ["spaces", "mbv3-tiny"])
    assert result.exit_code == 0 and "mbv3-tiny" in result.output
    assert runner.invoke(app, ["spaces", "bogus"]).exit_code == 2


@pytest.fixture
def tiny_yaml(tmp_path, tiny_config):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_config().to_yaml())
    return path


def test_train_then_eval_writes_the_table(tmp_path, tiny_yaml):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(tiny_yaml), "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["eval", "--run-dir", str(run), "--split", "val"])
    assert result.exit_code == 0, result.output
    with open(run / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["subnet"] for r in rows] == ["largest", "middle", "smallest"]
    macs = [int(r["macs"]) for r in rows]
    params = [int(r["params"]) for r in rows]
    assert macs[0] > macs[1] > macs[2] > 0 and params[0] > params[1] > params[2]
    table = (run / "eval.md").read_text()
    calib = yaml.safe_load(tiny_yaml.read_text())["bn_calib_images"]  # fewer than the split holds
    assert "| largest |" in table and f"re-calibrated on {calib:,} training images" in table
    bad = runner.invoke(app, ["eval", "--run-dir", str(run), "--split", "train"])
    assert bad.exit_code == 2 and "split = 'train' is not allowed" in bad.output
    # every run file has the mode of a new file (0644 under umask 022), checkpoints included
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in run.iterdir()}
    assert {"config.yaml", "metrics.csv", "checkpoint.pt", "eval.csv"} <= set(modes)
    assert set(modes.values()) == {oct(new_file_mode())}, modes


def test_sigkilled_run_resumes_with_the_same_phase_sequence(tmp_path, tiny_yaml):
    """Kill the CLI with SIGKILL after its first checkpoint, resume, and finish the schedule."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    cmd = [sys.executable, "-m", "supernet", "train", "--config", str(tiny_yaml),
           "--run-dir", str(run)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    payload, _ = load_checkpoint(run / "checkpoint.pt")
    assert payload["phase_index"] < 4, "the run finished before it was killed"
    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    cfg = yaml.safe_load(tiny_yaml.read_text())
    expected = [(p["name"], e + 1) for p in cfg["phases"] for e in range(p["epochs"])]
    with open(run / "metrics.csv") as f:
        assert [(r["phase"], int(r["epoch"])) for r in csv.DictReader(f)] == expected
    payload, _ = load_checkpoint(run / "checkpoint.pt")
    assert payload["phase_index"] == len(cfg["phases"])
