"""Parallel corpora: .mo parsing, cleaning, the source-hash split, aligned files and TSV."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from supernet.data.parallel import (
    CorpusError,
    clean_pairs,
    load_gettext_corpus,
    load_text_pair_corpus,
    load_tsv_corpus,
    read_mo_file,
    split_by_source_hash,
)
from supernet.errors import DataNotFoundError


def write_mo(path: Path, messages: dict[bytes, bytes]) -> Path:
    """A little-endian GNU .mo catalog (format: GNU gettext manual Sec. 10.3)."""
    keys = sorted(messages)
    ids_at, n = 28, len(keys)
    strs_at = ids_at + 8 * n
    blob_at = strs_at + 8 * n
    blob, id_table, str_table = b"", b"", b""
    for key in keys:
        id_table += struct.pack("<2I", len(key), blob_at + len(blob))
        blob += key + b"\0"
    for key in keys:
        str_table += struct.pack("<2I", len(messages[key]), blob_at + len(blob))
        blob += messages[key] + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, n, ids_at, strs_at, 0, 0)
    path.write_bytes(header + id_table + str_table + blob)
    return path


def test_read_mo_plural_context_header_charset(tmp_path: Path) -> None:
    mo = write_mo(
        tmp_path / "x.mo",
        {
            b"": b"Content-Type: text/plain; charset=ISO-8859-1\n",
            b"Open file": b"Datei \xf6ffnen",  # latin-1 ö
            b"menu\x04Quit": b"Beenden",
            b"%d file\x00%d files": b"%d Datei\x00%d Dateien",
            b"untranslated": b"",
        },
    )
    assert sorted(read_mo_file(mo)) == [
        ("%d file", "%d Datei"),
        ("Open file", "Datei öffnen"),
        ("Quit", "Beenden"),
    ]


def test_read_mo_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        read_mo_file(tmp_path / "missing.mo")
    bad = tmp_path / "bad.mo"
    bad.write_bytes(b"\0" * 40)
    with pytest.raises(CorpusError, match=r"bad\.mo: not a GNU \.mo catalog \(magic number 0x"):
        read_mo_file(bad)
    mo = write_mo(tmp_path / "utf.mo", {b"Open": b"\xff\xfe"})
    with pytest.raises(CorpusError, match=r"utf\.mo: message 0 is not utf-8 \(byte 0"):
        read_mo_file(mo)


def test_clean_pairs_drops_and_dedups() -> None:
    pairs = [
        ("Germany", "Deutschland"),
        ("Germany", "Deutschland"),  # duplicate
        ("  Open\n  file ", "Datei   öffnen"),  # whitespace normalized
        ("Linux", "linux"),  # same text
        ("%s: %d", "%s: %d"),
        ("%s (%s)", "%s (%s) x"),  # format-only source
        ("{0} – {1}", "{0} bis {1}"),  # format-only source
        ("pinentry.qualitybar.tooltip", "Die Qualität"),  # a message key
        ("word " * 41, "Wort " * 41),  # too many words
        ("a" * 201, "b b"),  # too many characters
    ]
    assert clean_pairs(pairs) == [("Germany", "Deutschland"), ("Open file", "Datei öffnen")]


def test_split_no_source_in_two_splits_and_stable() -> None:
    pairs = [(f"source {i % 700}", f"target {i}") for i in range(2000)]
    splits = split_by_source_hash(pairs, valid_fraction=0.1, test_fraction=0.1)
    sources = {name: {s for s, _ in v} for name, v in splits.items()}
    assert not sources["train"] & sources["valid"]
    assert not sources["train"] & sources["test"]
    assert not sources["valid"] & sources["test"]
    assert sum(len(v) for v in splits.values()) == 2000
    assert 0.05 < len(splits["test"]) / 2000 < 0.15  # about the fraction asked for
    # the assignment of a pair does not depend on the other pairs
    again = split_by_source_hash(pairs[:500], valid_fraction=0.1, test_fraction=0.1)
    for name in again:
        assert set(again[name]) <= set(splits[name])
    with pytest.raises(ValueError, match=r"valid_fraction \+ test_fraction = 1.0 must be < 1"):
        split_by_source_hash(pairs, valid_fraction=0.5, test_fraction=0.5)


def test_text_pair_corpus_and_checksum(tmp_path: Path) -> None:
    src = tmp_path / "train.en"
    tgt = tmp_path / "train.de"
    src.write_text("".join(f"the house number {i}\n" for i in range(50)), encoding="utf-8")
    tgt.write_text("".join(f"das Haus Nummer {i}\n" for i in range(50)), encoding="utf-8")
    corpus = load_text_pair_corpus(src, tgt, source_lang="en", target_lang="de")
    assert sum(corpus.sizes().values()) == 50
    record = corpus.record()
    assert record["sha256"] == corpus.checksum()
    assert len(corpus.checksum()) == 64
    tsv = tmp_path / "c.tsv"
    tsv.write_text(
        "".join(f"the house number {i}\tdas Haus Nummer {i}\n" for i in range(50)),
        encoding="utf-8",
    )
    assert load_tsv_corpus(tsv).checksum() == corpus.checksum()  # same pairs, same checksum


def test_bad_corpus_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one line here\ntwo lines here\n", encoding="utf-8")
    b.write_text("eine Zeile\n", encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        load_text_pair_corpus(a, b)
    assert str(info.value) == f"corpus files are misaligned: {a} has 2 lines, {b} has 1 lines"
    with pytest.raises(DataNotFoundError, match=r"corpus file .*nope\.txt does not exist"):
        load_text_pair_corpus(a, tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"^corpus file {empty} is empty$"):
        load_text_pair_corpus(empty, b)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"fine\nstill fine\nGr\xfc\xdfe\n")
    with pytest.raises(CorpusError) as info:
        load_text_pair_corpus(latin, a)
    assert str(info.value) == (
        f"corpus file {latin} line 3 is not UTF-8 (byte 2: invalid start byte)"
    )
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("a house\tein Haus\nno tab here\n", encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        load_tsv_corpus(tsv)
    assert str(info.value) == (
        f"corpus file {tsv} line 2 has 1 tab-separated fields; expected 2 (source<TAB>target)"
    )


def test_gettext_corpus_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"no gettext catalogs \(\*\.mo\) in "):
        load_gettext_corpus(tmp_path)


def test_gettext_corpus_from_a_locale_dir(tmp_path: Path) -> None:
    folder = tmp_path / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    write_mo(folder / "a.mo", {b"Open file": "Datei öffnen".encode(), b"Quit": b"Beenden"})
    write_mo(folder / "b.mo", {b"Open file": "Datei öffnen".encode(), b"%s": b"%s"})
    corpus = load_gettext_corpus(tmp_path)
    pairs = sorted(p for v in corpus.splits.values() for p in v)
    assert pairs == [("Open file", "Datei öffnen"), ("Quit", "Beenden")]
    assert (corpus.source_lang, corpus.target_lang) == ("en", "de")


def test_debian_catalogs_give_a_clean_split_corpus() -> None:
    """The real corpus: the ~86 catalogs Debian installs here (about 1 s)."""
    from supernet.data.parallel import DEBIAN_LOCALE_DIR

    folder = DEBIAN_LOCALE_DIR / "de" / "LC_MESSAGES"
    if not any(folder.glob("*.mo")):
        pytest.skip(f"no German gettext catalogs in {folder}")
    corpus = load_gettext_corpus()
    sizes = corpus.sizes()
    assert sizes["train"] > 1000 and sizes["valid"] > 50 and sizes["test"] > 50
    sources = {name: {s for s, _ in pairs} for name, pairs in corpus.splits.items()}
    assert not sources["train"] & (sources["valid"] | sources["test"])
    assert not sources["valid"] & sources["test"]
    pairs = [p for v in corpus.splits.values() for p in v]
    assert len(set(pairs)) == len(pairs)
    assert all(s.casefold() != t.casefold() for s, t in pairs)
    assert all(len(s) <= 200 and len(t) <= 200 for s, t in pairs)
