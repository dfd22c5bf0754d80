"""Mention replacement (Dai & Adel, 2020): new transfer text from the labeled train sentences, each entity
mention swapped for another mention of the same type and language. The teacher labels the new sentences,
so they need not be correct; they put names into new contexts where unlabeled text is scarce.

Mentions come from the train set itself (``"train"``: known names in new contexts) or are generated
(``"generated"``: new names from Faker's locale data, e.g. Japanese family names, US states, Chinese
company names), or half and half (``"both"``). Generated names show the student names it has never seen,
which is what a test set of new entities asks of it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from xtremedistil.data.readers import entity_spans
from xtremedistil.data.records import Sentence

# Languages written without spaces between words: generated names are one word there.
UNSPACED = {"ja", "zh", "th", "lo", "km", "my"}
# A language code -> the Faker locale whose names, places and companies stand in for it.
LOCALES = {"en": "en_US", "ja": "ja_JP", "zh": "zh_CN", "ar": "ar_SA", "hi": "hi_IN", "pt": "pt_BR"}
# Faker providers per entity type, drawn uniformly (missing ones in a locale are skipped).
PROVIDERS = {
    "PER": ("name", "last_name", "first_name"),
    "LOC": ("city", "country", "state", "prefecture", "province"),
    "ORG": ("company",),
}

Generator = Callable[[str, str, np.random.Generator], tuple[str, ...] | None]


def faker_mentions(seed: int) -> Generator:
    """A generator ``(lang, type, rng) -> words`` backed by Faker; None for a language or type it lacks."""
    from faker import Faker
    from faker.config import AVAILABLE_LOCALES

    fakers: dict[str, object | None] = {}

    def locale_faker(lang: str) -> object | None:
        if lang not in fakers:
            candidates = [
                LOCALES.get(lang),
                lang,
                *sorted(x for x in AVAILABLE_LOCALES if x.split("_")[0] == lang),
            ]
            locale = next((c for c in candidates if c in AVAILABLE_LOCALES), None)
            fakers[lang] = Faker(locale) if locale else None
            if fakers[lang] is not None:
                fakers[lang].seed_instance(seed)  # type: ignore[attr-defined]
        return fakers[lang]

    def generate(lang: str, etype: str, rng: np.random.Generator) -> tuple[str, ...] | None:
        fake = locale_faker(lang)
        providers = [p for p in PROVIDERS.get(etype, ()) if fake is not None and hasattr(fake, p)]
        if not providers:
            return None
        text = str(getattr(fake, providers[int(rng.integers(len(providers)))])())
        if lang in UNSPACED:
            return (text.replace(" ", "").replace("\u3000", ""),)
        return tuple(text.split())

    return generate


def mention_replacement(
    sentences: Sequence[Sentence], copies: int, seed: int = 0, mentions: str = "train"
) -> list[Sentence]:
    """``copies`` variants of every labeled sentence that has entities; the variants are unlabeled.
    ``mentions``: where replacements come from, ``"train"``, ``"generated"`` or ``"both"``."""
    if mentions not in ("train", "generated", "both"):
        raise ValueError(f"mentions must be train, generated or both, not {mentions!r}")
    rng = np.random.default_rng(seed)
    generate = faker_mentions(seed) if mentions != "train" else None
    pools: dict[tuple[str, str], list[tuple[str, ...]]] = defaultdict(list)
    for s in sentences:
        for etype, start, end in entity_spans(list(s.tags or ())):
            pools[(s.lang, etype)].append(s.words[start:end])

    def pick(lang: str, etype: str) -> tuple[str, ...]:
        if generate is not None and (mentions == "generated" or rng.random() < 0.5):
            words = generate(lang, etype, rng)
            if words:
                return words
        pool = pools[(lang, etype)]
        return pool[int(rng.integers(len(pool)))]

    out: list[Sentence] = []
    for s in sentences:
        spans = entity_spans(list(s.tags or ()))
        if not spans:
            continue
        for _ in range(copies):
            words: list[str] = []
            cursor = 0
            for etype, start, end in spans:
                words += list(s.words[cursor:start]) + list(pick(s.lang, etype))
                cursor = end
            words += list(s.words[cursor:])
            out.append(Sentence(tuple(words), None, s.lang))
    return out
