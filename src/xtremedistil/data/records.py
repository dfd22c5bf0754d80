"""Typed records for labeled and unlabeled text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_NON_SPACE = re.compile(r"\S+")

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Sentence:
    """A sentence as words; ``tags`` are IOB2 tags (one per word) or ``None`` when unlabeled.

    ``text`` and ``spans`` (the character span of each word in ``text``) are set when the words were cut
    from raw text; gold-tokenised sentences leave them ``None`` (``segment.detokenize`` writes their text).
    """

    words: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    lang: str = "und"
    text: str | None = field(default=None, compare=False)
    spans: tuple[tuple[int, int], ...] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.words):
            raise ValueError(f"{len(self.words)} words but {len(self.tags)} tags")
        if self.spans is not None and len(self.spans) != len(self.words):
            raise ValueError(f"{len(self.words)} words but {len(self.spans)} spans")

    @classmethod
    def from_text(cls, text: str, lang: str = "und") -> Sentence:
        """An unlabeled sentence of raw text: whitespace-separated words, the text kept as it was."""
        spans = tuple(m.span() for m in _NON_SPACE.finditer(text))
        return cls(tuple(text[a:b] for a, b in spans), None, lang, text, spans)

    @property
    def is_labeled(self) -> bool:
        return self.tags is not None

    def unlabeled(self) -> Sentence:
        return Sentence(self.words, None, self.lang, self.text, self.spans)


@dataclass(frozen=True)
class Document:
    """A text with one class label (text classification), or ``None`` when unlabeled."""

    text: str
    label: str | None = None
    lang: str = "und"

    @property
    def is_labeled(self) -> bool:
        return self.label is not None

    @property
    def words(self) -> tuple[str, ...]:
        """Whitespace-separated words (what de-duplication and statistics compare)."""
        return tuple(self.text.split())

    def unlabeled(self) -> Document:
        return Document(self.text, None, self.lang)


@dataclass
class Corpus:
    """A multilingual labeled corpus: language -> split -> sentences.

    Training is joint over all languages; evaluation is per language.
    """

    splits: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # Sentence (NER) or Document
    name: str = ""

    @property
    def languages(self) -> list[str]:
        return sorted(self.splits)

    def split(self, name: str) -> list[Sentence]:
        """All sentences of one split, joined over languages (in language order)."""
        return [s for lang in self.languages for s in self.splits[lang].get(name, [])]

    def labels(self) -> list[str]:
        r"""Sorted entity types (``PER``, ``LOC`` ...) over all splits and languages; for a corpus of
        ``Document``\ s, the sorted class labels."""
        items = [x for by_split in self.splits.values() for xs in by_split.values() for x in xs]
        if items and isinstance(items[0], Document):
            return sorted({x.label for x in items if x.label is not None})
        types = {
            tag[2:]
            for by_split in self.splits.values()
            for sentences in by_split.values()
            for s in sentences
            for tag in (s.tags or ())
            if tag != "O"
        }
        return sorted(types)

    def merge(self, other: Corpus) -> Corpus:
        merged = {lang: dict(by_split) for lang, by_split in self.splits.items()}
        for lang, by_split in other.splits.items():
            if lang in merged:
                for split, sentences in by_split.items():
                    merged[lang][split] = merged[lang].get(split, []) + sentences
            else:
                merged[lang] = dict(by_split)
        name = "+".join(n for n in (self.name, other.name) if n)
        return Corpus(merged, name)

    def counts(self) -> dict[str, dict[str, int]]:
        return {lang: {sp: len(self.splits[lang].get(sp, [])) for sp in SPLITS} for lang in self.languages}
