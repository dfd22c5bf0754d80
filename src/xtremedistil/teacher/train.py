"""Teacher fine-tuning: token classification on the pretrained encoder, selected on dev F1 only."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from xtremedistil.batching import SpecialIds, iterate_batches
from xtremedistil.config import RunConfig
from xtremedistil.data.records import Corpus, Sentence
from xtremedistil.distributed import current, rank_parts, training_autocast
from xtremedistil.errors import ConfigError
from xtremedistil.evaluate import evaluate_set
from xtremedistil.progress import Reporter, SilentReporter
from xtremedistil.segment import model_segmenter, segmentation, straddled_pieces
from xtremedistil.tasks.registry import corpus_labels, headline, make_task, metric_label
from xtremedistil.teacher.model import Teacher, new_teacher
from xtremedistil.teacher.registry import resolve_teacher
from xtremedistil.training import EvalRecord, FitLog, StepRecord, drain, fit


def parameter_groups(
    model: torch.nn.Module, lr: float, head_lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and LayerNorm weights (standard BERT fine-tuning); the fresh
    classification head gets its own, larger learning rate (see docs/METHOD.md: e5's final LayerNorm
    shrinks token states, and a head at the encoder's rate learns only the label prior for hundreds of steps)."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = ("classifier" in name, param.ndim < 2 or "LayerNorm" in name)
            groups.setdefault(key, []).append(param)
    return [
        {
            "params": params,
            "lr": head_lr if is_head else lr,
            "weight_decay": 0.0 if no_decay else weight_decay,
        }
        for (is_head, no_decay), params in groups.items()
    ]


def reading_meta(config: RunConfig, train: list[Sentence], teacher: Teacher) -> dict[str, Any]:
    """How a teacher reads text, recorded in its meta and passed on to its students: the window length and
    the segmentation (with ``cjk = "piece-split"``, the pieces that train entities start or end inside)."""
    limit = position_limit(teacher)
    if config.teacher.max_length > limit:
        raise ConfigError(
            f"teacher.max_length = {config.teacher.max_length} is more than the {limit} positions the teacher "
            f"{config.teacher.name!r} reads"
        )
    ner = config.task == "ner"
    split = straddled_pieces(train, teacher.tokenizer) if ner and config.data.cjk == "piece-split" else ()
    meta = {
        "task": config.task,
        "base": config.teacher.name,
        "max_length": config.teacher.max_length,
        "segmentation": segmentation(config.data.cjk, split),
    }
    if not ner:
        meta["truncation"] = config.teacher.truncation
    return meta


def position_limit(teacher: Teacher) -> int:
    """How many sub-words (with specials) the teacher reads at most: its tokenizer's limit when it states
    one, else the model's position table (RoBERTa-style models reserve two rows: 514 rows, 512 positions)."""
    stated = getattr(teacher.tokenizer, "model_max_length", None)
    if isinstance(stated, int) and 0 < stated < 1_000_000:
        return stated
    config = teacher.model.config
    rows = int(getattr(config, "max_position_embeddings", 512))
    offset = 2 if config.model_type in ("roberta", "xlm-roberta", "camembert", "longformer") else 0
    return rows - offset


def fine_tune_teacher(
    config: RunConfig, corpus: Corpus, reporter: Reporter | None = None, checkpoint: Path | None = None
) -> tuple[Teacher, dict[str, Any]]:
    """Fine-tune the configured pretrained encoder on the joint train split of all languages.

    Returns the teacher with its best-on-dev weights and a history record (steps, dev F1 per evaluation).
    With ``checkpoint`` (a file path), the training state is saved there every ``teacher.checkpoint_every``
    steps and at every epoch's end, and a run that finds it continues from it.
    """
    reporter = reporter or SilentReporter()
    tc = config.teacher
    base = resolve_teacher(tc.name)
    train, dev = corpus.split("train"), corpus.split("dev")
    task = make_task(config.task, corpus_labels(config.task, corpus), truncation=tc.truncation)
    teacher = new_teacher(base, task.labels, {"task": config.task})
    teacher.meta.update(reading_meta(config, train, teacher))
    special = SpecialIds.from_tokenizer(teacher.tokenizer)
    segment = model_segmenter(teacher.tokenizer, teacher.meta)
    if not train or not dev:
        raise ValueError("teacher fine-tuning needs a train and a dev split")
    train_enc, train_stats = task.encode(task.inputs(train, segment), teacher.tokenizer, tc.max_length)
    dev_set = task.eval_set(dev, teacher.tokenizer, tc.max_length, segment)
    reporter.info(f"teacher train: {train_stats.describe()}")
    reporter.info(f"teacher dev:   {dev_set.stats.describe()}")

    if tc.embedding_rows == "seen":
        seen = np.unique(np.concatenate([e.input_ids for e in train_enc]))
        teacher.restrict_embedding_rows(torch.from_numpy(seen.astype(np.int64)))
    elif tc.embedding_rows == "frozen":
        teacher.freeze_embeddings()
    context = current()
    teacher.to(context.device)
    trained = context.wrap(teacher)  # DistributedDataParallel under torchrun, else the teacher itself

    steps_per_epoch = math.ceil(len(train_enc) / tc.batch_size)
    total = steps_per_epoch * tc.epochs
    optimizer = torch.optim.AdamW(parameter_groups(teacher, tc.lr, tc.head_lr, tc.weight_decay))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(tc.warmup_ratio * total), total)

    def batches(epoch: int):
        every = iterate_batches(
            train_enc, tc.batch_size, special, shuffle=True, seed=config.seed + epoch, bucketing=tc.bucketing
        )
        return rank_parts(every, context)

    def loss(batch):
        batch = batch.to(context.device)
        with training_autocast(context.device):
            logits = trained(batch).logits
        return task.loss(logits.float(), batch)

    def dev_f1() -> float:
        scores, _ = evaluate_set(
            lambda b: teacher(b).logits,
            task,
            dev_set,
            special,
            batch_size=tc.eval_batch_size,
            scheme=config.evaluation.scheme,
        )
        return headline(scores)

    history: dict[str, Any] = {
        "evaluations": [],
        "encoding": {"train": vars(train_stats), "dev": vars(dev_set.stats)},
    }
    log = FitLog(history["evaluations"])
    saver = log.checkpoint(checkpoint, tc.checkpoint_every, checkpoint_key(config), reporter.info, "teacher")
    run = fit(
        teacher,
        batches,
        loss,
        optimizer,
        dev_f1,
        epochs=tc.epochs,
        patience=tc.patience,
        scheduler=scheduler,
        eval_every=tc.eval_every,
        clip_grad_norm=tc.clip_grad_norm,
        checkpoint=saver,
        split=lambda b: b.micro_batches(tc.max_batch_tokens),
        no_sync=getattr(trained, "no_sync", None),
    )
    with reporter.bar("fine-tune teacher", total=total) as advance:

        def on_record(record: StepRecord | EvalRecord) -> None:
            log.record(record, advance)
            if isinstance(record, EvalRecord):
                reporter.info(
                    f"  epoch {record.epoch} step {record.step}: train loss {record.train_loss:.4f}, "
                    f"dev mean {metric_label(task.metric)} {record.value:.2f} (best {record.best:.2f})"
                )

        result = drain(run, on_record)
    teacher.merge_embedding_rows()
    history.update(
        **({"best_dev_mean_f1": result.best} if task.metric == "f1" else {}),
        metric=task.metric,
        best_dev_mean=result.best,
        best_step=result.best_step,
        steps=result.steps,
        epochs=result.epochs,
        stopped_early=result.stopped_early,
        train_seconds=log.seconds,
        train_sentences=len(train),
    )
    return teacher, history


def checkpoint_key(config: RunConfig) -> str:
    """What a fine-tuning checkpoint belongs to: the teacher's identity and the scheme its dev F1 is read
    with (which picks the best weights); one written for another is not resumed from."""
    import hashlib
    import json

    from xtremedistil.pipeline import teacher_identity

    tree = json.loads(config.model_dump_json())
    tree = {**teacher_identity(tree), "scheme": config.evaluation.scheme}
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]


def teacher_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "teacher"
