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
    "OLD_DEVICE",
    "TORCH_DEVICE",
    "SingleValueCommand",
    "SupernetGroup",
    "check_writable",
    "console",
    "count",
    "err_console",
    "friendly",
    "hidden_aliases",
    "one_line",
    "print_usage_error",
    "repeated_option",
    "rewrite_aliases",
]

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

UsageError: type[Exception] = typer.BadParameter.__mro__[1]  # typer vendors click: no import
"""click's UsageError as typer vendors it (``typer._click``; BadParameter's base class)."""


TORCH_DEVICE = "PyTorch device to compute on: auto, cpu, cuda, cuda:N or mps"
"""``--torch-device`` help. ``--device`` names a target device (a profile: cpu-ort, stm32f746, a
device file) in search, latency and tinynas; where it used to name the PyTorch device (train,
eval, predict collect, transfer, privacy dlg) it is a hidden old spelling of --torch-device."""
OLD_DEVICE = {"--device": "--torch-device"}

Alias = str | tuple[str, str]
"""A hidden old spelling's target: the new option name, or ``(new name, unit suffix)`` when the
old option took a number in a unit the new one spells out (``--max-peak-memory-kb 256`` is
``--max-peak-memory 256KiB``)."""


def hidden_aliases(aliases: dict[str, Alias]) -> Callable[[F], F]:
    """Keep old option spellings of a command working for one release, out of ``--help``.

    ``aliases`` maps an old spelling to its new option (see :data:`Alias`). The command's
    :class:`SingleValueCommand` rewrites them before parsing and prints a one-line note naming
    the new spelling to stderr; the old and the new spelling together count as a repeat.
    """

    def decorate(f: F) -> F:
        f.__dict__.setdefault("hidden_aliases", {}).update(aliases)
        return f

    return decorate


def _aliases(command: Any) -> dict[str, Alias]:
    return getattr(getattr(command, "callback", None), "hidden_aliases", {})


def _options(command: Any) -> dict[str, Any]:
    """Option name → click parameter, hidden aliases included."""
    options: dict[str, Any] = {}
    for param in command.params:
        if hasattr(param, "is_flag"):  # an option, not a positional argument
            for name in (*param.opts, *param.secondary_opts):
                options[name] = param
    for old, new in _aliases(command).items():
        options[old] = options[new if isinstance(new, str) else new[0]]
    return options


def _scan(command: Any, args: list[str]):  # -> Iterator[(index, name, param, value|None, eq)]
    """Each option token of ``args``: its index, the name typed, the parameter, its value (or
    None for a flag) and whether it came as ``--name=value``; stops at ``--``."""
    options = _options(command)
    i = 0
    while i < len(args):
        token, start = args[i], i
        i += 1
        if token == "--":
            return
        name, eq, value = token.partition("=")
        param = options.get(name)
        if param is None or not token.startswith("-"):
            continue
        takes_value = not param.is_flag and not param.count
        if takes_value and not eq:
            if i >= len(args):
                return
            value, i = args[i], i + 1
        yield start, name, param, value if takes_value else None, bool(eq)


def repeated_option(command: Any, args: list[str]) -> str | None:
    """The message for the first single-valued option of ``command`` that ``args`` give twice.

    click keeps the last of repeated values without a word, so ``--runtime tvm ... --runtime
    torch`` would quietly run with ``torch``; a repeated option is almost always a mistake (an
    edited command line, a copied flag), so every command refuses it. Options declared
    repeatable (``--set``) are left alone. ``--flag`` and ``--no-flag`` count as the same option,
    and so do a hidden old spelling and its new one (see :func:`hidden_aliases`). ``command`` is
    a click command (typer vendors its own click, so it is duck-typed: options are the params
    with ``is_flag``). Returns None when no option repeats.
    """
    seen: dict[str, list[str]] = {}
    for _, name, param, value, _ in _scan(command, args):
        if param.multiple or param.count:
            continue
        shown = name if value is None else f"{name} {value!r}"
        seen.setdefault(param.name or name, []).append(shown)
        if len(seen[param.name or name]) == 2:
            first, second = seen[param.name or name]
            return f"{param.opts[0]} is given twice ({first}, then {second}); give each option once"
    return None


def rewrite_aliases(command: Any, args: list[str]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """``args`` with every hidden old spelling of ``command`` replaced by its new option (a unit
    suffix appended to the value where the alias has one), and the ``(old, new, suffix)``
    triples used."""
    aliases = _aliases(command)
    out, used = list(args), []
    for index, name, _, value, eq in _scan(command, args):
        if name not in aliases:
            continue
        new, suffix = (aliases[name], "") if isinstance(aliases[name], str) else aliases[name]
        used.append((name, new, suffix))
        if eq:
            out[index] = f"{new}={value}{suffix}"
        else:
            out[index] = new
            if suffix:
                out[index + 1] = f"{value}{suffix}"
    return out, used


class _NoFlagMetavar:
    """Help without a ``<bool>`` type beside flags (``--force``, ``--help``, ``--version``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class SingleValueCommand(_NoFlagMetavar, typer.core.TyperCommand):
    """A typer command that refuses a single-valued option given twice (see repeated_option),
    takes its hidden old spellings (see hidden_aliases) and shows flags without a type."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        message = repeated_option(self, args)
        if message is not None:
            raise UsageError(message, ctx=ctx)
        args, used = rewrite_aliases(self, args)
        for old, new, suffix in dict.fromkeys(used):
            now = f"{old} N is now {new} N{suffix}" if suffix else f"{old} is now {new}"
            err_console.print(
                f"note: {now}; the old spelling will be removed in the next release",
                highlight=False,
                soft_wrap=True,
            )
        return super().parse_args(ctx, args)


def _is(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is a click ``name`` exception (typer's vendored click: by class name)."""
    return any(k.__name__ == name for k in type(exc).__mro__)


class SupernetGroup(_NoFlagMetavar, typer.core.TyperGroup):
    """The ``supernet`` group: usage errors (unknown option, missing or bad value, repeated
    option) print one ``error: ...`` line and ``Try 'supernet CMD --help' for help.`` to stderr
    with exit code 2 — the style of every other error (see friendly) — instead of a box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        import sys

        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except Exception as exc:
            if not standalone_mode or not (_is(exc, "ClickException") or _is(exc, "Abort")):
                raise
            if _is(exc, "Abort"):
                err_console.print("aborted", highlight=False)
                sys.exit(1)
            if type(exc).__name__ != "NoArgsIsHelpError":  # the help is shown already
                print_usage_error(exc)
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code


def print_usage_error(exc: Any) -> None:
    """``error: MESSAGE`` and ``Try 'supernet CMD --help' for help.`` for a click error."""
    message = " ".join(exc.format_message().split())
    if message.startswith("Invalid value: "):  # a UsageError raised as BadParameter
        message = message[len("Invalid value: ") :]
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        err_console.print(
            f"Try '{escape(ctx.command_path)} {ctx.help_option_names[0]}' for help.",
            highlight=False,
            soft_wrap=True,
        )


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


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 thread``, ``2 threads``, ``0 images``: ``n`` with the noun in the right number."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def one_line(exc: BaseException) -> str:
    """The error's message on one line (YAML and JSON parsers put marks on lines of their own)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def friendly(func: F | None = None, *, on_interrupt: str = "interrupted") -> Any:
    """Turn supernet's documented errors, file-system errors (missing file, permission,
    directory where a file is expected) and a command's own ``typer.BadParameter`` checks into one
    red ``error:`` line and exit code 2 (Ctrl-C: 130). Errors click finds while parsing the
    command line print the same line (and where to get help) through :class:`SupernetGroup`.

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
