"""Per-language evaluation, the paper's way of reporting: F1 per language, then the unweighted mean and
standard deviation over languages."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from xtremedistil.batching import SpecialIds, iterate_batches
from xtremedistil.data.records import Sentence
from xtremedistil.tasks.base import Batch, Encoded
from xtremedistil.tasks.ner import NerTask, expand_to_subwords, span_scores

Forward = Callable[[Batch], torch.Tensor]  # batch -> logits (B, T, C)


def predict_logits(
    forward: Forward,
    encoded: Sequence[Encoded],
    special: SpecialIds,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Logits of every window (specials stripped), in the order of ``encoded``; length-sorted batches."""
    out: list[np.ndarray | None] = [None] * len(encoded)
    with torch.inference_mode():
        for batch in iterate_batches(encoded, batch_size, special, shuffle=False):
            logits = forward(batch).float().numpy()
            for row, i in enumerate(batch.index.tolist()):
                out[i] = logits[row, 1 : len(encoded[i]) + 1]
            if progress is not None:
                progress(len(batch))
    return out  # type: ignore[return-value]


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
    encoded: Sequence[Encoded] | None = None,
) -> dict[str, Any]:
    """Per-language span scores plus the mean and std of F1 over languages.

    ``scheme="conlleval-subword"`` reproduces the paper's scoring: tags expanded to sub-words (non-first
    sub-words continue the word's entity) and conlleval-style lenient chunking; it needs ``encoded``.
    """
    if scheme == "conlleval-subword":
        if encoded is None:
            raise ValueError("conlleval-subword scoring needs the encoded windows")
        pieces = _pieces_per_word(sentences, encoded)
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
