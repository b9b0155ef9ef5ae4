"""The math both the SuperTransformer and its extracted SubTransformers run: sinusoidal positions,
multi-head attention on projected tensors, masks, and greedy decoding.

Keeping it in one place is what makes a SubTransformer's outputs equal its SuperTransformer's:
the two differ only in where their weights come from (a front slice vs. a plain copy).

Tensors are batch-first: tokens ``[B, T]`` (int64), hidden states ``[B, T, C]``.

Reference: Transformer (Vaswani et al., NeurIPS'17, arXiv 1706.03762), Sec. 3.2 (attention) and
3.5 (sinusoidal positions, fairseq's layout: sines then cosines); HAT (arXiv 2005.14187) Sec. 3.1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F

__all__ = [
    "EncoderDecoder",
    "KVCache",
    "cached_keys_values",
    "causal_mask",
    "greedy_decode",
    "multi_head_attention",
    "sinusoidal_positions",
]


def sinusoidal_positions(max_positions: int, dim: int) -> torch.Tensor:
    """Fixed position embeddings ``[max_positions, dim]`` (float32): the first half of the columns
    are sines, the second half cosines, of geometrically spaced frequencies (fairseq's
    ``SinusoidalPositionalEmbedding``, which HAT slices to each SubTransformer's embedding dim)."""
    half = dim // 2
    scale = math.log(10000) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -scale)
    angles = torch.arange(max_positions, dtype=torch.float32)[:, None] * freqs[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(max_positions, 1)], dim=1)
    return table


def causal_mask(length: int, device: torch.device | None = None) -> torch.Tensor:
    """``[length, length]`` bool, True where query ``i`` may see key ``j`` (``j <= i``)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def multi_head_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    heads: int,
    allowed: torch.Tensor | None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Scaled dot-product attention over ``heads`` heads of projected queries, keys and values.

    Shapes: ``q`` ``[B, Tq, Q]``, ``k`` and ``v`` ``[B, Tk, Q]`` with ``Q`` (the qkv dim)
    divisible by ``heads``; ``allowed`` broadcastable to ``[B, 1, Tq, Tk]`` (True = attend) or
    None; returns ``[B, Tq, Q]``. The head dim is ``Q / heads``: in HAT the qkv dim is fixed and
    the head count chooses how it is split (released ``MultiheadAttentionSuper``).
    """
    b, tq, width = q.shape
    tk = k.shape[1]
    head_dim = width // heads
    q = q.view(b, tq, heads, head_dim).transpose(1, 2)
    k = k.view(b, tk, heads, head_dim).transpose(1, 2)
    v = v.view(b, tk, heads, head_dim).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
    return out.transpose(1, 2).reshape(b, tq, width)


class KVCache(dict):
    """One attention's keys and values from earlier decoding steps (``"k"``, ``"v"``:
    ``[B, Tk, Q]``). ``static=True``: the memory does not grow (encoder–decoder attention: keys
    and values are projected once); ``static=False``: each step's new positions are appended
    (causal self-attention)."""

    def __init__(self, *, static: bool) -> None:
        super().__init__()
        self.static = static


def cached_keys_values(
    cache: KVCache | None,
    memory: torch.Tensor,
    project: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of ``memory`` via ``project``, reusing / extending ``cache``.

    Shapes: ``memory`` ``[B, Tm, C]`` → ``(k, v)`` ``[B, Tk, Q]`` each (``Tk`` = all cached
    positions plus the new ones for a growing cache).
    """
    if cache is None:
        return project(memory)
    if cache.static and "k" in cache:
        return cache["k"], cache["v"]
    k, v = project(memory)
    if not cache.static and "k" in cache:
        k, v = torch.cat([cache["k"], k], dim=1), torch.cat([cache["v"], v], dim=1)
    cache["k"], cache["v"] = k, v
    return k, v


class EncoderDecoder(Protocol):
    """What :func:`greedy_decode` needs of a model (SuperTransformer or SubTransformer)."""

    pad_id: int

    def encode(self, src: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]: ...

    def decode(
        self, tgt_in: torch.Tensor, encoder_outs: list[torch.Tensor], src_pad: torch.Tensor
    ) -> torch.Tensor: ...

    def decode_step(
        self,
        token: torch.Tensor,
        step: int,
        encoder_outs: list[torch.Tensor],
        src_pad: torch.Tensor,
        caches: list[dict[str, KVCache]],
    ) -> torch.Tensor: ...


class Seq2SeqMethods:
    """``forward`` and ``greedy_decode`` of an encoder-decoder built from its ``encode``,
    ``decode`` and ``decode_step`` (:class:`EncoderDecoder`); mixed into the SuperTransformer and
    the SubTransformer before ``nn.Module``."""

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, vocab]`` of the target prefix ``tgt_in [B, T]`` given ``src [B, S]``."""
        model: EncoderDecoder = self  # type: ignore[assignment]
        encoder_outs, src_pad = model.encode(src)
        return model.decode(tgt_in, encoder_outs, src_pad)

    def greedy_decode(
        self,
        src: torch.Tensor,
        *,
        bos_id: int,
        eos_id: int,
        max_len: int,
        incremental: bool = True,
    ) -> torch.Tensor:
        """Greedy translation ``[B, L]`` (see :func:`greedy_decode`)."""
        return greedy_decode(
            self,  # type: ignore[arg-type]
            src, bos_id=bos_id, eos_id=eos_id, max_len=max_len, incremental=incremental,
        )  # fmt: skip


@torch.no_grad()
def greedy_decode(
    model: EncoderDecoder,
    src: torch.Tensor,
    *,
    bos_id: int,
    eos_id: int,
    max_len: int,
    incremental: bool = True,
) -> torch.Tensor:
    """Greedy decoding: run the encoder once, then append the arg-max token until every row has
    emitted ``eos_id`` or ``max_len`` tokens were generated. ``incremental``: the decoder runs
    on the newest token only and reuses the keys and values of earlier steps (fairseq's
    incremental decoding, as HAT measures latency); else it re-runs over the whole prefix
    (same tokens, O(L^2) work; kept as the reference the cache is tested against).

    Shapes: ``src`` ``[B, S]`` int64 → ``[B, L]`` int64 with ``L <= max_len``, without the leading
    bos; after a row's eos every token is ``model.pad_id``.
    """
    encoder_outs, src_pad = model.encode(src)
    batch = src.shape[0]
    out = torch.full((batch, 1), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(batch, dtype=torch.bool, device=src.device)
    caches: list[dict[str, KVCache]] = []
    for step in range(max_len):
        if incremental:
            logits = model.decode_step(out[:, -1:], step, encoder_outs, src_pad, caches)
        else:
            logits = model.decode(out, encoder_outs, src_pad)[:, -1]
        token = logits.argmax(dim=-1)
        token = torch.where(done, torch.full_like(token, model.pad_id), token)
        out = torch.cat([out, token[:, None]], dim=1)
        done |= token == eos_id
        if bool(done.all()):
            break
    return out[:, 1:]
