"""What every command shares: the consoles and the error-to-exit-code wrapper."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from supernet.errors import ConfigError, SupernetError

__all__ = [
    "SingleValueCommand",
    "check_writable",
    "console",
    "err_console",
    "friendly",
    "one_line",
    "repeated_option",
]

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def repeated_option(command: Any, args: list[str]) -> str | None:
    """The message for the first single-valued option of ``command`` that ``args`` give twice.

    click keeps the last of repeated values without a word, so ``--runtime tvm ... --runtime
    torch`` would quietly run with ``torch``; a repeated option is almost always a mistake (an
    edited command line, a copied flag), so every command refuses it. Options declared
    repeatable (``--set``) are left alone. ``--flag`` and ``--no-flag`` count as the same option.
    ``command`` is a click command (typer vendors its own click, so it is duck-typed: options are
    the params with ``is_flag``). Returns None when no option repeats.
    """
    options: dict[str, Any] = {}
    for param in command.params:
        if hasattr(param, "is_flag"):  # an option, not a positional argument
            for name in (*param.opts, *param.secondary_opts):
                options[name] = param
    seen: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            break
        name, eq, value = token.partition("=")
        param = options.get(name)
        if param is None or not token.startswith("-"):
            continue
        takes_value = not param.is_flag and not param.count
        if takes_value and not eq and i < len(args):
            value, i = args[i], i + 1
        if param.multiple or param.count:
            continue
        shown = f"{name} {value!r}" if takes_value else name
        seen.setdefault(param.name or name, []).append(shown)
        if len(seen[param.name or name]) == 2:
            first, second = seen[param.name or name]
            return f"{param.opts[0]} is given twice ({first}, then {second}); give each option once"
    return None


class SingleValueCommand(typer.core.TyperCommand):
    """A typer command that refuses a single-valued option given twice (see repeated_option)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        message = repeated_option(self, args)
        if message is not None:
            raise typer.BadParameter(message, ctx=ctx)
        return super().parse_args(ctx, args)


def check_writable(path: Path, option: str) -> None:
    """Refuse, before any work, an output ``path`` that could not be written.

    The path must not be a folder, and its nearest existing folder must be writable (missing
    folders below it are created by the writers). ``option`` (``--out``) names the flag in the
    message, so a long measurement never ends on a write error.

    Raises:
        ConfigError: the path is a folder, sits below a file, or its folder is not writable.
    """
    if path.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{option} {str(path)!r} exists and is not writable")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{option} {str(path)!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{option} {str(path)!r}: cannot write into the folder {str(parent)!r} (permission "
            "denied); choose another path"
        )


def one_line(exc: BaseException) -> str:
    """The error's message on one line (YAML and JSON parsers put marks on lines of their own)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def friendly(func: F | None = None, *, on_interrupt: str = "interrupted") -> Any:
    """Turn supernet's documented errors, file-system errors (missing file, permission,
    directory where a file is expected) and a command's own ``typer.BadParameter`` checks into one
    red ``error:`` line and exit code 2 (Ctrl-C: 130). Errors click finds while parsing the
    command line keep click's usage message.

    Use as ``@friendly`` or ``@friendly(on_interrupt="interrupted; resume with --resume")``.
    """

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return f(*args, **kwargs)
            except (SupernetError, OSError) as exc:
                err_console.print(
                    f"[red]error:[/red] {escape(one_line(exc))}", highlight=False, soft_wrap=True
                )
                raise typer.Exit(2) from None
            except typer.BadParameter as exc:  # a command's own check: the same one-line style
                err_console.print(
                    f"[red]error:[/red] {escape(' '.join(exc.message.split()))}",
                    highlight=False,
                    soft_wrap=True,
                )
                raise typer.Exit(2) from None
            except KeyboardInterrupt:
                err_console.print(on_interrupt)
                raise typer.Exit(130) from None

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
