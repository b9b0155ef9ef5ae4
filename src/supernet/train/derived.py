"""Files derived from a run's checkpoint, and which checkpoint each was derived from.

Evaluation tables, the accuracy dataset, the accuracy predictor, specializations and the report
are all computed from one ``checkpoint.pt``. Each records the checkpoint's digest (SHA-256 of its
bytes, 16 hex digits) in the run's ``derived.json`` when written; a file whose digest is not the
checkpoint's now (the run was retrained or resumed since) is stale: readers refuse it or make it
again, and ``supernet train --force`` removes every derived file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from supernet.checkpoint import write_text_atomic
from supernet.errors import RunDirError

__all__ = [
    "DERIVED_FILES",
    "MANIFEST",
    "check_fresh",
    "checkpoint_digest",
    "derived_digest",
    "is_stale",
    "record_derived",
    "remove_derived",
]

log = logging.getLogger(__name__)

MANIFEST = "derived.json"
DERIVED_FILES = (
    "eval.csv", "eval.md", "acc_dataset.csv", "predictor.pt", "predictor.md", "predictor.png",
    "specialized", "report.md",
)  # fmt: skip
"""What ``supernet eval``, ``predict``, ``specialize`` and ``search`` write into a run directory
(``specialized`` is a folder)."""


def checkpoint_digest(run_dir: str | Path) -> str | None:
    """SHA-256 (first 16 hex digits) of ``run_dir/checkpoint.pt``'s bytes; None without one."""
    path = Path(run_dir) / "checkpoint.pt"
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _manifest(run_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or damaged: no file has a known origin
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record_derived(run_dir: str | Path, name: str, digest: str | None) -> None:
    """Note in ``run_dir/derived.json`` that ``name`` was derived from checkpoint ``digest``."""
    run_dir = Path(run_dir)
    data = _manifest(run_dir)
    if digest is None:
        data.pop(name, None)
    else:
        data[name] = digest
    write_text_atomic(run_dir / MANIFEST, json.dumps(data, indent=1, sort_keys=True) + "\n")


def derived_digest(run_dir: str | Path, name: str) -> str | None:
    """The checkpoint digest ``name`` was derived from (None: not recorded)."""
    return _manifest(Path(run_dir)).get(name)


def is_stale(run_dir: str | Path, name: str, current: str | None) -> bool:
    """True when ``name`` exists and was recorded from another checkpoint than ``current``.

    A file with no record (written by an older supernet, or by hand) is not called stale.
    """
    recorded = derived_digest(run_dir, name)
    return (Path(run_dir) / name).exists() and recorded is not None and recorded != current


def check_fresh(run_dir: str | Path, name: str, current: str | None, remake: str) -> None:
    """Refuse a stale derived file (see :func:`is_stale`).

    Raises:
        RunDirError: ``name`` was derived from another checkpoint than the run's ``current``
            one; the message says to ``remake`` it (a command).
    """
    if is_stale(run_dir, name, current):
        raise RunDirError(
            f"{str(Path(run_dir) / name)!r} was made from another checkpoint than the one "
            f"{str(run_dir)!r} holds now (the run was retrained or resumed since); {remake}"
        )


def remove_derived(run_dir: str | Path) -> list[str]:
    """Delete every derived file and folder of ``run_dir`` and the manifest; return their names."""
    run_dir = Path(run_dir)
    removed = []
    for name in DERIVED_FILES:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            removed.append(name + "/")
        elif path.exists() or path.is_symlink():
            path.unlink()
            removed.append(name)
    (run_dir / MANIFEST).unlink(missing_ok=True)
    return removed
