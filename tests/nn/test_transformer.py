"""HAT's SuperTransformer: SubTransformer extraction equals it, front-slice sharing, masks,
arbitrary encoder–decoder attention, greedy decoding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from supernet.errors import ConfigError
from supernet.nn.transformer import SubTransformer, SuperTransformer
from supernet.space.transformer import TransformerSpace, get_transformer_space

VOCAB, PAD, BOS, EOS = 97, 0, 2, 3
# hat-tiny's shape at a smaller width, so the tests run in milliseconds; uneven embed dims so a
# slice along the wrong axis fails
SMALL = dataclasses.replace(
    get_transformer_space("hat-tiny"),
    name="hat-test",
    encoder_embed_dims=(24, 40),
    decoder_embed_dims=(16, 32),
    ffn_dims=(20, 36, 52),
    head_counts=(2, 4),
    qkv_dim=16,
    max_positions=32,
)


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random biases and layer-norm affines too (a fresh init has zeros and ones there, which
    would hide a wrong slice)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        scale = 0.3 if p.dim() > 1 else 0.2
        p.copy_(torch.randn(p.shape, generator=g) * scale + (1.0 if "norm.weight" in name else 0))
    return model


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, VOCAB, (3, 11), generator=g)
    tgt = torch.randint(4, VOCAB, (3, 8), generator=g)
    src[0, 7:] = PAD
    src[2, 4:] = PAD
    tgt[1, 5:] = PAD
    return src, tgt


@pytest.fixture(scope="module")
def model() -> SuperTransformer:
    torch.manual_seed(0)
    return randomize_(SuperTransformer(SMALL, vocab_size=VOCAB, pad_id=PAD)).eval()


def test_subnet_equals_supertransformer_for_random_configs(model: SuperTransformer) -> None:
    src, tgt = batch()
    rng = np.random.default_rng(0)
    outputs = []
    for config in [SMALL.largest(), SMALL.smallest()] + [SMALL.sample(rng) for _ in range(8)]:
        model.set_active(config)
        expected = model(src, tgt)
        subnet = model.get_subnet()
        assert isinstance(subnet, SubTransformer)
        assert not any("Elastic" in type(m).__name__ for m in subnet.modules())
        torch.testing.assert_close(subnet.eval()(src, tgt), expected, atol=1e-5, rtol=1e-5)
        outputs.append(expected)
    # the configs really compute different functions (so the equality above is not vacuous)
    assert all((outputs[0] - o).abs().max() > 1e-2 for o in outputs[1:])


def test_subnet_has_the_sliced_shapes(model: SuperTransformer) -> None:
    config = dataclasses.replace(
        SMALL.smallest(), encoder_embed_dim=40, decoder_layers=2, decoder_ffn_dim=(52, 36, 20)
    )
    subnet = model.get_subnet(config)
    assert subnet.embed.weight.shape == (VOCAB, 40)
    assert len(subnet.encoder_layers) == 3 and len(subnet.decoder_layers) == 2
    assert subnet.encoder_layers[0].fc1.weight.shape == (20, 40)
    assert subnet.decoder_layers[1].fc1.weight.shape == (36, 16)
    assert subnet.decoder_layers[0].cross_attn.k_proj.weight.shape == (16, 40)
    assert subnet.decoder_layers[0].self_attn.q_proj.weight.shape == (16, 16)


def test_weights_are_shared_by_front_slice() -> None:
    torch.manual_seed(1)
    model = randomize_(SuperTransformer(SMALL, vocab_size=VOCAB, pad_id=PAD)).eval()
    model.set_active(SMALL.smallest())  # FFN 20 of 52, encoder embed 24 of 40
    src, tgt = batch()
    before = model(src, tgt)
    fc1 = model.encoder_layers[0].fc1
    with torch.no_grad():
        fc1.weight[20:, :].add_(5.0)  # rows no small SubTransformer uses
        fc1.weight[:, 24:].add_(5.0)
    torch.testing.assert_close(model(src, tgt), before, atol=0, rtol=0)
    with torch.no_grad():
        fc1.weight[0, 0].add_(5.0)  # a weight in the front slice
    assert (model(src, tgt) - before).abs().max() > 1e-3


def test_arbitrary_encoder_decoder_attention_is_wired(model: SuperTransformer) -> None:
    src, tgt = batch()
    base = SMALL.largest()
    outs = []
    for layers in (1, 2, 3):
        model.set_active(dataclasses.replace(base, cross_attention_encoder_layers=(layers,) * 3))
        outs.append(model(src, tgt))
    assert (outs[0] - outs[1]).abs().max() > 1e-3 and (outs[1] - outs[2]).abs().max() > 1e-3


def test_padding_and_causality(model: SuperTransformer) -> None:
    model.set_active(SMALL.sample(np.random.default_rng(5)))
    src, tgt = batch()
    full = model(src, tgt)
    # extra padding on the source changes nothing
    padded = torch.cat([src, torch.full((3, 4), PAD)], dim=1)
    torch.testing.assert_close(model(padded, tgt), full, atol=1e-5, rtol=1e-5)
    # a later target token does not change earlier positions' logits
    changed = tgt.clone()
    changed[:, 6] = 5
    out = model(src, changed)
    torch.testing.assert_close(out[:, :6], full[:, :6], atol=1e-5, rtol=1e-5)
    assert (out[:, 6:] - full[:, 6:]).abs().max() > 1e-4


def test_greedy_decode_matches_teacher_forced_argmax(model: SuperTransformer) -> None:
    model.set_active(SMALL.sample(np.random.default_rng(7)))
    src, _ = batch()
    out = model.greedy_decode(src, bos_id=BOS, eos_id=EOS, max_len=6)
    assert out.shape[0] == 3 and out.shape[1] <= 6
    # feeding the decoded prefix back gives the same arg-max at every step
    tgt_in = torch.cat([torch.full((3, 1), BOS), out[:, :-1]], dim=1)
    argmax = model(src, tgt_in).argmax(-1)
    for row in range(3):
        ended = (out[row] == EOS).nonzero()
        stop = int(ended[0]) + 1 if len(ended) else out.shape[1]
        assert torch.equal(argmax[row, :stop], out[row, :stop])
        assert (out[row, stop:] == PAD).all()
    subnet = model.get_subnet()
    assert torch.equal(subnet.greedy_decode(src, bos_id=BOS, eos_id=EOS, max_len=6), out)


def test_incremental_decoding_equals_full_recompute(model: SuperTransformer) -> None:
    src, _ = batch(3)
    rng = np.random.default_rng(9)
    for config in [SMALL.largest(), *(SMALL.sample(rng) for _ in range(4))]:
        model.set_active(config)
        subnet = model.get_subnet()
        for m in (model, subnet):
            full = m.greedy_decode(src, bos_id=BOS, eos_id=EOS, max_len=9, incremental=False)
            cached = m.greedy_decode(src, bos_id=BOS, eos_id=EOS, max_len=9)
            assert torch.equal(cached, full)
        # per-step logits agree too, not only their arg-max
        encoder_outs, src_pad = model.encode(src)
        tokens = torch.cat([torch.full((3, 1), BOS), full[:, :-1]], dim=1)
        caches: list = []
        steps = [
            model.decode_step(tokens[:, t : t + 1], t, encoder_outs, src_pad, caches)
            for t in range(tokens.shape[1])
        ]
        torch.testing.assert_close(
            torch.stack(steps, dim=1), model.decode(tokens, encoder_outs, src_pad),
            atol=1e-5, rtol=1e-5,
        )  # fmt: skip


def test_gradients_reach_only_the_active_slice() -> None:
    model = SuperTransformer(SMALL, vocab_size=VOCAB, pad_id=PAD).train()
    model.set_active(SMALL.smallest())
    src, tgt = batch()
    model(src, tgt).sum().backward()
    grad = model.encoder_layers[0].fc1.weight.grad
    assert grad is not None and grad[:20, :24].abs().sum() > 0
    assert grad[20:].abs().sum() == 0 and grad[:, 24:].abs().sum() == 0
    assert model.decoder_layers[1].fc1.weight.grad is None  # decoder layer 2 is inactive


def test_bad_configs_are_refused(model: SuperTransformer) -> None:
    wmt = get_transformer_space("hat-wmt")
    with pytest.raises(ConfigError, match="is not allowed in space 'hat-test'"):
        model.set_active(wmt.largest())
    with pytest.raises(ConfigError, match="is not allowed in space 'hat-test'"):
        model.get_subnet(wmt.smallest())


def test_tiny_preset_builds() -> None:
    space: TransformerSpace = get_transformer_space("hat-tiny")
    model = SuperTransformer(space, vocab_size=3000)
    n = sum(p.numel() for p in model.parameters())
    assert 2_000_000 < n < 4_000_000  # embedding 3000 x 160 + 3 + 3 layers at 160 / FFN 768


def test_checkpoint_round_trip(model: SuperTransformer, tmp_path) -> None:
    from supernet.errors import CheckpointError
    from supernet.nn.transformer import load_supertransformer, save_supertransformer

    path = tmp_path / "super.pt"
    save_supertransformer(path, model, extra={"tokenizer_sha256": "ab" * 32})
    loaded, metadata = load_supertransformer(path, space="hat-test")
    assert loaded.space == SMALL
    assert metadata["tokenizer_sha256"] == "ab" * 32
    config = SMALL.sample(np.random.default_rng(11))
    model.set_active(config)
    loaded.set_active(config)
    src, tgt = batch()
    torch.testing.assert_close(loaded.eval()(src, tgt), model(src, tgt), atol=0, rtol=0)
    with pytest.raises(CheckpointError) as info:
        load_supertransformer(path, space="hat-tiny")
    assert str(info.value) == (
        f"{path} holds a SuperTransformer of space 'hat-test'; expected 'hat-tiny'"
    )
    with pytest.raises(CheckpointError, match=r"extra metadata keys \['space'\] are reserved"):
        save_supertransformer(path, model, extra={"space": "x"})
