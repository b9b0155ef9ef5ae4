"""`SubTransformer`: a plain encoder–decoder Transformer of fixed widths (what ``get_subnet``
returns; also what "trained from scratch" baselines are).

Post-layer-norm layers (``x = norm(x + sublayer(x))``, fairseq's and HAT's default), ReLU FFN,
one embedding table shared by the encoder input, decoder input and output projection (fairseq
``--share-all-embeddings``), sinusoidal positions, and HAT's arbitrary encoder–decoder attention:
decoder layer ``i`` attends to the concatenation, along time, of the last
``cross_attention_encoder_layers[i]`` encoder layers' outputs (newest first).

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 3.1 and its released
``transformer_super.py``; Transformer (Vaswani et al., arXiv 1706.03762).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from supernet.nn.transformer.elastic import Attention
from supernet.nn.transformer.functional import (
    KVCache,
    Seq2SeqMethods,
    causal_mask,
    sinusoidal_positions,
)

__all__ = [
    "DecoderLayer",
    "EncoderLayer",
    "SubTransformer",
    "cross_attention_memory",
    "new_layer_cache",
]


def cross_attention_memory(
    encoder_outs: list[torch.Tensor], src_pad: torch.Tensor, layers: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The keys/values and mask of an arbitrary encoder–decoder attention over the last ``layers``
    encoder outputs: ``[B, layers * S, C]`` (last layer first, as HAT concatenates them) and
    ``allowed`` ``[B, 1, 1, layers * S]`` (True = attend)."""
    memory = torch.cat(encoder_outs[::-1][:layers], dim=1)
    return memory, ~src_pad.repeat(1, layers)[:, None, None, :]


def new_layer_cache() -> dict[str, KVCache]:
    """Empty key/value caches of one decoder layer: a growing one for causal self-attention,
    a fixed one for encoder–decoder attention."""
    return {"self": KVCache(static=False), "cross": KVCache(static=True)}


class EncoderLayer(nn.Module):
    """Self-attention and FFN, each followed by dropout, residual and layer norm.

    Shapes: ``x`` ``[B, S, C]``, ``allowed`` ``[B, 1, 1, S]`` → ``[B, S, C]``.
    """

    def __init__(self, dim: int, ffn_dim: int, qkv_dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, dim, qkv_dim, heads)
        self.attn_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        p, train = self.dropout, self.training
        x = self.attn_norm(x + F.dropout(self.self_attn(x, x, allowed), p, train))
        h = self.fc2(F.dropout(F.relu(self.fc1(x)), p, train))
        return self.ffn_norm(x + F.dropout(h, p, train))


class DecoderLayer(nn.Module):
    """Causal self-attention, encoder–decoder attention over the last ``cross_layers`` encoder
    outputs, and FFN; each followed by dropout, residual and layer norm.

    Shapes: ``x`` ``[B, T, C]``, encoder outputs ``[B, S, Ce]`` each → ``[B, T, C]``.
    """

    def __init__(
        self,
        dim: int,
        encoder_dim: int,
        ffn_dim: int,
        qkv_dim: int,
        heads: int,
        cross_heads: int,
        cross_layers: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(dim, dim, qkv_dim, heads)
        self.attn_norm = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, encoder_dim, qkv_dim, cross_heads)
        self.cross_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.cross_layers = cross_layers
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        self_allowed: torch.Tensor | None,
        encoder_outs: list[torch.Tensor],
        src_pad: torch.Tensor,
        cache: dict[str, KVCache] | None = None,
    ) -> torch.Tensor:
        p, train = self.dropout, self.training
        self_cache, cross_cache = (cache["self"], cache["cross"]) if cache else (None, None)
        attended = self.self_attn(x, x, self_allowed, cache=self_cache)
        x = self.attn_norm(x + F.dropout(attended, p, train))
        memory, allowed = cross_attention_memory(encoder_outs, src_pad, self.cross_layers)
        attended = self.cross_attn(x, memory, allowed, cache=cross_cache)
        x = self.cross_norm(x + F.dropout(attended, p, train))
        h = self.fc2(F.dropout(F.relu(self.fc1(x)), p, train))
        return self.ffn_norm(x + F.dropout(h, p, train))


class SubTransformer(Seq2SeqMethods, nn.Module):
    """A plain encoder–decoder Transformer (one SubTransformer of a HAT space).

    Built empty by :meth:`SuperTransformer.get_subnet`, which fills in the layers; ``embed`` is
    the shared token table ``[vocab, max(encoder_dim, decoder_dim)]`` whose front columns each
    side reads, ``positions`` the sinusoidal table sliced from the SuperTransformer's.

    Shapes: ``src`` ``[B, S]``, ``tgt_in`` ``[B, T]`` (int64, right-padded with ``pad_id``)
    → logits ``[B, T, vocab]``.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        encoder_dim: int,
        decoder_dim: int,
        encoder_layers: list[EncoderLayer],
        decoder_layers: list[DecoderLayer],
        positions: torch.Tensor | None = None,
        max_positions: int = 256,
        pad_id: int = 0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        width = max(encoder_dim, decoder_dim)
        self.embed = nn.Embedding(vocab_size, width, padding_idx=pad_id)
        if positions is None:
            positions = sinusoidal_positions(max_positions, width)
        self.register_buffer("positions", positions[:, :width].clone())
        self.encoder_layers = nn.ModuleList(encoder_layers)
        self.decoder_layers = nn.ModuleList(decoder_layers)
        self.encoder_dim, self.decoder_dim = encoder_dim, decoder_dim
        self.pad_id = pad_id
        self.dropout = dropout

    def _embed(self, tokens: torch.Tensor, dim: int, start: int = 0) -> torch.Tensor:
        x = F.embedding(tokens, self.embed.weight[:, :dim], self.pad_id) * math.sqrt(dim)
        x = x + self.positions[start : start + tokens.shape[1], :dim]
        return F.dropout(x, self.dropout * dim / self.embed.embedding_dim, self.training)

    def encode(self, src: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every encoder layer's output ``[B, S, C]`` (first to last) and the padding mask
        ``[B, S]`` (True at ``pad_id``)."""
        src_pad = src == self.pad_id
        allowed = ~src_pad[:, None, None, :]
        x, outs = self._embed(src, self.encoder_dim), []
        for layer in self.encoder_layers:
            x = layer(x, allowed)
            outs.append(x)
        return outs, src_pad

    def decode(
        self, tgt_in: torch.Tensor, encoder_outs: list[torch.Tensor], src_pad: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``[B, T, vocab]`` of the next token at every target position."""
        x = self._embed(tgt_in, self.decoder_dim)
        self_allowed = causal_mask(tgt_in.shape[1], tgt_in.device)
        for layer in self.decoder_layers:
            x = layer(x, self_allowed, encoder_outs, src_pad)
        return F.linear(x, self.embed.weight[:, : self.decoder_dim])

    def decode_step(
        self,
        token: torch.Tensor,
        step: int,
        encoder_outs: list[torch.Tensor],
        src_pad: torch.Tensor,
        caches: list[dict[str, KVCache]],
    ) -> torch.Tensor:
        """Logits ``[B, vocab]`` after the newest token ``[B, 1]`` at position ``step``,
        reusing (and filling, when empty) one key/value cache per decoder layer."""
        if not caches:
            caches.extend(new_layer_cache() for _ in self.decoder_layers)
        x = self._embed(token, self.decoder_dim, step)
        for layer, cache in zip(self.decoder_layers, caches, strict=True):
            x = layer(x, None, encoder_outs, src_pad, cache)
        return F.linear(x[:, -1], self.embed.weight[:, : self.decoder_dim])
