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
