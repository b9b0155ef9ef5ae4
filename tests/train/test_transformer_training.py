"""HAT training: one random SubTransformer per step makes the loss fall; schedule; evaluation."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from supernet.data.subword import EOS_ID, PAD_ID
from supernet.data.translation import make_batches
from supernet.errors import ConfigError
from supernet.nn.transformer import SuperTransformer
from supernet.space.transformer import get_transformer_space
from supernet.train.transformer import (
    SuperTransformerTraining,
    label_smoothed_loss,
    learning_rate,
    train_supertransformer,
    validation_loss,
)

VOCAB = 40


@pytest.fixture(autouse=True)
def _one_thread():
    """Small matrices: 2 threads only add synchronization (10x slower on a loaded 2-core VM);
    the conftest fixture restores the thread count afterwards."""
    torch.set_num_threads(1)


SPACE = dataclasses.replace(
    get_transformer_space("hat-tiny"),
    name="hat-test",
    encoder_embed_dims=(24, 32),
    decoder_embed_dims=(24, 32),
    ffn_dims=(32, 64),
    qkv_dim=16,
    max_positions=16,
    dropout=0.0,
)


def synthetic_pairs(n: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """A toy 'translation': each source token maps to another token, in order."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        src = rng.integers(4, VOCAB, size=int(rng.integers(3, 8))).tolist()
        tgt = [4 + (7 * (t - 4) + 3) % (VOCAB - 4) for t in src]
        pairs.append((src, tgt))
    return pairs


def test_make_batches_token_budget_and_shapes() -> None:
    pairs = synthetic_pairs(100, 0)
    batches = make_batches(pairs, max_tokens=64)
    assert sum(b.src.shape[0] for b in batches) == 100
    for b in batches:
        assert b.src.shape[0] * max(b.src.shape[1], b.tgt_in.shape[1]) <= 64
        assert b.tgt_in.shape == b.tgt_out.shape
        # labels are the decoder inputs shifted left, ending with eos
        real = b.tgt_in[:, 1:] != PAD_ID
        assert torch.equal(b.tgt_in[:, 1:][real], b.tgt_out[:, :-1][real])
        assert ((b.tgt_out == EOS_ID).sum(dim=1) == 1).all()
    with pytest.raises(ConfigError, match="no sentence pairs to batch"):
        make_batches([], max_tokens=64)


def test_learning_rate_warmup_then_cosine() -> None:
    cfg = SuperTransformerTraining(steps=100, lr=1e-3, warmup_steps=10)
    lrs = [learning_rate(s, cfg) for s in range(100)]
    assert lrs[9] == pytest.approx(1e-3)
    assert lrs[0] < 2e-4
    assert all(a <= b for a, b in itertools.pairwise(lrs[:10]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lrs[-1] < 1e-5
    with pytest.raises(ConfigError, match="steps = 0 must be >= 1"):
        SuperTransformerTraining(steps=0)


def test_label_smoothed_loss_ignores_pad_and_smooths() -> None:
    logits = torch.zeros(1, 3, 5)
    logits[0, :, 2] = 10.0
    target = torch.tensor([[2, 2, PAD_ID]])
    plain = label_smoothed_loss(logits, target, smoothing=0.0)
    expected = -torch.log_softmax(logits[0, 0], -1)[2]
    torch.testing.assert_close(plain, expected)
    assert label_smoothed_loss(logits, target, smoothing=0.1) > plain


def copy_pairs(n: int, seed: int, vocab: int) -> list[tuple[list[int], list[int]]]:
    """A toy 'translation' that a tiny model learns in a few hundred steps: copy the source."""
    rng = np.random.default_rng(seed)
    sources = [rng.integers(4, vocab, size=int(rng.integers(3, 8))).tolist() for _ in range(n)]
    return [(s, list(s)) for s in sources]


def label_entropy(batches) -> float:
    """Entropy (nats) of the label frequencies: the loss of a model that learned only them."""
    labels = torch.cat([b.tgt_out[b.tgt_out != PAD_ID] for b in batches])
    p = torch.bincount(labels).double() / len(labels)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


@pytest.mark.slow
def test_random_subtransformer_training_makes_loss_fall() -> None:
    torch.manual_seed(0)
    vocab = 16
    model = SuperTransformer(SPACE, vocab_size=vocab)
    train = make_batches(copy_pairs(600, 1, vocab), max_tokens=256)
    valid = make_batches(copy_pairs(60, 2, vocab), max_tokens=256)
    extremes = (SPACE.largest(), SPACE.smallest())
    before = [validation_loss(model, valid, c) for c in extremes]
    config = SuperTransformerTraining(
        steps=300, lr=1e-2, warmup_steps=30, label_smoothing=0.0, seed=0
    )
    history = train_supertransformer(model, train, config)
    after = [validation_loss(model, valid, c) for c in extremes]
    assert len(history.loss) == 300
    assert len(set(history.configs)) > 250  # a new SubTransformer drawn nearly every step
    assert np.mean(history.loss[-25:]) < 0.6 * np.mean(history.loss[:25])
    # both extremes learned with the shared weights, beyond the label frequencies
    floor = label_entropy(valid)
    for b, a in zip(before, after, strict=True):
        assert a < 0.6 * b
        assert a < floor - 0.5
    assert model.active_config == history.configs[-1]  # the last draw stays active


def test_sandwich_and_determinism() -> None:
    train = make_batches(synthetic_pairs(100, 3), max_tokens=96)
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = SuperTransformer(SPACE, vocab_size=VOCAB)
        cfg = SuperTransformerTraining(steps=5, warmup_steps=2, sandwich=True, seed=4)
        losses.append(train_supertransformer(model, train, cfg).loss)
    assert losses[0] == losses[1]


class CopyModel(torch.nn.Module):
    """Greedy 'translation' that returns the source (eos included): checks the plumbing."""

    def greedy_decode(self, src, *, bos_id, eos_id, max_len):
        return src[:, :max_len]


def test_translate_and_bleu_keep_order_and_batches() -> None:
    pytest.importorskip("sentencepiece")
    pytest.importorskip("sacrebleu")
    from supernet.data.subword import train_subword_tokenizer
    from supernet.data.translation import encode_pairs
    from supernet.train.transformer import evaluate_bleu, translate

    texts = [f"open file number {i} now" for i in range(40)] + ["close the window"] * 10
    tokenizer = train_subword_tokenizer(texts, vocab_size=300)
    sources = texts[:13]
    assert translate(CopyModel(), tokenizer, sources, batch_size=4) == sources
    pairs = [(s, s) for s in sources]
    assert evaluate_bleu(CopyModel(), tokenizer, pairs, batch_size=5).score == pytest.approx(100)
    encoded = encode_pairs([("open file", "close the window"), ("x " * 50, "y")], tokenizer,
                           max_tokens=20)  # fmt: skip
    assert len(encoded) == 1  # the source of 50 words (>= 50 tokens) is dropped
