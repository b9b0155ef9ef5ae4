"""Read a SubTransformer config in the format of HAT's released ``configs/*/subtransformer/*.yml``.

HAT publishes its searched SubTransformers (e.g. ``HAT_wmt14ende_xeon@137.9ms_bleu@25.8.yml``)
as flat mappings with keys such as ``encoder-embed-dim-subtransformer`` and per-layer lists as
long as the active layer count; ``decoder-arbitrary-ende-attn-all-subtransformer`` codes
"attend to the last 1 / 2 / 3 encoder layers" as ``-1 / 1 / 2``. We fill inactive layer slots
with the first layer's choice (as HAT's ``EvoSearch.config2gene`` does) so the config has one
entry per slot of ``space``.

Reference: HAT (arXiv 2005.14187), released repository ``configs/`` and ``fairseq/evolution.py``.
"""

from __future__ import annotations

from typing import Any

from supernet.errors import ConfigError
from supernet.space.transformer import TransformerSpace
from supernet.space.transformer_config import TransformerConfig

__all__ = ["HAT_ARBITRARY_CODES", "config_from_hat"]

HAT_ARBITRARY_CODES = {-1: 1, 1: 2, 2: 3}  # HAT's code → number of last encoder layers
_SCALARS = {
    "encoder_embed_dim": "encoder-embed-dim-subtransformer",
    "decoder_embed_dim": "decoder-embed-dim-subtransformer",
    "encoder_layers": "encoder-layer-num-subtransformer",
    "decoder_layers": "decoder-layer-num-subtransformer",
}
_LISTS = {
    "encoder_ffn_dim": "encoder-ffn-embed-dim-all-subtransformer",
    "encoder_heads": "encoder-self-attention-heads-all-subtransformer",
    "decoder_ffn_dim": "decoder-ffn-embed-dim-all-subtransformer",
    "decoder_heads": "decoder-self-attention-heads-all-subtransformer",
    "cross_attention_heads": "decoder-ende-attention-heads-all-subtransformer",
    "cross_attention_encoder_layers": "decoder-arbitrary-ende-attn-all-subtransformer",
}


def config_from_hat(data: dict[str, Any], space: TransformerSpace) -> TransformerConfig:
    """The :class:`TransformerConfig` of a HAT SubTransformer mapping, validated in ``space``.

    Raises:
        ConfigError: a key is missing (naming it), a per-layer list is shorter than the active
            layer count, an arbitrary-attention code is not -1, 1 or 2, or a value is not allowed
            in ``space``.
    """
    missing = [key for key in (*_SCALARS.values(), *_LISTS.values()) if key not in data]
    if missing:
        raise ConfigError(f"HAT SubTransformer config lacks {missing}")
    fields: dict[str, Any] = {name: data[key] for name, key in _SCALARS.items()}
    slots = {"encoder": space.encoder_slots, "decoder": space.decoder_slots}
    for name, key in _LISTS.items():
        side = "encoder" if name.startswith("encoder") else "decoder"
        values = list(data[key])
        active = int(fields[f"{side}_layers"])
        if len(values) < active:
            raise ConfigError(f"{key} has {len(values)} entries for {active} active {side} layers")
        if name == "cross_attention_encoder_layers":
            bad = [v for v in values if v not in HAT_ARBITRARY_CODES]
            if bad:
                raise ConfigError(
                    f"{key} holds {bad}; HAT's codes are {sorted(HAT_ARBITRARY_CODES)}"
                )
            values = [HAT_ARBITRARY_CODES[v] for v in values]
        values = values[:active]
        fields[name] = values + [values[0]] * (slots[side] - active)
    return space.validate(TransformerConfig.from_dict(fields))
