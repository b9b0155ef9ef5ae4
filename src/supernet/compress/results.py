"""What AMC and HAQ hand back: table rows, atomically written files, progress, plots.

The row keys are the same for both methods (:data:`ROW_KEYS`), so the CLI writes one table.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from supernet.checkpoint import write_text_atomic
from supernet.errors import ConfigError

__all__ = [
    "ROW_KEYS",
    "calib_images",
    "check_counts",
    "finetune_row",
    "progress",
    "write_bytes_atomic",
    "write_json_atomic",
]

ROW_KEYS = (
    "method", "macs", "params", "size_bytes", "weight_bits", "activation_bits",
    "val_acc_before", "test_acc_before", "test_acc_after", "finetune_steps",
)  # fmt: skip
"""Columns of a row: MACs (batch 1), parameters, model size in bytes (weights × bits / 8 plus
float32 biases), mean weight / activation bits (32 for float32), validation and test top-1 (%)
before fine-tuning, test top-1 (%) after ``finetune_steps`` steps of the context's recipe."""


def check_counts(episodes: Any, finetune_steps: Any) -> None:
    """Raise :class:`ConfigError` unless ``episodes`` >= 1 and ``finetune_steps`` >= 0 (ints)."""
    for name, value, least in (("episodes", episodes, 1), ("finetune_steps", finetune_steps, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{name} = {value!r} must be an integer >= {least}")


def calib_images(ctx: Any, limit: int) -> torch.Tensor:
    """The first ``limit`` of ``ctx.calib_images`` as float32 at ``ctx.resolution``.

    Shapes: ``[N, C, H, W]`` → ``[min(N, limit), C, R, R]``.
    """
    from supernet.data import resize

    images = ctx.calib_images[:limit].float().cpu()
    return resize(images, ctx.resolution) if images.shape[-1] != ctx.resolution else images


class _NullProgress:
    def update(self, done: int, total: int | None = None, what: str = "") -> None:
        """No progress display."""


@contextlib.contextmanager
def progress(ctx: Any, label: str, total: int) -> Iterator[Any]:
    """``ctx.progress(label, total=total)`` (an object with ``update(done, total, what)``, e.g. the
    CLI's ``StepProgress``), or a silent stand-in when ``ctx.progress`` is None."""
    if getattr(ctx, "progress", None) is None:
        yield _NullProgress()
        return
    with ctx.progress(label, total=total) as bar:
        yield bar


def finetune_row(
    ctx: Any, model: nn.Module, steps: int, *, val_before: float, **fields: Any
) -> dict[str, Any]:
    """Test ``model``, fine-tune it in place for ``steps`` steps (``ctx.finetune``), test it
    again; a row with ``fields`` and the accuracies (%, 2 decimals)."""
    model.eval()
    before = float(ctx.test(model))
    if steps > 0:
        ctx.finetune(model, steps)
    model.eval()
    after = float(ctx.test(model)) if steps > 0 else before
    row = {**dict.fromkeys(ROW_KEYS, ""), **fields}
    row.update(val_acc_before=round(val_before, 2), test_acc_before=round(before, 2),
               test_acc_after=round(after, 2), finetune_steps=steps)  # fmt: skip
    return row


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, fsync, rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_json_atomic(path: Path, doc: Any) -> Path:
    """``doc`` as indented JSON, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    return path
