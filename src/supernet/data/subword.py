"""A joint source+target subword vocabulary (BPE) for translation, via sentencepiece.

We wrap a maintained library (sentencepiece, Kudo & Richardson, EMNLP'18, arXiv 1808.06226)
rather than write BPE: HAT's SuperTransformer shares one embedding matrix between encoder,
decoder and output layer (fairseq ``--share-all-embeddings``), which needs one joint vocabulary.

Normalization is the identity and unseen characters fall back to UTF-8 bytes, so
``decode(encode(text)) == text`` for any text whose whitespace is already single spaces (the
corpus loaders normalize it).

Reference: BPE (Sennrich et al., ACL'16, arXiv 1508.07909); HAT (arXiv 2005.14187), Sec. 4.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from supernet.checkpoint import new_file_mode
from supernet.errors import CheckpointError, ConfigError, DataNotFoundError, MissingExtraError

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "UNK_ID", "SubwordTokenizer", "train_subword_tokenizer"]

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
_HINT = "pip install 'supernet[hat]' (sentencepiece, sacrebleu)"


def _sentencepiece() -> Any:
    try:
        return importlib.import_module("sentencepiece")
    except ImportError as exc:
        raise MissingExtraError(
            f"sentencepiece is not importable ({exc}); it comes with the hat extra: {_HINT}"
        ) from exc


class SubwordTokenizer:
    """A trained sentencepiece model: text ↔ token ids.

    Ids ``0..3`` are pad, unk, bos (``<s>``) and eos (``</s>``); :meth:`encode` adds neither bos
    nor eos (the training batcher does).
    """

    def __init__(self, model_proto: bytes) -> None:
        self._proto = bytes(model_proto)
        self._sp = _sentencepiece().SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._proto)
        except (RuntimeError, OSError) as exc:
            raise CheckpointError(f"not a sentencepiece model: {exc}") from exc

    @property
    def vocab_size(self) -> int:
        """Number of ids, the special ones included."""
        return int(self._sp.GetPieceSize())

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (no bos / eos)."""
        return [list(ids) for ids in self._sp.Encode(list(texts), out_type=int)]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Texts of id sequences; pad, bos and eos ids are dropped."""
        special = {PAD_ID, BOS_ID, EOS_ID}
        return [self._sp.Decode([int(i) for i in seq if int(i) not in special]) for seq in ids]

    def pieces(self, text: str) -> list[str]:
        """The subword pieces of one text (for inspection)."""
        return list(self._sp.EncodeAsPieces(text))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model (sentencepiece's ``.model`` format) atomically: temp file, fsync, rename.

        Raises:
            OSError: the file cannot be written (naming ``path``).
        """
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self._proto)
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(OSError):
                os.chmod(tmp, new_file_mode())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SubwordTokenizer:
        """Read a model written by :meth:`save` (or by ``spm_train``).

        Raises:
            DataNotFoundError: the file does not exist.
            CheckpointError: the file is not a sentencepiece model (naming it).
        """
        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f"tokenizer model {path} does not exist")
        try:
            return cls(path.read_bytes())
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc


def train_subword_tokenizer(
    texts: Iterable[str], *, vocab_size: int = 3000, max_sentences: int = 0
) -> SubwordTokenizer:
    """Train a BPE model on ``texts`` (pass both sides of the training split for a joint
    vocabulary). ``vocab_size`` includes the 4 special ids and the 256 byte-fallback pieces,
    so it must exceed 260 plus the number of distinct characters. Deterministic: one thread,
    no sampling of the input unless ``max_sentences`` (0 = all) caps it, and then sentencepiece
    samples with its fixed seed.

    Raises:
        ConfigError: ``vocab_size`` < 8, or sentencepiece refuses it for this text (too large for
            the characters seen; its message says the maximum).
        MissingExtraError: sentencepiece is not installed.
    """
    if vocab_size < 8:
        raise ConfigError(f"vocab_size = {vocab_size} must be >= 8")
    spm = _sentencepiece()
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.Train(
            sentence_iterator=iter(list(texts)),
            model_writer=model,
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=1.0,
            byte_fallback=True,
            normalization_rule_name="identity",
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            num_threads=1,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=max_sentences > 0,
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise ConfigError(f"sentencepiece cannot train vocab_size = {vocab_size}: {exc}") from exc
    return SubwordTokenizer(model.getvalue())
