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
