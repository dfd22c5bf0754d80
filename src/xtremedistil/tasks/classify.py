"""Text classification (single label, any number of classes): one window per text, the class of the whole
window; metric: accuracy and macro-F1 per language."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xtremedistil.data.records import Document
from xtremedistil.errors import DataError
from xtremedistil.tasks.base import IGNORE_INDEX, Batch, Encoded

TRUNCATIONS = ("head", "head+tail")


@dataclass(frozen=True)
class TextEncodingStats:
    """What encoding did to the texts: how many were longer than the window, and how much was cut."""

    texts: int
    subwords: int  # kept
    truncated: int  # texts longer than the window
    cut_subwords: int  # sub-words dropped from them
    truncation: str

    @property
    def windows(self) -> int:
        return self.texts

    def describe(self) -> str:
        share = self.cut_subwords / max(1, self.subwords + self.cut_subwords)
        return (
            f"{self.texts:,} texts, {self.subwords:,} sub-words; {self.truncated:,} longer than the window, "
            f"cut ({self.truncation}): {self.cut_subwords:,} sub-words dropped ({100 * share:.1f}%)"
        )


def truncate(ids: list[int], budget: int, policy: str) -> list[int]:
    """At most ``budget`` ids: the first ones (``head``), or the first quarter of the budget and the rest from
    the end (``head+tail``: a review's verdict is often in its last sentences)."""
    if len(ids) <= budget:
        return ids
    if policy == "head":
        return ids[:budget]
    head = budget // 4
    return ids[:head] + ids[len(ids) - (budget - head) :]


class ClassificationTask:
    """One label per text. The model reads the text's sub-words in one window of ``max_length`` (with
    specials); the teacher classifies it from its first token, the student from its sentence vector."""

    name = "classification"
    level = "sequence"
    metric = "accuracy"
    decoding = "argmax"
    reading = "text"

    def __init__(self, labels: Sequence[str], truncation: str = "head") -> None:
        if truncation not in TRUNCATIONS:
            raise ValueError(f"unknown truncation {truncation!r}; expected one of {', '.join(TRUNCATIONS)}")
        if len(labels) < 2:
            raise ValueError(f"text classification needs at least two labels, got {list(labels)}")
        self.labels = list(labels)
        self.label_to_id = {label: i for i, label in enumerate(self.labels)}
        self.truncation = truncation

    @classmethod
    def from_labels(cls, labels: Sequence[str], **options: Any) -> ClassificationTask:
        return cls(labels, options.get("truncation", "head"))

    @classmethod
    def label_set(cls, corpus_labels: Sequence[str]) -> list[str]:
        """The model's labels from a corpus's class names (sorted, as ``Corpus.labels`` gives them)."""
        return list(corpus_labels)

    # --- inputs -------------------------------------------------------------------------------------
    def inputs(self, items: Sequence[Document], segment: Any = None) -> list[Document]:
        """What the model reads of ``items``: the texts as they are (no segmentation into units)."""
        return list(items)

    def encode(
        self, docs: Sequence[Document], tokenizer: Any, max_length: int
    ) -> tuple[list[Encoded], TextEncodingStats]:
        budget = max_length - 2
        encoded: list[Encoded] = []
        truncated = cut = kept = 0
        chunk = 1024
        for offset in range(0, len(docs), chunk):
            part = docs[offset : offset + chunk]
            ids_list = tokenizer([d.text for d in part], add_special_tokens=False)["input_ids"]
            for j, (doc, ids) in enumerate(zip(part, ids_list, strict=True)):
                if not ids:
                    ids = [tokenizer.unk_token_id]
                if len(ids) > budget:
                    truncated += 1
                    cut += len(ids) - budget
                    ids = truncate(ids, budget, self.truncation)
                kept += len(ids)
                n = len(ids)
                encoded.append(
                    Encoded(
                        input_ids=np.asarray(ids, dtype=np.int32),
                        targets=np.full(n, IGNORE_INDEX, dtype=np.int64),
                        word_start=np.zeros(n, dtype=bool),
                        sentence=offset + j,
                        first_word=0,
                        lang=doc.lang,
                        label=self._label_id(doc) if doc.label is not None else IGNORE_INDEX,
                    )
                )
        return encoded, TextEncodingStats(len(docs), kept, truncated, cut, self.truncation)

    def _label_id(self, doc: Document) -> int:
        try:
            return self.label_to_id[doc.label]  # type: ignore[index]
        except KeyError:
            raise DataError(
                f"label {doc.label!r} of a {doc.lang} text is not in the label set {self.labels}"
            ) from None

    # --- training -----------------------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Cross-entropy of the window's class."""
        assert batch.labels is not None
        return F.cross_entropy(logits, batch.labels, ignore_index=IGNORE_INDEX)

    # --- predictions and scores ---------------------------------------------------------------------
    def probabilities(self, logits: Sequence[np.ndarray]) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float64).reshape(len(logits), len(self.labels))
        z = z - z.max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    def decode(
        self, docs: Sequence[Document], encoded: Sequence[Encoded], logits: Sequence[np.ndarray]
    ) -> list[str]:
        """The most probable class of each text (its one window)."""
        by_doc = [0] * len(docs)
        for window, z in zip(encoded, logits, strict=True):
            by_doc[window.sentence] = int(np.argmax(z))
        return [self.labels[i] for i in by_doc]

    def score(self, docs: Sequence[Document], predictions: Sequence[str]) -> dict[str, Any]:
        """Accuracy, macro-F1 and the confusion matrix of one language's texts."""
        from sklearn.metrics import (
            accuracy_score,
            confusion_matrix,
            f1_score,
            precision_recall_fscore_support,
        )

        gold = [d.label for d in docs]
        present = [label for label in self.labels if label in set(gold) | set(predictions)]
        p, r, f, s = precision_recall_fscore_support(
            gold, list(predictions), labels=self.labels, zero_division=0
        )
        return {
            "accuracy": float(accuracy_score(gold, predictions)),
            # over the classes that occur in gold or predictions (a class absent from both scores nothing)
            "macro_f1": float(f1_score(gold, predictions, labels=present, average="macro", zero_division=0)),
            "support": len(gold),
            "labels": self.labels,
            "confusion": confusion_matrix(gold, predictions, labels=self.labels).tolist(),
            "per_class": {
                label: {
                    "precision": float(p[k]),
                    "recall": float(r[k]),
                    "f1": float(f[k]),
                    "support": int(s[k]),
                }
                for k, label in enumerate(self.labels)
            },
        }

    def eval_set(
        self,
        docs: Sequence[Document],
        tokenizer: Any,
        max_length: int,
        segment: Callable[..., Any] | None = None,
    ) -> Any:
        from xtremedistil.evaluate import EvalSet

        encoded, stats = self.encode(docs, tokenizer, max_length)
        return EvalSet(list(docs), list(docs), encoded, stats)

    def score_eval_set(
        self, data: Any, logits: Sequence[np.ndarray], *, scheme: str = ""
    ) -> tuple[dict[str, Any], list[str]]:
        """Per-language accuracy and macro-F1, then their unweighted mean and std over languages (x100)."""
        from xtremedistil.evaluate import group_by_language

        predictions = self.decode(data.gold, data.encoded, logits)
        per_language = {
            lang: self.score([data.gold[i] for i in idx], [predictions[i] for i in idx])
            for lang, idx in group_by_language(data.gold).items()
        }
        return self.summarise(per_language), predictions

    def summarise(self, per_language: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Per-language scores with their unweighted mean and std over languages (x100)."""
        result: dict[str, Any] = {"metric": self.metric, "scheme": "accuracy", "languages": per_language}
        for name in ("accuracy", "macro_f1"):
            values = [100 * m[name] for m in per_language.values()]
            result[f"mean_{name}"] = statistics.fmean(values) if values else 0.0
            result[f"std_{name}"] = statistics.pstdev(values) if len(values) > 1 else 0.0
        result["mean"], result["std"] = result["mean_accuracy"], result["std_accuracy"]
        result["truncation"] = self.truncation
        return result
