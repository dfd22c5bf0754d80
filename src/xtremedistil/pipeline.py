"""The outermost run functions: they own the run folder (the side effects), the rest is plain library."""

from __future__ import annotations

import contextlib
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xtremedistil import distributed
from xtremedistil.batching import SpecialIds
from xtremedistil.config import RunConfig, config_to_toml
from xtremedistil.data.records import Corpus, Document
from xtremedistil.data.sources import load_corpus
from xtremedistil.errors import ConfigError, XtremeDistilError
from xtremedistil.evaluate import evaluate_set, markdown_table, per_type_table
from xtremedistil.io import read_json, write_json, write_text
from xtremedistil.progress import Reporter, SilentReporter
from xtremedistil.segment import model_segmenter, same_policy
from xtremedistil.tasks.ner import DEFAULT_DECODING
from xtremedistil.tasks.registry import corpus_labels, task_of
from xtremedistil.teacher.model import META_FILE, Teacher, load_teacher
from xtremedistil.teacher.train import fine_tune_teacher, teacher_dir
from xtremedistil.training import setup_torch

if TYPE_CHECKING:
    from xtremedistil.student.saved import StudentPredictor

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
# teacher fine-tuning's resumable state while it runs (removed once the teacher is saved)
TEACHER_CHECKPOINT = "teacher-checkpoint.pt"


def teacher_identity(tree: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config that decide the fine-tuned teacher: a run folder keeps one teacher. Keys a
    newer version added are filled with their defaults first, so an older run folder is not refused."""
    from xtremedistil.config import config_from_dict

    with contextlib.suppress(ConfigError):  # a key this version no longer knows: compare as written
        tree = config_from_dict(tree).model_dump(exclude_none=True)
    data = tree.get("data", {})
    # "auto" became the default scheme; an embedded corpus is not read by scheme at all, so its folders made
    # before still match (a file source's old "iob2" may have kept IOB1 tags that "auto" converts: it differs)
    labeled = [
        {**entry, "scheme": "auto"} if str(entry.get("source") or "").startswith("embedded:") else entry
        for entry in data.get("labeled") or []
    ]
    teacher = {k: v for k, v in (tree.get("teacher") or {}).items() if k != "checkpoint_every"}
    return {
        "seed": tree.get("seed"),
        "task": tree.get("task"),
        "labeled": labeled,
        "cjk": data.get("cjk"),
        "teacher": teacher,
    }


_LOCKS: dict[Path, Any] = {}  # run folders this process holds, with their open lock files
LOCK_FILE = ".lock"


def lock_run_dir(run_dir: Path) -> None:
    """Hold the run folder for this process (an advisory lock the OS drops when the process ends, however
    it ends): a second process on the same folder stops with a message instead of interleaving writes."""
    import fcntl
    import os

    run_dir = Path(run_dir)
    key = run_dir.resolve()
    if key in _LOCKS:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 (held until the process ends)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise XtremeDistilError(
            f"this run folder is in use by {holder}; wait for it to finish (a rerun then resumes) or choose "
            "another output_dir (--output)",
            path=run_dir,
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    _LOCKS[key] = handle


def prepare_run_dir(config: RunConfig) -> Path:
    """Create the run folder and save the resolved config. A config that changes only the student, the
    distillation or the transfer set reuses the folder (and its teacher); one that would change the teacher
    is refused, so a folder never mixes two teachers."""
    run_dir = Path(config.output_dir)

    def claim() -> None:  # rank 0 alone holds and writes the folder; the other ranks only read from it
        text = config_to_toml(config)
        lock_run_dir(run_dir)
        existing = run_dir / CONFIG_FILE
        if existing.is_file():
            old = tomllib.loads(existing.read_text(encoding="utf-8"))
            if teacher_identity(old) != teacher_identity(tomllib.loads(text)):
                raise ConfigError(
                    "this run folder holds a run with a different teacher, labeled data or segmentation (or "
                    "one made by an older version); choose another "
                    "output_dir (--output) or delete the folder to start again",
                    path=existing,
                )
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(existing, text)

    distributed.current().on_main(claim)
    return run_dir


def update_metrics(run_dir: Path, **entries: Any) -> dict[str, Any]:
    path = run_dir / METRICS_FILE
    metrics = read_json(path) if path.is_file() else {}
    metrics.update(entries)
    write_json(path, metrics)
    return metrics


def obtain_teacher(config: RunConfig, corpus: Corpus, run_dir: Path, reporter: Reporter) -> Teacher:
    """The fine-tuned teacher: a given run's, this run's finished one (resume), or a new fine-tuning."""
    labels = corpus_labels(config.task, corpus)
    context = distributed.current()
    if config.teacher.run:
        source = teacher_folder(config, run_dir)
        teacher = load_teacher(source)
        reporter.info(f"teacher: reusing {source}")
    elif (teacher_dir(run_dir) / META_FILE).is_file():
        if context.is_main:  # left by a kill after the teacher was saved
            (run_dir / TEACHER_CHECKPOINT).unlink(missing_ok=True)
        teacher = load_teacher(teacher_dir(run_dir))
        how = "the ready model" if teacher.is_ready else "the finished fine-tuning"
        _check_same_teacher(config, teacher, teacher_dir(run_dir))
        reporter.info(f"teacher: reusing {how} in {teacher_dir(run_dir)}")
    elif not config.teacher.fine_tune:
        teacher = ready_from_config(config, corpus, reporter)

        def save_and_score() -> None:
            teacher.save(teacher_dir(run_dir))
            # scored before anything else: a wrong label map or a weak model shows in a minute, not after
            # the cache
            results = score_teacher(teacher, corpus, config, run_dir, reporter)
            reporter.info(
                "ready teacher: "
                + ", ".join(
                    f"{split} mean F1 {r['mean_f1']:.2f} (raw text {r['end_to_end']['mean_f1']:.2f})"
                    for split, r in results.items()
                )
            )

        context.on_main(save_and_score)
    else:
        checkpoint = run_dir / TEACHER_CHECKPOINT
        teacher, history = fine_tune_teacher(config, corpus, reporter, checkpoint)

        def save() -> None:
            teacher.save(teacher_dir(run_dir))
            write_json(run_dir / "teacher_history.json", history)
            checkpoint.unlink(missing_ok=True)
            update_metrics(run_dir, teacher_training=_without_evaluations(history))

        context.on_main(save)
    teacher.to(context.device)
    if teacher.task != config.task:
        raise XtremeDistilError(
            f"the teacher was made for task {teacher.task!r}, this config is {config.task!r}"
        )
    if teacher.labels != labels:
        raise XtremeDistilError(f"the teacher predicts {teacher.labels} but the data has labels {labels}")
    recorded = teacher.meta.get("segmentation")
    if not same_policy(recorded, config.data.cjk):
        found = f"cjk = {recorded['cjk']!r}" if recorded else "gold words (made by an older version)"
        raise XtremeDistilError(
            f"the teacher was fine-tuned on inputs cut as {found}, this config reads cjk = "
            f"{config.data.cjk!r}: fine-tune it again (without teacher.run, or in a new run folder) or set "
            "data.cjk to match"
        )
    return teacher


def score_teacher(
    teacher: Teacher,
    corpus: Corpus,
    config: RunConfig,
    run_dir: Path,
    reporter: Reporter,
    logits: dict[str, list[np.ndarray]] | None = None,
) -> dict[str, Any]:
    """The teacher's per-language dev/test scores, kept in the run's metrics: reused when they were made
    with this scoring scheme and reading, else computed (from ``logits`` of a split, if given) and stored."""
    path = run_dir / METRICS_FILE
    stored = read_json(path).get("teacher") if path.is_file() else None
    if scored_as(stored, config.evaluation.scheme, reading=teacher.reading):
        return stored  # type: ignore[return-value]
    results = evaluate_model(
        teacher,
        corpus,
        reporter,
        scheme=config.evaluation.scheme,
        batch_size=config.evaluation.batch_size,
        logits=logits,
    )
    update_metrics(run_dir, teacher=results)
    return results


def _check_same_teacher(config: RunConfig, teacher: Teacher, folder: Path) -> None:
    """A teacher folder reused without ``prepare_run_dir``'s check (an experiment's) must be the one the
    config asks for: ready or not, and a ready one with the same model, label map and reading."""
    wanted_ready = not config.teacher.fine_tune
    ready = teacher.meta.get("ready") or {}
    same = teacher.is_ready == wanted_ready and (
        not wanted_ready
        or (
            teacher.meta.get("base") == config.teacher.name
            and ready.get("label_map") == dict(config.teacher.label_map)
            and config.teacher.reading in ("auto", teacher.reading)
        )
    )
    if not same:
        raise ConfigError(
            "this folder holds another teacher than the config asks for (teacher.name, fine_tune, label_map "
            "or reading differ): use another output folder, or delete it to start again",
            path=folder,
        )


def ready_from_config(config: RunConfig, corpus: Corpus, reporter: Reporter) -> Teacher:
    """``teacher.name`` as a ready token-classification model (``teacher.fine_tune = false``)."""
    from xtremedistil.teacher.model import ready_teacher
    from xtremedistil.teacher.registry import resolve_teacher
    from xtremedistil.teacher.train import reading_meta

    if config.task != "ner":
        raise ConfigError(
            "teacher.fine_tune = false (a model fine-tuned elsewhere) is for NER teachers so far; for text "
            "classification, let xtremedistil fine-tune the teacher (teacher.fine_tune = true)"
        )
    folder = resolve_teacher(config.teacher.name)
    labels = corpus_labels(config.task, corpus)
    reading = config.teacher.reading
    if reading == "auto":  # made by xtremedistil: read as it was fine-tuned; else Hugging Face's recipe
        made_here = folder / META_FILE
        reading = read_json(made_here).get("reading", "text") if made_here.is_file() else "words"
    teacher = ready_teacher(folder, labels, config.teacher.label_map, {"reading": reading})
    teacher.meta.update(reading_meta(config, corpus.split("train"), teacher))
    ready = teacher.meta["ready"]
    mapping = ", ".join(
        f"{label} <- {'+'.join(ready['model_labels'][i] for i in group)}"
        for label, group in zip(labels, ready["label_groups"], strict=True)
    )
    reporter.info(
        f"teacher: the ready model {folder} ({type(teacher.model).__name__}, {teacher.num_layers} layers, "
        f"hidden {teacher.model.config.hidden_size}, {type(teacher.tokenizer).__name__}, reading "
        f"{teacher.reading}), not fine-tuned; labels read as {mapping}"
    )
    return teacher


def _without_evaluations(history: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in history.items() if k != "evaluations"}


def evaluate_model(
    model: Teacher | StudentPredictor,
    corpus: Corpus,
    reporter: Reporter,
    *,
    splits: tuple[str, ...] = ("dev", "test"),
    scheme: str = "strict-word",
    batch_size: int = 64,
    logits: dict[str, list[np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Per-language scores of a fine-tuned teacher or a loaded student on the corpus's ``splits``, at gold
    word boundaries and end to end on the raw text; ``logits[split]``, if given, are the model's logits of
    that split's windows already computed."""
    if isinstance(model, Teacher):
        name, forward = "teacher", (lambda b: model(b).logits)
        max_length = int(model.meta.get("max_length", 128))
        task = task_of(model.meta, decoding=DEFAULT_DECODING)
    else:  # a student decodes the way it was saved to
        name, forward, max_length = "student", model.forward, model.max_length
        task = model.task
    special = SpecialIds.from_tokenizer(model.tokenizer)
    segment = model_segmenter(model.tokenizer, model.meta)
    results = {}
    for split in splits:
        sentences = corpus.split(split)
        if not sentences:
            continue
        data = task.eval_set(sentences, model.tokenizer, max_length, segment)
        results[split], _ = evaluate_set(
            forward,
            task,
            data,
            special,
            batch_size=batch_size,
            scheme=scheme,
            reporter=reporter,
            description=f"{name} {split}",
            logits=(logits or {}).get(split),
        )
    return results


def scored_as(
    results: dict[str, Any] | None, scheme: str, decoding: str = DEFAULT_DECODING, reading: str = "text"
) -> bool:
    """True if stored per-split scores exist, were computed with ``scheme`` and ``decoding`` and include the
    raw-text F1 (teacher and student must be compared like with like). Classification scores have no
    scheme, decoding or reading to differ in."""
    if results and all(r.get("metric") == "accuracy" for r in results.values()):
        return True
    return bool(results) and all(
        r.get("scheme") == scheme
        and r.get("decoding") == decoding
        and r.get("reading", "text") == reading
        and "end_to_end" in r
        for r in (results or {}).values()
    )


def run_teacher(config: RunConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """``xtremedistil teacher train``: fine-tune (or resume), evaluate per language, write the run folder."""
    reporter = reporter or SilentReporter()
    threads = setup_torch(config.threads, config.seed)
    context = distributed.setup(config.device)
    start = time.perf_counter()
    run_dir = prepare_run_dir(config)
    corpus = load_corpus(config)
    reporter.info(f"data: {describe_corpus(corpus)}")
    teacher = obtain_teacher(config, corpus, run_dir, reporter)

    def score() -> dict[str, Any]:
        results = score_teacher(teacher, corpus, config, run_dir, reporter)
        metrics = update_metrics(run_dir, threads=threads, teacher_job_seconds=time.perf_counter() - start)
        write_text(run_dir / "teacher.md", model_report(results))
        return metrics

    return context.on_main(score)


def model_report(results: dict[str, Any], name: str = "teacher") -> str:
    if any(r.get("metric") == "accuracy" for r in results.values()):
        from xtremedistil.report import classification_tables

        return f"# {name.capitalize()} evaluation\n" + "".join(
            f"\n## {split}\n\n" + classification_tables({name: r}) for split, r in results.items()
        )
    parts = [f"# {name.capitalize()} evaluation\n"]
    for split, result in results.items():
        columns = {f"{name} F1, gold words": result}
        if "end_to_end" in result:
            columns[f"{name} F1, raw text"] = result["end_to_end"]
        parts += [f"\n## {split} ({result['scheme']}; raw text: exact character spans)\n\n"]
        parts += [markdown_table(columns)]
        parts += ["\n", per_type_table(result)]
    return "".join(parts)


def describe_corpus(corpus: Corpus) -> str:
    counts = corpus.counts()
    first = next((x for by_split in corpus.splits.values() for xs in by_split.values() for x in xs), None)
    unit = "texts" if isinstance(first, Document) else "sentences"
    return ", ".join(f"{lang} {c['train']}/{c['dev']}/{c['test']}" for lang, c in counts.items()) + (
        f" (train/dev/test {unit}); labels {corpus.labels()}"
    )


def find_teacher_folder(path: Path) -> Path:
    """A teacher folder, a run folder's ``teacher/``, or the teacher a run reused (its ``teacher.run``)."""
    if (teacher_dir(path) / META_FILE).is_file():
        return teacher_dir(path)
    if (path / CONFIG_FILE).is_file() and not (path / META_FILE).is_file():
        reused = tomllib.loads((path / CONFIG_FILE).read_text(encoding="utf-8")).get("teacher", {}).get("run")
        if reused:
            return find_teacher_folder(Path(reused))
    return path


def teacher_folder(config: RunConfig, run_dir: Path) -> Path:
    """Where a run's fine-tuned teacher is (or will be): the one it reuses (``teacher.run``) or its own."""
    return find_teacher_folder(Path(config.teacher.run)) if config.teacher.run else teacher_dir(run_dir)


def run_config_of(path: Path) -> RunConfig | None:
    """The resolved config of the run a folder belongs to: a run folder, or a run's ``student``/``teacher``."""
    from xtremedistil.config import config_from_dict

    for folder in (path, path.parent):
        if (folder / CONFIG_FILE).is_file() and not (folder / META_FILE).is_file():
            tree = tomllib.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            return config_from_dict(tree, str(folder / CONFIG_FILE))
    return None


def _same_source(a: str | None, b: str) -> bool:
    return a is not None and (
        a == b or (not a.startswith("embedded:") and Path(a).resolve() == Path(b).resolve())
    )


def _reads(source: Any, data: str) -> bool:
    """Whether a labeled source of a run reads ``data``: its ``source``, or one of its per-split files."""
    return any(_same_source(path, data) for path in (source.source, source.train, source.dev, source.test))


def evaluate_model_dir(
    model_dir: Path,
    data: str,
    *,
    split: str = "test",
    languages: str | None = None,
    lang: str | None = None,
    scheme: str | None = None,
    output: Path | None = None,
    teacher: bool = False,
    every_sentence: bool = False,
    reporter: Reporter | None = None,
) -> str:
    """``xtremedistil evaluate``: score a saved model on a labeled source; returns the markdown report.

    When ``model_dir`` belongs to a run whose config reads ``data``, the run's sampling of that source
    (``max_dev``/``max_test``, its seed) and its scoring scheme are used, so the run's own numbers are
    reproduced; ``every_sentence`` scores the whole split instead."""
    from xtremedistil.config import LabeledSource
    from xtremedistil.data.sources import load_labeled
    from xtremedistil.student.saved import open_predictor, student_folder

    reporter = reporter or SilentReporter()
    setup_torch()
    keep = languages.split(",") if languages else None
    source, seed, how = LabeledSource(source=data, lang=lang, languages=keep), 13, "every sentence"
    run = run_config_of(Path(model_dir))
    if run is not None:
        scheme = scheme or run.evaluation.scheme
        same = [s for s in run.data.labeled if _reads(s, data)]
        if same and not every_sentence:
            update = {"languages": keep or same[0].languages, "lang": lang or same[0].lang}
            source, seed = same[0].model_copy(update=update), run.seed
            limit = {"train": source.max_train, "dev": source.max_dev, "test": source.max_test}[split]
            how = (
                "every sentence"
                if limit is None
                else f"as in the run: at most {limit} per language, seed {seed}"
            )
    scheme = scheme or "strict-word"
    if not teacher and student_folder(model_dir) is not None:
        model: Teacher | StudentPredictor = open_predictor(model_dir)
        name, labels = "student", model.meta["labels"]
    else:
        model = load_teacher(find_teacher_folder(Path(model_dir)))
        name, labels = "teacher", model.labels
    task = model.meta.get("task", "ner")
    corpus = load_labeled(source, seed=seed, task=task)
    missing = sorted(set(corpus_labels(task, corpus)) - set(labels))
    if missing:
        raise XtremeDistilError(f"the data has labels {missing} that the {name} does not predict")
    results = evaluate_model(model, corpus, reporter, splits=(split,), scheme=scheme)
    if split not in results:
        raise XtremeDistilError(f"the data has no {split!r} split", path=data)
    if output is not None:
        write_json(output, results[split])
    counts = ", ".join(f"{lang} {c[split]}" for lang, c in corpus.counts().items())
    scored = f"Scored: the {split} split of {data}, {how} ({counts} sentences).\n\n"
    return scored + model_report(results, name)
