"""Size and compute of the ``hat`` family's SubTransformers, by arithmetic (batched, no torch).

``transformer_params`` counts exactly the parameters an extracted SubTransformer holds (the
shared token table at ``max(encoder, decoder)`` embedding dim included once; sinusoidal positions
are not parameters). ``transformer_macs`` counts the multiply–accumulates of one teacher-forced
forward pass for a source of ``source_tokens`` and a target of ``target_tokens`` tokens (batch
1): every linear layer, the two attention matmuls (scores and weighted sum) and the output
projection onto the vocabulary; layer norms, softmax, activations and additions are not counted
(as in the CNN MACs of :mod:`supernet.cost.macs`).

Reference: HAT (arXiv 2005.14187), Sec. 3.3 and Table 2 (#Params and FLOPs of SubTransformers;
its released ``get_sampled_params_numel`` counts only the sampled slices, as we do).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from supernet.errors import ConfigError
from supernet.space.transformer import TransformerSpace
from supernet.space.transformer_config import TransformerConfig

__all__ = ["transformer_macs", "transformer_params"]


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _params(c: TransformerConfig, qkv: int, vocab: int) -> int:
    enc, dec = c.encoder_embed_dim, c.decoder_embed_dim
    total = vocab * max(enc, dec)
    for ffn in c.active("encoder_ffn_dim"):
        attention = 3 * _linear(enc, qkv) + _linear(qkv, enc)
        total += attention + _linear(enc, ffn) + _linear(ffn, enc) + 2 * 2 * enc
    for ffn in c.active("decoder_ffn_dim"):
        self_attn = 3 * _linear(dec, qkv) + _linear(qkv, dec)
        cross = _linear(dec, qkv) + 2 * _linear(enc, qkv) + _linear(qkv, dec)
        total += self_attn + cross + _linear(dec, ffn) + _linear(ffn, dec) + 3 * 2 * dec
    return total


def _macs(c: TransformerConfig, qkv: int, vocab: int, s: int, t: int) -> int:
    enc, dec = c.encoder_embed_dim, c.decoder_embed_dim
    total = 0
    for ffn in c.active("encoder_ffn_dim"):
        total += s * (4 * enc * qkv + 2 * enc * ffn) + 2 * s * s * qkv
    cross_layers = c.active("cross_attention_encoder_layers")
    for ffn, k in zip(c.active("decoder_ffn_dim"), cross_layers, strict=True):
        memory = k * s
        total += t * (4 * dec * qkv + 2 * dec * ffn) + 2 * t * t * qkv  # self-attention + FFN
        total += t * 2 * dec * qkv + memory * 2 * enc * qkv + 2 * t * memory * qkv  # cross
    return total + t * dec * vocab


def _check(configs: Sequence[TransformerConfig], space: TransformerSpace, vocab_size: int) -> None:
    if vocab_size < 1:
        raise ConfigError(f"vocab_size = {vocab_size} must be >= 1")
    for config in configs:
        space.validate(config)


def transformer_params(
    configs: Sequence[TransformerConfig], space: TransformerSpace, *, vocab_size: int
) -> np.ndarray:
    """Parameter count of each SubTransformer: ``[N]`` int64.

    Raises:
        ConfigError: a config not valid in ``space``, or ``vocab_size`` < 1.
    """
    _check(configs, space, vocab_size)
    return np.array([_params(c, space.qkv_dim, vocab_size) for c in configs], dtype=np.int64)


def transformer_macs(
    configs: Sequence[TransformerConfig],
    space: TransformerSpace,
    *,
    vocab_size: int,
    source_tokens: int = 30,
    target_tokens: int = 30,
) -> np.ndarray:
    """Multiply–accumulates of one teacher-forced forward pass (batch 1, ``source_tokens`` in,
    ``target_tokens`` out) of each SubTransformer: ``[N]`` int64. HAT reports FLOPs for 30-token
    sentences, hence the defaults.

    Raises:
        ConfigError: a config not valid in ``space``, ``vocab_size`` < 1 or a length < 1.
    """
    if source_tokens < 1 or target_tokens < 1:
        raise ConfigError(
            f"source_tokens = {source_tokens} and target_tokens = {target_tokens} must be >= 1"
        )
    _check(configs, space, vocab_size)
    qkv = space.qkv_dim
    return np.array(
        [_macs(c, qkv, vocab_size, source_tokens, target_tokens) for c in configs], dtype=np.int64
    )
