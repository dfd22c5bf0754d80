"""The one training loop: teacher fine-tuning and every distillation stage run through ``fit``.

``fit`` is a generator of step and evaluation records; logging, progress bars and saving live in the caller.
Model selection uses a dev value only (never test): the best weights are restored at the end.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xtremedistil.distributed import current, local_processes
from xtremedistil.io import atomic_path


@dataclass(frozen=True)
class StepRecord:
    epoch: int
    step: int  # global optimiser step, from 1
    loss: float
    lr: float


@dataclass(frozen=True)
class EvalRecord:
    epoch: int
    step: int
    value: float  # the dev value the stage selects on (F1, or a dev loss)
    best: float
    improved: bool
    train_loss: float  # mean training loss since the previous evaluation


@dataclass(frozen=True)
class FitResult:
    best: float
    best_step: int
    steps: int
    epochs: int
    stopped_early: bool


def setup_torch(threads: int = 0, seed: int | None = None) -> int:
    """Threads from the machine (``0``: its cores, shared among the processes torchrun started on it),
    denormals flushed (training slowed 2x over time without it), seeds."""
    threads = threads or max(1, len(os.sched_getaffinity(0)) // local_processes())
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    if seed is not None:
        seed_everything(seed)
    return threads


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


class _Selection:
    """Tracks the best dev value and the trainable weights that reached it."""

    def __init__(self, model: nn.Module, evaluate: Callable[[], float], higher_is_better: bool) -> None:
        self.model, self.evaluate = model, evaluate
        self.sign = 1.0 if higher_is_better else -1.0
        self.best, self.best_step, self.bad = -math.inf, 0, 0
        self.state = trainable_state(model)

    def __call__(self, epoch: int, step: int, train_loss: float) -> EvalRecord:
        self.model.eval()
        with torch.inference_mode():
            # evaluated once, on rank 0, and broadcast: every rank selects and stops alike
            value = current().on_main(lambda: float(self.evaluate()))
        self.model.train()
        improved = self.sign * value > self.best
        if improved:
            self.best, self.best_step, self.bad = self.sign * value, step, 0
            self.state = trainable_state(self.model)
        else:
            self.bad += 1
        return EvalRecord(epoch, step, value, self.sign * self.best, improved, train_loss)


@dataclass
class Checkpoint:
    """Crash-safe resume of ``fit``: the whole training state (weights, optimiser, scheduler, the best
    weights so far, RNG states, the position in the epoch's batch order, ``extra()`` of the caller) written
    atomically to ``path`` every ``every`` optimiser steps (0: only) and at the end of every epoch. A killed
    run that calls ``fit`` again with the same checkpoint continues where the last one was written; on CPU
    it ends with the same weights as an uninterrupted run."""

    path: Path
    every: int = 0
    extra: Callable[[], dict[str, Any]] = field(default=lambda: {})
    key: str = ""  # what the checkpoint belongs to (a stage); one written for another key is not read
    # called with the caller's ``extra`` as saved and the step resumed from, as soon as ``fit`` resumes
    on_resume: Callable[[dict[str, Any], int], None] = field(default=lambda extra, step: None)

    def load(self) -> dict[str, Any] | None:
        if not Path(self.path).is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        return state if state.get("key", "") == self.key else None

    def save(self, state: dict[str, Any]) -> None:
        if not current().is_main:  # every rank holds the same weights; rank 0 writes them
            return
        state = {**state, "extra": self.extra(), "rng": _rng_states(), "key": self.key}
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def remove(self) -> None:
        Path(self.path).unlink(missing_ok=True)


class FitLog:
    """What a caller of ``fit`` keeps across a resume: its evaluation records, the seconds spent (a resumed
    run counts the time before the kill too) and the last step shown, so a progress bar jumps to it."""

    def __init__(self, evaluations: list[dict[str, Any]] | None = None) -> None:
        self.evaluations = evaluations if evaluations is not None else []
        self._start = time.perf_counter()
        self.done = 0

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._start

    def checkpoint(
        self, path: Path | None, every: int, key: str, info: Callable[[str], None], what: str
    ) -> Checkpoint | None:
        """A ``Checkpoint`` at ``path`` (None: no checkpointing) that saves this log and restores it."""
        if path is None:
            return None

        def resumed(extra: dict[str, Any], step: int) -> None:
            self.evaluations[:0] = extra["evaluations"]
            self._start -= extra["seconds"]
            self.done = step
            info(f"  {what}: resumed from the checkpoint at step {step}")

        return Checkpoint(
            Path(path),
            every,
            lambda: {"evaluations": self.evaluations, "seconds": self.seconds},
            key=key,
            on_resume=resumed,
        )

    def record(self, record: StepRecord | EvalRecord, advance: Callable[..., None]) -> None:
        """A step record moves the progress bar to its step; an evaluation record is kept."""
        if isinstance(record, StepRecord):
            advance(record.step - self.done, epoch=record.epoch, loss=record.loss)
            self.done = record.step
        else:
            self.evaluations.append(vars(record))


def _rng_states() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def fit(
    model: nn.Module,
    batches: Callable[[int], Iterable[object]],
    loss_fn: Callable[[object], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    evaluate: Callable[[], float],
    *,
    epochs: int,
    patience: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    eval_every: int = 0,
    clip_grad_norm: float | None = None,
    higher_is_better: bool = True,
    evaluate_start: bool = False,
    checkpoint: Checkpoint | None = None,
    split: Callable[[Any], Sequence[Any]] | None = None,
    no_sync: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> Generator[StepRecord | EvalRecord, None, FitResult]:
    """Train up to ``epochs`` over ``batches(epoch)``; evaluate every ``eval_every`` steps (0 = each epoch);
    stop after ``patience`` evaluations without improvement; restore the best trainable weights.

    ``evaluate_start`` makes the starting weights a candidate too, so a step that only hurts is undone.
    ``checkpoint`` makes the run resumable after a crash (``batches(epoch)`` must give the same batches in
    the same order on every call, as seeded shuffling does). ``split(batch)`` cuts a batch into parts whose
    gradients are accumulated (each loss weighted by its share of the rows) before the one optimiser step:
    the same update with less memory held for backward. Under DistributedDataParallel, ``no_sync`` (the
    wrapper's) keeps all but the last part's backward from averaging gradients over ranks."""
    selection = _Selection(model, evaluate, higher_is_better)
    params = [p for p in model.parameters() if p.requires_grad]
    step, running, count, first_epoch, skip, stopped = 0, 0.0, 0, 1, 0, False
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        selection.best, selection.best_step, selection.bad = saved["best"], saved["best_step"], saved["bad"]
        selection.state = saved["best_state"]
        step, running, count = saved["step"], saved["running"], saved["count"]
        first_epoch, skip, stopped = saved["epoch"], saved["skip"], saved["stopped"]
        _restore_rng(saved["rng"])
        checkpoint.on_resume(saved["extra"], step)  # type: ignore[union-attr]
    elif evaluate_start:
        yield selection(0, 0, math.nan)

    def save(epoch: int, skip: int) -> None:
        if checkpoint is not None:
            checkpoint.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "best": selection.best,
                    "best_step": selection.best_step,
                    "bad": selection.bad,
                    "best_state": selection.state,
                    "step": step,
                    "running": running,
                    "count": count,
                    "epoch": epoch,
                    "skip": skip,
                    "stopped": stopped,
                }
            )

    epoch = max(first_epoch - 1, 1)  # a run resumed after its last epoch reports that epoch
    for epoch in range(first_epoch, epochs + 1) if not stopped else ():
        model.train()
        for index, batch in enumerate(batches(epoch)):
            if epoch == first_epoch and index < skip:
                continue  # done before the checkpoint this run resumed from
            optimizer.zero_grad(set_to_none=True)
            value = _accumulate(loss_fn, split(batch) if split is not None else [batch], no_sync)
            if clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step, running, count = step + 1, running + value, count + 1
            yield StepRecord(epoch, step, value, optimizer.param_groups[0]["lr"])
            if eval_every and step % eval_every == 0:
                yield selection(epoch, step, running / count)
                running, count = 0.0, 0
                stopped = selection.bad >= patience
                if stopped:
                    break
            if checkpoint is not None and checkpoint.every and step % checkpoint.every == 0:
                save(epoch, index + 1)
        last_epoch = epoch == epochs
        if not stopped and count and (not eval_every or last_epoch):
            yield selection(epoch, step, running / count)
            running, count = 0.0, 0
            stopped = selection.bad >= patience and not last_epoch
        save(epoch + 1, 0)
        if stopped:
            break
    model.load_state_dict(selection.state, strict=False)
    model.eval()
    return FitResult(selection.sign * selection.best, selection.best_step, step, epoch, stopped)


def _accumulate(
    loss_fn: Callable[[Any], torch.Tensor],
    parts: Sequence[Any],
    no_sync: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> float:
    """Backward through every part's loss (weighted by its share of the rows when there are several);
    returns the batch's loss."""
    if len(parts) == 1:
        loss = loss_fn(parts[0])
        loss.backward()
        return loss.item()
    rows = sum(len(part) for part in parts)
    value = 0.0
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        with no_sync() if no_sync is not None and not last else contextlib.nullcontext():
            loss = loss_fn(part) * (len(part) / rows)
            loss.backward()
        value += loss.item()
    return value


def drain(
    run: Generator[StepRecord | EvalRecord, None, FitResult], on_record: Callable[[object], None]
) -> FitResult:
    """Run a ``fit`` generator to its end, handing every record to ``on_record``; return its result."""
    while True:
        try:
            on_record(next(run))
        except StopIteration as stop:
            return stop.value
