"""Error types raised by supernet.

Library code raises these; only the CLI turns them into messages and exit codes.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataNotFoundError",
    "ExportError",
    "LatencyTableError",
    "MissingExtraError",
    "RunDirError",
    "SearchError",
    "SupernetError",
    "TrainingInterrupted",
]


class SupernetError(Exception):
    """Base class of every error supernet raises on purpose."""


class ConfigError(SupernetError, ValueError):
    """An arch config, search space or training config holds a value that is not allowed.

    The message names the field, the bad value and the allowed choices.
    """


class CheckpointError(SupernetError):
    """A checkpoint is unreadable, truncated, of another format version, or of another run."""


class DataNotFoundError(SupernetError, FileNotFoundError):
    """A dataset's files are not where supernet looked; the message says how to install them."""


class RunDirError(SupernetError):
    """A run directory already holds a (different) run: --force overwrites, --resume goes on."""


class LatencyTableError(SupernetError):
    """A latency lookup table is of another format, space or runtime, or lacks an entry that a
    query needs; the message names the mismatch or the missing key."""


class ExportError(SupernetError):
    """An exported subnet disagrees with the PyTorch subnet beyond the tolerance, or an export
    directory is incomplete, of another format version, or its files do not match its
    ``subnet.json``; the message names the file, the value found and the value expected."""


class SearchError(SupernetError):
    """A search cannot run as asked: no subnet found that meets its constraints (the message gives
    the cheapest value of each constraint found, so the user knows what is achievable).

    Attributes:
        cheapest: constraint name → the cheapest value found (units as the constraint's), when
            the error is about infeasible constraints; else empty.
    """

    def __init__(self, message: str, cheapest: dict[str, float] | None = None) -> None:
        super().__init__(message)
        self.cheapest = dict(cheapest or {})


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint; ``--resume`` goes on.

    A ``KeyboardInterrupt`` (not a :class:`SupernetError`) so that code which handles Ctrl-C keeps
    doing so; the message names the phase, epoch and step reached and the checkpoint written.
    """


class MissingExtraError(SupernetError, ImportError):
    """An optional dependency (e.g. the ``mcu`` extra: LiteRT converter, TensorFlow Lite Micro) is
    not installed; the message names the missing module and the install command."""
