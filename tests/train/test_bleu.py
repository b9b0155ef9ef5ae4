"""Corpus BLEU via sacreBLEU: known cases and its signature."""

from __future__ import annotations

import math

import pytest

from supernet.errors import ConfigError
from supernet.train.bleu import corpus_bleu

pytest.importorskip("sacrebleu")


def test_identical_is_100_and_disjoint_is_0() -> None:
    refs = ["the cat sat on the mat", "a dog barked loudly at night"]
    assert corpus_bleu(refs, refs).score == pytest.approx(100.0)
    assert corpus_bleu(["x y z w", "q r s t u"], refs).score == pytest.approx(0.0)


def test_known_case_by_hand() -> None:
    # hyp vs ref, 6 words each (brevity penalty 1): n-gram precisions 5/6, 3/5, 1/4 and 0/3;
    # sacreBLEU's default "exp" smoothing turns the zero into 1 / (2 * 3).
    score = corpus_bleu(["the cat is on the mat"], ["the cat sat on the mat"])
    expected = 100 * math.exp(
        (math.log(5 / 6) + math.log(3 / 5) + math.log(1 / 4) + math.log(1 / 6)) / 4
    )
    assert score.score == pytest.approx(expected, abs=1e-6)
    assert score.signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert str(score).startswith(f"BLEU = {expected:.2f} (nrefs:1")


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="got 2 hypotheses and 1 references"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(ConfigError, match="empty corpus"):
        corpus_bleu([], [])
    with pytest.raises(ConfigError, match="tokenize = 'nope' is unknown"):
        corpus_bleu(["a"], ["a"], tokenize="nope")
