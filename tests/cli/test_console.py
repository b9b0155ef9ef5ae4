"""The error wrapper every command uses: one escaped line, exit code 2."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from supernet.cli.console import friendly
from supernet.errors import ConfigError

runner = CliRunner()


def _app(error: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @friendly
    def fail() -> None:
        raise error

    return app


def test_multi_line_messages_become_one_line():
    result = runner.invoke(_app(ConfigError("bad value\n  in line 1\n    ^")), [])
    assert result.exit_code == 2
    assert result.stderr == "error: bad value in line 1 ^\n"


def test_markup_in_messages_is_printed_literally():
    result = runner.invoke(_app(ConfigError("space = '[/x]' or '[bold]b[/bold]'")), [])
    assert result.exit_code == 2
    assert result.stderr == "error: space = '[/x]' or '[bold]b[/bold]'\n"


def test_file_system_errors_are_friendly():
    error = PermissionError(13, "Permission denied", "/root/x.json")
    result = runner.invoke(_app(error), [])
    assert result.exit_code == 2
    assert result.stderr == "error: [Errno 13] Permission denied: '/root/x.json'\n"


def test_other_exceptions_are_not_hidden():
    result = runner.invoke(_app(KeyError("bug")), [])
    assert isinstance(result.exception, KeyError)
