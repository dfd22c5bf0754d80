"""The tasks by name: the orchestrators (distillation, pipeline, experiment) get their task here and never
import a concrete one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xtremedistil.tasks.classify import ClassificationTask
from xtremedistil.tasks.ner import DEFAULT_DECODING, NerTask

TASKS = {"ner": NerTask, "classification": ClassificationTask}


def task_class(name: str) -> Any:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def corpus_labels(name: str, corpus: Any) -> list[str]:
    """The labels a model of task ``name`` predicts for ``corpus`` (IOB2 tags for NER, classes otherwise)."""
    return task_class(name).label_set(corpus.labels())


def make_task(
    name: str,
    labels: Sequence[str],
    *,
    decoding: str = DEFAULT_DECODING,
    reading: str = "text",
    truncation: str = "head",
) -> Any:
    """The task of a model from its label list and how it reads text."""
    if name == "ner":
        return NerTask.from_labels(labels, decoding, reading)
    return task_class(name).from_labels(labels, truncation=truncation)


def task_of(meta: dict[str, Any], *, decoding: str | None = None) -> Any:
    """The task a saved teacher or student was made for, from its meta (older folders are NER)."""
    return make_task(
        meta.get("task", "ner"),
        meta["labels"],
        decoding=decoding or meta.get("decoding", DEFAULT_DECODING),
        reading=meta.get("reading", "text"),
        truncation=meta.get("truncation", "head"),
    )


def headline(scores: dict[str, Any]) -> float:
    """The mean over languages of a task's headline metric (NER: span F1; classification: accuracy)."""
    return float(scores["mean"] if "mean" in scores else scores["mean_f1"])


def per_language(scores: dict[str, Any]) -> dict[str, float]:
    """The headline metric per language (x100)."""
    metric = scores.get("metric", "f1")
    return {lang: 100 * m[metric] for lang, m in scores["languages"].items()}


def summarise_languages(task: Any, per_language: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-language scores of separately scored languages (D0's students) with the task's mean and std."""
    if hasattr(task, "summarise"):
        return task.summarise(per_language)
    from xtremedistil.evaluate import summarise

    return {"languages": per_language, **summarise(per_language)}


def metric_label(metric: str) -> str:
    """How logs and reports name a metric: ``F1``, ``accuracy``."""
    return "F1" if metric == "f1" else metric
