"""Sizes in bytes: one convention for every option, file and printout.

Files (device files, JSON, CSV) hold plain bytes. Printouts use IEC binary prefixes, as the
microcontroller code and MCUNet's budgets do: 1 KiB = 1024 bytes, 1 MiB = 1024² bytes. A size
given on the command line is bytes (``327680``), or a number with an IEC unit (``320KiB``,
``4MiB``, ``1GiB``) or, written out as such, an SI unit (``512kB`` = 512,000 bytes, ``4MB`` =
4,000,000 bytes, ``1GB`` = 10⁹ bytes); units are case-insensitive (``KB`` = ``kB`` = 1000).
"""

from __future__ import annotations

import math
import re

from supernet.errors import ConfigError

__all__ = ["KIB", "MIB", "SIZE_HELP", "format_bytes", "format_size", "parse_size"]

KIB = 2**10
MIB = 2**20
GIB = 2**30
_UNITS = {"": 1, "b": 1, "kib": KIB, "mib": MIB, "gib": GIB, "kb": 10**3, "mb": 10**6,
          "gb": 10**9}  # fmt: skip
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", re.IGNORECASE)

SIZE_HELP = (
    "bytes (327680), or a number with KiB/MiB/GiB (1024-based: 320KiB = 327,680 bytes) or "
    "kB/MB/GB (SI, 1000-based: 4MB = 4,000,000 bytes)"
)
"""What every size option accepts, for its ``--help``."""


def parse_size(text: str | int, *, name: str = "size") -> int:
    """Bytes from ``"327680"``, ``"320KiB"``, ``"2.5 MiB"``, ``"512kB"``, ``"4MB"``, rounded down.

    KiB/MiB/GiB are 2¹⁰/2²⁰/2³⁰ bytes, kB/MB/GB 10³/10⁶/10⁹ bytes (units case-insensitive); an
    int is bytes. ``name`` (``--max-sram``, ``memory``) names the value in the error.

    Raises:
        ConfigError: not a positive number, an unknown unit, or less than 1 byte.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = _SIZE.fullmatch(str(text))
        if match is None or match.group(2).lower() not in _UNITS:
            raise ConfigError(
                f"{name} = {text!r} is not a size; give bytes or a number with KiB, MiB, GiB "
                "(1024-based) or kB, MB, GB (1000-based), e.g. 320KiB"
            )
        value, unit = float(match.group(1)), match.group(2).lower()
    if not math.isfinite(value) or math.floor(value * _UNITS[unit]) < 1:
        raise ConfigError(f"{name} = {text!r} must be at least 1 byte")
    return math.floor(value * _UNITS[unit])


def format_size(value: float) -> str:
    """``1000 B``, ``320.0 KiB``, ``3.81 MiB``, ``1.50 GiB``: bytes in the largest IEC unit ≤ it."""
    if abs(value) < KIB:
        return f"{value:,.0f} B"
    if abs(value) < MIB:
        return f"{value / KIB:,.1f} KiB"
    if abs(value) < GIB:
        return f"{value / MIB:,.2f} MiB"
    return f"{value / GIB:,.2f} GiB"


def format_bytes(value: float) -> str:
    """``327,680 B (320.0 KiB)``: exact bytes, and the IEC size when it is at least 1 KiB."""
    exact = f"{value:,.0f} B"
    return exact if abs(value) < KIB else f"{exact} ({format_size(value)})"
