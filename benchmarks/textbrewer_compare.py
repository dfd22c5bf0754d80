"""TextBrewer baseline: the same fine-tuned teacher distilled into the same BiLSTM student with TextBrewer's
``GeneralDistiller``; its per-language test F1 and wall time go beside ours in one section of docs/RESULTS.md.

    .venv/bin/pip install --no-deps -r benchmarks/requirements-textbrewer.txt   # textbrewer==0.2.1.post1
    xtremedistil distil configs/wikiann.toml     # first: fine-tunes the teacher, caches, trains our student
    python benchmarks/textbrewer_compare.py [--config configs/wikiann.toml] [--epochs 3] [--max-windows N]

Pinned: ``textbrewer==0.2.1.post1`` (its latest release, 2020-12), installed with ``--no-deps`` so that pip
leaves torch alone; it is a benchmark-only requirement, not a dependency of xtremedistil.

Shared with ours: the run folder's fine-tuned teacher (reused, never retrained), the data and its windows
(labeled train windows with gold targets + the transfer windows), the student (``build_student``: same
architecture, trimmed vocabulary and SVD initialisation), dev-based model selection and the per-language
test evaluation (``evaluate_dev_test``). TextBrewer's own: the teacher runs online on every batch of every epoch
(how the tool works; our teacher cache is not used), and its recommended recipe, in one stage: soft labels
(``kd_loss_type='ce'`` at a temperature) + hard labels where gold labels exist (``hard_label_weight``) + an
intermediate ``hidden_mse`` match of the student's BiLSTM output (2H) to the teacher's
``hidden_states[distil.layer]`` through ``proj=['linear', 2H, D]``, with AdamW and a linear warm-up/decay.

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
from xtremedistil.distillation import Prepared, build_student, evaluate_dev_test, pools, prepare
from xtremedistil.evaluate import markdown_table
from xtremedistil.experiment import transfer_subset
from xtremedistil.io import read_json, write_json
from xtremedistil.progress import Reporter, RichReporter
from xtremedistil.student.distil import Pool
from xtremedistil.student.model import BiLSTMStudent
from xtremedistil.tasks.base import IGNORE_INDEX, Batch
from xtremedistil.teacher.model import META_FILE
from xtremedistil.teacher.train import teacher_dir
from xtremedistil.training import setup_torch

TEXTBREWER_VERSION = "0.2.1.post1"


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


class EpochBatches:
    """TextBrewer's dataloader: re-iterable with a length; each pass is one epoch of our length-bucketed
    batches in a fresh seeded order, reported as a progress line with the latest losses."""

    def __init__(
        self, pool: Pool, batch_size: int, prepared: Prepared, seed: int, reporter: Reporter, losses: LossLog
    ) -> None:
        self.pool, self.batch_size, self.special = pool, batch_size, prepared.special
        self.seed, self.reporter, self.losses = seed, reporter, losses
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.pool) / self.batch_size)

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        with self.reporter.bar(f"textbrewer epoch {epoch + 1}", total=len(self)) as advance:
            for db in self.pool.batches(
                self.batch_size, self.special, shuffle=True, seed=self.seed + epoch, teacher=False
            ):
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


def subsample(pool: Pool, n: int | None, seed: int) -> Pool:
    """A seeded sample of ``n`` training windows (for quick checks); all of them when ``n`` is None."""
    indices = pool.indices
    if n is not None and n < len(indices):
        indices = np.sort(np.random.default_rng(seed).permutation(indices)[:n])
    return Pool(pool.encoded, None, indices)


def distil_with_textbrewer(
    tb: types.ModuleType,
    config: RunConfig,
    prepared: Prepared,
    student: BiLSTMStudent,
    pool: Pool,
    args: argparse.Namespace,
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
                "layer_T": config.distil.layer,
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
    batches = EpochBatches(pool, args.batch_size, prepared, config.seed, reporter, losses)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"dev_mean_f1": -1.0}

    def callback(model: nn.Module, step: int) -> None:  # TextBrewer calls it at the end of every epoch
        scores = prepared.dev.scores(student)
        epoch = step // len(batches)
        history.append({"epoch": epoch, "step": step, "dev_mean_f1": scores["mean_f1"], **losses.latest})
        if scores["mean_f1"] > best["dev_mean_f1"]:
            best.update(epoch=epoch, dev_mean_f1=scores["mean_f1"])
            best["state"] = {k: v.detach().clone() for k, v in student.state_dict().items()}
        reporter.info(
            f"  epoch {epoch}: dev mean F1 {scores['mean_f1']:.2f} (best {best['dev_mean_f1']:.2f})"
        )

    steps = len(batches) * args.epochs
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr)
    with tempfile.TemporaryDirectory(prefix="textbrewer-") as checkpoints:  # TextBrewer saves every epoch
        train_config = tb.TrainingConfig(device="cpu", log_dir=None, output_dir=checkpoints)
        distiller = tb.GeneralDistiller(train_config, distill_config, model_T, model_S, adaptor_T, adaptor_S)
        distiller.tb_writer = losses
        start = time.perf_counter()
        with distiller:
            distiller.train(
                optimizer,
                batches,
                num_epochs=args.epochs,
                scheduler_class=get_linear_schedule_with_warmup,
                scheduler_args={"num_warmup_steps": int(0.1 * steps), "num_training_steps": steps},
                callback=callback,
            )
        seconds = time.perf_counter() - start
    model_S.close()
    student.load_state_dict(best.pop("state"))
    student.eval()
    return {
        "train_seconds": seconds,
        "steps": steps,
        "best_epoch": best["epoch"],
        "best_dev_mean_f1": best["dev_mean_f1"],
        "epochs": history,
        "projection_params": sum(
            p.numel() for proj in distiller.projs if proj is not None for p in proj.parameters()
        ),
    }


# --- ours, for the table ----------------------------------------------------------------------------------
def _from_cell(cell: dict[str, Any]) -> dict[str, Any]:
    from xtremedistil.experiment import neutral_row

    cell = neutral_row(cell)
    f1 = cell["test_by_language"]
    return {
        "languages": {lang: {"f1": value / 100} for lang, value in f1.items()},
        "mean_f1": cell["test_mean"],
        "std_f1": cell.get("test_std", statistics.pstdev(f1.values()) if len(f1) > 1 else 0.0),
    }


def our_results(out: Path, config: RunConfig, transfer_size: int = 0) -> dict[str, Any] | None:
    """Our student's test F1 and wall times: from ``xtremedistil distil`` (metrics.json) or, failing that, the
    D4.2 cell of ``xtremedistil experiment`` (results.json) closest to this config."""
    metrics = read_json(out / "metrics.json") if (out / "metrics.json").is_file() else {}
    if "test" in metrics.get("student", {}):
        return {
            "label": f"ours ({config.distil.strategy})",
            "source": f"`xtremedistil distil`, {out / 'metrics.json'}",
            "test": metrics["student"]["test"],
            "teacher": metrics.get("teacher", {}).get("test"),
            "train_seconds": sum(s.get("seconds", 0.0) for s in metrics.get("stages", [])),
            "cache_seconds": metrics.get("cache", {}).get("seconds"),
            "total_seconds": metrics.get("distil_job_seconds"),
            "total_what": "the whole `distil` job (data, teacher cache, stages, evaluation, speed)",
        }
    if not (out / "results.json").is_file():
        return None
    cells = [r for r in read_json(out / "results.json") if r.get("cell", {}).get("strategy") == "D4.2"]
    if not cells:
        return None
    wanted = {
        "transfer_size": transfer_size,
        "labeled_size": 0,
        "layer": config.distil.layer,
        "student": config.student.preset,
        "seed": config.seed,
    }
    cell = max(cells, key=lambda r: sum(r["cell"].get(k) == v for k, v in wanted.items()))
    scores = out / "teachers" / "labeled-all" / "teacher_scores.json"
    return {
        "label": "ours (D4.2)",
        "source": f"`xtremedistil experiment`, cell {cell['key']} of {out / 'results.json'}",
        "test": _from_cell(cell),
        "teacher": read_json(scores).get("test") if scores.is_file() else None,
        "train_seconds": sum(s.get("seconds", 0.0) for s in cell.get("stages", [])),
        "cache_seconds": None,
        "total_seconds": cell.get("seconds"),
        "total_what": "the experiment cell (stages, evaluation, speed; the shared teacher cache not included)",
    }


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def section(
    args: argparse.Namespace,
    config: RunConfig,
    run_dir: Path,
    prepared: Prepared,
    student: BiLSTMStudent,
    pool: Pool,
    summary: dict[str, Any],
    test: dict[str, Any],
    ours: dict[str, Any] | None,
    total_seconds: float,
) -> str:
    labeled = int(np.sum(pool.indices < prepared.n_train))
    s = student.config
    columns = {"TextBrewer GeneralDistiller": test}
    if ours:
        columns[ours["label"]] = ours["test"]
        if ours.get("teacher"):
            columns["teacher"] = ours["teacher"]
    sample = (
        f" **Subsampled to {len(pool):,} windows (`--max-windows`): a check, not the benchmark.**"
        if args.max_windows
        else ""
    )
    epochs = ", ".join(f"{e['epoch']}: {e['dev_mean_f1']:.2f}" for e in summary["epochs"])
    walls = [
        "| wall time | TextBrewer | " + (ours["label"] if ours else "ours") + " |",
        "|---|---:|---:|",
        f"| teacher outputs | online, inside training ({args.epochs} × {len(pool):,} windows) | "
        + (f"cached once: {_minutes(ours['cache_seconds'])}" if ours else "–")
        + " |",
        f"| student training, incl. dev evaluation | {_minutes(summary['train_seconds'])} | "
        + (f"{_minutes(ours['train_seconds'])} (all stages)" if ours else "–")
        + " |",
        f"| whole job | {_minutes(total_seconds)} | "
        + (_minutes(ours["total_seconds"]) if ours else "–")
        + " |",
    ]
    ours_note = (
        f"Ours: {ours['source']}; its whole job is {ours['total_what']}. "
        if ours
        else "Our results were not found in the run folder (run `xtremedistil distil` for them). "
    )
    return (
        f"## TextBrewer baseline: same teacher, same student (`{args.config}`)\n\n"
        + provenance(total_seconds)
        + f"\nTextBrewer {TEXTBREWER_VERSION} (`GeneralDistiller`) distils the teacher fine-tuned by xtremedistil "
        f"(`{teacher_dir(run_dir) if not config.teacher.run else teacher_dir(Path(config.teacher.run))}`, "
        f"{config.teacher.name}) into the same student as ours: BiLSTM E={s.embedding_dim}, H={s.hidden_size}, the "
        f"same trimmed vocabulary ({s.vocab_size - 2:,} sub-words) and SVD initialisation, "
        f"{student.parameter_counts()['total']:,} parameters. Data: the same windows, {len(pool):,} in all "
        f"({labeled:,} labeled train windows + {len(pool) - labeled:,} transfer windows), batches of "
        f"{args.batch_size}; the teacher runs online on every batch, as TextBrewer does.{sample}\n\n"
        f"Recipe (TextBrewer's recommended one, one stage): soft labels (`kd_loss_type='ce'`, temperature "
        f"{args.temperature:g}, weight 1) + hard labels on the gold first sub-words of the labeled windows "
        f"(`hard_label_weight=1`) + `hidden_mse` between the student's BiLSTM output ({2 * s.hidden_size} dims) "
        f"and the teacher's `hidden_states[{config.distil.layer}]` through `proj=['linear', {2 * s.hidden_size}, "
        f"{s.projection_dim}]` (weight 1; its {summary['projection_params']:,} parameters are dropped after "
        f"training); every loss over real sub-words only. AdamW, lr {args.lr:g}, linear warm-up (10%) and decay, "
        f"{args.epochs} epochs ({summary['steps']:,} steps). Dev mean F1 after each epoch ({epochs}); the best "
        f"epoch's weights (epoch {summary['best_epoch']}) are kept, test is never used for selection.\n\n"
        "Test F1 per language (entity-level span F1, mean ± std over languages):\n\n"
        + markdown_table(columns)
        + "\n"
        + "\n".join(walls)
        + "\n\n"
        + ours_note
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=Path("configs/wikiann.toml"))
    parser.add_argument("--epochs", type=int, default=3)
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
    parser.add_argument("--output-section", default="textbrewer")
    args = parser.parse_args()
    if args.epochs < 1 or (args.max_windows is not None and args.max_windows < 1):
        parser.error("--epochs and --max-windows must be at least 1")
    start = time.perf_counter()
    config = load_config(args.config)
    args.batch_size = args.batch_size or config.distil.batch_size
    args.temperature = args.temperature or config.distil.temperature
    args.lr = args.lr or config.distil.lr
    out = Path(config.output_dir)
    run_config, run_dir = locate_run(config, args.config)
    tb = import_textbrewer()

    reporter = RichReporter(Console(stderr=True))
    setup_torch(run_config.threads, run_config.seed)
    prepared = prepare(run_config, run_dir, reporter)
    student = build_student(run_config, prepared)
    pool = pools(prepared, True)["labeled+transfer"]
    if args.transfer_size:
        sample = transfer_subset(prepared, args.transfer_size, run_config.seed)
        pool = dataclasses.replace(pool, indices=np.concatenate([np.arange(prepared.n_train), sample]))
    pool = subsample(pool, args.max_windows, run_config.seed)
    reporter.info(
        f"textbrewer {tb.__version__}: {len(pool):,} windows x {args.epochs} epochs, teacher online; "
        f"student {student.parameter_counts()['total']:,} parameters"
    )
    summary = distil_with_textbrewer(tb, run_config, prepared, student, pool, args, reporter)
    scores = evaluate_dev_test(student, prepared, run_config, reporter, "textbrewer student")
    total = time.perf_counter() - start
    reporter.info(
        f"textbrewer: test mean F1 {scores['test']['mean_f1']:.2f} ± {scores['test']['std_f1']:.2f}, "
        f"training {summary['train_seconds'] / 60:.1f} min, total {total / 60:.1f} min"
    )

    folder = out / "textbrewer"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in student.state_dict().items()}, str(folder / "student.safetensors")
    )
    write_json(
        folder / "metrics.json",
        {
            "textbrewer": tb.__version__,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "windows": len(pool),
            **summary,
            "student": scores,
            "total_seconds": total,
        },
    )
    ours = our_results(out, config, args.transfer_size)
    write_section(
        args.output_section,
        section(args, run_config, run_dir, prepared, student, pool, summary, scores["test"], ours, total),
    )


if __name__ == "__main__":
    main()
