"""Save and load a SuperTransformer with its space, so a file rebuilds the same module.

The file is a :mod:`supernet.checkpoint` checkpoint (atomic write, sha256-checked, read with
``weights_only=True``): payload ``{"state_dict"}``, metadata ``{"family": "hat", "space": name,
"space_fields": every field of the space, "vocab_size", "pad_id", ...extra}``. Storing the space's
fields (not only its name) lets a derived space (e.g. a test space) load without a registry.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from supernet.checkpoint import load_checkpoint, save_checkpoint
from supernet.errors import CheckpointError, ConfigError
from supernet.nn.transformer.supertransformer import SuperTransformer
from supernet.space.transformer import TransformerSpace
from supernet.space.transformer_config import FAMILY

__all__ = ["load_supertransformer", "save_supertransformer"]


def save_supertransformer(
    path: str | os.PathLike[str], model: SuperTransformer, *, extra: dict[str, Any] | None = None
) -> None:
    """Write ``model``'s weights and space to ``path`` atomically; ``extra`` (plain data, e.g.
    the corpus record and the tokenizer's sha256) goes into the metadata.

    Raises:
        CheckpointError: ``extra`` uses a reserved key or holds what a weights-only load cannot
            read, or writing failed.
    """
    metadata: dict[str, Any] = {
        "family": FAMILY,
        "space": model.space.name,
        "space_fields": dataclasses.asdict(model.space),
        "vocab_size": model.embed.num_embeddings,
        "pad_id": model.pad_id,
    }
    clash = sorted(set(extra or {}) & set(metadata))
    if clash:
        raise CheckpointError(f"extra metadata keys {clash} are reserved; rename them")
    metadata.update(extra or {})
    save_checkpoint(path, {"state_dict": model.state_dict()}, metadata=metadata)


def load_supertransformer(
    path: str | os.PathLike[str], *, space: str | None = None, map_location: Any = "cpu"
) -> tuple[SuperTransformer, dict[str, Any]]:
    """Rebuild the SuperTransformer saved at ``path``; returns ``(model, metadata)``.

    Raises:
        CheckpointError: the file is unreadable or corrupt, of another family (both names), of
            another space than ``space`` (both names), or its space or weights do not fit.
    """
    payload, metadata = load_checkpoint(path, map_location=map_location)
    family = metadata.get("family")
    if family != FAMILY:
        raise CheckpointError(f"{path} holds a {family!r} supernet; expected the {FAMILY!r} family")
    if space is not None and metadata.get("space") != space:
        raise CheckpointError(
            f"{path} holds a SuperTransformer of space {metadata.get('space')!r}; "
            f"expected {space!r}"
        )
    fields = dict(metadata["space_fields"])
    try:
        rebuilt = TransformerSpace(**{
            k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()
        })  # fmt: skip
        model = SuperTransformer(
            rebuilt, vocab_size=int(metadata["vocab_size"]), pad_id=int(metadata["pad_id"])
        )
        model.load_state_dict(payload["state_dict"])
    except (ConfigError, TypeError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the saved space or weights do not fit: {exc}") from exc
    return model, metadata
