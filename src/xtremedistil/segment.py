"""Raw text <-> words, one way for every input the models read: labeled sentences, transfer text, dev/test
text and what users send to ``predict``.

``split_words`` cuts a string into *units* (character spans that index the string exactly; every character
that is not a space or an invisible control lies in exactly one unit; units never overlap):

- runs of letters, digits and their combining marks (whole grapheme clusters) form one unit: ``Obama``,
  ``हिन्दी``, ``naïve``; each punctuation mark, symbol or emoji cluster is a unit of its own (``'``, ``,``,
  ``👍🏽``, ``🇺🇸``);
- Chinese characters and kana are cut where the teacher's tokenizer puts piece boundaries, except that
  pieces which an entity of the labeled train split starts or ends inside are cut into characters
  everywhere (``cjk = "piece-split"``, the default, chosen on dev: docs/METHOD.md, "Raw text"); or at
  every piece boundary only (``"piece"``); or one unit per character (``"char"``, mBERT's convention:
  every entity boundary is a unit boundary, but the teacher reads characters where it was pre-trained on
  pieces);
- other scripts written without spaces (Thai, Lao, Khmer, Myanmar) are cut at the tokenizer's piece
  boundaries, moved to grapheme-cluster boundaries (one unit per cluster without a tokenizer).

Labeled sentences arrive as gold words; ``detokenize`` writes them out as the raw text a user would send,
``to_units`` splits that text with ``split_words`` and carries the gold entities over to the units, so that
training and scoring see the segmentation ``predict`` will see.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import regex

from xtremedistil.data.readers import entity_spans
from xtremedistil.data.records import Sentence

CjkPolicy = Literal["piece", "piece-split", "char"]
CJK_POLICIES: tuple[str, ...] = ("piece", "piece-split", "char")
SEGMENTATION_VERSION = 2
"""Bumped when ``split_words`` or ``to_units`` change what a model reads (1 = gold words, before units)."""

_CLUSTER = regex.compile(r"\X")
_CJK = regex.compile(r"[\p{Han}\p{scx=Hiragana}\p{scx=Katakana}]")
_NO_SPACE = regex.compile(r"[\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]")
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Cs", "Co", "Cn"})

SPACE, WORD, CJK, NO_SPACE, MARK = range(5)


@lru_cache(maxsize=65536)
def _kind(char: str) -> int:
    """The class of a grapheme cluster, from its first character."""
    if char.isspace() or unicodedata.category(char) in _INVISIBLE:
        return SPACE
    if _CJK.match(char):
        return CJK
    if _NO_SPACE.match(char):
        return NO_SPACE
    if char.isalnum() or char == "_" or unicodedata.category(char).startswith("M"):
        return WORD
    return MARK


def _runs(text: str) -> list[tuple[int, int, int]]:
    """(kind, start, end) of maximal runs of grapheme clusters of one kind; punctuation clusters stand alone."""
    runs: list[list[int]] = []
    for match in _CLUSTER.finditer(text):
        a, b = match.span()
        kind = _kind(text[a])
        if kind == SPACE and any(_kind(c) != SPACE for c in text[a:b]):
            # a combining mark or joiner right after a space (one cluster): a unit of its own, without the space
            kind = MARK
            while _kind(text[a]) == SPACE:
                a += 1
        if runs and runs[-1][0] == kind and kind not in (MARK, SPACE) and runs[-1][2] == a:
            runs[-1][2] = b
        else:
            runs.append([kind, a, b])
    return [(k, a, b) for k, a, b in runs if k != SPACE]


def _clusters(text: str, a: int, b: int) -> list[int]:
    """Cluster boundaries inside ``text[a:b]`` (absolute offsets, ``a`` and ``b`` included)."""
    return [a + m.start() for m in _CLUSTER.finditer(text[a:b])] + [b]


def _piece_cuts(text: str, a: int, b: int, tokenizer: Any, split: Collection[str] = ()) -> list[int]:
    """Where the tokenizer starts pieces inside ``text[a:b]``, moved onto grapheme-cluster boundaries; a
    piece whose text is in ``split`` is cut into its grapheme clusters."""
    boundaries = _clusters(text, a, b)
    if tokenizer is None:
        return boundaries
    # the Rust tokenizer directly (no Python wrapping per call), unless it is set to truncate or pad
    backend = getattr(tokenizer, "backend_tokenizer", None)
    direct = backend is not None and backend.truncation is None and backend.padding is None
    offsets = (
        backend.encode(text[a:b], add_special_tokens=False).offsets
        if direct
        else tokenizer(text[a:b], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    )
    starts = set()
    for s, e in offsets:
        while s < e and text[a + s].isspace():  # sentencepiece's "▁" may claim the space before a piece
            s += 1
        if s < e:
            starts.add(a + s)
    cuts = sorted({a, b} | (starts & set(boundaries)))
    inside_split_pieces = [
        c for s, e in zip(cuts, cuts[1:], strict=False) if text[s:e] in split for c in boundaries if s < c < e
    ]
    return sorted(set(cuts).union(inside_split_pieces))


def split_words(
    text: str, tokenizer: Any = None, cjk: CjkPolicy = "piece", split: Collection[str] = ()
) -> list[tuple[int, int]]:
    """Character spans of the units of ``text`` (see the module docstring); ``tokenizer`` is only read for
    scripts written without spaces (for Chinese/Japanese not with ``cjk="char"``); without one, such text
    is one unit per grapheme cluster. ``split``: pieces cut into characters (``cjk="piece-split"`` only)."""
    if cjk not in CJK_POLICIES:
        raise ValueError(f"cjk must be one of {CJK_POLICIES}, not {cjk!r}")
    if cjk != "piece-split":
        split = ()
    spans: list[tuple[int, int]] = []
    for kind, a, b in _runs(text):
        if kind == CJK and cjk == "char":
            cuts = _clusters(text, a, b)
        elif kind in (CJK, NO_SPACE):
            cuts = _piece_cuts(text, a, b, tokenizer, split)
        else:
            cuts = [a, b]
        spans += zip(cuts[:-1], cuts[1:], strict=True)
    return spans


def segmenter(
    tokenizer: Any, cjk: CjkPolicy = "piece", split: Collection[str] = ()
) -> Callable[[str], list[tuple[int, int]]]:
    """``text -> unit spans`` with ``split_words``, this tokenizer, CJK policy and (``"piece-split"`` only)
    the pieces to cut into characters."""
    split = frozenset(split)  # split_words ignores it for other policies

    def segment(text: str) -> list[tuple[int, int]]:
        return split_words(text, tokenizer, cjk, split)

    return segment


def straddled_pieces(sentences: Sequence[Sentence], tokenizer: Any) -> list[str]:
    """The pieces (units of text written without spaces) inside which a gold entity of ``sentences``
    starts or ends: with ``cjk = "piece-split"`` they are cut into characters wherever they occur, so that
    such an entity can be matched exactly (``在北京``, "in Beijing", is one piece)."""
    segment = segmenter(tokenizer, "piece")
    found: set[str] = set()
    for sentence in sentences:
        text, word_spans = text_and_spans(sentence)
        units = segment(text)
        for _, a, b in char_entities(word_spans, sentence.tags or ()):
            found.update(text[s:e] for s, e in units if s < a < e or s < b < e)
    return sorted(found)


def segmentation(cjk: CjkPolicy, split: Collection[str] = ()) -> dict[str, Any]:
    """What a model's meta records about how its inputs were cut (``predict`` cuts raw text the same way)."""
    return {"version": SEGMENTATION_VERSION, "cjk": cjk, "split": sorted(split)}


def same_policy(recorded: dict[str, Any] | None, cjk: str) -> bool:
    """True if a model's recorded segmentation is this version's with policy ``cjk``."""
    return bool(recorded) and recorded.get("version") == SEGMENTATION_VERSION and recorded.get("cjk") == cjk


def model_segmenter(tokenizer: Any, meta: dict[str, Any]) -> Callable[[str], list[tuple[int, int]]]:
    """The segmenter a saved model (teacher or student) was trained with, from its meta."""
    recorded = meta.get("segmentation") or {}
    return segmenter(tokenizer, recorded.get("cjk", "piece"), recorded.get("split", ()))


# --------------------------------------------------------------------------------------------------------
# Gold words -> raw text -> units.
# --------------------------------------------------------------------------------------------------------

_CLOSING = frozenset(",.;:!?%)]}…»”’、。，．：；！？）」』】〉》")
_OPENING = frozenset("([{«“‘¿¡（「『【〈《")
_CLITICS = ("'s", "'re", "'ve", "'ll", "'d", "'m", "n't", "’s", "’re", "’ve", "’ll", "’d", "’m", "n’t")


def written_without_spaces(char: str) -> bool:
    """True for Chinese/Japanese and other scripts written without spaces (Thai, Lao, Khmer, Myanmar)."""
    return _kind(char) in (CJK, NO_SPACE)


def _tight(char: str) -> bool:
    """Characters of text written without spaces: no space is put next to them."""
    return _kind(char) in (CJK, NO_SPACE) or unicodedata.east_asian_width(char) == "F"


def detokenize(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The raw text of gold-tokenised words and each word's character span in it.

    Words are joined by one space, except: none next to Chinese/Japanese/Thai characters or full-width
    forms, none before closing punctuation and English clitics (``'s``, ``n't``), none after opening
    brackets, and straight double quotes alternate between opening and closing."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    position, quote_open, glue_next = 0, False, True
    for word in words:
        space = not glue_next
        if parts and space:
            prev = parts[-1]
            if (
                _tight(prev[-1])
                or _tight(word[0])
                or all(c in _CLOSING for c in word)
                or word.lower() in _CLITICS
                or (word == '"' and quote_open)
            ):
                space = False
        if parts and space:
            parts.append(" ")
            position += 1
        parts.append(word)
        spans.append((position, position + len(word)))
        position += len(word)
        glue_next = word in _OPENING or (word == '"' and not quote_open)
        if word == '"':
            quote_open = not quote_open
    return "".join(parts), spans


def char_entities(spans: Sequence[tuple[int, int]], tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) character spans of the entities of IOB2 ``tags`` over words at ``spans`` (an I- tag
    that does not continue an entity of its type starts one, as seqeval's lenient reading)."""
    return [(etype, spans[i][0], spans[j - 1][1]) for etype, i, j in entity_spans(tags)]


def text_and_spans(sentence: Sentence) -> tuple[str, list[tuple[int, int]]]:
    """The raw text of a sentence and its words' spans: as read, or its gold words detokenised."""
    if sentence.text is not None and sentence.spans is not None:
        return sentence.text, list(sentence.spans)
    return detokenize(sentence.words)


@dataclass(frozen=True)
class UnitStats:
    """What ``to_units`` could not carry over exactly."""

    sentences: int = 0
    entities: int = 0
    inexact: int = 0  # gold entities whose start or end falls inside a unit (widened to whole units)

    def describe(self) -> str:
        return (
            f"{self.inexact:,} of {self.entities:,} gold entities do not start and end on unit boundaries"
            " (widened to whole units)"
        )

    def __add__(self, other: UnitStats) -> UnitStats:
        return UnitStats(
            self.sentences + other.sentences, self.entities + other.entities, self.inexact + other.inexact
        )


def to_units(
    sentence: Sentence, segment: Callable[[str], list[tuple[int, int]]]
) -> tuple[Sentence, UnitStats]:
    """The sentence as ``predict`` would read its raw text: units with character spans and, for a labeled
    sentence, the gold entities carried over to the units (IOB2). The raw text is ``sentence.text`` when the
    sentence came as raw text, else its words detokenised."""
    text, word_spans = text_and_spans(sentence)
    units = segment(text)
    words = tuple(text[a:b] for a, b in units)
    if not sentence.is_labeled:
        return Sentence(words, None, sentence.lang, text, tuple(units)), UnitStats(1, 0, 0)
    tags = ["O"] * len(units)
    starts = [a for a, _ in units]
    ends = [b for _, b in units]
    entities = char_entities(word_spans, sentence.tags or ())
    inexact = 0
    for etype, a, b in entities:
        inside = [k for k, (s, e) in enumerate(units) if s < b and e > a]
        if not inside:
            inexact += 1
            continue
        inexact += a not in starts or b not in ends
        for n, k in enumerate(inside):
            if tags[k] == "O":
                tags[k] = ("B-" if n == 0 else "I-") + etype
    unit_sentence = Sentence(words, tuple(tags), sentence.lang, text, tuple(units))
    return unit_sentence, UnitStats(1, len(entities), inexact)


def units_of(
    sentences: Sequence[Sentence], segment: Callable[[str], list[tuple[int, int]]]
) -> tuple[list[Sentence], UnitStats]:
    """``to_units`` over many sentences; sentences with no unit (only spaces/controls) are kept empty."""
    out, stats = [], UnitStats()
    for sentence in sentences:
        unit_sentence, s = to_units(sentence, segment)
        out.append(unit_sentence)
        stats += s
    return out, stats


def word_tags(gold: Sentence, units: Sentence, unit_tags: Sequence[str]) -> list[str]:
    """Unit tags read back onto the gold words (scoring at gold word boundaries): a word takes the tag of
    the unit its first character lies in; a word that starts inside a unit continues that unit's entity;
    a word no unit covers (only invisible characters) is ``O``."""
    _, word_spans = text_and_spans(gold)
    unit_spans = units.spans or ()
    out, k = [], 0
    for a, _ in word_spans:
        while k + 1 < len(unit_spans) and unit_spans[k + 1][0] <= a:
            k += 1
        if not unit_spans or not unit_spans[k][0] <= a < unit_spans[k][1]:
            out.append("O")
            continue
        tag = unit_tags[k]
        if unit_spans[k][0] < a and tag != "O":
            tag = "I-" + tag[2:]
        out.append(tag)
    return out
