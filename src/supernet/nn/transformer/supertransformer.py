"""`SuperTransformer`: HAT's weight-sharing encoder–decoder Transformer.

Every SubTransformer of a :class:`~supernet.space.transformer.TransformerSpace` runs on the front
slices of the same weights: embedding dims (encoder and decoder), FFN hidden dim and head count
per layer, decoder layer count (the first layers) and, per decoder layer, how many of the last
encoder layers its encoder–decoder attention reads. ``set_active(config)`` chooses one; it is
trained by sampling one random SubTransformer per step (HAT Sec. 3.2). ``get_subnet`` extracts a
plain :class:`~supernet.nn.transformer.subtransformer.SubTransformer` with the same outputs.

Dropout scales with the active embedding dim (``dropout * d / d_max``, HAT's released
``calc_dropout``); there is no attention dropout (HAT uses 0.1 on WMT; we keep the module small).

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 3.1–3.2; released
``fairseq/models/transformer_super.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from supernet.nn.transformer.elastic import ElasticAttention, ElasticLayerNorm, ElasticLinear
from supernet.nn.transformer.functional import (
    KVCache,
    Seq2SeqMethods,
    causal_mask,
    sinusoidal_positions,
)
from supernet.nn.transformer.subtransformer import (
    DecoderLayer,
    EncoderLayer,
    SubTransformer,
    cross_attention_memory,
    new_layer_cache,
)
from supernet.space.transformer import TransformerSpace
from supernet.space.transformer_config import TransformerConfig

__all__ = ["SuperDecoderLayer", "SuperEncoderLayer", "SuperTransformer"]


class SuperEncoderLayer(nn.Module):
    """An encoder layer of elastic width (input width read from ``x``), FFN dim and head count.

    Shapes: ``x`` ``[B, S, d]`` with ``d <= dim`` → ``[B, S, d]``.
    """

    def __init__(self, dim: int, ffn_dim: int, qkv_dim: int) -> None:
        super().__init__()
        self.self_attn = ElasticAttention(dim, dim, qkv_dim)
        self.attn_norm = ElasticLayerNorm(dim)
        self.fc1 = ElasticLinear(dim, ffn_dim)
        self.fc2 = ElasticLinear(ffn_dim, dim)
        self.ffn_norm = ElasticLayerNorm(dim)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, ffn_dim: int, heads: int, p: float
    ) -> torch.Tensor:
        train = self.training
        x = self.attn_norm(x + F.dropout(self.self_attn(x, x, heads, allowed), p, train))
        h = self.fc2(F.dropout(F.relu(self.fc1(x, ffn_dim)), p, train), x.shape[-1])
        return self.ffn_norm(x + F.dropout(h, p, train))

    def to_static(
        self, dim: int, ffn_dim: int, qkv_dim: int, heads: int, dropout: float
    ) -> EncoderLayer:
        layer = EncoderLayer(dim, ffn_dim, qkv_dim, heads, dropout)
        layer.self_attn = self.self_attn.to_static(dim, dim, heads)
        layer.attn_norm = self.attn_norm.to_static(dim)
        layer.fc1, layer.fc2 = self.fc1.to_static(dim, ffn_dim), self.fc2.to_static(ffn_dim, dim)
        layer.ffn_norm = self.ffn_norm.to_static(dim)
        return layer


class SuperDecoderLayer(nn.Module):
    """A decoder layer of elastic width, FFN dim, self- and cross-attention heads, and arbitrary
    encoder–decoder attention.

    ``choice`` is ``(ffn_dim, heads, cross_heads, cross_layers)`` of the active layer;
    ``self_allowed`` is the causal mask, or None with a ``cache`` (one new position a step).

    Shapes: ``x`` ``[B, T, d]``, encoder outputs ``[B, S, de]`` each → ``[B, T, d]``.
    """

    def __init__(self, dim: int, encoder_dim: int, ffn_dim: int, qkv_dim: int) -> None:
        super().__init__()
        self.self_attn = ElasticAttention(dim, dim, qkv_dim)
        self.attn_norm = ElasticLayerNorm(dim)
        self.cross_attn = ElasticAttention(dim, encoder_dim, qkv_dim)
        self.cross_norm = ElasticLayerNorm(dim)
        self.fc1 = ElasticLinear(dim, ffn_dim)
        self.fc2 = ElasticLinear(ffn_dim, dim)
        self.ffn_norm = ElasticLayerNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        self_allowed: torch.Tensor | None,
        encoder_outs: list[torch.Tensor],
        src_pad: torch.Tensor,
        choice: tuple[int, ...],
        p: float,
        cache: dict[str, KVCache] | None = None,
    ) -> torch.Tensor:
        ffn_dim, heads, cross_heads, cross_layers = choice
        train = self.training
        self_cache, cross_cache = (cache["self"], cache["cross"]) if cache else (None, None)
        attended = self.self_attn(x, x, heads, self_allowed, cache=self_cache)
        x = self.attn_norm(x + F.dropout(attended, p, train))
        memory, allowed = cross_attention_memory(encoder_outs, src_pad, cross_layers)
        attended = self.cross_attn(x, memory, cross_heads, allowed, cache=cross_cache)
        x = self.cross_norm(x + F.dropout(attended, p, train))
        h = self.fc2(F.dropout(F.relu(self.fc1(x, ffn_dim)), p, train), x.shape[-1])
        return self.ffn_norm(x + F.dropout(h, p, train))

    def to_static(
        self, dim: int, encoder_dim: int, qkv_dim: int, choice: tuple[int, ...], dropout: float
    ) -> DecoderLayer:
        ffn_dim, heads, cross_heads, cross_layers = choice
        layer = DecoderLayer(
            dim, encoder_dim, ffn_dim, qkv_dim, heads, cross_heads, cross_layers, dropout
        )
        layer.self_attn = self.self_attn.to_static(dim, dim, heads)
        layer.attn_norm = self.attn_norm.to_static(dim)
        layer.cross_attn = self.cross_attn.to_static(dim, encoder_dim, cross_heads)
        layer.cross_norm = self.cross_norm.to_static(dim)
        layer.fc1, layer.fc2 = self.fc1.to_static(dim, ffn_dim), self.fc2.to_static(ffn_dim, dim)
        layer.ffn_norm = self.ffn_norm.to_static(dim)
        return layer


class SuperTransformer(Seq2SeqMethods, nn.Module):
    """HAT's SuperTransformer over ``space``, with a joint vocabulary of ``vocab_size`` tokens.

    The active SubTransformer starts as ``space.largest()``.

    Shapes: ``src`` ``[B, S]``, ``tgt_in`` ``[B, T]`` (int64, right-padded with ``pad_id``;
    ``S, T <= space.max_positions``) → logits ``[B, T, vocab_size]``.

    Raises:
        ConfigError: ``set_active`` / ``get_subnet`` with a config not valid in ``space``.
    """

    def __init__(self, space: TransformerSpace, *, vocab_size: int, pad_id: int = 0) -> None:
        super().__init__()
        self.space = space
        self.pad_id = pad_id
        enc_dim, dec_dim = max(space.encoder_embed_dims), max(space.decoder_embed_dims)
        ffn, qkv = max(space.ffn_dims), space.qkv_dim
        self.width = max(enc_dim, dec_dim)
        self.embed = nn.Embedding(vocab_size, self.width, padding_idx=pad_id)
        nn.init.normal_(self.embed.weight, std=self.width**-0.5)  # fairseq / HAT init
        with torch.no_grad():
            self.embed.weight[pad_id].zero_()
        positions = sinusoidal_positions(space.max_positions, self.width)
        self.register_buffer("positions", positions, persistent=False)
        self.encoder_layers = nn.ModuleList(
            SuperEncoderLayer(enc_dim, ffn, qkv) for _ in range(space.encoder_slots)
        )
        self.decoder_layers = nn.ModuleList(
            SuperDecoderLayer(dec_dim, enc_dim, ffn, qkv) for _ in range(space.decoder_slots)
        )
        self.active_config = space.largest()

    def set_active(self, config: TransformerConfig) -> None:
        """Run ``config`` from now on (training samples a new one every step)."""
        self.active_config = self.space.validate(config)

    def _dropout(self, dim: int) -> float:
        return self.space.dropout * dim / self.width

    def _embed(self, tokens: torch.Tensor, dim: int, start: int = 0) -> torch.Tensor:
        x = F.embedding(tokens, self.embed.weight[:, :dim], self.pad_id) * math.sqrt(dim)
        x = x + self.positions[start : start + tokens.shape[1], :dim]
        return F.dropout(x, self._dropout(dim), self.training)

    def encode(self, src: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The active encoder layers' outputs ``[B, S, d]`` (first to last) and the padding mask
        ``[B, S]`` (True at ``pad_id``)."""
        c = self.active_config
        src_pad = src == self.pad_id
        allowed = ~src_pad[:, None, None, :]
        x, outs, p = self._embed(src, c.encoder_embed_dim), [], self._dropout(c.encoder_embed_dim)
        for i, layer in enumerate(list(self.encoder_layers)[: c.encoder_layers]):
            x = layer(x, allowed, c.encoder_ffn_dim[i], c.encoder_heads[i], p)
            outs.append(x)
        return outs, src_pad

    def _decoder_choice(self, i: int, config: TransformerConfig | None = None) -> tuple[int, ...]:
        c = self.active_config if config is None else config
        return (
            c.decoder_ffn_dim[i],
            c.decoder_heads[i],
            c.cross_attention_heads[i],
            c.cross_attention_encoder_layers[i],
        )

    def decode(
        self, tgt_in: torch.Tensor, encoder_outs: list[torch.Tensor], src_pad: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``[B, T, vocab]`` of the next token at every target position."""
        dim = self.active_config.decoder_embed_dim
        x, p = self._embed(tgt_in, dim), self._dropout(dim)
        self_allowed = causal_mask(tgt_in.shape[1], tgt_in.device)
        layers = list(self.decoder_layers)[: self.active_config.decoder_layers]
        for i, layer in enumerate(layers):
            x = layer(x, self_allowed, encoder_outs, src_pad, self._decoder_choice(i), p)
        return F.linear(x, self.embed.weight[:, :dim])

    def decode_step(
        self,
        token: torch.Tensor,
        step: int,
        encoder_outs: list[torch.Tensor],
        src_pad: torch.Tensor,
        caches: list[dict[str, KVCache]],
    ) -> torch.Tensor:
        """Logits ``[B, vocab]`` after the newest token ``[B, 1]`` at position ``step``, by the
        active SubTransformer, reusing (and filling, when empty) one cache per decoder layer."""
        layers = list(self.decoder_layers)[: self.active_config.decoder_layers]
        if not caches:
            caches.extend(new_layer_cache() for _ in layers)
        dim = self.active_config.decoder_embed_dim
        x, p = self._embed(token, dim, step), self._dropout(dim)
        for i, (layer, cache) in enumerate(zip(layers, caches, strict=True)):
            x = layer(x, None, encoder_outs, src_pad, self._decoder_choice(i), p, cache)
        return F.linear(x[:, -1], self.embed.weight[:, :dim])

    @torch.no_grad()
    def get_subnet(self, config: TransformerConfig | None = None) -> SubTransformer:
        """Extract ``config`` (default: the active one) as a plain :class:`SubTransformer` holding
        copies of the front slices; its outputs equal the SuperTransformer's for that config
        (exactly in eval mode; dropout draws differ in train mode).

        Raises:
            ConfigError: ``config`` not valid in this SuperTransformer's space.
        """
        c = self.active_config if config is None else self.space.validate(config)
        enc, dec, qkv = c.encoder_embed_dim, c.decoder_embed_dim, self.space.qkv_dim
        width = max(enc, dec)
        encoder = [
            layer.to_static(enc, c.encoder_ffn_dim[i], qkv, c.encoder_heads[i], self._dropout(enc))
            for i, layer in enumerate(list(self.encoder_layers)[: c.encoder_layers])
        ]
        decoder = [
            layer.to_static(dec, enc, qkv, self._decoder_choice(i, c), self._dropout(dec))
            for i, layer in enumerate(list(self.decoder_layers)[: c.decoder_layers])
        ]
        subnet = SubTransformer(
            vocab_size=self.embed.num_embeddings,
            encoder_dim=enc,
            decoder_dim=dec,
            encoder_layers=encoder,
            decoder_layers=decoder,
            positions=self.positions[:, :width],
            pad_id=self.pad_id,
            dropout=self.space.dropout * width / self.width,
        )
        subnet.embed.weight.copy_(self.embed.weight[:, :width])
        return subnet.train(self.training)
