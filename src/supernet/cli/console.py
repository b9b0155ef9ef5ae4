"""What every command shares: the consoles and the error-to-exit-code wrapper."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from supernet.errors import SupernetError

__all__ = ["console", "err_console", "friendly", "one_line"]

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def one_line(exc: BaseException) -> str:
    """The error's message on one line (YAML and JSON parsers put marks on lines of their own)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def friendly(func: F | None = None, *, on_interrupt: str = "interrupted") -> Any:
    """Turn supernet's documented errors, and file-system errors (missing file, permission,
    directory where a file is expected), into one red line and exit code 2 (Ctrl-C: 130).

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
            except KeyboardInterrupt:
                err_console.print(on_interrupt)
                raise typer.Exit(130) from None

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
