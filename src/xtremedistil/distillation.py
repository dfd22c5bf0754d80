"""``xtremedistil distil``: the whole method end to end, resumable step by step.

teacher (fine-tune or reuse) -> teacher cache over train + transfer windows (and dev) -> student with a
trimmed vocabulary and SVD-initialised embeddings -> the stages of the strategy -> saved student ->
evaluation per language, size and speed -> report.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from xtremedistil import distributed
from xtremedistil.batching import SpecialIds
from xtremedistil.cache import CacheSpec, LayeredCache, TeacherCache, build_cache, data_fingerprint
from xtremedistil.config import RunConfig
from xtremedistil.data.records import Corpus, Sentence
from xtremedistil.data.sources import load_corpus, load_transfer
from xtremedistil.errors import ConfigError
from xtremedistil.evaluate import evaluate_set
from xtremedistil.io import atomic_path, read_json, write_json
from xtremedistil.pipeline import (
    describe_corpus,
    obtain_teacher,
    prepare_run_dir,
    ready_from_config,
    score_teacher,
    teacher_folder,
    update_metrics,
)
from xtremedistil.progress import Reporter, SilentReporter, Stopwatch
from xtremedistil.segment import model_segmenter, segmenter
from xtremedistil.student.distil import DevSet, Pool, StageSettings, run_stage
from xtremedistil.student.families import (
    build_family,
    family_fields,
    group_names,
    relation_heads,
    student_sizes,
)
from xtremedistil.student.model import StudentBase, build_vocabulary, nearest_kept
from xtremedistil.student.saved import save_student
from xtremedistil.student.schedule import ScheduleSettings, Stage, plan
from xtremedistil.tasks.base import Encoded
from xtremedistil.tasks.ner import DEFAULT_DECODING
from xtremedistil.tasks.registry import corpus_labels, headline, metric_label, task_of
from xtremedistil.teacher.convert import sha256_file
from xtremedistil.teacher.model import Teacher
from xtremedistil.training import setup_torch

STUDENT_DIR = "student"
STAGES_DIR = "stages"


def schedule_settings(config: RunConfig) -> ScheduleSettings:
    d = config.distil
    return ScheduleSettings(
        strategy=d.strategy,
        representation_epochs=d.representation_epochs,
        logit_epochs=d.logit_epochs,
        label_epochs=d.label_epochs,
        joint_epochs=d.joint_epochs,
        lr=d.transformer_lr if config.student.kind == "transformer" else d.lr,
        patience=d.patience,
        joint_weights=tuple(d.joint_weights.items()),
        layer_groups=group_names(config.student),
        relation_weight=d.attention_weight if d.attention_layer is not None else 0.0,
    )


def stage_settings(config: RunConfig) -> StageSettings:
    d = config.distil
    return StageSettings(
        batch_size=d.batch_size,
        min_lr=d.min_lr,
        restart_epochs=d.restart_epochs,
        select_on=d.select_on,
        representation_kind=d.representation_loss,
        temperature=d.temperature,
        logit_positions=d.logit_positions,
        relation_heads=relation_heads(config.student, config.distil),
        eval_every=d.eval_every,
        seed=student_seed(config),
        checkpoint_every=d.checkpoint_every,
    )


def student_seed(config: RunConfig) -> int:
    """The student's own seed (init, batch order); data sampling and the teacher follow ``config.seed``."""
    return config.distil.seed if config.distil.seed is not None else config.seed


@dataclass
class Prepared:
    """Everything the stages need, computed once per run (and shared by an experiment's cells)."""

    corpus: Corpus
    teacher: Teacher
    task: Any  # the run's task (tasks.registry)
    special: SpecialIds
    windows: list[Encoded]  # train windows first (with gold targets), then the unlabeled transfer windows
    n_train: int
    cache: TeacherCache
    dev: DevSet
    transfer_sentences: int
    # the teacher's fp32 dev logits when this call ran it over dev (to score it without a second pass)
    dev_logits: list[np.ndarray] | None = None


def _teacher_sha(config: RunConfig, run_dir: Path, teacher: Teacher) -> str:
    if teacher.is_ready:
        return teacher.identity
    return sha256_file(teacher_folder(config, run_dir) / "model.safetensors")


def representation_layer(config: RunConfig, teacher: Teacher) -> int:
    """The teacher layer the representation loss reads: ``distil.layer``, or the middle layer (the paper's
    6 of mBERT's 12)."""
    layer = config.distil.layer if config.distil.layer is not None else teacher.num_layers // 2
    if not 0 <= layer <= teacher.num_layers:
        raise ConfigError(
            f"distil.layer = {layer}: the teacher has layers 0 (embeddings) to {teacher.num_layers}"
        )
    return layer


def prepare(config: RunConfig, run_dir: Path, reporter: Reporter, watch: Stopwatch | None = None) -> Prepared:
    """Data, fine-tuned teacher, and the teacher caches (reused when teacher, layer and data match)."""
    watch = watch or Stopwatch()
    with watch("labeled data"):
        corpus = load_corpus(config)
    reporter.info(f"data: {describe_corpus(corpus)}")
    with watch("teacher"):
        teacher = obtain_teacher(config, corpus, run_dir, reporter)
    task = task_of(teacher.meta)
    special = SpecialIds.from_tokenizer(teacher.tokenizer)
    max_length = int(teacher.meta.get("max_length", config.teacher.max_length))
    segment = model_segmenter(teacher.tokenizer, teacher.meta)

    with watch("transfer set"):
        transfer = load_transfer(
            config.data.transfer,
            corpus,
            config.data.max_transfer,
            seed=config.seed,
            exclude_train=config.data.transfer_includes_train,
            segment=segment,
            task=config.task,
        )
        train_enc, _ = task.encode(task.inputs(corpus.split("train"), segment), teacher.tokenizer, max_length)
        transfer_enc, transfer_stats = task.encode(transfer, teacher.tokenizer, max_length)
        dev_set = task.eval_set(corpus.split("dev"), teacher.tokenizer, max_length, segment)
    reporter.info(f"transfer set: {transfer_stats.describe()}")
    windows = train_enc + transfer_enc
    dev_enc = dev_set.encoded

    spec = CacheSpec(
        teacher=config.teacher.run or config.teacher.name,
        teacher_sha=_teacher_sha(config, run_dir, teacher),
        layer=representation_layer(config, teacher),
        max_length=max_length,
        tokenizer=type(teacher.tokenizer).__name__,
        hidden_size=int(teacher.model.config.hidden_size),
        num_labels=len(teacher.labels),
        vector=config.distil.sentence_vector if task.level == "sequence" else "",
    )
    cache_root = Path(config.cache.dir) if config.cache.dir else run_dir / "cache"
    caches: dict[str, Any] = {}
    dev_logits: list[np.ndarray | None] = [None] * len(dev_enc)
    mapped = [teacher_layer for _, teacher_layer in config.distil.layer_map]
    attention = config.distil.attention_layer
    relation_spec = None
    if attention is not None:  # the attention states of one teacher block, per sub-word (a sequence task too)
        relation_spec = dataclasses.replace(
            spec,
            layer=attention,
            vector="",
            states="attention",
            hidden_size=3 * spec.hidden_size,
            num_labels=0,
        )
    for name, enc in (("transfer", windows), ("dev", dev_enc)):
        fingerprint = data_fingerprint(enc)
        jobs = [  # the representation layer, then the layer map's further teacher layers: one cache each
            (
                dataclasses.replace(spec, layer=layer),
                f"cache teacher layer {layer} + logits ({name})",
                dev_logits.__setitem__ if name == "dev" and layer == spec.layer else None,
            )
            for layer in [spec.layer, *mapped]
        ]
        if relation_spec is not None:
            jobs.append(
                (relation_spec, f"cache teacher attention states of block {attention} ({name})", None)
            )
        built = []
        for cache_spec, description, on_logits in jobs:
            with watch("teacher cache"):
                built.append(
                    build_cache(
                        teacher,
                        enc,
                        cache_root / f"{name}-{cache_spec.key(fingerprint)}",
                        cache_spec,
                        shard_size=config.cache.shard_size,
                        batch_size=config.cache.batch_size,
                        reporter=reporter,
                        description=description,
                        on_logits=on_logits,
                    )
                )
        relations = built.pop() if relation_spec is not None else None
        layered = len(built) > 1 or relations is not None
        caches[name] = LayeredCache(built[0], built[1:], relations) if layered else built[0]
    dev = DevSet(
        dev_set,
        Pool(dev_enc, caches["dev"], np.arange(len(dev_enc))),
        task,
        special,
        config.evaluation.scheme,
    )
    return Prepared(
        corpus,
        teacher,
        task,
        special,
        windows,
        len(train_enc),
        caches["transfer"],
        dev,
        len(transfer),
        dev_logits if all(z is not None for z in dev_logits) else None,
    )


def pools(prepared: Prepared, includes_train: bool) -> dict[str, Pool]:
    n, n_train = len(prepared.windows), prepared.n_train
    transfer_start = 0 if includes_train else n_train
    return {
        "labeled": Pool(prepared.windows, prepared.cache, np.arange(n_train)),
        "transfer": Pool(prepared.windows, prepared.cache, np.arange(transfer_start, n)),
        "labeled+transfer": Pool(prepared.windows, prepared.cache, np.arange(n)),
    }


def build_student(config: RunConfig, prepared: Prepared) -> StudentBase:
    """The student over the sub-words of the train + transfer text, embeddings from the teacher's SVD (a
    transformer student also takes the teacher's layers when it has the teacher's shapes)."""
    teacher = prepared.teacher
    section = config.student
    kept = build_vocabulary(
        (w.input_ids for w in prepared.windows), teacher.tokenizer.all_special_ids, section.max_vocab
    )
    fields: dict[str, Any] = dict(
        teacher_vocab_size=int(teacher.model.config.vocab_size),
        vocab_size=len(kept) + 2,
        projection_dim=int(teacher.model.config.hidden_size),
        num_labels=len(teacher.labels),
        dropout=section.dropout,
        word_dropout=section.word_dropout,
        representation=section.representation,
        pooling=section.pooling if prepared.task.level == "sequence" else "none",
        **student_sizes(section),
    )
    fields |= family_fields(config, teacher, fields)
    torch.manual_seed(student_seed(config))
    student = build_family(section.kind, fields, kept)
    table = teacher.model.get_input_embeddings().weight  # the fine-tuned teacher's
    if section.init == "svd":
        student.init_from_teacher(teacher.model, teacher.tokenizer.unk_token_id, section.teacher_layers)
    if section.unknown == "nearest":
        student.set_backoff(_backoff_map(config, prepared, table, kept))
    return student


def _backoff_map(config: RunConfig, prepared: Prepared, table: torch.Tensor, kept: np.ndarray) -> np.ndarray:
    """``nearest_kept``, kept beside the transfer cache: the cache is keyed by teacher and windows, which
    fix the kept vocabulary and the embeddings, so a resumed run or another student of the same cache
    reuses the map instead of searching 250k ids again (a capped vocabulary, ``student.max_vocab``, has its
    own map: the full one may point at ids the cap leaves out)."""
    capped = config.student.max_vocab is not None
    path = prepared.cache.root / (f"backoff-nearest-{len(kept)}.npy" if capped else "backoff-nearest.npy")
    if path.is_file():
        nearest = np.load(path)
        if (
            nearest.shape == (table.shape[0],)
            and np.array_equal(nearest[kept], kept)
            and bool(np.isin(nearest, kept).all())
        ):
            return nearest
    nearest = nearest_kept(table, kept, exclude=prepared.teacher.tokenizer.all_special_ids)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, nearest)
    return nearest


def student_meta(prepared: Prepared, config: RunConfig, **extra: Any) -> dict[str, Any]:
    """What a saved student records besides its weights: how it reads text (the teacher's window length
    and segmentation) and how it was made."""
    task = prepared.task
    return {
        "task": task.name,
        **({"truncation": task.truncation} if task.level == "sequence" else {}),
        "max_length": int(prepared.teacher.meta["max_length"]),
        "segmentation": prepared.teacher.meta["segmentation"],
        "decoding": prepared.task.decoding,
        "reading": prepared.task.reading,
        "strategy": config.distil.strategy,
        "layer": representation_layer(config, prepared.teacher),
        **extra,
    }


def student_fingerprint(config: RunConfig, transfer_windows: int, layer: int) -> str:
    """What the finished stages depend on besides the teacher: resume only when it is unchanged (the scoring
    scheme too: the stages' dev F1, and with ``select_on = "f1"`` their model selection, read it)."""
    import hashlib
    import json

    tree = config.model_dump(include={"seed", "student", "distil", "data"})
    del tree["distil"]["checkpoint_every"]  # when to checkpoint changes nothing a stage computes
    if config.task == "ner":  # keys text classification added, which NER never reads: older runs resume
        tree = _without_classification_keys(tree)
    for section, added in KEYS_ADDED.items():  # at their defaults: a run made before them resumes
        for key, default in added.items():
            if tree[section].get(key) == default:
                tree[section].pop(key, None)
    tree["distil"]["layer"] = layer  # resolved: the middle-layer default and an explicit 6 are one run
    tree["scheme"] = config.evaluation.scheme
    tree["decoding"] = DEFAULT_DECODING  # the stages' dev F1 reads its tags through it
    return hashlib.sha256(json.dumps([tree, transfer_windows], sort_keys=True).encode()).hexdigest()[:16]


# keys the transformer family added, with their defaults (what a BiLSTM run made before them reads)
KEYS_ADDED: dict[str, dict[str, Any]] = {
    "student": {
        "kind": "bilstm",
        "layers": None,
        "heads": None,
        "intermediate_size": None,
        "teacher_layers": [],
        "max_vocab": None,
    },
    "distil": {
        "transformer_lr": 1e-3,
        "layer_map": [],
        "attention_layer": None,
        "attention_heads": None,
        "attention_weight": 1.0,
    },
}

CLASSIFICATION_KEYS = {
    "student": ("pooling",),
    "distil": ("sentence_vector",),
    "labeled": ("text_field", "label_field", "columns", "label_base", "dev_from_train"),
    "transfer": ("text_field", "columns", "split_sentences"),
}


def _without_classification_keys(tree: dict[str, Any]) -> dict[str, Any]:
    """A dumped config without the keys only text classification reads (as older NER runs recorded it)."""
    for section in ("student", "distil"):
        for key in CLASSIFICATION_KEYS[section]:
            tree.get(section, {}).pop(key, None)
    for section in ("labeled", "transfer"):
        for entry in tree.get("data", {}).get(section) or []:
            for key in CLASSIFICATION_KEYS[section]:
                entry.pop(key, None)
    return tree


def run_schedule(
    config: RunConfig,
    stage_pools: dict[str, Pool],
    dev: DevSet,
    student: StudentBase,
    stages: list[Stage],
    state_dir: Path,
    reporter: Reporter,
) -> list[dict[str, Any]]:
    """Run the stages in order; after each, the student weights and the stage records are saved in one
    file (the records in its metadata: a kill between two writes cannot pair one stage's weights with
    another's records), so a killed run resumes after the last finished stage; inside a stage, from its
    checkpoint. ``stages.json`` repeats the records for reading."""
    summaries_path, weights_path = state_dir / "stages.json", state_dir / "student.safetensors"
    checkpoint = state_dir / "stage-checkpoint.pt"
    names = [s.name for s in stages]
    transfer = stage_pools["transfer"]
    fingerprint = student_fingerprint(config, len(transfer), int(transfer.cache.manifest["layer"]))
    summaries: list[dict[str, Any]] = []
    start_f1 = None
    if weights_path.is_file():
        saved = _stage_records(weights_path, summaries_path)
        if saved.get("stages") == names and saved.get("fingerprint") == fingerprint:
            summaries, start_f1 = saved["summaries"], saved.get("start_dev_mean_f1")
            student.load_state_dict(load_file(str(weights_path)))
            if summaries:
                reporter.info(
                    f"stages: resuming after {summaries[-1]['stage']} ({len(summaries)}/{len(stages)} done)"
                )
    settings = stage_settings(config)
    context = distributed.current()
    if not summaries:
        start_f1 = context.on_main(lambda: headline(dev.scores(student)))
        reporter.info(f"  student before training: dev mean {metric_label(dev.task.metric)} {start_f1:.2f}")
    if context.is_main:
        state_dir.mkdir(parents=True, exist_ok=True)
    for stage in stages[len(summaries) :]:
        key = f"{fingerprint}:{len(summaries)}:{stage.name}"
        summary = run_stage(
            student, stage, stage_pools, dev, settings, reporter, checkpoint=checkpoint, key=key
        )
        summaries.append(summary)
        if not context.is_main:  # every rank holds the same weights; rank 0 writes them
            continue
        record = {
            "stages": names,
            "fingerprint": fingerprint,
            "summaries": summaries,
            "start_dev_mean_f1": start_f1,
        }
        with atomic_path(weights_path) as tmp:
            save_file(
                {k: v.contiguous().cpu() for k, v in student.state_dict().items()},
                str(tmp),
                metadata={STAGE_RECORDS: json.dumps(record)},
            )
        write_json(summaries_path, record)
        checkpoint.unlink(missing_ok=True)
    if not context.is_main:
        return summaries
    checkpoint.unlink(missing_ok=True)  # left by a kill after the last stage was saved
    if summaries and weights_path.is_file() and not summaries_path.is_file():  # killed between the writes
        write_json(summaries_path, _stage_records(weights_path, summaries_path))
    return summaries


STAGE_RECORDS = "xtremedistil.stages"


def _stage_records(weights_path: Path, summaries_path: Path) -> dict[str, Any]:
    """The stage records saved with the weights (folders written before: ``stages.json``)."""
    from safetensors import safe_open

    with safe_open(str(weights_path), "pt") as handle:
        metadata = handle.metadata() or {}
    if STAGE_RECORDS in metadata:
        return json.loads(metadata[STAGE_RECORDS])
    return read_json(summaries_path) if summaries_path.is_file() else {}


def evaluate_split(
    forward: Any,
    prepared: Prepared,
    sentences: list[Sentence],
    config: RunConfig,
    reporter: Reporter,
    name: str,
) -> dict[str, Any]:
    """Scores of ``forward`` on labeled ``sentences`` read as the teacher reads them (gold boundaries and
    end to end)."""
    teacher = prepared.teacher
    data = prepared.task.eval_set(
        sentences,
        teacher.tokenizer,
        int(teacher.meta["max_length"]),
        model_segmenter(teacher.tokenizer, teacher.meta),
    )
    result, _ = evaluate_set(
        forward,
        prepared.task,
        data,
        prepared.special,
        batch_size=config.evaluation.batch_size,
        scheme=config.evaluation.scheme,
        reporter=reporter,
        description=name,
    )
    return result


def evaluate_dev_test(
    student: Any, prepared: Prepared, config: RunConfig, reporter: Reporter, name: str
) -> dict[str, dict[str, Any]]:
    """Scores of ``student`` on the corpus's dev and test splits (those that are not empty)."""
    return {
        split: evaluate_split(
            lambda b: student(b).logits,
            prepared,
            prepared.corpus.split(split),
            config,
            reporter,
            f"{name} {split}",
        )
        for split in ("dev", "test")
        if prepared.corpus.split(split)
    }


def run_distil(config: RunConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run the whole method and write the run folder; returns the metrics."""
    from xtremedistil.report import measure_and_report, write_report

    if config.distil.strategy == "D0":
        raise ConfigError(
            'distil.strategy = "D0" is one student per language, and `distil` makes one student: use "D0-S" '
            "(the same labels-only training, all languages jointly), or run D0 in `xtremedistil experiment`, "
            "which trains, saves, counts and measures every language's student"
        )
    reporter = reporter or SilentReporter()
    threads = setup_torch(config.threads, config.seed)
    context = distributed.setup(config.device)
    start = time.perf_counter()
    watch = Stopwatch()
    run_dir = prepare_run_dir(config)
    prepared = prepare(config, run_dir, reporter, watch)
    with watch("teacher evaluation"):  # reused from the metrics when already scored as configured
        logits = {"dev": prepared.dev_logits} if prepared.dev_logits else None
        context.on_main(
            lambda: score_teacher(prepared.teacher, prepared.corpus, config, run_dir, reporter, logits)
        )

    with watch("student set-up"):
        student = build_student(config, prepared).to(context.device)
    stages = plan(schedule_settings(config))
    reporter.info(
        f"student: {student.parameter_counts()['total']:,} parameters, {len(stages)} stages ({config.distil.strategy})"
    )
    stage_pools = pools(prepared, config.data.transfer_includes_train)
    with watch("student stages"):
        summaries = run_schedule(
            config, stage_pools, prepared.dev, student, stages, run_dir / STAGES_DIR, reporter
        )
    if not context.is_main:  # the rest (evaluation, saving, speed, report) is rank 0's
        return {"stages": summaries}
    if context.distributed:
        distributed.take_machine_threads()  # the other ranks of this machine are done: their cores are free
    with watch("student save and evaluation"):
        save_student(
            student,
            prepared.teacher.tokenizer,
            prepared.teacher.labels,
            run_dir / STUDENT_DIR,
            student_meta(prepared, teacher=config.teacher.run or config.teacher.name, config=config),
        )
        student.eval()
        student_results = evaluate_dev_test(student, prepared, config, reporter, "student")
    metrics = update_metrics(
        run_dir,
        student=student_results,
        stages=summaries,
        student_start_dev_mean_f1=_stage_records(
            run_dir / STAGES_DIR / "student.safetensors", run_dir / STAGES_DIR / "stages.json"
        ).get("start_dev_mean_f1"),
        threads=threads,
        transfer_windows=len(prepared.windows) - prepared.n_train,
        transfer_sentences=prepared.transfer_sentences,
        cache=prepared.cache.manifest | {"shards": len(prepared.cache.manifest["shards"])},
    )
    with watch("speed"):
        metrics = measure_and_report(config, prepared, student, run_dir, metrics, reporter)
    reporter.info("time: " + ", ".join(f"{name} {sec:.0f}s" for name, sec in watch.seconds.items()))
    metrics = update_metrics(
        run_dir, distil_job_seconds=time.perf_counter() - start, phase_seconds=watch.seconds
    )
    write_report(run_dir, metrics)
    return metrics


def cache_job(
    config: RunConfig, reporter: Reporter | None = None, *, dry_run: bool = False, devices: int = 1
) -> str:
    """``xtremedistil cache``: build (or finish) the teacher caches; ``dry_run`` only estimates them (the
    time for ``devices`` processes like this one, each caching its share of the shards)."""
    reporter = reporter or SilentReporter()
    setup_torch(config.threads, config.seed)
    distributed.setup(config.device)
    if dry_run:
        return _dry_run(config, reporter, devices)
    run_dir = prepare_run_dir(config)
    prepared = prepare(config, run_dir, reporter)
    m = prepared.cache.manifest
    return (
        f"cache ready: {m['windows']:,} windows, {m['subwords']:,} sub-words, layer {m['layer']}, "
        f"{m['bytes'] / 1e6:.0f} MB in {prepared.cache.root}"
    )


def _dry_run(config: RunConfig, reporter: Reporter, devices: int = 1) -> str:
    """Estimate disk and time from the data and a timed sample of windows on this process's device; with
    ``devices``, the time for that many such devices caching their shares of the shards; nothing is
    written."""
    from xtremedistil.cache import estimate
    from xtremedistil.teacher.model import META_FILE, load_teacher, new_teacher
    from xtremedistil.teacher.registry import resolve_teacher

    run_dir = Path(config.output_dir)
    corpus = load_corpus(config)
    finished = teacher_folder(config, run_dir)
    note = ""
    if (finished / META_FILE).is_file():
        teacher = load_teacher(finished)
    elif not config.teacher.fine_tune:
        teacher = ready_from_config(config, corpus, reporter)
    else:  # same architecture, same speed: time the pretrained encoder, fine-tuning comes first
        labels = corpus_labels(config.task, corpus)
        teacher = new_teacher(
            resolve_teacher(config.teacher.name),
            labels,
            {
                "max_length": config.teacher.max_length,
                "task": config.task,
                "truncation": config.teacher.truncation,
            },
        )
        note = " (the teacher is not fine-tuned yet: `distil`/`cache` fine-tune it first)"
    teacher.to(distributed.current().device)
    task = task_of(teacher.meta)
    max_length = int(teacher.meta.get("max_length", config.teacher.max_length))
    segment = segmenter(teacher.tokenizer, config.data.cjk)
    transfer = load_transfer(
        config.data.transfer,
        corpus,
        config.data.max_transfer,
        config.seed,
        config.data.transfer_includes_train,
        segment,
        task=config.task,
    )
    windows, _ = task.encode(
        task.inputs(corpus.split("train"), segment) + transfer, teacher.tokenizer, max_length
    )
    # batches as the cache makes them: a shard's windows sorted by length, so a batch holds windows of about
    # one length. One batch at each of 4 length quantiles stands for a quarter of the windows each (random
    # batches pad far more than the cache does: the estimate came out 2x too long); a first batch sets up
    # kernels and memory and is not timed (timing it: 4x too long)
    batch = config.cache.batch_size
    order = np.argsort([len(w) for w in windows], kind="stable")
    starts = [
        min(max(0, int((q + 0.5) * len(order) / 4) - batch // 2), max(0, len(order) - batch))
        for q in range(4)
    ]
    warm = [windows[i] for i in order[starts[1] : starts[1] + batch]]
    timed = [windows[i] for s in starts for i in order[s : s + batch]]
    special = SpecialIds.from_tokenizer(teacher.tokenizer)
    from xtremedistil.evaluate import predict_logits

    layer = representation_layer(config, teacher)
    predict_logits(lambda b: teacher(b, layer=layer).logits, warm, special, batch)
    start = time.perf_counter()
    predict_logits(lambda b: teacher(b, layer=layer).logits, timed, special, batch)
    rate = len(timed) / (time.perf_counter() - start)
    spec = CacheSpec(
        "",
        "",
        layer,
        max_length,
        "",
        int(teacher.model.config.hidden_size),
        len(teacher.labels),
        config.distil.sentence_vector if task.level == "sequence" else "",
    )
    est = estimate(windows, spec, rate * devices)
    unit = "texts" if task.level == "sequence" else "sentences"
    device = distributed.current().device
    spread = (
        f" on {devices} devices like this one ({device}; the shards split evenly, each device at the "
        "measured speed, reading and writing not the limit)"
        if devices > 1
        else f" on one device ({device})"
    )
    return (
        f"dry run: {len(transfer):,} transfer {unit} + {len(corpus.split('train')):,} train {unit} -> "
        f"{est['windows']:,} windows, {est['subwords']:,} sub-words\n"
        f"estimated cache size {est['bytes'] / 1e6:,.0f} MB (fp16, layer {layer} states + logits), "
        f"estimated teacher time {est['seconds'] / 60:.1f} min{spread}, at {rate:.0f} windows/s per device "
        f"measured on a {len(timed)}-window sample{note}"
    )
