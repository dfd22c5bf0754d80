"""The shared WikiAnn copy (XTREME PAN-X splits): layout, counts, labels and reading speed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from xtremedistil.data import limit_corpus, read_corpus_folder, read_tagged_file

pytestmark = pytest.mark.wikiann


def wikiann_dir() -> Path:
    override = os.environ.get("XTREMEDISTIL_WIKIANN")
    path = (
        Path(override)
        if override
        else Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wikiann"
    )
    if not path.is_dir():
        pytest.skip(f"WikiAnn data not found at {path} (set XTREMEDISTIL_WIKIANN to its folder)")
    return path


def test_read_english_train_fast() -> None:
    start = time.perf_counter()
    sents = read_tagged_file(wikiann_dir() / "train-en.tsv.gz", lang="en")
    elapsed = time.perf_counter() - start
    assert len(sents) == 20_000
    assert {t for s in sents for t in s.tags or ()} == {
        "O",
        "B-PER",
        "I-PER",
        "B-LOC",
        "I-LOC",
        "B-ORG",
        "I-ORG",
    }
    assert elapsed < 2.0, f"reading train-en took {elapsed:.2f} s"


def test_folder_two_languages_and_subset() -> None:
    corpus = read_corpus_folder(wikiann_dir(), languages=["af", "hi"])
    assert corpus.counts() == {
        "af": {"train": 5000, "dev": 1000, "test": 1000},
        "hi": {"train": 5000, "dev": 1000, "test": 1000},
    }
    assert corpus.labels() == ["LOC", "ORG", "PER"]
    small = limit_corpus(corpus, max_per_split={"train": 2000, "dev": 500}, seed=0)
    assert small.counts()["hi"] == {"train": 2000, "dev": 500, "test": 1000}
