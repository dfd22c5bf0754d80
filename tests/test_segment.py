"""Raw-text splitting, detokenisation and carrying gold entities over to units, with the real XLM-R
sentencepiece tokenizer of the embedded teacher."""

from __future__ import annotations

import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_sentence
from xtremedistil.data.embedded import load_embedded
from xtremedistil.data.records import Sentence
from xtremedistil.segment import (
    UnitStats,
    char_entities,
    detokenize,
    segmenter,
    split_words,
    straddled_pieces,
    to_units,
    word_tags,
)


def words(text: str, tokenizer=None, cjk="piece") -> list[str]:
    return [text[a:b] for a, b in split_words(text, tokenizer, cjk)]


def test_chinese_char_policy_is_one_unit_per_character_without_duplicates(xlmr_tokenizer):
    text = "江泽民在北京会见了联合国秘书长安南。"
    assert words(text, xlmr_tokenizer, "char") == list(text)
    assert words("I met 江泽民 in 北京", xlmr_tokenizer, "char") == [
        "I",
        "met",
        "江",
        "泽",
        "民",
        "in",
        "北",
        "京",
    ]


def test_japanese_kana_kanji_and_marks_are_characters_under_char(xlmr_tokenizer):
    text = "佐々木さんは東京のソニーで働いています。"
    assert words(text, xlmr_tokenizer, "char") == list(text)  # 々 and ー are characters of their own too
    assert words("ＡＢＣ１２３は", xlmr_tokenizer, "char") == [
        "ＡＢＣ１２３",
        "は",
    ]  # full-width Latin stays a word


def test_piece_policy_cuts_where_the_tokenizer_cuts_and_never_twice(xlmr_tokenizer):
    text = "江泽民在北京会见了联合国秘书长安南。"
    pieces = words(text, xlmr_tokenizer)
    assert pieces == ["江", "泽", "民", "在北京", "会", "见", "了", "联合国", "秘书长", "安", "南", "。"]
    assert words("I met 江泽民 in 北京", xlmr_tokenizer) == ["I", "met", "江", "泽", "民", "in", "北京"]
    assert words("田中さんは東京のソニーで", xlmr_tokenizer) == [
        "田",
        "中",
        "さんは",
        "東京",
        "の",
        "ソ",
        "ニー",
        "で",
    ]
    assert words("ＡＢＣ１２３は", xlmr_tokenizer) == ["ＡＢＣ１２３", "は"]  # full-width Latin stays a word


def test_text_without_spaces_is_cut_at_pieces_on_grapheme_boundaries(xlmr_tokenizer):
    text = "ภาษาไทยเป็นภาษาที่"
    assert words(text, xlmr_tokenizer) == ["ภาษาไทย", "เป็น", "ภาษา", "ที่"]
    # without a tokenizer: one unit per grapheme cluster, a vowel sign stays on its consonant
    assert words("เป็น") == ["เ", "ป็", "น"]


def test_scripts_with_combining_marks_keep_their_words_whole(xlmr_tokenizer):
    assert words("हिन्दी भाषा भारत में", xlmr_tokenizer) == ["हिन्दी", "भाषा", "भारत", "में"]
    assert words("Привет, мир! مرحبا بالعالم", xlmr_tokenizer) == [
        "Привет",
        ",",
        "мир",
        "!",
        "مرحبا",
        "بالعالم",
    ]
    assert words("নামের তামিল", xlmr_tokenizer) == ["নামের", "তামিল"]


def test_emoji_sequences_are_single_units():
    assert words("I ❤️ NY 👍🏽 👨‍👩‍👧 🇺🇸!") == ["I", "❤️", "NY", "👍🏽", "👨‍👩‍👧", "🇺🇸", "!"]
    assert words("a\u200bb\ufeffc\x00d") == ["a", "b", "c", "d"]  # invisible separators split, are not units
    assert words("a \u0301b") == ["a", "\u0301", "b"]  # a mark after a space: its own unit, without the space


def _check_cover(text: str, spans: list[tuple[int, int]]) -> None:
    clusters = {m.start() for m in regex.finditer(r"\X", text)} | {len(text)}
    covered = [0] * len(text)
    previous_end = 0
    for a, b in spans:
        assert previous_end <= a < b <= len(text)
        # never inside a grapheme cluster (but a mark clustered onto a space or control starts after it)
        assert (a in clusters or text[a - 1].isspace() or not text[a - 1].isprintable()) and b in clusters
        assert not any(c.isspace() for c in text[a:b])
        for i in range(a, b):
            covered[i] += 1
        previous_end = b
    for i, count in enumerate(covered):
        # every character is in at most one unit, and a visible character is in exactly one
        assert count <= 1
        if count == 0:
            cluster = text[max(c for c in clusters if c <= i) :][:1]
            assert cluster.isspace() or not cluster.isprintable(), (text, i)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40))
def test_any_unicode_string_is_covered_once(xlmr_tokenizer, text):
    for cjk in ("char", "piece"):
        _check_cover(text, split_words(text, xlmr_tokenizer, cjk))


SCRIPTS = st.sampled_from(
    [
        "Angela Merkel",
        "江泽民",
        "東京のソニー",
        "ภาษาไทย",
        "हिन्दी",
        "مرحبا",
        "Привет",
        "👍🏽",
        ",",
        " ",
        "  ",
        "\t",
        "ー々",
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(SCRIPTS, max_size=12))
def test_mixed_script_text_is_covered_once(xlmr_tokenizer, parts):
    text = "".join(parts)
    _check_cover(text, split_words(text, xlmr_tokenizer))


def test_detokenize_writes_text_a_user_would_send():
    cases = {
        ("Paris", ",", "France", "."): "Paris, France.",
        ("It", "was", "n't", "Obama", "'s", "(", "2010", ")"): "It wasn't Obama's (2010)",
        ("he", "said", '"', "hi", '"', "!"): 'he said "hi"!',
        ("在", "NBA", "比赛", "，", "江泽民", "说"): "在NBA比赛，江泽民说",
        ("東京", "の", "ソニー", "（", "日本", "）"): "東京のソニー（日本）",
    }
    for tokens, expected in cases.items():
        text, spans = detokenize(tokens)
        assert text == expected
        assert [text[a:b] for a, b in spans] == list(tokens)


def test_entities_carry_over_to_units_and_back():
    sentence = make_sentence("江泽民 在 北京 会见 了 安南 。", "B-PER O B-LOC O O B-PER O", "zh")
    units, stats = to_units(sentence, segmenter(None))  # no tokenizer: one unit per character
    assert units.text == "江泽民在北京会见了安南。"
    assert units.tags[:6] == ("B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC")
    assert stats.entities == 3 and stats.inexact == 0
    assert [(t, units.text[a:b]) for t, a, b in char_entities(units.spans, units.tags)] == [
        ("PER", "江泽民"),
        ("LOC", "北京"),
        ("PER", "安南"),
    ]
    assert word_tags(sentence, units, units.tags) == list(sentence.tags)
    # a word tagged from a unit it starts inside continues that unit's entity
    merged = Sentence(("ab",), ("O",), "en", "ab", ((0, 2),))
    assert word_tags(make_sentence("a b", "O O"), merged, ["B-PER"]) == ["B-PER", "O"]


def test_piece_units_widen_entities_that_start_inside_a_piece(xlmr_tokenizer):
    sentence = make_sentence("会见 在 北京", "O O B-LOC", "zh")
    units, stats = to_units(sentence, segmenter(xlmr_tokenizer, "piece"))
    assert "在北京" in units.words and stats.inexact == 1
    assert units.tags[units.words.index("在北京")] == "B-LOC"


def test_raw_sentences_keep_their_text():
    sentence = Sentence.from_text("Hello ,  world", "en")
    units, _ = to_units(sentence, segmenter(None))
    assert units.text == "Hello ,  world" and units.words == ("Hello", ",", "world")


def test_embedded_gold_entities_survive_the_round_trip(xlmr_tokenizer):
    """One unit per character: every gold entity of the embedded corpora is a span of whole units, and the
    projected unit tags read back onto the gold words give the gold tags. Tokenizer pieces: the same for
    every sentence whose entities all fall on piece boundaries, and only a few entities do not."""
    for name in ("pku-zh", "wnut16-en", "hironsan-ja"):
        gold = load_embedded(name).split("dev")
        for cjk in ("char", "piece"):
            stats = UnitStats()
            for g in gold:
                u, s = to_units(g, segmenter(xlmr_tokenizer, cjk))
                stats += s
                if s.inexact == 0:
                    assert word_tags(g, u, u.tags) == list(g.tags), (name, g.words)
            assert stats.entities > 0, name
            if cjk == "char" or name == "wnut16-en":
                assert stats.inexact == 0, (name, cjk)
            else:
                assert 0 < stats.inexact < 0.06 * stats.entities, (name, cjk, stats)


def test_piece_split_cuts_only_the_pieces_train_entities_need(xlmr_tokenizer):
    train = [
        make_sentence(
            "会见 在 北京", "O O B-LOC", "zh"
        ),  # "在北京" is one piece: the entity starts inside it
        make_sentence("联合国 秘书长", "B-ORG O", "zh"),  # "联合国" is a piece of its own: nothing to cut
    ]
    split = straddled_pieces(train, xlmr_tokenizer)
    assert split == ["在北京"]
    text = "他在北京见了联合国的人"
    units = [text[a:b] for a, b in split_words(text, xlmr_tokenizer, "piece-split", split)]
    assert "".join(units) == text and units[units.index("在") : units.index("在") + 3] == ["在", "北", "京"]
    assert "联合国" in units  # pieces no train entity cuts stay whole
    _, stats = to_units(train[0], segmenter(xlmr_tokenizer, "piece-split", split))
    assert stats.inexact == 0


def test_the_split_list_is_read_only_by_piece_split(xlmr_tokenizer):
    text = "他在北京"
    assert words(text, xlmr_tokenizer) == ["他", "在北京"]
    assert [text[a:b] for a, b in segmenter(xlmr_tokenizer, "piece", ["在北京"])(text)] == ["他", "在北京"]
    assert [text[a:b] for a, b in segmenter(xlmr_tokenizer, "piece-split", ["在北京"])(text)] == list(text)
