"""A single-valued option given twice is refused (exit 2, a message naming it), on every command."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.cli.console import SingleValueCommand, repeated_option

runner = CliRunner()


def _leaves(command, path: tuple[str, ...] = ()):
    if hasattr(command, "commands"):  # a group (typer vendors click: no isinstance on click's)
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path, command


LEAVES = list(_leaves(typer.main.get_command(app)))
SINGLE_VALUED = [
    (path, param.opts[0])
    for path, command in LEAVES
    for param in command.params
    if hasattr(param, "is_flag") and not (param.multiple or param.is_flag or param.count)
]


def test_every_command_refuses_repeats():
    """A command added without the strict class would silently keep the last value again."""
    assert len(LEAVES) >= 10
    loose = [
        " ".join(path) for path, command in LEAVES if not isinstance(command, SingleValueCommand)
    ]
    assert loose == []


@pytest.mark.parametrize(("path", "option"), SINGLE_VALUED, ids=lambda v: str(v))
def test_a_repeated_value_option_is_refused(path, option):
    result = runner.invoke(app, [*path, option, "first", option, "second"])
    assert result.exit_code == 2
    text = " ".join(result.output.replace("│", " ").split())  # typer's box may wrap the line
    assert f"{option} is given twice" in text
    assert "'first'" in text and "'second'" in text


def test_the_latency_build_case_from_the_issue_is_refused_before_any_work(tmp_path):
    """`--runtime tvm ... --runtime torch` used to measure with torch (issue 22, item 0)."""
    args = ["latency", "build", "--runtime", "tvm", "--seed", "0", "--runtime", "torch",
            "--out", str(tmp_path / "lut.json")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "given twice" in result.output
    assert "'tvm'" in result.output and "'torch'" in result.output
    assert not (tmp_path / "lut.json").exists()


def test_message_names_both_values_and_handles_equals_and_negated_flags():
    command = typer.main.get_command(app).commands["train"]
    assert repeated_option(command, ["--preset=a", "--run-dir", "r", "--preset", "b"]) == (
        "--preset is given twice (--preset 'a', then --preset 'b'); give each option once"
    )
    assert repeated_option(command, ["--resume", "--no-resume"]) == (
        "--resume is given twice (--resume, then --no-resume); give each option once"
    )


def test_repeatable_options_values_and_the_separator_are_not_repeats():
    command = typer.main.get_command(app).commands["train"]
    assert repeated_option(command, ["--set", "a=1", "--set", "b=2", "--preset", "x"]) is None
    # a value that looks like an option is a value, not a second --preset
    assert repeated_option(command, ["--run-dir", "--preset", "--preset", "p"]) is None
    assert repeated_option(command, ["--preset", "a", "--", "--preset", "b"]) is None
