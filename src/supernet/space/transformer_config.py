"""`TransformerConfig`: one SubTransformer of a HAT SuperTransformer, as plain data.

A config names one choice per elastic dimension of Hardware-Aware Transformers (Wang et al.,
ACL'20, arXiv 2005.14187, Sec. 3.1): the encoder and decoder embedding dims, the encoder and
decoder layer counts, and per layer slot the FFN hidden dim, the self-attention head count and,
in the decoder, the encoder–decoder attention head count and how many of the last encoder layers
the layer attends to ("arbitrary encoder–decoder attention"). Like the CNN's ``ArchConfig``, the
per-layer tuples have one entry per layer *slot* of the SuperTransformer; entries past the
active layer count are kept (and must be valid choices) so configs stay fixed-length.

Our ``cross_attention_encoder_layers`` counts layers (1, 2, 3); HAT's code writes the same
choice as ``-1, 1, 2`` (``decoder-arbitrary-ende-attn-choice``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from supernet.errors import ConfigError

__all__ = ["FAMILY", "TransformerConfig", "describe_transformer"]

FAMILY = "hat"
_INTS = ("encoder_embed_dim", "encoder_layers", "decoder_embed_dim", "decoder_layers")
_TUPLES = (
    "encoder_ffn_dim",
    "encoder_heads",
    "decoder_ffn_dim",
    "decoder_heads",
    "cross_attention_heads",
    "cross_attention_encoder_layers",
)


def _as_int(field: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{field} must be an integer, got {value!r}")
    return int(value)


def _as_int_tuple(field: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"{field} must be a sequence of integers, got {value!r}")
    return tuple(_as_int(f"{field}[{i}]", v) for i, v in enumerate(value))


@dataclass(frozen=True)
class TransformerConfig:
    """One SubTransformer of the ``hat`` family.

    Attributes:
        encoder_embed_dim: encoder embedding (model) dim; the front slice of the SuperTransformer.
        encoder_layers: number of active encoder layers (the first ones).
        encoder_ffn_dim: FFN hidden dim of each encoder layer slot.
        encoder_heads: self-attention heads of each encoder layer slot.
        decoder_embed_dim: decoder embedding (model) dim.
        decoder_layers: number of active decoder layers (the first ones).
        decoder_ffn_dim: FFN hidden dim of each decoder layer slot.
        decoder_heads: self-attention heads of each decoder layer slot.
        cross_attention_heads: encoder–decoder attention heads of each decoder layer slot.
        cross_attention_encoder_layers: per decoder layer slot, how many of the last encoder
            layers' outputs (1, 2 or 3) its encoder–decoder attention reads (HAT Sec. 3.1).

    Raises:
        ConfigError: on construction, when a field is not an integer / integer sequence. Use
            :meth:`TransformerSpace.validate` to check the values against a space.
    """

    encoder_embed_dim: int
    encoder_layers: int
    encoder_ffn_dim: tuple[int, ...]
    encoder_heads: tuple[int, ...]
    decoder_embed_dim: int
    decoder_layers: int
    decoder_ffn_dim: tuple[int, ...]
    decoder_heads: tuple[int, ...]
    cross_attention_heads: tuple[int, ...]
    cross_attention_encoder_layers: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in _INTS:
            object.__setattr__(self, name, _as_int(name, getattr(self, name)))
        for name in _TUPLES:
            object.__setattr__(self, name, _as_int_tuple(name, getattr(self, name)))
        for name, per in (("encoder", ("encoder_ffn_dim", "encoder_heads")),
                          ("decoder", _TUPLES[2:])):  # fmt: skip
            lengths = {p: len(getattr(self, p)) for p in per}
            if len(set(lengths.values())) != 1:
                raise ConfigError(f"the {name} per-layer fields differ in length: {lengths}")
        for name in ("encoder", "decoder"):
            count, slots = getattr(self, f"{name}_layers"), len(getattr(self, f"{name}_heads"))
            if not 1 <= count <= slots:
                raise ConfigError(
                    f"{name}_layers = {count} must be in [1, {slots}] (the {name}'s layer slots)"
                )

    @property
    def family(self) -> str:
        """The family this config belongs to (``"hat"``)."""
        return FAMILY

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with lists for the tuple fields."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformerConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: not a mapping, or missing / unknown keys (naming them and the allowed
                keys).
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a transformer config must be a mapping, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted((k for k in data if k not in names), key=str)
        missing = [k for k in names if k not in data]
        if unknown or missing:
            parts = [f"unknown {unknown}"] * bool(unknown) + [f"missing {missing}"] * bool(missing)
            raise ConfigError(
                f"transformer config keys: {', '.join(parts)}; a {FAMILY!r} config has all of "
                f"{names}"
            )
        return cls(**{k: data[k] for k in names})

    def to_json(self) -> str:
        """Compact JSON text."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> TransformerConfig:
        """Parse :meth:`to_json` output.

        Raises:
            ConfigError: not valid JSON or of a bad structure.
        """
        if not isinstance(text, str | bytes | bytearray):
            raise ConfigError(f"transformer config must be JSON text, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"transformer config is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def active(self, field: str) -> tuple[int, ...]:
        """The entries of a per-layer field for the active layers only."""
        side = "encoder" if field.startswith("encoder") else "decoder"
        return getattr(self, field)[: getattr(self, f"{side}_layers")]


def describe_transformer(config: TransformerConfig) -> str:
    """Short text for tables: ``enc 160x3 ffn 768,512,768 h 4,4,2 | dec 128x2 ...``."""

    def ints(values: tuple[int, ...]) -> str:
        return ",".join(map(str, values))

    c = config
    return (
        f"enc {c.encoder_embed_dim}x{c.encoder_layers} ffn {ints(c.active('encoder_ffn_dim'))} "
        f"h {ints(c.active('encoder_heads'))} | dec {c.decoder_embed_dim}x{c.decoder_layers} "
        f"ffn {ints(c.active('decoder_ffn_dim'))} h {ints(c.active('decoder_heads'))} "
        f"xh {ints(c.active('cross_attention_heads'))} "
        f"xl {ints(c.active('cross_attention_encoder_layers'))}"
    )
