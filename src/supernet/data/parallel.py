"""Parallel (source → target) text corpora for translation: gettext catalogs, text files, TSV.

The offline English→German corpus of HAT's family is built from the gettext message catalogs
(``.mo``) that Debian packages install under ``/usr/share/locale/de/LC_MESSAGES``: real human
translations of program messages. Pairs are cleaned (source = target, format-only strings, too
long), deduplicated, and split into train / valid / test by a stable hash of the *source*, so one
source sentence never lands in two splits. Users bring other corpora (IWSLT, WMT) as two aligned
text files or one TSV file.

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 4 (translation tasks); the split by
source hash is ours (the catalogs have no official split).
"""

from __future__ import annotations

import codecs
import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from supernet.errors import ConfigError, DataNotFoundError

__all__ = [
    "DEBIAN_LOCALE_DIR",
    "SPLITS",
    "CorpusError",
    "ParallelCorpus",
    "clean_pairs",
    "load_gettext_corpus",
    "load_text_pair_corpus",
    "load_tsv_corpus",
    "read_mo_file",
    "split_by_source_hash",
]

DEBIAN_LOCALE_DIR = Path("/usr/share/locale")
SPLITS = ("train", "valid", "test")
_MO_MAGIC = {0x950412DE: "<", 0xDE120495: ">"}
# printf (%s, %1$d, %(name)s, %-10.3lf), python/brace ({}, {0}, {name:>4}), shell ($VAR, ${x})
_FORMAT_SPEC = re.compile(
    r"%(?:\(\w+\)|\d+\$)?[-+ #0']*\d*(?:\.\d+)?(?:hh|h|ll|l|L|j|z|t|q|I64|I32)?[a-zA-Z%]"
    r"|\{[^{}]*\}|\$\{?\w+\}?"
)
_CHARSET = re.compile(r"charset=([\w.:-]+)", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[\w-]+(?:[._][\w-]+)+")  # message keys such as "pinentry.qualitybar"
_WORD = re.compile(r"[^\W\d_]{2,}")  # a word of two or more letters


class CorpusError(ConfigError):
    """A corpus file is empty, misaligned, not UTF-8 or malformed; the message names the file
    (and line or byte offset) and what was expected."""


Pair = tuple[str, str]


@dataclass(frozen=True)
class ParallelCorpus:
    """A cleaned, deduplicated parallel corpus split by source hash.

    Attributes:
        splits: ``"train"`` / ``"valid"`` / ``"test"`` → list of ``(source, target)`` pairs,
            sorted; no source occurs in two splits.
        source_lang / target_lang: language codes, e.g. ``"en"`` / ``"de"``.
        origin: where the pairs came from (a directory or file paths), for the run record.
    """

    splits: dict[str, list[Pair]]
    source_lang: str
    target_lang: str
    origin: str

    def sizes(self) -> dict[str, int]:
        """Number of pairs per split."""
        return {name: len(self.splits[name]) for name in SPLITS}

    def checksum(self) -> str:
        """sha256 (hex) of all pairs, sorted, as ``source\\ttarget\\n`` UTF-8 lines: the same
        corpus gives the same checksum on every machine, so a run can record which data it saw."""
        digest = hashlib.sha256()
        for src, tgt in sorted(p for name in SPLITS for p in self.splits[name]):
            digest.update(f"{src}\t{tgt}\n".encode())
        return digest.hexdigest()

    def record(self) -> dict[str, object]:
        """JSON-ready summary for a run directory: origin, languages, sizes and checksum."""
        return {
            "origin": self.origin,
            "source_lang": self.source_lang,
            "target_lang": self.target_lang,
            "sizes": self.sizes(),
            "sha256": self.checksum(),
        }


# --- gettext catalogs -----------------------------------------------------------------------------
def read_mo_file(path: str | Path) -> list[Pair]:
    """All translated messages of one GNU ``.mo`` catalog as ``(msgid, msgstr)`` pairs.

    Plural entries give their singular form (``msgid``, ``msgstr[0]``); a message context
    (``"ctx\\x04msgid"``) is dropped; the header (empty msgid) and untranslated entries are
    skipped; messages are decoded with the charset the header names (UTF-8 when
    none). We parse the file ourselves (the format is a table of offsets, GNU gettext manual
    Sec. 10.3) because the stdlib's ``gettext.GNUTranslations`` offers no public way to list its
    messages.

    Raises:
        DataNotFoundError: the file does not exist.
        CorpusError: not a ``.mo`` file (bad magic), truncated, or a message does not decode
            in the header's charset (naming the file, message index and byte).
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"gettext catalog {path} does not exist")
    data = path.read_bytes()
    if len(data) < 20:
        raise CorpusError(f"{path}: {len(data)} bytes is too short for a .mo catalog")
    (magic,) = struct.unpack("<I", data[:4])
    if magic not in _MO_MAGIC:
        raise CorpusError(f"{path}: not a GNU .mo catalog (magic number {magic:#010x})")
    order = _MO_MAGIC[magic]
    _, count, ids_at, strs_at = struct.unpack(order + "4I", data[4:20])

    def entry(table: int, i: int) -> bytes:
        length, offset = struct.unpack(order + "2I", data[table + 8 * i : table + 8 * i + 8])
        if offset + length > len(data):
            raise CorpusError(f"{path}: entry {i} points past the end of the file (truncated)")
        return data[offset : offset + length]

    charset = "utf-8"
    for i in range(count):  # the header (empty msgid) names the catalog's charset
        if not entry(ids_at, i):
            found = _CHARSET.search(entry(strs_at, i).decode("ascii", "replace"))
            charset = found.group(1) if found else charset
    try:
        codecs.lookup(charset)
    except LookupError as exc:
        raise CorpusError(f"{path}: header names an unknown charset {charset!r}") from exc
    pairs: list[Pair] = []
    for i in range(count):
        raw_id, raw_str = entry(ids_at, i), entry(strs_at, i)
        if not raw_id or not raw_str:
            continue
        try:
            msgid, msgstr = raw_id.decode(charset), raw_str.decode(charset)
        except UnicodeDecodeError as exc:
            raise CorpusError(
                f"{path}: message {i} is not {charset} (byte {exc.start}: {exc.reason})"
            ) from exc
        msgid = msgid.split("\x00")[0].split("\x04")[-1]  # singular; context dropped
        msgstr = msgstr.split("\x00")[0]
        if msgstr:
            pairs.append((msgid, msgstr))
    return pairs


def _is_format_only(text: str) -> bool:
    return _WORD.search(_FORMAT_SPEC.sub(" ", text)) is None


def clean_pairs(pairs: Iterable[Pair], *, max_chars: int = 200, max_words: int = 40) -> list[Pair]:
    """Normalize whitespace, drop unusable pairs and deduplicate; sorted output.

    Dropped: a side that is empty; source equal to target (case-insensitively, e.g. ISO codes or
    names left untranslated); a format-only side (no word of two letters once ``%s``, ``{}``,
    ``$VAR`` are removed); a source that is a message key (one token of words joined by ``.`` or
    ``_``, e.g. ``pinentry.qualitybar.tooltip``); a side longer than ``max_chars`` characters
    or ``max_words`` whitespace-separated words. GTK mnemonic underscores are kept.

    Raises:
        ConfigError: when a limit is < 1.
    """
    if max_chars < 1 or max_words < 1:
        raise ConfigError(f"max_chars = {max_chars} and max_words = {max_words} must be >= 1")
    kept: set[Pair] = set()
    for src, tgt in pairs:
        src, tgt = " ".join(src.split()), " ".join(tgt.split())
        if not src or not tgt or src.casefold() == tgt.casefold():
            continue
        if _is_format_only(src) or _is_format_only(tgt) or _IDENTIFIER.fullmatch(src):
            continue
        if max(len(src), len(tgt)) > max_chars:
            continue
        if max(len(src.split()), len(tgt.split())) > max_words:
            continue
        kept.add((src, tgt))
    return sorted(kept)


def split_by_source_hash(
    pairs: Sequence[Pair], *, valid_fraction: float = 0.05, test_fraction: float = 0.05
) -> dict[str, list[Pair]]:
    """Assign each pair to train / valid / test by the sha256 of its source.

    Every pair with the same source goes to the same split (so a test source was never seen in
    training, even with another translation); the assignment does not depend on the order or on
    the other pairs, so adding catalogs never moves a sentence between splits.

    Raises:
        ConfigError: when a fraction is outside [0, 1) or they sum to >= 1.
    """
    for label, f in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise ConfigError(f"{label} = {f} must be in [0, 1)")
    if valid_fraction + test_fraction >= 1.0:
        raise ConfigError(
            f"valid_fraction + test_fraction = {valid_fraction + test_fraction} must be < 1"
        )
    out: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for src, tgt in pairs:
        bucket = int.from_bytes(hashlib.sha256(src.encode()).digest()[:8], "big") / 2**64
        name = (
            "test"
            if bucket < test_fraction
            else "valid"
            if bucket < test_fraction + valid_fraction
            else "train"
        )
        out[name].append((src, tgt))
    return {name: sorted(v) for name, v in out.items()}


def _corpus(pairs: list[Pair], origin: str, langs: tuple[str, str], **kw: float) -> ParallelCorpus:
    clean = clean_pairs(pairs, max_chars=int(kw["max_chars"]), max_words=int(kw["max_words"]))
    if not clean:
        raise CorpusError(f"{origin}: no usable sentence pairs left after cleaning")
    splits = split_by_source_hash(
        clean, valid_fraction=kw["valid_fraction"], test_fraction=kw["test_fraction"]
    )
    return ParallelCorpus(splits, langs[0], langs[1], origin)


def load_gettext_corpus(
    locale_dir: str | Path = DEBIAN_LOCALE_DIR,
    *,
    target_lang: str = "de",
    max_chars: int = 200,
    max_words: int = 40,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
) -> ParallelCorpus:
    """English → ``target_lang`` corpus from every ``.mo`` under
    ``locale_dir/target_lang/LC_MESSAGES``, cleaned (:func:`clean_pairs`) and split
    (:func:`split_by_source_hash`). gettext msgids are English by convention.

    Raises:
        DataNotFoundError: the directory is missing or holds no ``.mo`` file (names the path and
            the Debian packages that install catalogs).
        CorpusError: a catalog is malformed, or nothing usable remains after cleaning.
    """
    folder = Path(locale_dir) / target_lang / "LC_MESSAGES"
    files = sorted(folder.glob("*.mo")) if folder.is_dir() else []
    if not files:
        raise DataNotFoundError(
            f"no gettext catalogs (*.mo) in {folder}; Debian packages install them there "
            "unless localepurge or a 'path-exclude=/usr/share/locale/*' dpkg rule removed them"
        )
    pairs = [p for f in files for p in read_mo_file(f)]
    return _corpus(
        pairs, str(folder), ("en", target_lang), max_chars=max_chars, max_words=max_words,
        valid_fraction=valid_fraction, test_fraction=test_fraction,
    )  # fmt: skip


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataNotFoundError(f"corpus file {path} does not exist")
    data = path.read_bytes()
    if not data.strip():
        raise CorpusError(f"corpus file {path} is empty")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    out = []
    for number, raw in enumerate(lines, start=1):
        try:
            out.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as exc:
            raise CorpusError(
                f"corpus file {path} line {number} is not UTF-8 (byte {exc.start}: {exc.reason})"
            ) from exc
    return out


def load_text_pair_corpus(
    source_path: str | Path,
    target_path: str | Path,
    *,
    source_lang: str = "src",
    target_lang: str = "tgt",
    max_chars: int = 200,
    max_words: int = 40,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
) -> ParallelCorpus:
    """A corpus from two aligned UTF-8 text files (line ``i`` of one translates line ``i`` of the
    other), cleaned and split like the gettext corpus.

    Raises:
        DataNotFoundError: a file does not exist.
        CorpusError: a file is empty or not UTF-8 (file and line), or the line counts differ
            (both files and both counts).
    """
    src_path, tgt_path = Path(source_path), Path(target_path)
    src, tgt = _read_lines(src_path), _read_lines(tgt_path)
    if len(src) != len(tgt):
        raise CorpusError(
            f"corpus files are misaligned: {src_path} has {len(src)} lines, "
            f"{tgt_path} has {len(tgt)} lines"
        )
    return _corpus(
        list(zip(src, tgt, strict=True)), f"{src_path} + {tgt_path}", (source_lang, target_lang),
        max_chars=max_chars, max_words=max_words, valid_fraction=valid_fraction,
        test_fraction=test_fraction,
    )  # fmt: skip


def load_tsv_corpus(
    path: str | Path,
    *,
    source_lang: str = "src",
    target_lang: str = "tgt",
    max_chars: int = 200,
    max_words: int = 40,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
) -> ParallelCorpus:
    """A corpus from one UTF-8 TSV file, ``source<TAB>target`` per line (no header).

    Raises:
        DataNotFoundError: the file does not exist.
        CorpusError: the file is empty, a line is not UTF-8, or a non-blank line does not have
            exactly two tab-separated fields (file, line and the count found).
    """
    tsv = Path(path)
    pairs = []
    for number, line in enumerate(_read_lines(tsv), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise CorpusError(
                f"corpus file {tsv} line {number} has {len(fields)} tab-separated fields; "
                "expected 2 (source<TAB>target)"
            )
        pairs.append((fields[0], fields[1]))
    return _corpus(
        pairs, str(tsv), (source_lang, target_lang), max_chars=max_chars, max_words=max_words,
        valid_fraction=valid_fraction, test_fraction=test_fraction,
    )  # fmt: skip
