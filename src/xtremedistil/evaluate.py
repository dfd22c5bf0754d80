"""Per-language evaluation, the paper's way of reporting: F1 per language, then the unweighted mean and
standard deviation over languages."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xtremedistil.batching import SpecialIds, iterate_batches
from xtremedistil.data.records import Sentence
from xtremedistil.progress import Reporter, SilentReporter
from xtremedistil.segment import char_entities, text_and_spans, units_of, word_tags
from xtremedistil.tasks.base import Batch, Encoded
from xtremedistil.tasks.ner import NerTask, expand_to_subwords, span_scores

Forward = Callable[[Batch], torch.Tensor]  # batch -> logits (B, T, C)
SCHEMES = ("strict-word", "conlleval-subword")


def predict_logits(
    forward: Forward,
    encoded: Sequence[Encoded],
    special: SpecialIds,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Logits of every window (specials stripped), in the order of ``encoded``; length-sorted batches. A
    sequence-level model gives one (C,) row per window."""
    out: list[np.ndarray | None] = [None] * len(encoded)
    with torch.inference_mode():
        for batch in iterate_batches(encoded, batch_size, special, shuffle=False):
            logits = forward(batch).float().cpu().numpy()
            for row, i in enumerate(batch.index.tolist()):
                out[i] = logits[row] if logits.ndim == 2 else logits[row, 1 : len(encoded[i]) + 1]
            if progress is not None:
                progress(len(batch))
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class EvalSet:
    """Labeled sentences as a model meets them: the gold words (scored at gold word boundaries), the units
    of their raw text that the model reads (what ``predict`` reads from the same text) and their windows."""

    gold: list[Any]  # Sentence (NER) or Document (classification)
    units: list[Any]
    encoded: list[Encoded]
    stats: Any = None  # the task's encoding statistics

    def __len__(self) -> int:
        return len(self.gold)


def eval_set(
    task: NerTask,
    sentences: Sequence[Sentence],
    tokenizer: Any,
    max_length: int,
    segment: Callable[[str], list[tuple[int, int]]],
) -> EvalSet:
    """Gold sentences -> their detokenised text cut into units (gold entities carried over) -> windows."""
    units, _ = units_of(sentences, segment)
    encoded, stats = task.encode(units, tokenizer, max_length)
    return EvalSet(list(sentences), units, encoded, stats)


def score_eval_set(
    task: NerTask, data: EvalSet, logits: Sequence[np.ndarray], *, scheme: str = "strict-word"
) -> tuple[dict[str, Any], list[list[str]]]:
    """Scores of a model's window logits on ``data``: per-language span F1 at gold word boundaries (with
    ``scheme``) and, under ``end_to_end``, F1 of the entities it finds in the raw text, matched by exact
    character span and type. Returns the scores and the unit tags."""
    unit_tags = task.decode(data.units, data.encoded, logits)
    predictions = [
        word_tags(gold, units, tags)
        for gold, units, tags in zip(data.gold, data.units, unit_tags, strict=True)
    ]
    pieces = _pieces_per_gold_word(data) if scheme == "conlleval-subword" else None
    result = score_by_language(task, data.gold, predictions, scheme=scheme, pieces=pieces)
    result["end_to_end"] = char_span_scores(data, unit_tags)
    result["decoding"] = task.decoding
    result["reading"] = task.reading
    return result, unit_tags


def evaluate_set(
    forward: Forward | None,
    task: Any,
    data: EvalSet,
    special: SpecialIds,
    *,
    batch_size: int,
    scheme: str = "strict-word",
    reporter: Reporter | None = None,
    description: str = "evaluate",
    logits: list[np.ndarray] | None = None,
) -> tuple[dict[str, Any], list[list[str]]]:
    """Score a model on ``data`` (see ``score_eval_set``), from ``logits`` of its windows if they were
    already computed, else by running ``forward``. Returns the scores and the unit tags."""
    if logits is None:
        assert forward is not None
        with (reporter or SilentReporter()).bar(description, total=len(data.encoded)) as advance:
            logits = predict_logits(forward, data.encoded, special, batch_size, progress=advance)
    elif len(logits) != len(data.encoded) or (
        task.level == "token" and any(len(z) != len(e) for z, e in zip(logits, data.encoded, strict=True))
    ):
        raise ValueError("precomputed logits do not match the windows (another max_length or tokenizer?)")
    return task.score_eval_set(data, logits, scheme=scheme)


def char_span_scores(data: EvalSet, unit_tags: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Per-language P/R/F1 of entities in the raw text: a predicted entity counts when its type, start and
    end character equal a gold entity's (micro over types; per type too), then mean and std over languages."""
    per_language = {}
    for lang, idx in group_by_language(data.gold).items():
        gold: set[tuple[int, str, int, int]] = set()
        pred: set[tuple[int, str, int, int]] = set()
        for i in idx:
            _, spans = text_and_spans(data.gold[i])
            gold |= {(i, *e) for e in char_entities(spans, data.gold[i].tags or ())}
            pred |= {(i, *e) for e in char_entities(data.units[i].spans or (), unit_tags[i])}
        types = sorted({e[1] for e in gold | pred})
        per_type = {t: _prf({e for e in gold if e[1] == t}, {e for e in pred if e[1] == t}) for t in types}
        per_language[lang] = {**_prf(gold, pred), "sentences": len(idx), "per_type": per_type}
    return {"languages": per_language, **summarise(per_language)}


def _prf(gold: set[Any], pred: set[Any]) -> dict[str, Any]:
    hits = len(gold & pred)
    precision = hits / len(pred) if pred else 0.0
    recall = hits / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": len(gold)}


def _pieces_per_gold_word(data: EvalSet) -> list[list[int]]:
    """Sub-words of each gold word: the sub-words of the units that start inside it."""
    unit_pieces = _pieces_per_word(data.units, data.encoded)
    out = []
    for gold, units, pieces in zip(data.gold, data.units, unit_pieces, strict=True):
        _, word_spans = text_and_spans(gold)
        counts = [0] * len(word_spans)
        starts = [a for a, _ in word_spans]
        w = 0
        for (a, _), n in zip(units.spans or (), pieces, strict=True):
            while w + 1 < len(starts) and starts[w + 1] <= a:
                w += 1
            if counts:
                counts[w] += n
        out.append([max(c, 1) for c in counts])
    return out


def group_by_language(sentences: Sequence[Sentence]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, sentence in enumerate(sentences):
        groups.setdefault(sentence.lang, []).append(i)
    return dict(sorted(groups.items()))


def score_by_language(
    task: NerTask,
    sentences: Sequence[Sentence],
    predictions: Sequence[Sequence[str]],
    *,
    scheme: str = "strict-word",
    pieces: Sequence[Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Per-language span scores plus the mean and std of F1 over languages.

    ``scheme="conlleval-subword"`` reproduces the paper's scoring: tags expanded to sub-words (non-first
    sub-words continue the word's entity) and conlleval-style lenient chunking; it needs ``pieces`` (the
    number of sub-words of each word).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    if scheme == "conlleval-subword" and pieces is None:
        raise ValueError("conlleval-subword scoring needs the number of sub-words of each word")
    per_language = {}
    for lang, idx in group_by_language(sentences).items():
        gold = [list(sentences[i].tags or ()) for i in idx]
        pred = [list(predictions[i]) for i in idx]
        if scheme == "conlleval-subword":
            gold = [expand_to_subwords(g, pieces[i]) for g, i in zip(gold, idx, strict=True)]
            pred = [expand_to_subwords(p, pieces[i]) for p, i in zip(pred, idx, strict=True)]
        per_language[lang] = span_scores(gold, pred, strict=scheme == "strict-word")
    return {"scheme": scheme, "languages": per_language, **summarise(per_language)}


def summarise(per_language: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Unweighted mean and population standard deviation of F1 over languages (x100)."""
    f1 = [100 * m["f1"] for m in per_language.values()]
    return {
        "mean_f1": statistics.fmean(f1) if f1 else 0.0,
        "std_f1": statistics.pstdev(f1) if len(f1) > 1 else 0.0,
    }


def _pieces_per_word(sentences: Sequence[Sentence], encoded: Sequence[Encoded]) -> list[list[int]]:
    pieces = [[1] * len(s.words) for s in sentences]
    for window in encoded:
        starts = np.flatnonzero(window.word_start)
        lengths = np.diff(np.append(starts, len(window)))
        row = pieces[window.sentence]
        for k, n in enumerate(lengths):
            row[window.first_word + k] = int(n)
    return pieces


def iter_table_rows(results: dict[str, dict[str, Any]]) -> Iterator[list[str]]:
    languages = sorted({lang for r in results.values() for lang in r["languages"]})
    for lang in languages:
        yield [lang] + [_fmt(r["languages"].get(lang, {}).get("f1")) for r in results.values()]
    yield ["**mean ± std**"] + [f"**{r['mean_f1']:.2f} ± {r['std_f1']:.2f}**" for r in results.values()]


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """Languages as rows, one column of F1 per model (e.g. teacher, student)."""
    header = ["language", *results]
    rows = [header, ["---"] * len(header), *iter_table_rows(results)]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"


def per_type_table(result: dict[str, Any]) -> str:
    """P / R / F1 per language and entity type for one model."""
    rows = [["language", "type", "P", "R", "F1", "support"], ["---"] * 6]
    for lang, m in result["languages"].items():
        rows.append([lang, "all", _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]), str(m["support"])])
        for etype, t in m["per_type"].items():
            rows.append(
                ["", etype, _fmt(t["precision"]), _fmt(t["recall"]), _fmt(t["f1"]), str(t["support"])]
            )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"
