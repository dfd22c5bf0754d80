from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TOY, make_sentence
from xtremedistil.batching import SpecialIds
from xtremedistil.evaluate import eval_set, evaluate_set, markdown_table, score_by_language, summarise
from xtremedistil.segment import segmenter
from xtremedistil.tasks.ner import NerTask


def test_per_language_scores_and_unweighted_mean():
    task = NerTask(["PER", "LOC"])
    sentences = [
        make_sentence("a b", "B-PER O", "en"),
        make_sentence("c d", "B-LOC I-LOC", "en"),
        make_sentence("e", "B-PER", "de"),
    ]
    predictions = [["B-PER", "O"], ["B-LOC", "O"], ["B-PER"]]
    result = score_by_language(task, sentences, predictions)
    assert result["languages"]["en"]["f1"] == pytest.approx(0.5)
    assert result["languages"]["de"]["f1"] == pytest.approx(1.0)
    assert result["mean_f1"] == pytest.approx(75.0)  # unweighted over languages, not pooled (66.7)
    assert result["std_f1"] == pytest.approx(25.0)
    table = markdown_table({"teacher": result})
    assert "| de | 100.00 |" in table and "75.00 ± 25.00" in table


def test_summarise_single_language_has_zero_std():
    assert summarise({"en": {"f1": 0.8}}) == {"mean_f1": pytest.approx(80.0), "std_f1": 0.0}


def _one_hot(task, encoded, unit_tags):
    """Window logits that put the given unit tags first (one list of tags per sentence)."""
    out = []
    for window in encoded:
        logits = np.zeros((len(window), len(task.labels)), dtype=np.float32)
        starts = np.flatnonzero(window.word_start)
        for k, position in enumerate(starts):
            logits[position, task.label_to_id[unit_tags[window.sentence][window.first_word + k]]] = 1.0
        out.append(logits)
    return out


def _scores(task, data, tokenizer, logits, scheme="strict-word"):
    """Scores and unit tags of ``data`` from precomputed ``logits`` (no model runs)."""
    special = SpecialIds.from_tokenizer(tokenizer)
    return evaluate_set(None, task, data, special, batch_size=4, logits=logits, scheme=scheme)


def test_gold_tags_score_perfectly_at_gold_boundaries_and_on_raw_text(tiny_tokenizer):
    task = NerTask(["PER", "LOC", "ORG"])
    sentences = [make_sentence(text, tags) for text, tags in TOY] + [
        make_sentence("北京 的 alice", "B-LOC O B-PER", "zh")
    ]
    data = eval_set(task, sentences, tiny_tokenizer, 16, segmenter(tiny_tokenizer, "char"))
    assert data.units[-1].words == ("北", "京", "的", "alice")  # Chinese one character per unit
    logits = _one_hot(task, data.encoded, [u.tags for u in data.units])
    scores, unit_tags = _scores(task, data, tiny_tokenizer, logits)
    assert unit_tags[-1] == ["B-LOC", "I-LOC", "O", "B-PER"]
    assert scores["mean_f1"] == pytest.approx(100.0)
    assert scores["end_to_end"]["mean_f1"] == pytest.approx(100.0)
    assert scores["end_to_end"]["languages"]["zh"]["support"] == 2
    with pytest.raises(ValueError, match="do not match"):
        _scores(task, data, tiny_tokenizer, [z[:-1] for z in logits])


def test_a_boundary_error_inside_a_gold_word_costs_only_the_raw_text_score(tiny_tokenizer):
    """The gold-word score reads a word's tag from its first unit; the raw-text score needs the exact span."""
    task = NerTask(["LOC"])
    data = eval_set(
        task,
        [make_sentence("北京 很 大", "B-LOC O O", "zh")],
        tiny_tokenizer,
        16,
        segmenter(tiny_tokenizer, "char"),
    )
    logits = _one_hot(task, data.encoded, [["B-LOC", "O", "O", "O"]])  # "北" only, not "北京"
    scores, _ = _scores(task, data, tiny_tokenizer, logits)
    assert scores["languages"]["zh"]["f1"] == pytest.approx(1.0)
    end_to_end = scores["end_to_end"]["languages"]["zh"]
    assert end_to_end["precision"] == 0.0 and end_to_end["recall"] == 0.0 and end_to_end["support"] == 1


def test_raw_text_score_counts_type_and_both_ends(tiny_tokenizer):
    task = NerTask(["PER", "LOC"])
    gold = [make_sentence("alice lives in new york", "B-PER O O B-LOC I-LOC")]
    data = eval_set(task, gold, tiny_tokenizer, 16, segmenter(tiny_tokenizer))
    cases = {
        ("B-PER", "O", "O", "B-LOC", "I-LOC"): (1.0, 1.0),
        ("B-PER", "O", "O", "B-LOC", "O"): (0.5, 0.5),  # "new" only: wrong end
        ("B-LOC", "O", "O", "B-LOC", "I-LOC"): (0.5, 0.5),  # right span, wrong type
        ("B-PER", "B-PER", "O", "B-LOC", "I-LOC"): (2 / 3, 1.0),  # one spurious entity
    }
    for tags, (precision, recall) in cases.items():
        logits = _one_hot(task, data.encoded, [list(tags)])
        scores, _ = _scores(task, data, tiny_tokenizer, logits)
        result = scores["end_to_end"]["languages"]["en"]
        assert (result["precision"], result["recall"]) == (pytest.approx(precision), pytest.approx(recall)), (
            tags
        )


def test_conlleval_subword_scheme_counts_sub_words_of_gold_words(tiny_tokenizer):
    task = NerTask(["PER"])
    data = eval_set(
        task, [make_sentence("alicex lives", "B-PER O")], tiny_tokenizer, 16, segmenter(tiny_tokenizer)
    )
    logits = _one_hot(task, data.encoded, [["B-PER", "O"]])
    strict, _ = _scores(task, data, tiny_tokenizer, logits)
    paper, _ = _scores(task, data, tiny_tokenizer, logits, "conlleval-subword")
    assert strict["scheme"] == "strict-word" and paper["scheme"] == "conlleval-subword"
    assert paper["mean_f1"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="unknown scheme"):
        _scores(task, data, tiny_tokenizer, logits, "x")


def test_stored_scores_are_reused_only_with_the_same_scheme_and_decoding():
    from xtremedistil.pipeline import scored_as

    scores = {"dev": {"scheme": "strict-word", "decoding": "iob2-viterbi", "end_to_end": {}}}
    assert scored_as(scores, "strict-word")
    assert not scored_as(scores, "conlleval-subword")
    assert not scored_as(scores, "strict-word", decoding="argmax")
    assert not scored_as({"dev": {"scheme": "strict-word", "end_to_end": {}}}, "strict-word")  # older run
    assert not scored_as({"dev": {"scheme": "strict-word", "decoding": "iob2-viterbi"}}, "strict-word")
    assert not scored_as({}, "strict-word")
