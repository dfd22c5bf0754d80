from __future__ import annotations

import pytest

from tests.conftest import make_sentence
from xtremedistil.evaluate import markdown_table, score_by_language, summarise
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
