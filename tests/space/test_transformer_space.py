"""The hat family's config and spaces: JSON, validation, sampling, evolution, features, size."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from supernet.errors import ConfigError
from supernet.space import ArchConfig
from supernet.space.transformer import (
    HAT_FEATURES,
    TRANSFORMER_SPACES,
    get_transformer_space,
    list_transformer_spaces,
)
from supernet.space.transformer_config import TransformerConfig, describe_transformer

SPACES = [get_transformer_space(n) for n in list_transformer_spaces()]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_sample_mutate_crossover_stay_in_space_and_are_seeded(space) -> None:
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(30)]
    for c in configs:
        space.validate(c)
        space.validate(space.mutate(c, rng))
    for a, b in itertools.pairwise(configs):
        child = space.validate(space.crossover(a, b, rng))
        for field in dataclasses.fields(child):
            got = getattr(child, field.name)
            pa, pb = getattr(a, field.name), getattr(b, field.name)
            if isinstance(got, tuple):
                assert all(g in (x, y) for g, x, y in zip(got, pa, pb, strict=True))
            else:
                assert got in (pa, pb)
    again = np.random.default_rng(0)
    assert [space.sample(again) for _ in range(30)] == configs
    assert len(set(configs)) > 25  # a big space: samples differ


def test_mutate_probability_bounds() -> None:
    space = TRANSFORMER_SPACES["hat-tiny"]
    rng = np.random.default_rng(1)
    c = space.sample(rng)
    assert space.mutate(c, rng, prob=0.0) == c
    changed = [space.mutate(c, rng, prob=1.0) != c for _ in range(20)]
    assert sum(changed) >= 18
    with pytest.raises(ConfigError, match=r"mutate prob = 1.5 must be in \[0, 1\]"):
        space.mutate(c, rng, prob=1.5)


def test_size_matches_paper_order_and_small_case() -> None:
    wmt = TRANSFORMER_SPACES["hat-wmt"]
    assert 1e14 < wmt.size() < 1e15  # the paper's "about 10^15" (Sec. 3.1)
    tiny = TRANSFORMER_SPACES["hat-tiny"]
    # enc: 2 embeds x (3 ffn x 2 heads)^3; dec: 2 embeds x sum_n (3 x 2 x 2 x 3)^n, n = 1..3
    assert tiny.size() == 2 * 6**3 * 2 * (36 + 36**2 + 36**3)


def test_largest_smallest_and_encode() -> None:
    space = TRANSFORMER_SPACES["hat-tiny"]
    big, small = space.largest(), space.smallest()
    assert big.encoder_embed_dim == 160 and big.decoder_layers == 3
    assert small.decoder_layers == 1 and small.encoder_ffn_dim == (256,) * 3
    x = space.encode([big, small, space.sample(np.random.default_rng(0))])
    assert x.shape == (3, len(HAT_FEATURES)) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], 1.0)
    assert (x > 0).all() and (x <= 1).all()
    # small: decoder layers 1 of 3; encoder FFN 256 of 768; heads 2 of 4
    assert x[1][HAT_FEATURES.index("decoder_layers")] == pytest.approx(1 / 3)
    assert x[1][HAT_FEATURES.index("encoder_ffn_dim_mean")] == pytest.approx(256 / 768)
    assert x[1][HAT_FEATURES.index("cross_attention_heads_mean")] == pytest.approx(0.5)


def test_encode_ignores_inactive_slots() -> None:
    space = TRANSFORMER_SPACES["hat-tiny"]
    a = space.smallest()
    b = dataclasses.replace(a, decoder_ffn_dim=(256, 768, 768), decoder_heads=(2, 4, 4))
    np.testing.assert_array_equal(space.encode([a]), space.encode([b]))


def test_json_round_trip_and_describe() -> None:
    space = TRANSFORMER_SPACES["hat-wmt"]
    c = space.sample(np.random.default_rng(3))
    assert TransformerConfig.from_json(c.to_json()) == c
    assert c.family == "hat"
    text = describe_transformer(space.largest())
    assert text.startswith("enc 640x6 ffn 3072,3072,3072,3072,3072,3072 h 8,8,8,8,8,8 | dec 640x6")


def test_validation_messages() -> None:
    space = TRANSFORMER_SPACES["hat-tiny"]
    big = space.largest()
    with pytest.raises(ConfigError) as info:
        space.validate(dataclasses.replace(big, encoder_ffn_dim=(768, 768, 300)))
    assert str(info.value) == (
        "encoder_ffn_dim[2] = 300 is not allowed in space 'hat-tiny'; choose from (256, 512, 768)"
    )
    with pytest.raises(ConfigError, match=r"^decoder_embed_dim = 512 is not allowed in space"):
        space.validate(dataclasses.replace(big, decoder_embed_dim=512))
    wmt_config = TRANSFORMER_SPACES["hat-wmt"].largest()
    with pytest.raises(ConfigError, match="encoder_embed_dim = 640 is not allowed"):
        space.validate(wmt_config)
    cnn = ArchConfig(resolution=32, kernel_size=(3,), expand_ratio=(3,), depth=(1,))
    with pytest.raises(ConfigError) as info:
        space.validate(cnn)  # type: ignore[arg-type]
    assert str(info.value) == "a 'ArchConfig' config was given to the 'hat' space 'hat-tiny'"
    with pytest.raises(ConfigError, match=r"decoder_layers = 4 must be in \[1, 3\]"):
        dataclasses.replace(big, decoder_layers=4)
    with pytest.raises(ConfigError, match="the decoder per-layer fields differ in length"):
        dataclasses.replace(big, cross_attention_heads=(4, 4))
    data = big.to_dict()
    del data["encoder_heads"]
    with pytest.raises(ConfigError, match=r"unknown \['extra'\], missing \['encoder_heads'\]"):
        TransformerConfig.from_dict({**data, "extra": 1})
    with pytest.raises(ConfigError, match=r"encoder_heads\[1\] must be an integer, got 'x'"):
        dataclasses.replace(big, encoder_heads=(4, "x", 4))
    with pytest.raises(ConfigError, match="unknown transformer space 'hat-huge'; choose from"):
        get_transformer_space("hat-huge")


def test_space_checks_its_choices() -> None:
    tiny = TRANSFORMER_SPACES["hat-tiny"]
    with pytest.raises(ConfigError, match=r"qkv_dim = 128 is not divisible by head counts \[3\]"):
        dataclasses.replace(tiny, head_counts=(2, 3))
    with pytest.raises(ConfigError, match="exceed the smallest encoder layer count 2"):
        dataclasses.replace(tiny, encoder_layer_counts=(2, 3))
    with pytest.raises(ConfigError, match="ffn_dims must be non-empty, sorted"):
        dataclasses.replace(tiny, ffn_dims=(512, 256))


# Two of HAT's released WMT'14 En-De SubTransformers (configs/wmt14.en-de/subtransformer/):
# HAT_wmt14ende_xeon@137.9ms_bleu@25.8.yml and HAT_wmt14ende_raspberrypi@6.9s_bleu@28.4.yml
HAT_XEON_137MS = """
encoder-embed-dim-subtransformer: 512
decoder-embed-dim-subtransformer: 512
encoder-ffn-embed-dim-all-subtransformer: [3072, 3072, 3072, 3072, 3072, 3072]
decoder-ffn-embed-dim-all-subtransformer: [3072]
encoder-layer-num-subtransformer: 6
decoder-layer-num-subtransformer: 1
encoder-self-attention-heads-all-subtransformer: [4, 8, 8, 8, 8, 8]
decoder-self-attention-heads-all-subtransformer: [8]
decoder-ende-attention-heads-all-subtransformer: [8]
decoder-arbitrary-ende-attn-all-subtransformer: [1]
"""
HAT_RPI_6900MS = """
encoder-embed-dim-subtransformer: 512
decoder-embed-dim-subtransformer: 512
encoder-ffn-embed-dim-all-subtransformer: [3072, 3072, 3072, 3072, 3072, 3072]
decoder-ffn-embed-dim-all-subtransformer: [2048, 2048, 3072, 3072, 2048]
encoder-layer-num-subtransformer: 6
decoder-layer-num-subtransformer: 5
encoder-self-attention-heads-all-subtransformer: [8, 4, 8, 8, 8, 8]
decoder-self-attention-heads-all-subtransformer: [8, 8, 8, 4, 8]
decoder-ende-attention-heads-all-subtransformer: [4, 8, 8, 8, 8]
decoder-arbitrary-ende-attn-all-subtransformer: [-1, 1, 1, 1, -1]
"""


def test_hat_released_subtransformers_are_in_hat_wmt() -> None:
    import yaml

    from supernet.space.transformer_hat import config_from_hat

    wmt = TRANSFORMER_SPACES["hat-wmt"]
    xeon = config_from_hat(yaml.safe_load(HAT_XEON_137MS), wmt)
    assert xeon.decoder_layers == 1
    assert xeon.active("cross_attention_encoder_layers") == (2,)  # HAT's code 1: last two
    assert len(xeon.decoder_ffn_dim) == 6  # inactive slots filled with the first layer's
    rpi = config_from_hat(yaml.safe_load(HAT_RPI_6900MS), wmt)
    assert rpi.active("cross_attention_encoder_layers") == (1, 2, 2, 2, 1)
    assert rpi.active("decoder_ffn_dim") == (2048, 2048, 3072, 3072, 2048)
    with pytest.raises(ConfigError, match="is not allowed in space 'hat-tiny'"):
        config_from_hat(yaml.safe_load(HAT_XEON_137MS), TRANSFORMER_SPACES["hat-tiny"])
    bad = yaml.safe_load(HAT_XEON_137MS)
    bad["decoder-arbitrary-ende-attn-all-subtransformer"] = [0]
    with pytest.raises(ConfigError, match=r"holds \[0\]; HAT's codes are \[-1, 1, 2\]"):
        config_from_hat(bad, wmt)
    del bad["decoder-layer-num-subtransformer"]
    with pytest.raises(ConfigError, match=r"lacks \['decoder-layer-num-subtransformer'\]"):
        config_from_hat(bad, wmt)
