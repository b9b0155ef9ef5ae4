"""Parameter and MAC counts of SubTransformers against the extracted modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from supernet.cost.transformer import transformer_macs, transformer_params
from supernet.errors import ConfigError
from supernet.nn.transformer import SuperTransformer
from supernet.space.transformer import get_transformer_space

SPACE = get_transformer_space("hat-tiny")
VOCAB = 300


@pytest.fixture(scope="module")
def model() -> SuperTransformer:
    return SuperTransformer(SPACE, vocab_size=VOCAB).eval()


def configs():
    rng = np.random.default_rng(0)
    return [SPACE.largest(), SPACE.smallest()] + [SPACE.sample(rng) for _ in range(4)]


def test_params_equal_the_subnets(model: SuperTransformer) -> None:
    cs = configs()
    counted = transformer_params(cs, SPACE, vocab_size=VOCAB)
    actual = [sum(p.numel() for p in model.get_subnet(c).parameters()) for c in cs]
    assert counted.dtype == np.int64
    assert counted.tolist() == actual


@pytest.mark.slow  # importing torch's flop counter takes seconds
def test_macs_equal_a_flop_counter(model: SuperTransformer) -> None:
    s, t = 7, 5
    src = torch.randint(4, VOCAB, (1, s))
    tgt = torch.randint(4, VOCAB, (1, t))
    cs = configs()
    counted = transformer_macs(cs, SPACE, vocab_size=VOCAB, source_tokens=s, target_tokens=t)
    for c, macs in zip(cs, counted, strict=True):
        with FlopCounterMode(display=False) as flops:
            model.get_subnet(c)(src, tgt)
        # torch's counter sees the linear layers (2 FLOPs per MAC) but not CPU attention, whose
        # two matmuls cost (queries x keys x qkv_dim) MACs each
        q = SPACE.qkv_dim
        attention = c.encoder_layers * 2 * s * s * q + sum(
            2 * t * t * q + 2 * t * (k * s) * q for k in c.active("cross_attention_encoder_layers")
        )
        assert macs == flops.get_total_flops() // 2 + attention


def test_bad_input() -> None:
    wmt = get_transformer_space("hat-wmt")
    with pytest.raises(ConfigError, match="is not allowed in space 'hat-tiny'"):
        transformer_params([wmt.largest()], SPACE, vocab_size=VOCAB)
    with pytest.raises(ConfigError, match="vocab_size = 0 must be >= 1"):
        transformer_params([SPACE.largest()], SPACE, vocab_size=0)
    with pytest.raises(ConfigError, match="source_tokens = 0 and target_tokens = 5 must be >= 1"):
        transformer_macs([SPACE.largest()], SPACE, vocab_size=9, source_tokens=0, target_tokens=5)
