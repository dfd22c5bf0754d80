"""Readers of tagged files and corpus folders: formats, schemes, and the line numbers of every error."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from xtremedistil.data import (
    Corpus,
    Sentence,
    check_label_sets,
    entity_spans,
    iob1_to_iob2,
    limit_corpus,
    map_tags,
    normalise_iob2,
    read_corpus_folder,
    read_tagged_file,
)
from xtremedistil.data.readers import ReadReport
from xtremedistil.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"


def tags_of(sents: list[Sentence]) -> list[tuple[str, ...]]:
    return [s.tags or () for s in sents]


# ---------------------------------------------------------------------------------------------------- schemes


def test_iob1_to_iob2_starts_entities_with_b() -> None:
    assert iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG"]) == [
        "B-PER",
        "I-PER",
        "O",
        "B-LOC",
        "B-LOC",
        "I-LOC",
        "B-ORG",
    ]


def test_normalise_iob2_repairs_dangling_inside() -> None:
    assert normalise_iob2(["O", "I-PER", "B-LOC", "I-ORG", "I-ORG"]) == [
        "O",
        "B-PER",
        "B-LOC",
        "B-ORG",
        "I-ORG",
    ]
    assert normalise_iob2([]) == []


def test_map_tags_never_leaves_dangling_inside() -> None:
    tags = ["B-product", "I-product", "B-person", "I-person", "B-other", "I-geo-loc"]
    mapped = map_tags(tags, {"person": "PER", "geo-loc": "LOC"})
    assert mapped == ["O", "O", "B-PER", "I-PER", "O", "B-LOC"]
    assert map_tags(["B-x", "I-x"], {}, drop_unmapped=False) == ["B-x", "I-x"]


def test_entity_spans_follow_seqeval() -> None:
    assert entity_spans(["B-PER", "I-PER", "I-LOC", "O", "B-ORG", "B-ORG"]) == [
        ("PER", 0, 2),
        ("LOC", 2, 3),
        ("ORG", 4, 5),
        ("ORG", 5, 6),
    ]


# ---------------------------------------------------------------------------------------------------- formats


def test_conll_iob1_with_docstart() -> None:
    sents = read_tagged_file(FIXTURES / "conll2003_iob1.txt", scheme="iob1", lang="en")
    assert [s.words for s in sents] == [
        ("EU", "rejects", "German", "call", "."),
        ("Peter", "Blackburn"),
        ("in", "Bonn", "and", "Koeln", "with", "Frankfurt", "Am"),
    ]
    assert tags_of(sents) == [
        ("B-ORG", "O", "B-MISC", "O", "O"),
        ("B-PER", "I-PER"),
        ("O", "B-LOC", "O", "B-LOC", "O", "B-LOC", "I-LOC"),
    ]
    assert {s.lang for s in sents} == {"en"}


def test_iob2_mode_keeps_tags_as_they_are() -> None:
    sents = read_tagged_file(FIXTURES / "conll2003_iob1.txt", scheme="iob2")
    assert sents[1].tags == ("I-PER", "I-PER")


def test_auto_scheme_detects_iob1_and_reads_it_as_iob1_does() -> None:
    report = ReadReport("x")
    auto = read_tagged_file(FIXTURES / "conll2003_iob1.txt", report=report)
    assert report.scheme == "iob1" and report.format == "conll" and report.sentences == 3
    assert auto == read_tagged_file(FIXTURES / "conll2003_iob1.txt", scheme="iob1")


def test_conll2002_latin1() -> None:
    sents = read_tagged_file(FIXTURES / "conll2002_latin1.txt", encoding="latin-1", lang="es")
    assert len(sents) == 2
    assert sents[1].words[-1] == "Coruña"
    assert sents[0].tags == ("B-LOC", "I-LOC", "O", "B-LOC", "O")


def test_latin1_read_as_utf8_names_line_and_encoding() -> None:
    with pytest.raises(DataError) as info:
        read_tagged_file(FIXTURES / "conll2002_latin1.txt")
    err = info.value
    assert err.line == 11
    assert "conll2002_latin1.txt:11" in str(err)
    assert "utf-8" in str(err) and "encoding=" in str(err)


def test_wikiann_tsv_last_sentence_without_blank_line_and_tab_separator() -> None:
    sents = read_tagged_file(FIXTURES / "wikiann_no_trailing.tsv")
    assert [s.words for s in sents] == [
        ("R.H.", "Saunders", "("),
        ("Anders", "Lindström"),
        ("List", "of", "mammals"),
    ]
    assert sents[2].tags == ("B-ORG", "I-ORG", "I-ORG")


def test_original_wikiann_prefix_gives_language() -> None:
    sents = read_tagged_file(FIXTURES / "wikiann_original.txt")
    assert sents[0].words == ("Anders", "Lindström", "visited", "Paris")
    assert sents[1].words == ("http://x.org", "IBM")
    assert {s.lang for s in sents} == {"en"}
    assert read_tagged_file(FIXTURES / "wikiann_original.txt", lang="xx")[0].lang == "xx"


def test_gzip_is_transparent() -> None:
    sents = read_tagged_file(FIXTURES / "wikiann_small.tsv.gz", lang="en")
    assert [len(s.words) for s in sents] == [3, 4]
    assert sents[1].tags == ("B-PER", "O", "O", "B-ORG")


def test_tag_map_on_read() -> None:
    sents = read_tagged_file(FIXTURES / "conll2003_iob1.txt", scheme="iob1", tag_map={"PER": "person"})
    assert sents[0].tags == ("O",) * 5
    assert sents[1].tags == ("B-person", "I-person")


def test_explicit_format_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "crlf.tsv"
    path.write_bytes(b"\xef\xbb\xbfParis\tB-LOC\r\nis\tO\r\n\r\nBob\tB-PER\r\n")
    sents = read_tagged_file(path, format="tsv")
    assert [s.words for s in sents] == [("Paris", "is"), ("Bob",)]


# ---------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "line", "fragment"),
    [
        ("bad_tsv_no_tab.tsv", 5, "2 tab-separated columns"),
        ("bad_conll_one_column.conll", 4, "at least 2"),
        ("bad_conll_inconsistent.conll", 3, "inconsistent column count"),
        ("bad_tag_prefix.tsv", 4, "'X-PER'"),
        ("bad_tag_empty_type.tsv", 2, "'B-'"),
        ("bad_undecodable.tsv", 2, "encoding="),
    ],
)
def test_malformed_files_name_file_and_line(name: str, line: int, fragment: str) -> None:
    with pytest.raises(DataError) as info:
        read_tagged_file(FIXTURES / name, strict_columns=True)
    message = str(info.value)
    assert info.value.line == line
    assert f"{name}:{line}:" in message
    assert fragment in message


@pytest.mark.parametrize("name", ["empty.tsv", "blank_only.tsv", "missing.tsv"])
def test_empty_or_missing_file(name: str) -> None:
    with pytest.raises(DataError) as info:
        read_tagged_file(FIXTURES / name)
    assert name in str(info.value)


def test_undecodable_gzip_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv.gz"
    path.write_bytes(gzip.compress(b"a\tO\n\nb\tO\nc\xff\tO\n"))
    with pytest.raises(DataError, match=r"bad\.tsv\.gz:4: .*utf-8"):
        read_tagged_file(path)


def test_bad_option_values() -> None:
    with pytest.raises(DataError, match="unknown format"):
        read_tagged_file(FIXTURES / "wikiann_small.tsv.gz", format="json5")
    with pytest.raises(DataError, match="unknown tag scheme"):
        read_tagged_file(FIXTURES / "wikiann_small.tsv.gz", scheme="bioul")


# ---------------------------------------------------------------------------------------------------- folders


# Flat-layout corpus folders are written at test time: files named like the shared WikiAnn data
# ({split}-{lang}.tsv) are not kept in the repository.
FLAT_CORPORA = {
    "corpus_flat/dev-de.tsv": "Bonn\tB-LOC\n",
    "corpus_flat/dev-en.tsv": "Rome\tB-LOC\n\nAnn\tB-PER\n",
    "corpus_flat/test-de.tsv": "Anna\tB-PER\n",
    "corpus_flat/test-en.tsv.gz": "IBM\tB-ORG\n",
    "corpus_flat/train-de.tsv": "Berlin\tB-LOC\n\nHans\tB-PER\nbei\tO\nSiemens\tB-ORG\nAG\tI-ORG\n",
    "corpus_flat/train-en.tsv": "Paris\tB-LOC\nis\tO\n\nBob\tB-PER\nat\tO\nACME\tB-ORG\n",
    "corpus_mismatch/train-de.tsv": "Berlin\tB-LOC\n\nHans\tB-PER\nbei\tO\nSiemens\tB-ORG\n",
    "corpus_mismatch/train-en.tsv": "Paris\tB-LOC\n\nBob\tB-PER\nat\tO\nACME\tB-ORG\n",
    "corpus_mismatch/train-es.tsv": "Madrid\tB-LOC\n\nAna\tB-PER\nen\tO\nEuro\tB-MISC\n\nIBM\tB-ORG\n",
}


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    for name, text in FLAT_CORPORA.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode("utf-8")))
        else:
            path.write_text(text, encoding="utf-8")
    return tmp_path


def test_flat_folder_layout(folders: Path) -> None:
    corpus = read_corpus_folder(folders / "corpus_flat")
    assert corpus.languages == ["de", "en"]
    assert corpus.counts() == {
        "de": {"train": 2, "dev": 1, "test": 1},
        "en": {"train": 2, "dev": 2, "test": 1},
    }
    assert corpus.labels() == ["LOC", "ORG", "PER"]
    assert {s.lang for s in corpus.split("train")} == {"de", "en"}


def test_nested_folder_layout_with_valid_alias_and_iob1() -> None:
    corpus = read_corpus_folder(FIXTURES / "corpus_nested", scheme="iob1")
    assert corpus.counts() == {
        "de": {"train": 2, "dev": 1, "test": 0},
        "en": {"train": 2, "dev": 1, "test": 0},
    }
    assert corpus.splits["en"]["train"][1].tags == ("B-PER", "O", "B-ORG")


def test_language_filter_and_unknown_language(folders: Path) -> None:
    corpus = read_corpus_folder(folders / "corpus_flat", languages=["en"])
    assert corpus.languages == ["en"]
    with pytest.raises(DataError) as info:
        read_corpus_folder(folders / "corpus_flat", languages=["en", "fr"])
    assert "fr" in str(info.value) and "available: de, en" in str(info.value)


def test_label_sets_must_match_across_languages(folders: Path) -> None:
    with pytest.raises(DataError) as info:
        read_corpus_folder(folders / "corpus_mismatch")
    message = str(info.value)
    assert "corpus_mismatch" in message
    assert "'es' has extra type(s) MISC" in message
    assert "'de'" not in message and "'en'" not in message


def test_check_label_sets_reports_missing_types() -> None:
    corpus = Corpus(
        {
            "a": {"train": [Sentence(("x", "y"), ("B-PER", "B-LOC"), "a")]},
            "b": {"train": [Sentence(("x", "y"), ("B-PER", "B-LOC"), "b")]},
            "c": {"train": [Sentence(("x",), ("B-PER",), "c")]},
        }
    )
    with pytest.raises(DataError, match="'c' has missing type\\(s\\) LOC"):
        check_label_sets(corpus)
    check_label_sets(Corpus({"a": corpus.splits["a"], "b": corpus.splits["b"]}))


def test_folder_without_data_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no data files"):
        read_corpus_folder(tmp_path)
    with pytest.raises(DataError, match="not found"):
        read_corpus_folder(tmp_path / "nope")


def test_duplicate_files_for_one_split(tmp_path: Path) -> None:
    (tmp_path / "train-en.tsv").write_text("a\tO\n")
    (tmp_path / "train-en.txt").write_text("a\tO\n")
    with pytest.raises(DataError, match="two files"):
        read_corpus_folder(tmp_path)


# ---------------------------------------------------------------------------------------------------- subsets


def _toy_corpus(n: int) -> Corpus:
    sents = {lang: [Sentence((f"{lang}{i}",), ("O",), lang) for i in range(n)] for lang in ("en", "de")}
    return Corpus({lang: {"train": s, "test": s[:5]} for lang, s in sents.items()}, "toy")


def test_limit_corpus_is_deterministic_ordered_and_nested() -> None:
    corpus = _toy_corpus(100)
    small = limit_corpus(corpus, max_per_split={"train": 10, "dev": None}, seed=1)
    again = limit_corpus(corpus, max_per_split={"train": 10}, seed=1)
    larger = limit_corpus(corpus, max_per_split={"train": 20}, seed=1)
    other = limit_corpus(corpus, max_per_split={"train": 10}, seed=2)
    assert small.counts() == {
        "de": {"train": 10, "dev": 0, "test": 5},
        "en": {"train": 10, "dev": 0, "test": 5},
    }
    assert small.splits == again.splits
    assert small.splits != other.splits
    for lang in ("en", "de"):
        words = [s.words[0] for s in small.splits[lang]["train"]]
        assert words == sorted(words, key=lambda w: int(w[2:]))
        assert set(small.splits[lang]["train"]) <= set(larger.splits[lang]["train"])
    assert limit_corpus(corpus, max_per_split={"train": 1000}, seed=1).counts() == corpus.counts()
