"""Running the schedule: one function trains the student through any stage record."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xtremedistil.batching import SpecialIds, batch_indices, collate
from xtremedistil.cache import TeacherCache
from xtremedistil.distributed import current
from xtremedistil.evaluate import EvalSet, evaluate_set
from xtremedistil.outputs import TokenOutput
from xtremedistil.progress import Reporter, SilentReporter
from xtremedistil.student.losses import objective
from xtremedistil.student.model import StudentBase
from xtremedistil.student.schedule import Stage
from xtremedistil.tasks.base import Batch, Encoded
from xtremedistil.tasks.registry import headline, metric_label, per_language
from xtremedistil.training import EvalRecord, FitLog, StepRecord, drain, fit, seed_everything


@dataclass(frozen=True)
class DistilBatch:
    batch: Batch
    teacher: TokenOutput | None


@dataclass
class Pool:
    """Windows the student trains on, with the teacher's cached outputs for them (``cache`` row i =
    window i), restricted to ``indices`` (e.g. the labeled part of the transfer cache)."""

    encoded: Sequence[Encoded]
    cache: TeacherCache | None
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def batches(
        self,
        batch_size: int,
        special: SpecialIds,
        *,
        shuffle: bool,
        seed: int,
        teacher: bool,
        hidden: bool = True,
        share: bool = False,
    ) -> Iterator[DistilBatch]:
        """Length-bucketed batches with the cached teacher outputs of their windows; ``share``: this rank's
        rows of every batch (under torchrun the ranks split each batch of the single-process run)."""
        lengths = [len(self.encoded[i]) for i in self.indices]
        context = current()
        for local in batch_indices(lengths, batch_size, shuffle=shuffle, seed=seed):
            rows = self.indices[local]
            if share and context.distributed:
                part = context.rows_of(len(rows))
                if part is None:  # fewer rows than ranks: every rank skips the batch alike
                    continue
                rows = rows[part]  # this rank's rows, cut before collating and reading the cache
            batch = collate([self.encoded[i] for i in rows], rows, special)
            outputs = (
                self.cache.outputs(rows, batch.input_ids.shape[1], hidden=hidden)
                if teacher and self.cache
                else None
            )
            yield DistilBatch(batch, outputs)


@dataclass(frozen=True)
class StageSettings:
    batch_size: int = 128
    min_lr: float = 1e-8
    restart_epochs: int = 1  # cosine annealing restarts every this many epochs
    select_on: str = "objective"  # or "f1": what early stopping and model selection read on dev
    representation_kind: str = "mse"
    temperature: float = 2.0
    logit_positions: str = "word-start"
    relation_heads: int = 1  # the self-attention relation loss's heads
    eval_every: int = 0
    seed: int = 13
    checkpoint_every: int = 500


def stage_loss(
    student: torch.nn.Module, stage: Stage, db: DistilBatch, settings: StageSettings
) -> torch.Tensor:
    """The stage's objective on one batch (training and the dev value alike); ``student`` may be the
    student under DistributedDataParallel."""
    device = next(student.parameters()).device  # the batch and the cached teacher outputs join the student
    batch = db.batch.to(device)
    return objective(
        stage.weights,
        student(batch, extras=stage.needs_hidden),  # a layer map's or the relation loss's outputs
        None if db.teacher is None else db.teacher.to(device),
        batch,
        representation_kind=settings.representation_kind,
        temperature=settings.temperature,
        logit_positions=settings.logit_positions,
        relation_heads=settings.relation_heads,
    )


@dataclass
class DevSet:
    """The labeled dev split with the teacher's outputs: the dev value of every stage's objective, and the
    task's scores (NER: F1 with ``scheme`` at gold word boundaries, and end to end; classification:
    accuracy and macro-F1). ``pool`` holds the windows of ``data``."""

    data: EvalSet
    pool: Pool
    task: Any  # the run's task (tasks.registry)
    special: SpecialIds
    scheme: str = "strict-word"

    def objective(self, student: StudentBase, stage: Stage, settings: StageSettings) -> float:
        total, count = 0.0, 0
        for db in self.pool.batches(
            256, self.special, shuffle=False, seed=0, teacher=stage.needs_teacher, hidden=stage.needs_hidden
        ):
            loss = stage_loss(student, stage, db, settings)
            total, count = total + loss.item() * len(db.batch), count + len(db.batch)
        return total / max(count, 1)

    def scores(self, student: StudentBase) -> dict[str, Any]:
        was_training = student.training
        student.eval()
        scores, _ = evaluate_set(
            lambda b: student(b).logits,
            self.task,
            self.data,
            self.special,
            batch_size=256,
            scheme=self.scheme,
        )
        student.train(was_training)
        return scores


def run_stage(
    student: StudentBase,
    stage: Stage,
    pools: dict[str, Pool],
    dev: DevSet,
    settings: StageSettings,
    reporter: Reporter | None = None,
    on_record: Callable[[StepRecord | EvalRecord], None] | None = None,
    checkpoint: Path | None = None,
    key: str = "",
) -> dict[str, Any]:
    """Train the layer groups of ``stage`` on its data and objective; early stopping and model selection on
    the dev value of the same objective (or dev F1); the best weights are kept. Returns a summary record.
    With ``checkpoint``, the stage is resumable from inside (a checkpoint written for another ``key``, an
    earlier stage's, is not read)."""
    reporter = reporter or SilentReporter()
    # each stage draws its dropout masks from its own seed, not from whatever ran before it in this process:
    # a run resumed before this stage trains it as an uninterrupted run does
    seed_everything(settings.seed + zlib.crc32(stage.name.encode()) % 100_000)
    pool = pools[stage.data]
    student.set_trainable(stage.trainable)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=stage.lr)
    steps_per_epoch = math.ceil(len(pool) / settings.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=max(1, steps_per_epoch * settings.restart_epochs), eta_min=settings.min_lr
    )

    def batches(epoch: int) -> Iterator[DistilBatch]:
        return pool.batches(
            settings.batch_size,
            dev.special,
            shuffle=True,
            seed=settings.seed + epoch,
            teacher=stage.needs_teacher,
            hidden=stage.needs_hidden,
            share=True,
        )

    # a new wrapper for every stage: DistributedDataParallel registers the parameters trainable when it is made;
    # a trainable head that no loss of the stage reads gets no gradient, which DDP must be told of
    # (likewise the layer map's projections in a stage without the representation loss)
    reads_logits = any(name != "representation" and weight for name, weight in stage.losses)
    idle_maps = bool(getattr(student.config, "map_layers", ())) and not stage.needs_hidden
    unused = ("head" in stage.trainable and not reads_logits) or idle_maps
    trained = current().wrap(student, find_unused_parameters=unused)

    def loss_fn(db: DistilBatch) -> torch.Tensor:
        return stage_loss(trained, stage, db, settings)

    by_f1 = settings.select_on == "f1"

    def evaluate() -> float:
        return headline(dev.scores(student)) if by_f1 else dev.objective(student, stage, settings)

    log = FitLog()
    saver = log.checkpoint(checkpoint, settings.checkpoint_every, key, reporter.info, stage.name)
    with reporter.bar(f"stage {stage.name}", total=steps_per_epoch * stage.epochs) as advance:

        def record(r: StepRecord | EvalRecord) -> None:
            log.record(r, advance)
            if on_record is not None:
                on_record(r)

        result = drain(
            fit(
                student,
                batches,
                loss_fn,
                optimizer,
                evaluate,
                epochs=stage.epochs,
                patience=stage.patience,
                scheduler=scheduler,
                eval_every=settings.eval_every,
                higher_is_better=by_f1,
                evaluate_start=True,
                checkpoint=saver,
            ),
            record,
        )
    scores = current().on_main(lambda: dev.scores(student))
    summary = {
        "stage": stage.name,
        "losses": stage.weights,
        "trainable": list(stage.trainable),
        "data": stage.data,
        "windows": len(pool),
        "epochs_run": result.epochs,
        "steps": result.steps,
        "best_step": result.best_step,
        "stopped_early": result.stopped_early,
        "dev_objective" if not by_f1 else "dev_f1_selected": result.best,
        "metric": dev.task.metric,
        "dev_mean": headline(scores),
        "dev_by_language": per_language(scores),
        **(
            {"dev_mean_f1": scores["mean_f1"], "dev_f1": per_language(scores)}
            if dev.task.metric == "f1"
            else {}
        ),
        "seconds": log.seconds,
        "evaluations": log.evaluations,
    }
    metric = metric_label(dev.task.metric)
    objective_text = f"dev objective {result.best:.4f}" if not by_f1 else f"dev {metric} {result.best:.2f}"
    reporter.info(
        f"  {stage.name}: {result.steps} steps, best at step {result.best_step}, {objective_text}, "
        f"dev mean {metric} {headline(scores):.2f} ({summary['seconds']:.0f}s)"
    )
    return summary
