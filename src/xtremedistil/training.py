"""The one training loop: teacher fine-tuning and every distillation stage run through ``fit``.

``fit`` is a generator of step and evaluation records; logging, progress bars and saving live in the caller.
Model selection uses a dev value only (never test): the best weights are restored at the end.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


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
    """Threads from the machine, denormals flushed (training slowed 2x over time without it), seeds."""
    threads = threads or len(os.sched_getaffinity(0))
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
            value = float(self.evaluate())
        self.model.train()
        improved = self.sign * value > self.best
        if improved:
            self.best, self.best_step, self.bad = self.sign * value, step, 0
            self.state = trainable_state(self.model)
        else:
            self.bad += 1
        return EvalRecord(epoch, step, value, self.sign * self.best, improved, train_loss)


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
) -> Generator[StepRecord | EvalRecord, None, FitResult]:
    """Train up to ``epochs`` over ``batches(epoch)``; evaluate every ``eval_every`` steps (0 = each epoch);
    stop after ``patience`` evaluations without improvement; restore the best trainable weights.

    ``evaluate_start`` makes the starting weights a candidate too, so a step that only hurts is undone."""
    selection = _Selection(model, evaluate, higher_is_better)
    if evaluate_start:
        yield selection(0, 0, math.nan)
    params = [p for p in model.parameters() if p.requires_grad]
    step, running, count, epoch, stopped = 0, 0.0, 0, 0, False
    for epoch in range(1, epochs + 1):
        model.train()
        for batch in batches(epoch):
            loss = loss_fn(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            value = loss.item()
            step, running, count = step + 1, running + value, count + 1
            yield StepRecord(epoch, step, value, optimizer.param_groups[0]["lr"])
            if eval_every and step % eval_every == 0:
                yield selection(epoch, step, running / count)
                running, count = 0.0, 0
                stopped = selection.bad >= patience
                if stopped:
                    break
        last_epoch = epoch == epochs
        if not stopped and count and (not eval_every or last_epoch):
            yield selection(epoch, step, running / count)
            running, count = 0.0, 0
            stopped = selection.bad >= patience and not last_epoch
        if stopped:
            break
    model.load_state_dict(selection.state, strict=False)
    model.eval()
    return FitResult(selection.sign * selection.best, selection.best_step, step, epoch, stopped)


def drain(
    run: Generator[StepRecord | EvalRecord, None, FitResult], on_record: Callable[[object], None]
) -> FitResult:
    """Run a ``fit`` generator to its end, handing every record to ``on_record``; return its result."""
    while True:
        try:
            on_record(next(run))
        except StopIteration as stop:
            return stop.value
