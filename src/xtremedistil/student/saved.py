"""A saved student is a self-describing folder: ``student.json`` (config, labels, provenance),
``model.safetensors``, ``vocab.json`` (the teacher sub-word ids it keeps) and the teacher's tokenizer files.
``load_student(path)`` gives a ``StudentPredictor`` that predicts entities with character offsets, or for a
text-classification student a ``ClassifierPredictor`` that predicts a label and class probabilities."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file, save_file

from xtremedistil.batching import SpecialIds
from xtremedistil.data.records import Document, Sentence
from xtremedistil.errors import XtremeDistilError
from xtremedistil.evaluate import predict_logits
from xtremedistil.io import read_json, write_json
from xtremedistil.segment import char_entities, model_segmenter
from xtremedistil.student.families import FAMILIES, build_family, family_of
from xtremedistil.student.model import StudentBase
from xtremedistil.tasks.registry import task_of
from xtremedistil.teacher.model import load_tokenizer

META = "student.json"
VOCAB = "vocab.json"
WEIGHTS = "model.safetensors"


def save_student(
    student: StudentBase, tokenizer: Any, labels: list[str], path: str | Path, meta: dict[str, Any]
) -> Path:
    """Write the folder into a temporary sibling, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.contiguous() for k, v in student.state_dict().items()}
    if not student.has_backoff():
        del state["id_map"]  # rebuilt from vocab.json
    save_file(state, str(tmp / WEIGHTS))
    write_json(tmp / VOCAB, kept_teacher_ids(student).tolist())
    write_json(
        tmp / META,
        {
            "architecture": family_of(student),
            "task": "ner",  # a classification student's meta says so
            "config": student.config.to_dict(),
            "labels": labels,
            **meta,
        },
    )
    tokenizer.save_pretrained(tmp)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def kept_teacher_ids(student: StudentBase) -> np.ndarray:
    return student.kept_ids.cpu().numpy()


def load_student_model(path: str | Path) -> tuple[StudentBase, dict[str, Any]]:
    path = Path(path)
    if not (path / META).is_file():
        raise XtremeDistilError(f"not a saved student folder (no {META})", path=path)
    meta = read_json(path / META)
    try:
        kind = meta.get("architecture", "bilstm")
        if kind not in FAMILIES:
            raise XtremeDistilError(
                f"{META} names architecture {kind!r}; this version knows {', '.join(FAMILIES)}", path=path
            )
        student = build_family(kind, meta["config"], np.asarray(read_json(path / VOCAB), dtype=np.int64))
    except (KeyError, TypeError, ValueError) as exc:
        raise XtremeDistilError(
            f"{META} and {VOCAB} do not describe one student ({exc}); the folder is damaged or mixed up",
            path=path,
        ) from None
    if not (path / WEIGHTS).is_file():
        raise XtremeDistilError(f"no {WEIGHTS}: the folder is incomplete", path=path)
    try:
        weights = load_file(str(path / WEIGHTS))
    except Exception as exc:  # safetensors raises its own error type for a damaged header
        raise XtremeDistilError(
            f"cannot read {WEIGHTS} ({str(exc).splitlines()[0]}): the file is damaged or incomplete",
            path=path,
        ) from None
    try:
        missing, unexpected = student.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shapes that differ from the config
        raise XtremeDistilError(
            f"{WEIGHTS} does not fit {META}/{VOCAB} ({str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else exc})",
            path=path,
        ) from None
    if unexpected or set(missing) - {"id_map"}:
        raise XtremeDistilError(
            f"weights do not match the config (missing {missing}, unexpected {unexpected})", path=path
        )
    return student.eval(), meta


@dataclass(frozen=True)
class Entity:
    type: str
    text: str
    start: int  # character offsets into the input text, end exclusive
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text, "start": self.start, "end": self.end}


def entities_from_tags(text: str, spans: Sequence[tuple[int, int]], tags: Sequence[str]) -> list[Entity]:
    """IOB2 unit tags -> entities; an I- tag that does not continue an entity of its type starts one (only
    argmax decoding produces such tags)."""
    return [Entity(etype, text[a:b], a, b) for etype, a, b in char_entities(spans, tags)]


BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


class StudentPredictor:
    """A loaded student with its tokenizer: raw text in, entities with character offsets out. ``forward``
    (a ``Batch`` -> logits) runs the PyTorch model or its ONNX export (``backend``)."""

    def __init__(
        self,
        student: StudentBase,
        tokenizer: Any,
        meta: dict[str, Any],
        forward: Any = None,
        backend: str = "torch",
    ) -> None:
        self.student, self.tokenizer, self.meta, self.backend = student, tokenizer, meta, backend
        self.forward = forward or (lambda b: self.student(b).logits)
        # students saved before constrained decoding existed were scored with argmax: keep it for them
        self.task = task_of(meta, decoding=meta.get("decoding", "argmax"))
        self.special = SpecialIds.from_tokenizer(tokenizer)
        self.max_length = int(meta.get("max_length", 128))
        self.segment = model_segmenter(tokenizer, meta)

    def tag_words(self, sentences: Sequence[Sequence[str]], batch_size: int = 64) -> list[list[str]]:
        """IOB2 tags for words given already split (each word tokenized on its own); long inputs are cut
        into windows so no word is dropped. Raw text goes through ``predict`` / ``tag_text``."""
        return self._tag([Sentence(tuple(words)) for words in sentences], batch_size)

    def units(self, texts: Sequence[str]) -> list[Sentence]:
        """Each text as the student reads raw text: its units, with their character spans."""
        out = []
        for text in texts:
            spans = self.segment(text)
            out.append(Sentence(tuple(text[a:b] for a, b in spans), None, "und", text, tuple(spans)))
        return out

    def tag_text(
        self, texts: Sequence[str], batch_size: int = 64, timings: dict[str, float] | None = None
    ) -> list[tuple[list[tuple[int, int]], list[str]]]:
        """Each text cut into units the way the student was trained to read raw text, with a tag per unit.
        ``timings``, if given, accumulates the seconds spent in each step (segment, encode, model, decode)."""
        clock = _Clock(timings)
        records = self.units(texts)
        clock.lap("segment")
        non_empty = [i for i, r in enumerate(records) if r.words]
        tagged = self._tag([records[i] for i in non_empty], batch_size, clock)
        tags = dict(zip(non_empty, tagged, strict=True))
        return [(list(r.spans or ()), tags.get(i, [])) for i, r in enumerate(records)]

    def predict(
        self, texts: str | Iterable[str], batch_size: int = 64, timings: dict[str, float] | None = None
    ) -> list[list[Entity]]:
        """Entities of each text (a single string gives a one-element list)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        tagged = self.tag_text(texts, batch_size, timings)
        clock = _Clock(timings)
        entities = [
            entities_from_tags(text, spans, tags) for text, (spans, tags) in zip(texts, tagged, strict=True)
        ]
        clock.lap("entities")
        return entities

    def _tag(self, records: list[Sentence], batch_size: int, clock: _Clock | None = None) -> list[list[str]]:
        clock = clock or _Clock(None)
        encoded, _ = self.task.encode(records, self.tokenizer, self.max_length)
        clock.lap("encode")
        logits = predict_logits(self.forward, encoded, self.special, batch_size)
        clock.lap("model")
        tags = self.task.decode(records, encoded, logits)
        clock.lap("decode")
        return tags


class _Clock:
    """Adds the time since the last lap to ``timings[step]`` (nothing when ``timings`` is None)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings, self.last = timings, time.perf_counter()

    def lap(self, step: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[step] = self.timings.get(step, 0.0) + now - self.last
            self.last = now


class ClassifierPredictor(StudentPredictor):
    """A loaded text-classification student: raw text in, a label and the class probabilities out."""

    def probabilities(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(texts, classes) probabilities, columns in the order of ``labels``."""
        docs = [Document(text) for text in texts]
        encoded, _ = self.task.encode(docs, self.tokenizer, self.max_length)
        return self.task.probabilities(predict_logits(self.forward, encoded, self.special, batch_size))

    @property
    def labels(self) -> list[str]:
        return list(self.task.labels)

    def predict(  # type: ignore[override]
        self, texts: str | Iterable[str], batch_size: int = 64, timings: dict[str, float] | None = None
    ) -> list[dict[str, Any]]:
        """``{"label", "probabilities": {label: p}}`` per text (a single string gives a one-element list)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return []
        probs = self.probabilities(texts, batch_size)
        return [
            {
                "label": self.labels[int(row.argmax())],
                "probabilities": {
                    label: round(float(p), 6) for label, p in zip(self.labels, row, strict=True)
                },
            }
            for row in probs
        ]


def load_student(path: str | Path, backend: str = "auto") -> StudentPredictor:
    """Load a saved student folder; ``.predict(texts)`` returns entities with character offsets.
    ``backend``: ``torch``, or the folder's ONNX export on onnxruntime (``onnx``, ``onnx-int8``; made by
    ``xtremedistil export``); ``auto`` (the default) takes the fp32 ONNX export when the folder has one
    (the same tags as PyTorch and faster: docs/RESULTS.md, "Deployment"), else PyTorch."""
    if backend not in BACKENDS:
        raise XtremeDistilError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        from xtremedistil.student.export import MANIFEST

        manifest = read_json(Path(path) / MANIFEST) if (Path(path) / MANIFEST).is_file() else {}
        backend = "onnx" if "fp32" in manifest.get("files", {}) else "torch"
    student, meta = load_student_model(path)
    tokenizer = load_tokenizer(path)
    forward = None
    if backend != "torch":
        from xtremedistil.student.export import OnnxForward

        forward = OnnxForward(path, "int8" if backend == "onnx-int8" else "fp32")
    kind = ClassifierPredictor if meta.get("task") == "classification" else StudentPredictor
    return kind(student, tokenizer, meta, forward, backend)


def student_folder(path: str | Path) -> Path | None:
    """``path`` if it is a saved student folder, its ``student/`` if it is a run folder, else None."""
    path = Path(path)
    for folder in (path, path / "student"):
        if (folder / META).is_file():
            return folder
    return None


def open_predictor(path: str | Path, backend: str = "auto") -> StudentPredictor:
    """A student folder, or a run folder that holds one in ``student/``."""
    return load_student(student_folder(path) or path, backend)


def format_predictions(
    predictor: StudentPredictor, texts: Sequence[str], fmt: str, batch_size: int = 64
) -> Iterable[str]:
    """JSON lines (``{"text", "entities": [{type, text, start, end}]}``) or CoNLL (word, tag; blank line)."""
    import json

    if fmt not in ("jsonl", "conll"):
        raise XtremeDistilError(f"unknown format {fmt!r}; expected jsonl or conll")
    if isinstance(predictor, ClassifierPredictor):
        if fmt != "jsonl":
            raise XtremeDistilError("a text-classification student predicts JSON lines only (--format jsonl)")
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            for text, answer in zip(chunk, predictor.predict(chunk, batch_size), strict=True):
                yield json.dumps({"text": text, **answer}, ensure_ascii=False)
        return
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        if fmt == "jsonl":
            for text, entities in zip(chunk, predictor.predict(chunk, batch_size), strict=True):
                yield json.dumps(
                    {"text": text, "entities": [e.to_dict() for e in entities]}, ensure_ascii=False
                )
        else:
            for text, (spans, tags) in zip(chunk, predictor.tag_text(chunk, batch_size), strict=True):
                yield from (f"{text[a:b]}\t{t}" for (a, b), t in zip(spans, tags, strict=True))
                yield ""
