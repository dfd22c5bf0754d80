"""Mention replacement (Dai & Adel, 2020): new transfer text from the labeled train sentences, each entity
mention swapped for another mention of the same type and language. The teacher labels the new sentences,
so they need not be correct; they put known names into new contexts where unlabeled text is scarce."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from xtremedistil.data.readers import entity_spans
from xtremedistil.data.records import Sentence


def mention_replacement(sentences: Sequence[Sentence], copies: int, seed: int = 0) -> list[Sentence]:
    """``copies`` variants of every labeled sentence that has entities; the variants are unlabeled."""
    rng = np.random.default_rng(seed)
    mentions: dict[tuple[str, str], list[tuple[str, ...]]] = defaultdict(list)
    for s in sentences:
        for etype, start, end in entity_spans(list(s.tags or ())):
            mentions[(s.lang, etype)].append(s.words[start:end])
    out: list[Sentence] = []
    for s in sentences:
        spans = entity_spans(list(s.tags or ()))
        if not spans:
            continue
        for _ in range(copies):
            words: list[str] = []
            cursor = 0
            for etype, start, end in spans:
                pool = mentions[(s.lang, etype)]
                words += list(s.words[cursor:start]) + list(pool[int(rng.integers(len(pool)))])
                cursor = end
            words += list(s.words[cursor:])
            out.append(Sentence(tuple(words), None, s.lang))
    return out
