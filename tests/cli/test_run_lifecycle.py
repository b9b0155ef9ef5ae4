"""A run's life on the command line: fresh start, resume, force, failed starts, derived files
(issue 22, items 1, 4, 6, 7)."""

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.train.derived import MANIFEST, checkpoint_digest, derived_digest

runner = CliRunner()


@pytest.fixture
def tiny_yaml(tmp_path, tiny_config):
    path = tmp_path / "tiny.yaml"
    full = {"name": "full", "epochs": 1, "lr": 0.05, "kernel_sizes": "max",
            "expand_ratios": "max", "depths": "max", "distill": False}  # fmt: skip
    path.write_text(tiny_config(phases=[full]).to_yaml())
    return path


def _train(*args):
    return runner.invoke(app, ["train", *map(str, args)])


def _out(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_resume_says_where_it_continues(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run")
    result = _train("--resume", "--run-dir", run)
    assert result.exit_code == 0, result.output
    assert f"resuming preset test-trained-run (mbv3-tiny on digits) in {run}" in _out(result)
    assert "the run had finished: all phases are trained, nothing to resume" in _out(result)


def test_resume_without_a_checkpoint_is_an_error_and_writes_nothing(tmp_path, tiny_yaml):
    run = tmp_path / "run"
    result = _train("--config", tiny_yaml, "--run-dir", run, "--resume")
    assert result.exit_code == 2
    assert f"error: nothing to resume: '{run}' does not exist; start the run without --resume" in (
        _out(result)
    )
    assert not run.exists()
    run.mkdir()
    (run / "config.yaml").write_text(tiny_yaml.read_text())
    result = _train("--resume", "--run-dir", run)
    assert result.exit_code == 2
    assert (
        f"error: nothing to resume: '{run}' holds a run that stopped before its first checkpoint "
        "(no checkpoint.pt); start it again with --force"
    ) in _out(result)


def test_resume_and_force_together_are_refused(tmp_path, tiny_yaml):
    result = _train("--config", tiny_yaml, "--run-dir", tmp_path / "run", "--resume", "--force")
    assert result.exit_code == 2
    assert "error: --resume and --force contradict each other" in _out(result)
    assert not (tmp_path / "run").exists()


def test_a_failed_start_leaves_no_half_made_run(tmp_path, tiny_yaml, monkeypatch):
    """Missing data: nothing written, and the retry is not refused as 'already holds a run'."""
    monkeypatch.setenv("SUPERNET_DATA", str(tmp_path / "no-data"))
    run = tmp_path / "run"
    data = yaml.safe_load(tiny_yaml.read_text())
    data["dataset"] = "fashion-mnist"
    fm = tmp_path / "fm.yaml"
    fm.write_text(yaml.safe_dump(data))
    result = _train("--config", fm, "--run-dir", run)
    assert result.exit_code == 2 and "error:" in result.output
    assert not run.exists()  # so a retry is not refused as "already holds a run"


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.9])
def test_a_truncated_run_config_says_so(trained_run, tmp_path, cut):
    run = shutil.copytree(trained_run, tmp_path / "run")
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text[: int(len(text) * cut)])
    result = runner.invoke(app, ["eval", "--run-dir", str(run)])
    assert result.exit_code == 2
    assert "truncated or not YAML" in _out(result)
    assert "restore it, or start the run again with --force" in _out(result)
    assert "phases is empty" not in _out(result)


def test_a_bad_set_value_is_blamed_on_set_not_on_the_file(tmp_path, tiny_yaml):
    result = _train("--config", tiny_yaml, "--run-dir", tmp_path / "r", "--set", "batch_size=-3")
    assert result.exit_code == 2
    assert "error: --set batch_size: batch_size = -3 must be an integer >= 1" in _out(result)
    assert "config file" not in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_yaml.read_text().replace("batch_size: 32", "batch_size: -1"))
    result = _train("--config", bad, "--run-dir", tmp_path / "r2", "--set", "seed=1")
    assert result.exit_code == 2
    assert f"error: config file '{bad}': batch_size = -1" in _out(result)


@pytest.mark.slow
def test_force_removes_what_was_derived_from_the_old_checkpoint_and_says_which(
    trained_run, tmp_path
):
    run = shutil.copytree(trained_run, tmp_path / "run")
    collect = ["predict", "collect", "--run-dir", str(run), "--n", "4", "--val-images", "32",
               "--torch-device", "cpu"]  # fmt: skip
    assert runner.invoke(app, collect).exit_code == 0
    fit = ["predict", "fit", "--run-dir", str(run), "--epochs", "5", "--holdout", "0.4"]
    assert runner.invoke(app, fit).exit_code == 0, runner.invoke(app, fit).output
    old = checkpoint_digest(run)
    assert derived_digest(run, "acc_dataset.csv") == old == derived_digest(run, "predictor.pt")
    saved = {n: (run / n).read_bytes() for n in ("acc_dataset.csv", "predictor.pt", MANIFEST)}

    result = _train("--force", "--run-dir", run, "--config", tmp_path / "cfg.yaml")
    assert result.exit_code == 2  # no such config: nothing removed before the inputs are good
    assert (run / "acc_dataset.csv").exists()
    (tmp_path / "cfg.yaml").write_text((run / "config.yaml").read_text())
    result = _train("--force", "--run-dir", run, "--config", tmp_path / "cfg.yaml")
    assert result.exit_code == 0, result.output
    assert (
        "--force: removed the old run's acc_dataset.csv, predictor.pt, predictor.md, "
        "config.yaml, checkpoint.pt, metrics.csv from"
    ) in _out(result)
    assert not (run / "acc_dataset.csv").exists() and not (run / "predictor.pt").exists()

    # The old network's files put back by hand are refused or made again, never used.
    for name, data in saved.items():
        (run / name).write_bytes(data)
    assert checkpoint_digest(run) != old
    result = runner.invoke(app, fit)
    assert result.exit_code == 2
    assert "acc_dataset.csv' was made from another checkpoint than the one" in (_out(result))
    assert f"`supernet predict collect --run-dir {run}`" in _out(result)
    result = runner.invoke(app, ["search", "--run-dir", str(run), "--max-macs", "1e9",
                                 "--generations", "1", "--population", "4"])  # fmt: skip
    assert result.exit_code == 2
    assert "predictor.pt' was made from another checkpoint" in _out(result)
    result = runner.invoke(app, collect)
    assert result.exit_code == 0
    assert "was measured on an earlier checkpoint of this run; discarding it" in (_out(result))
    assert derived_digest(run, "acc_dataset.csv") == checkpoint_digest(run)
