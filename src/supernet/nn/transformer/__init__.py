"""The ``hat`` family's modules: HAT's SuperTransformer and its plain SubTransformers.

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187).
"""

from supernet.nn.transformer.checkpoint import load_supertransformer, save_supertransformer
from supernet.nn.transformer.elastic import (
    Attention,
    ElasticAttention,
    ElasticLayerNorm,
    ElasticLinear,
)
from supernet.nn.transformer.functional import (
    causal_mask,
    greedy_decode,
    multi_head_attention,
    sinusoidal_positions,
)
from supernet.nn.transformer.subtransformer import DecoderLayer, EncoderLayer, SubTransformer
from supernet.nn.transformer.supertransformer import (
    SuperDecoderLayer,
    SuperEncoderLayer,
    SuperTransformer,
)

__all__ = [
    "Attention",
    "DecoderLayer",
    "ElasticAttention",
    "ElasticLayerNorm",
    "ElasticLinear",
    "EncoderLayer",
    "SubTransformer",
    "SuperDecoderLayer",
    "SuperEncoderLayer",
    "SuperTransformer",
    "causal_mask",
    "greedy_decode",
    "load_supertransformer",
    "multi_head_attention",
    "save_supertransformer",
    "sinusoidal_positions",
]
