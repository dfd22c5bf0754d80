"""TextBrewer baseline: the same fine-tuned teacher distilled into the same BiLSTM student with TextBrewer's
``GeneralDistiller``; its per-language test F1 and wall times go beside ours and the teacher in one section of
docs/RESULTS.md.

    .venv/bin/pip install --no-deps -r benchmarks/requirements-textbrewer.txt   # textbrewer==0.2.1.post1
    xtremedistil distil configs/wikiann.toml     # the fine-tuned teacher and its cache (reused, never retrained)
    # to convergence: early stopping on dev mean F1, at most 10 epochs, patience 2
    python benchmarks/textbrewer_compare.py --config configs/wikiann-frontier.toml --transfer-size 20000 \\
        --epochs 10 --patience 2
    # the same wall-clock budget as our cell (or --budget-minutes M)
    python benchmarks/textbrewer_compare.py --config configs/wikiann-frontier.toml --transfer-size 20000 \\
        --epochs 10 --budget-from-ours
    # rebuild the section from the saved runs, without training (e.g. once our cell exists)
    python benchmarks/textbrewer_compare.py --config configs/wikiann-frontier.toml --report-only

Runs and modes. Each run saves ``<output_dir>/textbrewer-<mode>/metrics.json`` (``--json-dir`` moves them):
its settings, dev mean F1 after every epoch, the epochs run, the best epoch, its training and job seconds,
test F1 per language. The mode is ``converged`` with ``--patience`` (evaluate dev after every epoch, keep the
best epoch's weights, stop after ``patience`` epochs without a new best, at most ``--epochs``), ``budget`` with
``--budget-minutes``/``--budget-from-ours`` (below), otherwise ``epochs<N>`` (a fixed number of epochs). The
section (``--output-section``, default ``textbrewer``) is rebuilt from every saved run of the output folder
after each run, and by ``--report-only``: every number in it is read from a saved JSON (ours: the cell's
result.json; the teacher: its scores file). Test is never used for selection.

The same-budget mode. The budget is the student's training wall time, dev evaluations included, checked
before every batch and after every epoch's dev evaluation; when it is spent, training stops (mid-epoch if
need be), the final weights are scored on dev too and the best dev point is kept. ``--budget-from-ours``
reads it from our cell: its training stages (dev evaluations included) plus its share of the teacher cache
it trained from (the cache's build time x the cell's windows / the cached windows), since TextBrewer pays
for the teacher inside its training and ours paid for it once, before. ``--budget-minutes M`` sets it by
hand (``--budget-source`` says where M comes from). TextBrewer's linear warm-up/decay is planned over the
steps that fit in the budget, at the seconds per step (dev evaluations included) measured by the converged
run of the same windows and batch size, so the learning rate reaches zero as the budget runs out (training
also stops at that step); without a converged run it is planned over ``--epochs``, and the section says so.
The converged mode keeps TextBrewer's recipe as it is: the schedule is planned over the maximum epochs.

Ours is the D4.2 cell of ``xtremedistil experiment`` on the config (``--our-cell``; by default
``D4.2_t<transfer-size>_l0_layer<layer>_<student>_s<seed>``), read from ``cells/<key>/result.json`` (or
results.json), or else ``xtremedistil distil``'s metrics.json in the output folder; when neither exists the
section says "ours: not run yet".

Pinned: ``textbrewer==0.2.1.post1`` (its latest release, 2020-12), installed with ``--no-deps`` so that pip
leaves torch alone; it is a benchmark-only requirement, not a dependency of xtremedistil.

Shared with ours: the run folder's fine-tuned teacher (reused, never retrained), the data and its windows
(labeled train windows with gold targets + the transfer windows), the student (``build_student``: same
architecture, trimmed vocabulary and SVD initialisation), the teacher layer, dev-based model selection and
the per-language test evaluation (``evaluate_dev_test``). TextBrewer's own: the teacher runs online on every
batch of every epoch (how the tool works; our teacher cache is not used), and its recommended recipe, in one
stage: soft labels (``kd_loss_type='ce'`` at a temperature) + hard labels where gold labels exist
(``hard_label_weight``) + an intermediate ``hidden_mse`` match of the student's BiLSTM output (2H) to the
teacher's ``hidden_states[layer]`` through ``proj=['linear', 2H, D]``, with AdamW and a linear warm-up (10%)
and decay.

Adapted for torch 2.x / transformers 5.x (TextBrewer 0.2.1 predates both):
  * TensorBoard: TextBrewer imports a ``SummaryWriter`` at import time (tensorboardX, else
    torch.utils.tensorboard, which needs the ``tensorboard`` package and its many dependencies). We never
    write TensorBoard logs (``log_dir=None``), so when neither package is installed a stub ``tensorboardX``
    module stands in; constructing its writer raises. The distiller's writer (a no-op when ``log_dir`` is
    None) is replaced by ``LossLog``, which only keeps the latest losses for our progress line.
  * Optimiser: TextBrewer's examples use ``transformers.AdamW``, which transformers 5 removed;
    ``torch.optim.AdamW`` is used, with ``transformers.get_linear_schedule_with_warmup`` passed as
    ``scheduler_class`` as TextBrewer's docs recommend.
  * Batches: TextBrewer calls ``model(**batch)`` for a dict batch, so our ``Batch`` travels as a dict and
    two thin modules rebuild it (student) or call the HF model with ``output_hidden_states`` (teacher).
  * Progress: TextBrewer's tqdm bars are replaced by our progress lines (cosmetic: a tqdm bar redrawn for
    hours fills a log file).
  * Stopping: TextBrewer has no early stopping or time budget; its dataloader (``EpochBatches``, ours) stops
    yielding batches when the run must stop, so TextBrewer's remaining epochs are empty.
Nothing in TextBrewer's losses, projection, training loop or checkpoint callback is changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from safetensors.torch import save_file
from torch import nn

from results import provenance, write_section
from xtremedistil.config import RunConfig, config_from_dict, load_config
from xtremedistil.distillation import (
    Prepared,
    build_student,
    evaluate_dev_test,
    pools,
    prepare,
    representation_layer,
)
from xtremedistil.evaluate import markdown_table
from xtremedistil.experiment import RESULT, Cell, transfer_subset
from xtremedistil.io import read_json, write_json
from xtremedistil.progress import Reporter, RichReporter
from xtremedistil.student.distil import Pool
from xtremedistil.student.model import BiLSTMStudent
from xtremedistil.tasks.base import IGNORE_INDEX, Batch
from xtremedistil.teacher.model import META_FILE
from xtremedistil.teacher.train import teacher_dir
from xtremedistil.training import setup_torch

TEXTBREWER_VERSION = "0.2.1.post1"
TARGET_GAP = 2.0  # issue 15: ours at least 2 F1 points above TextBrewer run to convergence
WARMUP = 0.1  # TextBrewer's recipe: linear warm-up over the first 10% of the planned steps, then decay
MODES = ("converged", "budget")  # the runs the section compares, in this order (others follow)
LABELS = {"converged": "TextBrewer, converged", "budget": "TextBrewer, same budget"}


# --- TextBrewer, imported with the shim it needs on this stack ------------------------------------------
def import_textbrewer() -> types.ModuleType:
    if not (importlib.util.find_spec("tensorboardX") or importlib.util.find_spec("tensorboard")):
        stub = types.ModuleType("tensorboardX")

        class SummaryWriter:  # TextBrewer builds one only when TrainingConfig.log_dir is set; we never do
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise RuntimeError("tensorboard is not installed: keep TrainingConfig(log_dir=None)")

        stub.SummaryWriter = SummaryWriter  # type: ignore[attr-defined]
        sys.modules["tensorboardX"] = stub
    try:
        import textbrewer
        import textbrewer.distiller_basic
    except ImportError as exc:
        raise SystemExit(
            f"TextBrewer is not installed ({exc}); run "
            "`.venv/bin/pip install --no-deps -r benchmarks/requirements-textbrewer.txt`"
        ) from None
    if textbrewer.__version__ != TEXTBREWER_VERSION:
        print(
            f"warning: textbrewer {textbrewer.__version__}, this script was written for {TEXTBREWER_VERSION}"
        )
    textbrewer.distiller_basic.tqdm = lambda iterable, **_: iterable  # our progress lines instead (cosmetic)
    return textbrewer


# --- models, batches and adaptors as TextBrewer expects them --------------------------------------------
def batch_dict(batch: Batch) -> dict[str, torch.Tensor]:
    return {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}


class StudentForTextBrewer(nn.Module):
    """``model_S``: called as ``model(**batch)``; the student's logits and its BiLSTM output (B, T, 2H), the
    latter read by a forward hook so the student's own forward stays exactly ours."""

    def __init__(self, student: BiLSTMStudent) -> None:
        super().__init__()
        self.student = student
        self._states: torch.Tensor | None = None
        self._hook = student.bilstm.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self._states = output

    def forward(self, **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.student(Batch(**batch)).logits
        return {"logits": logits, "bilstm": self._states}

    def close(self) -> None:
        self._hook.remove()
        self._states = None


class TeacherForTextBrewer(nn.Module):
    """``model_T``: the fine-tuned HF token classifier with all hidden states (TextBrewer picks ``layer_T``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: torch.Tensor) -> Any:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)


def token_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Real sub-words only: no [CLS]/[SEP], no padding."""
    return Batch(**batch).token_mask


def hard_label_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the gold targets (first sub-words of labeled windows); IGNORE_INDEX elsewhere.
    A batch of transfer windows only has no gold labels and contributes zero."""
    labeled = targets != IGNORE_INDEX
    if not bool(labeled.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[labeled], targets[labeled])


def adaptor_T(batch: dict[str, torch.Tensor], out: Any) -> dict[str, Any]:
    mask = token_mask(batch)
    return {"logits": out.logits, "logits_mask": mask, "hidden": out.hidden_states, "inputs_mask": mask}


def adaptor_S(batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> dict[str, Any]:
    mask = token_mask(batch)
    return {
        "logits": out["logits"],
        "logits_mask": mask,
        "hidden": [out["bilstm"]],
        "inputs_mask": mask,
        "losses": hard_label_loss(out["logits"], batch["targets"]),
    }


class LossLog:
    """Stands in for TextBrewer's TensorBoard writer: keeps the latest value of each loss for progress."""

    NAMES = {"total_loss": "loss", "unweighted_kd_loss": "kd", "unweighted_hard_label_loss": "label"}

    def __init__(self) -> None:
        self.latest: dict[str, float] = {}

    def add_scalar(self, name: str, value: float, step: int) -> None:
        name = name.removeprefix("scalar/")
        self.latest[self.NAMES.get(name, "hidden" if "hidden" in name else name)] = float(value)


class Stopping:
    """When a run stops: the time budget (seconds from the start of training, dev evaluations included), the
    planned steps (the learning rate is zero after them) and early stopping on dev (``patience``)."""

    def __init__(self, budget_seconds: float | None, max_steps: int, patience: int | None) -> None:
        self.budget_seconds, self.max_steps, self.patience = budget_seconds, max_steps, patience
        self.start = time.perf_counter()
        self.steps = 0
        self.reason: str | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def check(self) -> bool:
        """True once the run must stop (checked before every batch and after every epoch)."""
        if self.reason is None and self.budget_seconds is not None and self.elapsed() >= self.budget_seconds:
            self.reason = "budget spent"
        if self.reason is None and self.steps >= self.max_steps:
            self.reason = f"all {self.max_steps:,} planned steps done"
        return self.reason is not None

    def after_epoch(self, epoch: int, best_epoch: int) -> None:
        if self.reason is None and self.patience is not None and epoch - best_epoch >= self.patience:
            self.reason = f"early stopping, no better dev mean F1 in the last {self.patience} epoch(s)"
        self.check()


class EpochBatches:
    """TextBrewer's dataloader: re-iterable with a length; each pass is one epoch of our length-bucketed
    batches in a fresh seeded order, reported as a progress line with the latest losses. Once ``stopping``
    says stop, it yields no more batches (TextBrewer's remaining epochs are then empty)."""

    def __init__(
        self,
        pool: Pool,
        batch_size: int,
        prepared: Prepared,
        seed: int,
        reporter: Reporter,
        losses: LossLog,
        stopping: Stopping,
    ) -> None:
        self.pool, self.batch_size, self.special = pool, batch_size, prepared.special
        self.seed, self.reporter, self.losses, self.stopping = seed, reporter, losses, stopping
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.pool) / self.batch_size)

    def __iter__(self):
        if self.stopping.check():
            return
        epoch, self.epoch = self.epoch, self.epoch + 1
        with self.reporter.bar(f"textbrewer epoch {epoch + 1}", total=len(self)) as advance:
            for db in self.pool.batches(
                self.batch_size, self.special, shuffle=True, seed=self.seed + epoch, teacher=False
            ):
                if self.stopping.check():
                    return
                self.stopping.steps += 1
                yield batch_dict(db.batch)
                advance(1, **self.losses.latest)


# --- the run ----------------------------------------------------------------------------------------------
def locate_run(config: RunConfig, config_path: Path) -> tuple[RunConfig, Path]:
    """The config and run folder whose fine-tuned teacher and caches ``prepare`` reuses. ``xtremedistil
    distil`` keeps them in <output_dir>/teacher and <output_dir>/cache; ``xtremedistil experiment`` in
    <output_dir>/teachers/labeled-all/teacher and <output_dir>/cache; ``teacher.run`` names another run."""
    out = Path(config.output_dir)
    if config.teacher.run:
        if (teacher_dir(Path(config.teacher.run)) / META_FILE).is_file():
            return config, out
    elif (teacher_dir(out) / META_FILE).is_file():
        return config, out
    elif (teacher_dir(out / "teachers" / "labeled-all") / META_FILE).is_file():
        tree = config.model_dump(exclude_none=True)
        tree["output_dir"] = str(out / "teachers" / "labeled-all")
        tree["cache"]["dir"] = config.cache.dir or str(out / "cache")
        return config_from_dict(tree, "(experiment teacher)"), out / "teachers" / "labeled-all"
    where = teacher_dir(Path(config.teacher.run)) if config.teacher.run else teacher_dir(out)
    raise SystemExit(
        f"no fine-tuned teacher in {where}: run `xtremedistil distil {config_path}` first (it fine-tunes the "
        "teacher, caches its outputs and trains our student, whose results this script puts beside "
        "TextBrewer's); this script never fine-tunes a teacher"
    )


def teacher_run_dir(config: RunConfig) -> Path:
    """The run folder holding the fine-tuned teacher (and its metrics.json)."""
    return Path(config.teacher.run) if config.teacher.run else Path(config.output_dir)


def configured_layer(config: RunConfig) -> int | None:
    """The teacher layer our student reads: ``distil.layer``, else the experiment's only layer."""
    if config.distil.layer is not None:
        return config.distil.layer
    layers = config.experiment.layers if config.experiment else None
    return layers[0] if layers and len(layers) == 1 else None


def subsample(pool: Pool, n: int | None, seed: int) -> Pool:
    """A seeded sample of ``n`` training windows (for quick checks); all of them when ``n`` is None."""
    indices = pool.indices
    if n is not None and n < len(indices):
        indices = np.sort(np.random.default_rng(seed).permutation(indices)[:n])
    return Pool(pool.encoded, None, indices)


def mode_of(args: argparse.Namespace) -> str:
    if args.budget_minutes is not None or args.budget_from_ours:
        return "budget"
    return "converged" if args.patience is not None else f"epochs{args.epochs}"


def run_folder(args: argparse.Namespace, config: RunConfig, mode: str) -> Path:
    return Path(args.json_dir or config.output_dir) / f"textbrewer-{mode}"


def plan_steps(
    args: argparse.Namespace, config: RunConfig, steps_per_epoch: int, windows: int, budget: float | None
) -> tuple[int, str]:
    """The steps TextBrewer's linear warm-up/decay is planned over, and how they were chosen."""
    max_steps = steps_per_epoch * args.epochs
    if budget is None:
        return max_steps, f"the maximum {args.epochs} epochs"
    converged = run_folder(args, config, "converged") / "metrics.json"
    if converged.is_file():
        run = read_json(converged)
        same = run["setup"]["windows"] == windows and run["setup"]["batch_size"] == args.batch_size
        if same and run.get("steps_run"):
            per_step = run["loop_seconds"] / run["steps_run"]
            steps = max(1, min(max_steps, int(budget / per_step)))
            return steps, (
                f"the steps that fit in the budget at {per_step:.3f} s per step (dev evaluations included), "
                f"the speed of the converged run ({run['steps_run']:,} steps in "
                f"{run['loop_seconds'] / 60:.1f} min)"
            )
    return max_steps, (
        f"the maximum {args.epochs} epochs (no converged run of the same windows and batch size to measure "
        "the speed from, so the learning rate is not planned to reach zero within the budget)"
    )


def distil_with_textbrewer(
    tb: types.ModuleType,
    config: RunConfig,
    prepared: Prepared,
    student: BiLSTMStudent,
    pool: Pool,
    args: argparse.Namespace,
    layer: int,
    budget: float | None,
    reporter: Reporter,
) -> dict[str, Any]:
    """Train ``student`` with GeneralDistiller; leaves it with its best-on-dev weights. Returns a summary."""
    from transformers import get_linear_schedule_with_warmup

    states = 2 * student.config.hidden_size
    teacher_hidden = int(prepared.teacher.model.config.hidden_size)
    distill_config = tb.DistillationConfig(
        temperature=args.temperature,
        kd_loss_type="ce",
        kd_loss_weight=1.0,
        hard_label_weight=1.0,
        intermediate_matches=[
            {
                "layer_T": layer,
                "layer_S": 0,
                "feature": "hidden",
                "loss": "hidden_mse",
                "weight": 1.0,
                "proj": ["linear", states, teacher_hidden],
            }
        ],
    )
    model_S = StudentForTextBrewer(student)
    model_T = TeacherForTextBrewer(prepared.teacher.model)
    losses = LossLog()
    steps_per_epoch = math.ceil(len(pool) / args.batch_size)
    planned, planned_how = plan_steps(args, config, steps_per_epoch, len(pool), budget)
    stopping = Stopping(budget, planned, args.patience)
    batches = EpochBatches(pool, args.batch_size, prepared, config.seed, reporter, losses, stopping)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"dev_mean_f1": -1.0}

    def evaluate(epoch: float, partial: bool) -> None:
        scores = prepared.dev.scores(student)
        history.append(
            {
                "epoch": epoch,
                "partial": partial,
                "step": stopping.steps,
                "seconds": stopping.elapsed(),
                "dev_mean_f1": scores["mean_f1"],
                **losses.latest,
            }
        )
        if scores["mean_f1"] > best["dev_mean_f1"]:
            best.update(epoch=epoch, dev_mean_f1=scores["mean_f1"])
            best["state"] = {k: v.detach().clone() for k, v in student.state_dict().items()}
        reporter.info(
            f"  epoch {epoch:g}{' (partial)' if partial else ''}: dev mean F1 {scores['mean_f1']:.2f} "
            f"(best {best['dev_mean_f1']:.2f}, epoch {best['epoch']:g}); {stopping.elapsed() / 60:.1f} min"
        )

    def callback(model: nn.Module, step: int) -> None:  # TextBrewer calls it at the end of every epoch
        epoch = step // steps_per_epoch
        evaluate(epoch, partial=False)
        stopping.after_epoch(epoch, best["epoch"])

    optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr)
    with tempfile.TemporaryDirectory(prefix="textbrewer-") as checkpoints:  # TextBrewer saves every epoch
        train_config = tb.TrainingConfig(device="cpu", log_dir=None, output_dir=checkpoints)
        distiller = tb.GeneralDistiller(train_config, distill_config, model_T, model_S, adaptor_T, adaptor_S)
        distiller.tb_writer = losses
        stopping.start = time.perf_counter()
        with distiller:
            distiller.train(
                optimizer,
                batches,
                num_epochs=args.epochs,
                scheduler_class=get_linear_schedule_with_warmup,
                scheduler_args={"num_warmup_steps": int(WARMUP * planned), "num_training_steps": planned},
                callback=callback,
            )
        loop_seconds = stopping.elapsed()
    stopping.check()
    if stopping.steps % steps_per_epoch:  # stopped mid-epoch: its final weights are a candidate too
        evaluate(round(stopping.steps / steps_per_epoch, 2), partial=True)
    model_S.close()
    student.load_state_dict(best.pop("state"))
    student.eval()
    return {
        "steps_per_epoch": steps_per_epoch,
        "planned_steps": planned,
        "planned_epochs": planned / steps_per_epoch,
        "warmup_steps": int(WARMUP * planned),
        "planned_how": planned_how,
        "steps_run": stopping.steps,
        "epochs_run": stopping.steps / steps_per_epoch,
        "stop_reason": stopping.reason or f"the maximum {args.epochs} epochs",
        "loop_seconds": loop_seconds,
        "train_seconds": stopping.elapsed(),
        "best_epoch": best["epoch"],
        "best_dev_mean_f1": best["dev_mean_f1"],
        "epochs": history,
        "projection_params": sum(
            p.numel() for proj in distiller.projs if proj is not None for p in proj.parameters()
        ),
    }


# --- ours and the teacher, for the table --------------------------------------------------------------------
def our_cell_key(config: RunConfig, transfer_size: int, layer: int) -> str:
    return Cell("D4.2", transfer_size, 0, layer, config.student.preset, config.seed).key


def _from_cell(cell: dict[str, Any]) -> dict[str, Any]:
    from xtremedistil.experiment import neutral_row

    cell = neutral_row(cell)
    f1 = cell["test_by_language"]
    return {
        "languages": {lang: {"f1": value / 100} for lang, value in f1.items()},
        "mean_f1": cell["test_mean"],
        "std_f1": cell.get("test_std", statistics.pstdev(f1.values()) if len(f1) > 1 else 0.0),
        **(
            {"end_to_end": {"mean_f1": cell["test_raw_mean"]}}
            if cell.get("test_raw_mean") is not None
            else {}
        ),
    }


def our_results(out: Path, key: str) -> dict[str, Any] | None:
    """Our student's test F1 and wall times: the experiment cell ``key`` (its result.json, written when the
    cell finishes, or its row of results.json), else ``xtremedistil distil``'s metrics.json; None if neither."""
    path = out / "cells" / key / RESULT
    cell = read_json(path) if path.is_file() else None
    if cell is None and (out / "results.json").is_file():
        path = out / "results.json"
        cell = next((r for r in read_json(path) if r.get("key") == key), None)
    if cell is not None:
        scores = out / "teachers" / "labeled-all" / "teacher_scores.json"
        return {
            "label": f"ours ({cell['cell']['strategy']}, {cell['cell']['student']})",
            "source": f"`xtremedistil experiment`, cell {key} ({path})",
            "test": _from_cell(cell),
            "teacher": read_json(scores).get("test") if scores.is_file() else None,
            "teacher_source": str(scores),
            "train_seconds": sum(s.get("seconds", 0.0) for s in cell.get("stages", [])),
            "total_seconds": cell.get("seconds"),
            "total_what": "the cell's own time: its stages, test evaluation and speed measurement, and any "
            "preparation it was the first cell to need (data, teacher scores); the shared teacher cache not "
            "included",
            "windows": cell.get("labeled_windows", 0) + cell.get("transfer_windows", 0),
        }
    metrics = read_json(out / "metrics.json") if (out / "metrics.json").is_file() else {}
    if "test" in metrics.get("student", {}):
        return {
            "label": "ours (distil)",
            "source": f"`xtremedistil distil`, {out / 'metrics.json'}",
            "test": metrics["student"]["test"],
            "teacher": metrics.get("teacher", {}).get("test"),
            "teacher_source": str(out / "metrics.json"),
            "train_seconds": sum(s.get("seconds", 0.0) for s in metrics.get("stages", [])),
            "total_seconds": metrics.get("distil_job_seconds"),
            "total_what": "the whole `distil` job (data, teacher cache, stages, evaluation, speed)",
            "windows": None,  # the job built its own cache: no share to add
        }
    return None


def teacher_results(config: RunConfig, ours: dict[str, Any] | None, like: dict[str, Any]) -> tuple:
    """The teacher's test scores and where they come from: our run's, else the teacher run's metrics.json
    when scored as ``like`` (TextBrewer's student) is: same scheme, decoding and reading."""
    if ours and ours.get("teacher"):
        return ours["teacher"], ours["teacher_source"]
    path = teacher_run_dir(config) / "metrics.json"
    test = (read_json(path).get("teacher") or {}).get("test") if path.is_file() else None
    keys = ("scheme", "decoding", "reading")
    if test and all(test.get(k) == like.get(k) for k in keys):
        return test, str(path)
    return None, None


def cache_share(config: RunConfig, windows: int | None) -> dict[str, Any] | None:
    """Our share of the shared teacher cache: its build time x the windows a cell trains on / cached windows."""
    path = teacher_run_dir(config) / "metrics.json"
    cache = read_json(path).get("cache") if path.is_file() else None
    if not windows or not cache or not cache.get("seconds") or not cache.get("windows"):
        return None
    return {
        "seconds": cache["seconds"] * windows / cache["windows"],
        "cache_seconds": cache["seconds"],
        "cache_windows": cache["windows"],
        "windows": windows,
        "source": str(path),
    }


def budget_from_ours(ours: dict[str, Any], share: dict[str, Any] | None) -> tuple[float, str]:
    seconds = ours["train_seconds"] + (share["seconds"] if share else 0.0)
    parts = f"its training stages ({ours['train_seconds'] / 60:.2f} min, dev evaluations included)"
    if share:
        parts += (
            f" + its share of the teacher cache ({share['cache_seconds'] / 60:.2f} min for "
            f"{share['cache_windows']:,} windows x {share['windows']:,} / {share['cache_windows']:,} = "
            f"{share['seconds'] / 60:.2f} min, {share['source']})"
        )
    return seconds, f"our cell: {parts}; {ours['source']}"


# --- the section, from the saved JSONs only -----------------------------------------------------------------
def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def load_runs(folder: Path) -> dict[str, dict[str, Any]]:
    runs = {
        p.parent.name.removeprefix("textbrewer-"): read_json(p)
        for p in folder.glob("textbrewer-*/metrics.json")
    }
    order = [m for m in MODES if m in runs] + sorted(m for m in runs if m not in MODES)
    return {m: runs[m] for m in order}


def _epochs(run: dict[str, Any]) -> str:
    return ", ".join(
        f"{e['epoch']:g}{' (partial)' if e.get('partial') else ''}: {e['dev_mean_f1']:.2f}"
        for e in run["epochs"]
    )


def _stopping(run: dict[str, Any]) -> str:
    s = run["stopping"]
    if s.get("budget_seconds") is not None:
        return f"budget {s['budget_seconds'] / 60:.2f} min ({s['budget_source']}), at most {s['max_epochs']} epochs"
    if s.get("patience") is not None:
        return f"early stopping on dev mean F1, patience {s['patience']}, at most {s['max_epochs']} epochs"
    return f"a fixed {s['max_epochs']} epochs"


def _raw(scores: dict[str, Any]) -> str:
    """Mean F1 of the entities found in the raw text (beside gold words), or a dash where not scored."""
    raw = (scores.get("end_to_end") or {}).get("mean_f1")
    return "–" if raw is None else f"{raw:.2f}"


def run_table(runs: dict[str, dict[str, Any]]) -> str:
    names = [LABELS.get(m, f"TextBrewer, {m}") for m in runs]
    rows = [
        ("stopping", _stopping),
        (
            "LR schedule (linear, 10% warm-up) planned over",
            lambda r: f"{r['planned_steps']:,} steps ({r['planned_epochs']:.2f} epochs): {r['planned_how']}",
        ),
        ("dev mean F1 after each epoch", _epochs),
        (
            "run",
            lambda r: (
                f"{r['epochs_run']:.2f} epochs ({r['steps_run']:,} steps of {r['steps_per_epoch']:,} per "
                f"epoch); stopped: {r['stop_reason']}"
            ),
        ),
        ("kept (best on dev)", lambda r: f"epoch {r['best_epoch']:g}: dev {r['best_dev_mean_f1']:.2f}"),
        ("test mean F1", lambda r: f"{r['test_mean_f1']:.2f} ± {r['test_std_f1']:.2f}"),
        ("test mean F1, raw text (what `predict` reads)", lambda r: _raw(r["student"]["test"])),
        (
            "student training, dev evaluations included",
            lambda r: f"{_minutes(r['train_seconds'])} (training loop {_minutes(r['loop_seconds'])})",
        ),
        ("whole job", lambda r: _minutes(r["total_seconds"])),
    ]
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {name} | " + " | ".join(cell(r) for r in runs.values()) + " |" for name, cell in rows]
    return "\n".join(lines) + "\n"


def section(
    config_path: Path,
    config: RunConfig,
    runs: dict[str, dict[str, Any]],
    ours: dict[str, Any] | None,
    our_key: str,
    seconds: float | None,
) -> str:
    first = next(iter(runs.values()))
    s = first["setup"]
    teacher, teacher_source = teacher_results(config, ours, first["student"]["test"])
    columns = {LABELS.get(m, f"TextBrewer, {m}"): r["student"]["test"] for m, r in runs.items()}
    if ours:
        columns[ours["label"]] = ours["test"]
    if teacher:
        columns["teacher"] = teacher
    sample = "".join(
        f" **{LABELS.get(m, m)}: subsampled to {r['setup']['windows']:,} windows (`--max-windows`), a check, "
        "not the benchmark.**"
        for m, r in runs.items()
        if r["setup"].get("max_windows")
    )
    missing = [LABELS[m] for m in MODES if m not in runs]
    lines = [
        f"## TextBrewer baseline: same teacher, same student (`{config_path}`)\n",
        provenance(seconds),
        "Runs (each saved to its `metrics.json`, which every number below is read from):\n",
        *(
            f"- {LABELS.get(m, m)} (`{r['folder']}`): {r['provenance'].strip().strip('_')}"
            for m, r in runs.items()
        ),
        *(f"- {name}: not run yet" for name in missing),
        "",
        f"TextBrewer {first['textbrewer']} (`GeneralDistiller`) distils the teacher fine-tuned by xtremedistil "
        f"(`{s['teacher_dir']}`, {s['teacher_name']}) into the same student as ours: BiLSTM E={s['embedding_dim']}, "
        f"H={s['hidden_size']}, the same trimmed vocabulary ({s['vocab_subwords']:,} sub-words) and SVD "
        f"initialisation, {s['student_params']:,} parameters. Data: the same windows, {s['windows']:,} in all "
        f"({s['labeled_windows']:,} labeled train windows + {s['windows'] - s['labeled_windows']:,} transfer "
        f"windows), batches of {s['batch_size']}; the teacher runs online on every batch, as TextBrewer does."
        f"{sample}\n",
        f"Recipe (TextBrewer's recommended one, one stage, unchanged in every run): soft labels "
        f"(`kd_loss_type='ce'`, temperature {s['temperature']:g}, weight 1) + hard labels on the gold first "
        f"sub-words of the labeled windows (`hard_label_weight=1`) + `hidden_mse` between the student's BiLSTM "
        f"output ({s['states']} dims) and the teacher's `hidden_states[{s['layer']}]` through "
        f"`proj=['linear', {s['states']}, {s['teacher_hidden']}]` (weight 1; its {first['projection_params']:,} "
        f"parameters are dropped after training); every loss over real sub-words only. AdamW, lr {s['lr']:g}, "
        "linear warm-up over the first 10% of the planned steps, then linear decay to zero at the last planned "
        "step. To convergence, the schedule is planned over the maximum epochs, as TextBrewer plans it (so "
        "an early stop leaves the learning rate above zero). With the same budget as ours, it is planned over "
        "the steps that fit in the budget at the converged run's measured speed (the table says how each run "
        "planned it), so that it reaches zero as the budget runs out (training stops there or when the budget is spent, whichever is first; the final "
        "weights of a cut epoch are scored on dev too). Dev mean F1 is evaluated after every epoch and the "
        "best dev point's weights are kept; test is never used for selection.\n",
        run_table(runs),
        "Test F1 per language (entity-level span F1, mean ± std over languages):\n",
        markdown_table(columns),
    ]
    lines += [gap_line(runs, ours, our_key, config, config_path), ""]
    lines += wall_table(runs, ours, config)
    if ours:
        lines.append(f"Ours: {ours['source']}; its whole time is {ours['total_what']}.")
    if teacher:
        lines.append(f"Teacher: {teacher_source}.")
    return "\n".join(lines) + "\n"


def gap_line(
    runs: dict[str, Any], ours: dict[str, Any] | None, key: str, config: RunConfig, config_path: Path
) -> str:
    if not ours:
        return (
            f"**ours: not run yet** (no cell {key} in `{config.output_dir}`: `xtremedistil experiment "
            f"{config_path}` makes it, then `--report-only` rebuilds this section), so the gap to the target "
            f"(ours ≥ converged TextBrewer + {TARGET_GAP:g} F1) is not computed yet."
        )
    parts = []
    ours_raw = (ours["test"].get("end_to_end") or {}).get("mean_f1")
    for mode, run in runs.items():
        gap = ours["test"]["mean_f1"] - run["test_mean_f1"]
        raw = (run["student"]["test"].get("end_to_end") or {}).get("mean_f1")
        on_raw = f", {ours_raw - raw:+.2f} on raw text" if ours_raw is not None and raw is not None else ""
        parts.append(f"ours − {LABELS.get(mode, mode)}: **{gap:+.2f} F1 points** (test mean{on_raw})")
    if "converged" not in runs:
        verdict = (
            f"Issue 15's target (ours ≥ converged TextBrewer + {TARGET_GAP:g} F1) cannot be judged yet: "
            "converged TextBrewer not run yet"
        )
    else:
        gap = ours["test"]["mean_f1"] - runs["converged"]["test_mean_f1"]
        verdict = (
            f"Issue 15's target, ours ≥ converged TextBrewer + {TARGET_GAP:g} F1: "
            f"**{'reached' if gap >= TARGET_GAP else 'not reached'}**"
        )
    return "; ".join(parts) + f". {verdict}."


def wall_table(runs: dict[str, Any], ours: dict[str, Any] | None, config: RunConfig) -> list[str]:
    names = [LABELS.get(m, m) for m in runs] + [ours["label"] if ours else "ours"]
    share = cache_share(config, ours.get("windows")) if ours else None
    teacher = [
        f"online, inside training ({r['epochs_run']:.2f} epochs × {r['setup']['windows']:,} windows)"
        for r in runs.values()
    ]
    if ours and share:
        teacher.append(
            f"cached once, before: share {_minutes(share['seconds'])} ({share['windows']:,} of the "
            f"{share['cache_windows']:,} windows cached in {_minutes(share['cache_seconds'])})"
        )
    else:
        teacher.append("cached once, before" if ours else "–")
    train = [_minutes(r["train_seconds"]) for r in runs.values()]
    train.append(f"{_minutes(ours['train_seconds'])} (all stages)" if ours else "–")
    total = [_minutes(r["total_seconds"]) for r in runs.values()]
    total.append(_minutes(ours["total_seconds"]) if ours else "–")
    lines = [
        "| wall time | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        "| teacher outputs | " + " | ".join(teacher) + " |",
        "| student training, dev evaluations included | " + " | ".join(train) + " |",
        "| whole job | " + " | ".join(total) + " |",
        "",
    ]
    budget = runs.get("budget")
    if ours and budget:
        wanted, _ = budget_from_ours(ours, share)
        used = budget["stopping"]["budget_seconds"]
        lines.append(
            f"Budget check: the same-budget run had {used / 60:.2f} min; our cell's training plus its cache "
            f"share is {wanted / 60:.2f} min ({100 * (used / wanted - 1):+.0f}%)."
            + (
                ""
                if abs(used / wanted - 1) <= 0.1
                else " More than 10% apart: rerun with `--budget-from-ours` for a like-for-like budget."
            )
            + "\n"
        )
    return lines


def write_report(args: argparse.Namespace, config: RunConfig, seconds: float | None) -> None:
    runs = load_runs(Path(args.json_dir or config.output_dir))
    if not runs:
        raise SystemExit(
            f"no saved TextBrewer run in {args.json_dir or config.output_dir} (textbrewer-*/metrics.json): "
            "run this script without --report-only first"
        )
    first = next(iter(runs.values()))["setup"]
    key = args.our_cell or our_cell_key(config, first["transfer_size"], first["layer"])
    ours = our_results(Path(config.output_dir), key)
    write_section(args.output_section, section(args.config, config, runs, ours, key, seconds))


# --- the command ---------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=Path("configs/wikiann.toml"))
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs (the maximum, with --patience or a budget)"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early stopping: stop after this many epochs without a better dev mean F1 (mode `converged`)",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--budget-minutes", type=float, default=None, help="training wall-time budget (mode `budget`)"
    )
    budget.add_argument(
        "--budget-from-ours",
        action="store_true",
        help="the budget is our cell's training time plus its share of the teacher cache (mode `budget`)",
    )
    parser.add_argument(
        "--budget-source", default=None, help="where --budget-minutes comes from (printed in the section)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: the config's distil.batch_size"
    )
    parser.add_argument("--temperature", type=float, default=None, help="default: distil.temperature")
    parser.add_argument("--lr", type=float, default=None, help="default: the config's distil.lr")
    parser.add_argument("--max-windows", type=int, default=None, help="subsample the training windows")
    parser.add_argument(
        "--transfer-size",
        type=int,
        default=0,
        help="train on the labeled windows + this seeded sample of transfer windows, the sample an "
        "`xtremedistil experiment` cell with the same transfer_size uses (0 = all)",
    )
    parser.add_argument(
        "--our-cell",
        default=None,
        help="the experiment cell shown as ours (default: D4.2_t<transfer-size>_...)",
    )
    parser.add_argument(
        "--json-dir", type=Path, default=None, help="where textbrewer-<mode>/ go (default: the output_dir)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild the section from the saved runs, no training"
    )
    parser.add_argument("--output-section", default="textbrewer")
    args = parser.parse_args()
    if args.epochs < 1 or (args.max_windows is not None and args.max_windows < 1):
        parser.error("--epochs and --max-windows must be at least 1")
    if args.patience is not None and args.patience < 1:
        parser.error("--patience must be at least 1")
    if args.budget_minutes is not None and args.budget_minutes <= 0:
        parser.error("--budget-minutes must be positive")
    if args.budget_source and args.budget_minutes is None:
        parser.error("--budget-source goes with --budget-minutes")
    return args


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    config = load_config(args.config)
    if args.report_only:
        write_report(args, config, None)
        return
    args.batch_size = args.batch_size or config.distil.batch_size
    args.temperature = args.temperature or config.distil.temperature
    args.lr = args.lr or config.distil.lr
    out = Path(config.output_dir)
    mode = mode_of(args)
    run_config, run_dir = locate_run(config, args.config)
    budget, budget_source = None, None
    if args.budget_minutes is not None:
        budget = 60 * args.budget_minutes
        budget_source = args.budget_source or "`--budget-minutes`"
    tb = import_textbrewer()

    reporter = RichReporter(Console(stderr=True))
    setup_torch(run_config.threads, run_config.seed)
    prepared = prepare(run_config, run_dir, reporter)
    layer = configured_layer(run_config)
    layer = representation_layer(run_config, prepared.teacher) if layer is None else layer
    if args.budget_from_ours:
        key = args.our_cell or our_cell_key(config, args.transfer_size, layer)
        ours = our_results(out, key)
        if ours is None:
            raise SystemExit(
                f"--budget-from-ours: no cell {key} in {out} yet; use --budget-minutes M --budget-source TEXT"
            )
        budget, budget_source = budget_from_ours(ours, cache_share(config, ours.get("windows")))
    student = build_student(run_config, prepared)
    pool = pools(prepared, True)["labeled+transfer"]
    if args.transfer_size:
        sample = transfer_subset(prepared, args.transfer_size, run_config.seed)
        pool = dataclasses.replace(pool, indices=np.concatenate([np.arange(prepared.n_train), sample]))
    pool = subsample(pool, args.max_windows, run_config.seed)
    reporter.info(
        f"textbrewer {tb.__version__} ({mode}): {len(pool):,} windows, at most {args.epochs} epochs"
        + (f", patience {args.patience}" if args.patience else "")
        + (f", budget {budget / 60:.2f} min" if budget else "")
        + f", teacher online (layer {layer}); student {student.parameter_counts()['total']:,} parameters"
    )
    summary = distil_with_textbrewer(tb, run_config, prepared, student, pool, args, layer, budget, reporter)
    scores = evaluate_dev_test(student, prepared, run_config, reporter, "textbrewer student")
    total = time.perf_counter() - start
    reporter.info(
        f"textbrewer ({mode}): best epoch {summary['best_epoch']:g} (dev {summary['best_dev_mean_f1']:.2f}), "
        f"test mean F1 {scores['test']['mean_f1']:.2f} ± {scores['test']['std_f1']:.2f}, "
        f"training {summary['train_seconds'] / 60:.1f} min, total {total / 60:.1f} min"
    )

    folder = run_folder(args, config, mode)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in student.state_dict().items()}, str(folder / "student.safetensors")
    )
    s = student.config
    write_json(
        folder / "metrics.json",
        {
            "mode": mode,
            "textbrewer": tb.__version__,
            "provenance": provenance(total),
            "folder": str(folder),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "setup": {
                "teacher_dir": str(
                    teacher_dir(run_dir if not config.teacher.run else Path(config.teacher.run))
                ),
                "teacher_name": prepared.teacher.meta.get("base", config.teacher.name),
                "layer": layer,
                "embedding_dim": s.embedding_dim,
                "hidden_size": s.hidden_size,
                "vocab_subwords": s.vocab_size - 2,
                "student_params": student.parameter_counts()["total"],
                "states": 2 * s.hidden_size,
                "teacher_hidden": int(prepared.teacher.model.config.hidden_size),
                "windows": len(pool),
                "labeled_windows": int(np.sum(pool.indices < prepared.n_train)),
                "transfer_size": args.transfer_size,
                "max_windows": args.max_windows,
                "batch_size": args.batch_size,
                "temperature": args.temperature,
                "lr": args.lr,
            },
            "stopping": {
                "max_epochs": args.epochs,
                "patience": args.patience,
                "budget_seconds": budget,
                "budget_source": budget_source,
            },
            **summary,
            "test_mean_f1": scores["test"]["mean_f1"],
            "test_std_f1": scores["test"]["std_f1"],
            "test_by_language": {lang: 100 * m["f1"] for lang, m in scores["test"]["languages"].items()},
            "student": scores,
            "total_seconds": total,
        },
    )
    write_report(args, config, total)


if __name__ == "__main__":
    main()
