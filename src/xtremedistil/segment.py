"""Raw text -> words, the same way at prediction time and for raw transfer text: runs of letters/digits
and single punctuation marks; text in scripts written without spaces (CJK, kana) is cut where the teacher's
tokenizer puts piece boundaries."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@lru_cache(maxsize=65536)
def _is_cjk(char: str) -> bool:
    name = unicodedata.name(char, "")
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL"))


def split_words(text: str, tokenizer: Any) -> list[tuple[int, int]]:
    """Character spans of words: runs of letters/digits and single punctuation marks; text in scripts
    written without spaces (CJK, kana) is cut where the teacher's tokenizer puts piece boundaries."""
    spans = []
    for match in _WORD.finditer(text):
        a, b = match.span()
        word = match.group()
        if not word.isascii() and any(_is_cjk(c) for c in word):
            offsets = tokenizer(match.group(), add_special_tokens=False, return_offsets_mapping=True)
            pieces = [(a + s, a + e) for s, e in offsets["offset_mapping"] if e > s]
            spans += _strip_leading_space(text, pieces)
        else:
            spans.append((a, b))
    return spans


def _strip_leading_space(text: str, pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for s, e in pieces:
        while s < e and text[s].isspace():
            s += 1
        if s < e:
            out.append((s, e))
    return out


def segmenter(tokenizer: Any):
    """``text -> words`` with ``split_words`` and this tokenizer."""

    def segment(text: str) -> list[str]:
        return [text[a:b] for a, b in split_words(text, tokenizer)]

    return segment
