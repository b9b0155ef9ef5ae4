"""Elastic Transformer operators: every weight is shared by taking its front slice.

A SubTransformer with embedding dim ``d`` uses ``weight[:out, :in]`` of each linear layer, the
first ``d`` entries of each layer norm and the first ``d`` columns of the embedding table; the
qkv dim stays whole, and the head count chooses how it is split (HAT's released
``LinearSuper``, ``LayerNormSuper``, ``EmbeddingSuper``, ``MultiheadAttentionSuper``). Input widths
are read from the input tensor; only output widths that are not the input's are passed in.

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 3.2 (weight sharing: "the
SubTransformers share the front portion of the weights").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supernet.nn.transformer.functional import KVCache, cached_keys_values, multi_head_attention

__all__ = ["Attention", "ElasticAttention", "ElasticLayerNorm", "ElasticLinear"]


class ElasticLinear(nn.Module):
    """A linear layer of at most ``in_features → out_features`` that runs on front slices.

    Shapes: ``x`` ``[..., i]`` with ``i <= in_features`` → ``[..., out]``.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor, out_features: int) -> torch.Tensor:
        return F.linear(x, self.weight[:out_features, : x.shape[-1]], self.bias[:out_features])

    def to_static(self, in_features: int, out_features: int) -> nn.Linear:
        """A plain ``nn.Linear`` holding a copy of the front slice."""
        layer = nn.Linear(in_features, out_features)
        with torch.no_grad():
            layer.weight.copy_(self.weight[:out_features, :in_features])
            layer.bias.copy_(self.bias[:out_features])
        return layer


class ElasticLayerNorm(nn.Module):
    """Layer norm over the first ``x.shape[-1]`` features, with the front of its affine params.

    Shapes: ``x`` ``[..., d]`` with ``d <= dim`` → same shape.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        return F.layer_norm(x, (d,), self.weight[:d], self.bias[:d])

    def to_static(self, dim: int) -> nn.LayerNorm:
        norm = nn.LayerNorm(dim)
        with torch.no_grad():
            norm.weight.copy_(self.weight[:dim])
            norm.bias.copy_(self.bias[:dim])
        return norm


class ElasticAttention(nn.Module):
    """Multi-head attention with elastic query / key-value input widths and head count.

    Queries come from ``query`` (width ``<= query_dim``), keys and values from ``memory`` (width
    ``<= memory_dim``); both are projected to the fixed ``qkv_dim``; the output goes back to the
    query's width.

    Shapes: ``query`` ``[B, Tq, dq]``, ``memory`` ``[B, Tk, dk]``, ``allowed`` broadcastable to
    ``[B, 1, Tq, Tk]`` (True = attend) → ``[B, Tq, dq]``. With a ``cache`` (incremental
    decoding, :func:`~.functional.cached_keys_values`) the keys and values of earlier steps are
    reused.
    """

    def __init__(self, query_dim: int, memory_dim: int, qkv_dim: int) -> None:
        super().__init__()
        self.qkv_dim = qkv_dim
        self.q_proj = ElasticLinear(query_dim, qkv_dim)
        self.k_proj = ElasticLinear(memory_dim, qkv_dim)
        self.v_proj = ElasticLinear(memory_dim, qkv_dim)
        self.out_proj = ElasticLinear(qkv_dim, query_dim)

    def forward(
        self,
        query: torch.Tensor,
        memory: torch.Tensor,
        heads: int,
        allowed: torch.Tensor | None,
        dropout_p: float = 0.0,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        q = self.q_proj(query, self.qkv_dim)
        k, v = cached_keys_values(
            cache, memory, lambda m: (self.k_proj(m, self.qkv_dim), self.v_proj(m, self.qkv_dim))
        )
        out = multi_head_attention(q, k, v, heads, allowed, dropout_p)
        return self.out_proj(out, query.shape[-1])

    def to_static(self, query_dim: int, memory_dim: int, heads: int) -> Attention:
        """A plain :class:`Attention` of these widths holding copies of the front slices."""
        static = Attention(query_dim, memory_dim, self.qkv_dim, heads)
        static.q_proj = self.q_proj.to_static(query_dim, self.qkv_dim)
        static.k_proj = self.k_proj.to_static(memory_dim, self.qkv_dim)
        static.v_proj = self.v_proj.to_static(memory_dim, self.qkv_dim)
        static.out_proj = self.out_proj.to_static(self.qkv_dim, query_dim)
        return static


class Attention(nn.Module):
    """Plain multi-head attention (a SubTransformer's): fixed widths and head count.

    Shapes: as :class:`ElasticAttention`.
    """

    def __init__(self, query_dim: int, memory_dim: int, qkv_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(query_dim, qkv_dim)
        self.k_proj = nn.Linear(memory_dim, qkv_dim)
        self.v_proj = nn.Linear(memory_dim, qkv_dim)
        self.out_proj = nn.Linear(qkv_dim, query_dim)

    def forward(
        self,
        query: torch.Tensor,
        memory: torch.Tensor,
        allowed: torch.Tensor | None,
        dropout_p: float = 0.0,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        q = self.q_proj(query)
        k, v = cached_keys_values(cache, memory, lambda m: (self.k_proj(m), self.v_proj(m)))
        return self.out_proj(multi_head_attention(q, k, v, self.heads, allowed, dropout_p))
