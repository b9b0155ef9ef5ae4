"""One naming scheme across commands, old spellings still accepted; small message fixes
(issue 22, items 8 and 10)."""

import os

import typer
from typer.testing import CliRunner

from supernet.checkpoint import write_text_atomic
from supernet.cli.app import app

runner = CliRunner()


def _out(result) -> str:
    return " ".join(result.output.split())


def test_transfer_takes_run_dir_like_every_command_and_still_the_old_run(tmp_path):
    new = runner.invoke(app, ["transfer", "--run-dir", str(tmp_path / "nope")])
    old = runner.invoke(app, ["transfer", "--run", str(tmp_path / "nope")])
    assert new.exit_code == old.exit_code == 2
    assert _out(new) == _out(old)
    assert f"run directory '{tmp_path / 'nope'}' does not exist" in _out(new)
    both = runner.invoke(app, ["transfer", "--run", "a", "--run-dir", "b"])
    assert both.exit_code == 2 and "is given twice" in _out(both)


def test_search_help_states_the_memory_unit():
    search = typer.main.get_command(app).commands["search"]
    helps = {p.name: p.help for p in search.params}
    assert "in KiB (1 KiB = 1024 bytes" in helps["max_peak_memory_kb"]
    assert "in KiB (1024 bytes" in helps["max_model_size_kb"]


def test_a_partial_arch_config_names_only_what_is_missing():
    result = runner.invoke(app, ["cost", "--config", '{"resolution": 32}'])
    assert result.exit_code == 2
    assert (
        "error: arch config keys: missing ['kernel_size', 'expand_ratio', 'depth']; an arch "
        "config has all of ['resolution', 'kernel_size', 'expand_ratio', 'depth']"
    ) in _out(result)
    assert "unknown []" not in _out(result)


def test_run_files_are_written_with_the_checkpoints_mode(tmp_path):
    write_text_atomic(tmp_path / "config.yaml", "a: 1\n")
    assert os.stat(tmp_path / "config.yaml").st_mode & 0o777 == 0o644


def test_a_commands_own_check_is_an_error_line_like_every_other_error(tmp_path):
    result = runner.invoke(app, ["predict", "fit", "--run-dir", str(tmp_path), "--holdout", "2"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --holdout 2.0 must be a fraction in (0, 1)"
