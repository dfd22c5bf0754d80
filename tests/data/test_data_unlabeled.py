"""Unlabeled text: plain files with an optional language column, views, pools, dedup and sampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtremedistil.data import (
    CHATTERBOT_LANGUAGES,
    Corpus,
    Sentence,
    dedupe_sentences,
    embedded_pool,
    read_text_file,
    sample_sentences,
    unlabeled_view,
)
from xtremedistil.data import embedded as emb
from xtremedistil.errors import DataError, XtremeDistilError

FIXTURES = Path(__file__).parent / "fixtures"


def test_language_column_is_detected() -> None:
    sents = read_text_file(FIXTURES / "text_langcol.txt")
    assert [(s.lang, s.words) for s in sents] == [
        ("en", ("Hello", "there", ",", "how", "are", "you", "?")),
        ("de", ("Guten", "Tag", "!")),
        ("zh-Hant", ("你好",)),
    ]
    assert all(s.tags is None for s in sents)


def test_plain_gzip_text_skips_blank_lines() -> None:
    sents = read_text_file(FIXTURES / "text_plain.txt.gz", lang="en")
    assert [len(s.words) for s in sents] == [7, 3]
    assert {s.lang for s in sents} == {"en"}
    assert read_text_file(FIXTURES / "text_plain.txt.gz")[0].lang == "und"


def test_tab_inside_text_is_not_a_language_column(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("hello\tworld\nsecond line\n", encoding="utf-8")
    sents = read_text_file(path, lang="en")
    assert [s.words for s in sents] == [("hello", "world"), ("second", "line")]
    assert {s.lang for s in sents} == {"en"}


def test_text_errors_name_file_and_line() -> None:
    with pytest.raises(DataError) as info:
        read_text_file(FIXTURES / "text_bad_bytes.txt")
    assert info.value.line == 2 and "text_bad_bytes.txt:2:" in str(info.value)
    with pytest.raises(DataError, match=r"empty\.tsv"):
        read_text_file(FIXTURES / "empty.tsv")


def test_unlabeled_view_drops_tags() -> None:
    s = Sentence(("a", "b"), ("O", "B-PER"), "en")
    corpus = Corpus({"en": {"train": [s], "test": [s]}})
    assert unlabeled_view(corpus) == [Sentence(("a", "b"), None, "en")]
    assert unlabeled_view(corpus, "dev") == []


def test_dedupe_and_sample() -> None:
    sents = [Sentence((str(i % 7),), None, "en") for i in range(30)] + [Sentence(("1",), None, "de")]
    unique = dedupe_sentences(sents)
    assert [(s.lang, s.words[0]) for s in unique] == [("en", str(i)) for i in range(7)] + [("de", "1")]
    many = [Sentence((str(i),), None, "en") for i in range(200)]
    a, b, big = (
        sample_sentences(many, 20, seed=3),
        sample_sentences(many, 20, seed=3),
        sample_sentences(many, 50, 3),
    )
    assert a == b and len(a) == 20 and set(a) <= set(big)
    assert [int(s.words[0]) for s in a] == sorted(int(s.words[0]) for s in a)
    assert sample_sentences(many, 10_000, seed=0) == many


def test_chatterbot_pool() -> None:
    pool = embedded_pool("chatterbot")
    langs = {s.lang for s in pool}
    assert {"en", "zh", "ja", "hi-Latn", "fa"} <= langs
    assert langs <= set(CHATTERBOT_LANGUAGES.values())
    assert len(pool) == len(dedupe_sentences(pool)) > 10_000
    assert all(s.tags is None and s.words for s in pool)
    assert not any(w.startswith("```") for s in pool for w in s.words)


def test_pku_pool_is_disjoint_from_labeled_lines() -> None:
    parts = emb.pku_parts()
    pool = parts["pool"]
    labeled_words = {s.words for split in ("train", "dev", "test") for s in parts[split]}
    assert len(pool) > 20_000
    assert all(len(s.words) <= emb.MAX_WINDOW and s.lang == "zh" and s.tags is None for s in pool)
    assert not labeled_words & {s.words for s in pool}


def test_unknown_pool() -> None:
    with pytest.raises(XtremeDistilError, match="available: pku-zh, chatterbot"):
        embedded_pool("wikipedia")
