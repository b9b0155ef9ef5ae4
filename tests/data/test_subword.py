"""The joint BPE tokenizer: training, exact round trip, save/load, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from supernet.data.subword import EOS_ID, PAD_ID, SubwordTokenizer, train_subword_tokenizer
from supernet.errors import CheckpointError, ConfigError, DataNotFoundError

pytest.importorskip("sentencepiece")

TEXTS = [
    "Open the file",
    "Datei öffnen",
    "Close the window",
    "Fenster schließen",
    "could not open file %s",
    "konnte Datei »%s« nicht öffnen",
    "Save the file as …",
    "Datei speichern unter …",
] * 20


@pytest.fixture(scope="module")
def tokenizer() -> SubwordTokenizer:
    return train_subword_tokenizer(TEXTS, vocab_size=400)


def test_round_trip_exact_including_unseen_characters(tokenizer: SubwordTokenizer) -> None:
    texts = ["Datei öffnen", "could not open file »%s«", "Ünïcödé ✓ never seen 漢字"]
    ids = tokenizer.encode(texts)
    assert all(PAD_ID not in seq and EOS_ID not in seq for seq in ids)
    assert tokenizer.decode(ids) == texts
    assert tokenizer.decode([[*ids[0], EOS_ID, PAD_ID, PAD_ID]]) == [texts[0]]
    assert tokenizer.vocab_size == 400


def test_save_load_same_ids(tokenizer: SubwordTokenizer, tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.model"
    tokenizer.save(path)
    loaded = SubwordTokenizer.load(path)
    assert loaded.encode(TEXTS[:4]) == tokenizer.encode(TEXTS[:4])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_training_is_deterministic(tokenizer: SubwordTokenizer) -> None:
    again = train_subword_tokenizer(TEXTS, vocab_size=400)
    assert again.encode(TEXTS) == tokenizer.encode(TEXTS)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"tokenizer model .*none\.model does not exist"):
        SubwordTokenizer.load(tmp_path / "none.model")
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match=r"junk\.model: not a sentencepiece model"):
        SubwordTokenizer.load(junk)
    with pytest.raises(ConfigError, match="vocab_size = 4 must be >= 8"):
        train_subword_tokenizer(TEXTS, vocab_size=4)
    with pytest.raises(ConfigError, match="sentencepiece cannot train vocab_size = 100000"):
        train_subword_tokenizer(TEXTS, vocab_size=100000)
