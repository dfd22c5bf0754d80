"""``xtremedistil experiment``: a grid of strategies x transfer-set sizes x labeled-set sizes x teacher layers x
student sizes x seeds, on one fine-tuned teacher (per labeled size) and one cache (per teacher and layer).

Every cell writes ``cells/<key>/result.json`` atomically when it finishes; a rerun skips finished cells, so
an interrupted grid continues where it stopped and adding a cell to the config runs only that cell.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from xtremedistil import distributed
from xtremedistil.config import TRANSFORMER_STUDENT, RunConfig, config_from_dict, config_to_toml
from xtremedistil.distillation import (
    Prepared,
    build_student,
    evaluate_split,
    pools,
    prepare,
    representation_layer,
    run_schedule,
    schedule_settings,
    student_meta,
)
from xtremedistil.errors import ConfigError, XtremeDistilError
from xtremedistil.io import read_json, write_json, write_text
from xtremedistil.pipeline import evaluate_model, scored_as
from xtremedistil.progress import Reporter, SilentReporter
from xtremedistil.segment import model_segmenter
from xtremedistil.speed import measure_model, parameter_counts
from xtremedistil.student.distil import DevSet, Pool
from xtremedistil.student.saved import load_student_model, save_student
from xtremedistil.student.schedule import plan
from xtremedistil.tasks.registry import headline, per_language, summarise_languages
from xtremedistil.training import setup_torch

RESULT = "result.json"


@dataclass(frozen=True)
class Cell:
    strategy: str
    transfer_size: int  # 0 = the whole transfer set
    labeled_size: int  # labeled train sentences per language; 0 = as configured
    layer: int | None  # None = the teacher's middle layer
    student: str  # preset name, "E,H" (a BiLSTM's sizes) or a transformer's "t<layers>-<hidden>[-e<dim>]"
    seed: int

    @property
    def key(self) -> str:
        return (
            f"{self.strategy}_t{self.transfer_size}_l{self.labeled_size}"
            f"_layer{self.layer if self.layer is not None else 'mid'}"
            f"_{self.student.replace(',', 'x')}_s{self.seed}"
        )


def grid(config: RunConfig) -> list[Cell]:
    """The cells of the config: the full grid, then the extra cells, without duplicates, in a stable order."""
    e = config.experiment
    layers = e.layers or [config.distil.layer]
    cells = [
        Cell(strategy, t, n, layer, student, seed)
        for n in e.labeled_sizes
        for layer in layers
        for t in e.transfer_sizes
        for student in e.students
        for strategy in e.strategies
        for seed in e.seeds
    ]
    for x in e.extra:
        cells.append(
            Cell(
                x.strategy,
                x.transfer_size if x.transfer_size is not None else e.transfer_sizes[0],
                x.labeled_size if x.labeled_size is not None else e.labeled_sizes[0],
                x.layer if x.layer is not None else layers[0],
                x.student or e.students[0],
                x.seed if x.seed is not None else e.seeds[0],
            )
        )
    return list(dict.fromkeys(cells))


def cell_config(base: RunConfig, cell: Cell, run_dir: Path) -> RunConfig:
    """The run config of a cell. Data, teacher and caches follow the base seed; the cell seed is the student's."""
    tree = base.model_dump(exclude_none=True)
    tree["distil"].update(strategy=cell.strategy, layer=cell.layer, seed=cell.seed)
    tree["experiment"]["students"] = [cell.student]  # the cell's own: its config is checked for its student
    if "," in cell.student:
        try:
            e, h = (int(v) for v in cell.student.split(","))
        except ValueError:
            raise ConfigError(
                f"experiment.students: {cell.student!r} is neither a preset nor 'E,H'"
            ) from None
        tree["student"].update(embedding_dim=e, hidden_size=h)
    elif re.match(TRANSFORMER_STUDENT, cell.student):
        tree["student"].update(kind="transformer", preset=cell.student)
    else:
        tree["student"]["preset"] = cell.student
    if cell.labeled_size and not base.teacher.fine_tune:
        raise ConfigError(
            "experiment.labeled_sizes: a ready teacher (teacher.fine_tune = false) is not fine-tuned here, so "
            "it cannot be fine-tuned again on fewer labels; use labeled_sizes = [0]"
        )
    if cell.labeled_size:
        # fewer labels: a teacher fine-tuned on exactly those labels (teacher.run holds the full-label one)
        for source in tree["data"]["labeled"]:
            source["max_train"] = cell.labeled_size
        tree["teacher"].pop("run", None)
    tree["output_dir"] = str(run_dir / "teachers" / f"labeled-{cell.labeled_size or 'all'}")
    tree["cache"]["dir"] = base.cache.dir or str(run_dir / "cache")
    return config_from_dict(tree, "(experiment cell)")


def transfer_subset(prepared: Prepared, size: int, seed: int) -> np.ndarray:
    """Indices of a seeded sample of ``size`` transfer windows (0 = all); nested across sizes."""
    transfer = np.arange(prepared.n_train, len(prepared.windows))
    if size <= 0 or size >= len(transfer):
        return transfer
    return np.sort(np.random.default_rng(seed).permutation(transfer)[:size])


class Experiment:
    """Runs the cells of a config; ``prepared`` data, teachers and caches are shared between cells."""

    def __init__(self, config: RunConfig, reporter: Reporter | None = None) -> None:
        self.config = config
        self.reporter = reporter or SilentReporter()
        self.run_dir = Path(config.output_dir)
        self._prepared: dict[tuple[int, int], Prepared] = {}

    def prepared(self, cell: Cell) -> tuple[RunConfig, Prepared]:
        """The cell's own config, and the data/teacher/cache it shares with cells of equal labels and layer."""
        config = cell_config(self.config, cell, self.run_dir)
        key = (cell.labeled_size, cell.layer)
        if key not in self._prepared:
            teacher_run = Path(config.output_dir)
            teacher_run.mkdir(parents=True, exist_ok=True)
            self._prepared = {
                k: v for k, v in self._prepared.items() if k[0] == cell.labeled_size
            }  # free memory
            self._prepared[key] = prepare(config, teacher_run, self.reporter)
        return config, self._prepared[key]

    def run(self) -> list[dict[str, Any]]:
        """Run the cells not finished yet. Under torchrun the ranks first fine-tune the teachers and build
        the caches the cells need together (DDP, sharded caches), then each runs its share of the cells on
        its own; rank 0 returns the rows (the other ranks an empty list)."""
        from xtremedistil.pipeline import lock_run_dir

        context = distributed.current()

        def claim() -> None:  # one process (rank 0) holds the experiment folder
            lock_run_dir(self.run_dir)
            write_text(self.run_dir / "config.toml", config_to_toml(self.config))

        context.on_main(claim)
        cells = grid(self.config)
        todo = [c for c in cells if not (self.cell_dir(c) / RESULT).is_file()]
        self.reporter.info(
            f"experiment: {len(cells)} cells, {len(cells) - len(todo)} finished, {len(todo)} to run"
        )
        if context.distributed:
            for cell in {(c.labeled_size, c.layer): c for c in todo}.values():
                config, prepared = self.prepared(cell)  # together: the teacher and its caches
                context.on_main(partial(self.teacher_scores, cell, config, prepared))  # scored once
            with distributed.on_its_own():
                for cell in context.shard(todo):
                    self._run_cell(cell, cells)
            context.barrier()
            return self.results() if context.is_main else []
        for cell in cells:
            if cell not in todo:
                self.reporter.info(
                    f"[{cells.index(cell) + 1}/{len(cells)}] {cell.key}: finished earlier, skipped"
                )
                continue
            self._run_cell(cell, cells)
        return self.results()

    def _run_cell(self, cell: Cell, cells: list[Cell]) -> None:
        k = cells.index(cell) + 1
        self.reporter.info(f"[{k}/{len(cells)}] {cell.key}")
        result = self.run_cell(cell)
        write_json(self.cell_dir(cell) / RESULT, result)
        self.reporter.info(
            f"[{k}/{len(cells)}] {cell.key}: test mean {result['metric']} {result['test_mean']:.2f} "
            f"({result['retained'] * 100:.1f}% of the teacher) in {result['seconds'] / 60:.1f} min"
        )

    def refresh(self) -> int:
        """Bring the finished cells' rows up to date from their saved students, without training again:
        the raw-text test F1 of rows written before rows recorded it (joint cells), and the speed of student
        and teacher measured again, paired, with the config's ``[speed]`` (``speed_refreshed`` says when).
        Returns the number of cells refreshed."""
        done = [c for c in grid(self.config) if (self.cell_dir(c) / RESULT).is_file()]
        for k, cell in enumerate(done, 1):
            path = self.cell_dir(cell) / RESULT
            row = neutral_row(read_json(path))
            folders = sorted(self.cell_dir(cell).glob("*/student"))
            if not folders:
                self.reporter.info(f"[{k}/{len(done)}] {cell.key}: no saved student, left as it is")
                continue
            config, prepared = self.prepared(cell)
            students = [load_student_model(folder)[0].eval() for folder in folders]
            if prepared.task.name == "ner" and row.get("test_raw_mean") is None and cell.strategy != "D0":
                scores = self._evaluate(
                    students[0], config, prepared, {"test": prepared.corpus.split("test")}
                )
                if abs(headline(scores["test"]) - row["test_mean"]) > 1e-6:
                    raise XtremeDistilError(
                        f"the saved student scores {headline(scores['test']):.4f} at gold words, the row says "
                        f"{row['test_mean']:.4f}: not the cell's student or not its data",
                        path=path,
                    )
                row["test_raw_mean"] = scores["test"]["end_to_end"]["mean_f1"]
                row["teacher_test_raw_mean"] = self.teacher_scores(cell, config, prepared)["test"][
                    "end_to_end"
                ]["mean_f1"]
            row |= self.speed_fields(students, prepared) | {
                "speed_refreshed": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            }
            write_json(path, row)
            self.reporter.info(
                f"[{k}/{len(done)}] {cell.key}: {row['throughput_speedup']:.1f}x the teacher's throughput"
                + (f", raw-text test F1 {row['test_raw_mean']:.2f}" if row.get("test_raw_mean") else "")
            )
        return len(done)

    def cell_dir(self, cell: Cell) -> Path:
        return self.run_dir / "cells" / cell.key

    def results(self) -> list[dict[str, Any]]:
        rows = [
            read_json(self.cell_dir(c) / RESULT)
            for c in grid(self.config)
            if (self.cell_dir(c) / RESULT).is_file()
        ]
        for row in rows:  # cells finished before per-language teacher scores were part of a row
            if "teacher_test_f1" not in row and "teacher_test_by_language" not in row:
                labeled = row["cell"]["labeled_size"] or "all"
                path = self.run_dir / "teachers" / f"labeled-{labeled}" / "teacher_scores.json"
                if path.is_file():
                    row["teacher_test_f1"] = per_language(read_json(path)["test"])
        return [neutral_row(row) for row in rows]

    def teacher_scores(self, cell: Cell, config: RunConfig, prepared: Prepared) -> dict[str, Any]:
        path = Path(config.output_dir) / "teacher_scores.json"
        scheme = config.evaluation.scheme
        if not path.is_file() or not scored_as(read_json(path), scheme, reading=prepared.task.reading):
            write_json(path, evaluate_model(prepared.teacher, prepared.corpus, self.reporter, scheme=scheme))
        return read_json(path)

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        start = time.perf_counter()
        config, prepared = self.prepared(cell)
        teacher = self.teacher_scores(cell, config, prepared)
        all_pools = pools(prepared, config.data.transfer_includes_train)
        subset = transfer_subset(prepared, cell.transfer_size, self.config.seed)
        train_part = np.arange(prepared.n_train) if config.data.transfer_includes_train else np.arange(0)
        all_pools["transfer"] = Pool(prepared.windows, prepared.cache, np.concatenate([train_part, subset]))
        all_pools["labeled+transfer"] = Pool(
            prepared.windows, prepared.cache, np.concatenate([np.arange(prepared.n_train), subset])
        )
        if cell.strategy == "D0":
            scores, students, stages = self._per_language(cell, config, prepared, all_pools)
        else:
            scores, students, stages = self._joint(cell, config, prepared, all_pools)
        counts = [parameter_counts(student, student.embedding) for student in students]
        params = {key: sum(c[key] for c in counts) for key in ("total", "embedding")}
        teacher_params = parameter_counts(
            prepared.teacher.model, prepared.teacher.model.get_input_embeddings()
        )
        test_mean, teacher_test = headline(scores["test"]), headline(teacher["test"])
        return {
            "cell": asdict(cell) | {"layer": representation_layer(config, prepared.teacher)},
            "key": cell.key,
            "metric": prepared.task.metric,
            "transfer_windows": int(len(subset)),
            "labeled_windows": int(prepared.n_train),
            "dev_mean": headline(scores["dev"]),
            "test_mean": test_mean,
            "test_std": float(scores["test"].get("std", scores["test"].get("std_f1", 0.0))),
            "test_by_language": per_language(scores["test"]),
            "teacher_test_mean": teacher_test,
            # NER: F1 of the entities found in the raw text (what predict users get), beside gold words
            "test_raw_mean": scores["test"].get("end_to_end", {}).get("mean_f1"),
            "teacher_test_raw_mean": teacher["test"].get("end_to_end", {}).get("mean_f1"),
            "teacher_test_by_language": per_language(teacher["test"]),
            "teacher_dev_mean": headline(teacher["dev"]),
            "retained": test_mean / teacher_test if teacher_test else 0.0,
            "students": len(students),
            "params": params["total"],
            "embedding_params": params["embedding"],
            "compression": teacher_params["total"] / params["total"],
            **self.speed_fields(students, prepared),
            "teacher_params": teacher_params["total"],
            "family": config.student.kind,
            "stages": [
                {
                    "stage": s["stage"],
                    "dev_mean": s["dev_mean"],
                    "epochs_run": s["epochs_run"],
                    "seconds": s["seconds"],
                }
                for s in stages
            ],
            "seconds": time.perf_counter() - start,
        }

    def speed_fields(self, students: list[Any], prepared: Prepared) -> dict[str, Any]:
        """A row's speed: ``speed.rounds`` paired rounds, each the students' speed then the teacher's on the
        same windows in this process; the row takes the round of the median throughput ratio and lists
        every round's ratio (how far apart they are is the measurement's own spread)."""
        rounds = []
        for _ in range(self.config.speed.rounds):
            student, teacher = self.student_speed(students, prepared), self.teacher_speed(prepared)
            rounds.append((student["throughput"] / teacher["throughput"], student, teacher))
        ratio, speed, teacher_speed = sorted(rounds, key=lambda r: r[0])[len(rounds) // 2]
        return {
            "throughput": speed["throughput"],
            "latency_ms": speed["latency_ms_median"],
            "latency_ms_p95": speed["latency_ms_p95"],
            "throughput_speedup": ratio,
            "throughput_speedup_rounds": [r[0] for r in rounds],
            "teacher_throughput": teacher_speed["throughput"],  # measured in this process, as the students
            "teacher_latency_ms": teacher_speed["latency_ms_median"],
        }

    def student_speed(self, students: list[Any], prepared: Prepared) -> dict[str, float]:
        """Speed of a cell's students on the dev windows. D0's students (one per language, same size) each
        serve their own language, so a request meets one of them: the mean over students of each measure
        (while its parameters are the sum: all of them must be deployed)."""
        speeds = [
            measure_model(
                lambda b, student=student: student(b).logits,
                prepared.dev.pool.encoded,
                prepared.special,
                **self.config.speed.measure_kwargs(),
            )
            for student in students
        ]
        return {key: float(np.mean([m[key] for m in speeds])) for key in speeds[0]}

    def teacher_speed(self, prepared: Prepared) -> dict[str, float]:
        """The teacher's speed on the same windows, measured again for every cell right after its students:
        a ratio of two measurements taken minutes apart on a shared machine moves with whatever else ran."""
        s = self.config.speed
        return measure_model(
            lambda b: prepared.teacher(b).logits,
            prepared.dev.pool.encoded,
            prepared.special,
            **s.measure_kwargs(latency_samples=min(s.latency_samples, 20)),
        )

    def _train(
        self,
        cell: Cell,
        config: RunConfig,
        prepared: Prepared,
        stage_pools: dict[str, Pool],
        dev: DevSet,
        name: str,
    ):
        student = build_student(config, prepared)
        stages = run_schedule(
            config,
            stage_pools,
            dev,
            student,
            plan(schedule_settings(config)),
            self.cell_dir(cell) / name,
            self.reporter,
        )
        save_student(
            student,
            prepared.teacher.tokenizer,
            prepared.teacher.labels,
            self.cell_dir(cell) / name / "student",
            student_meta(prepared, config),
        )
        return student.eval(), stages

    def _evaluate(
        self, student: Any, config: RunConfig, prepared: Prepared, sentences_by_split: dict[str, list]
    ) -> dict[str, Any]:
        return {
            split: evaluate_split(
                lambda b: student(b).logits, prepared, sentences, config, SilentReporter(), split
            )
            for split, sentences in sentences_by_split.items()
        }

    def _joint(self, cell, config, prepared, stage_pools):
        student, stages = self._train(cell, config, prepared, stage_pools, prepared.dev, "joint")
        split = {s: prepared.corpus.split(s) for s in ("dev", "test")}
        return self._evaluate(student, config, prepared, split), [student], stages

    def _per_language(self, cell, config, prepared, stage_pools):
        """D0: one student per language, each on its own language's labels, scored on its own language."""
        per_split: dict[str, dict[str, Any]] = {"dev": {}, "test": {}}
        students, stages = [], []
        for lang in prepared.corpus.languages:
            labeled = np.array([i for i in range(prepared.n_train) if prepared.windows[i].lang == lang])
            own = {**stage_pools, "labeled": Pool(prepared.windows, prepared.cache, labeled)}
            dev = _language_dev(prepared, lang)
            student, lang_stages = self._train(cell, config, prepared, own, dev, f"lang-{lang}")
            scores = self._evaluate(
                student,
                config,
                prepared,
                {s: prepared.corpus.splits[lang].get(s, []) for s in ("dev", "test")},
            )
            for s in ("dev", "test"):
                per_split[s][lang] = scores[s]["languages"][lang]
            students.append(student)
            stages += [{**x, "stage": f"{lang} {x['stage']}"} for x in lang_stages]
        out = {s: summarise_languages(prepared.task, langs) for s, langs in per_split.items()}
        return out, students, stages


NEUTRAL = {  # keys of rows written before classification existed -> the task-neutral keys
    "dev_mean_f1": "dev_mean",
    "test_mean_f1": "test_mean",
    "test_std_f1": "test_std",
    "test_f1": "test_by_language",
    "teacher_test_mean_f1": "teacher_test_mean",
    "teacher_test_f1": "teacher_test_by_language",
    "teacher_dev_mean_f1": "teacher_dev_mean",
}


def neutral_row(row: dict[str, Any]) -> dict[str, Any]:
    """A result row with the task-neutral keys (``test_mean`` ...; ``metric`` names what they measure),
    also for rows an older version wrote with F1 keys."""
    row = dict(row)
    for old, new in NEUTRAL.items():
        if old in row and new not in row:
            row[new] = row.pop(old)
    row.setdefault("metric", "f1")
    row["stages"] = [
        {**s, "dev_mean": s.get("dev_mean", s.get("dev_mean_f1"))} for s in row.get("stages", [])
    ]
    return row


def _language_dev(prepared: Prepared, lang: str) -> DevSet:
    """One language's dev sentences (labels only: D0 reads no teacher output)."""
    teacher, dev = prepared.teacher, prepared.dev
    data = prepared.task.eval_set(
        [s for s in dev.data.gold if s.lang == lang],
        teacher.tokenizer,
        int(teacher.meta["max_length"]),
        model_segmenter(teacher.tokenizer, teacher.meta),
    )
    pool = Pool(data.encoded, None, np.arange(len(data.encoded)))
    return DevSet(data, pool, prepared.task, prepared.special, dev.scheme)


def run_experiment(
    config: RunConfig, reporter: Reporter | None = None, *, refresh: bool = False
) -> list[dict[str, Any]]:
    """Run (or resume) the grid, then write results.csv/.json/.md and the plots. ``refresh``: train nothing;
    update the finished cells' rows from their saved students (``Experiment.refresh``)."""
    from xtremedistil.experiment_report import write_experiment_report

    setup_torch(config.threads, config.seed)
    context = distributed.setup(config.device)
    experiment = Experiment(config, reporter)
    if refresh:
        if context.distributed:
            raise ConfigError("experiment --refresh runs in one process (it measures speed)")
        experiment.refresh()
        results = experiment.results()
    else:
        results = experiment.run()
    if context.is_main:
        write_experiment_report(Path(config.output_dir), results)
    return results


def select(
    results: list[dict[str, Any]],
    *,
    max_params: int | None = None,
    max_latency_ms: float | None = None,
    min_retention: float | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """The best cell (dev mean F1, never test) among those within the budget, and why."""
    limits = []
    results = [neutral_row(r) for r in results]
    rows = results
    if max_params is not None:
        rows = [r for r in rows if r["params"] <= max_params]
        limits.append(f"≤ {max_params:,} parameters")
    if max_latency_ms is not None:
        rows = [r for r in rows if r["latency_ms"] <= max_latency_ms]
        limits.append(f"batch-1 latency ≤ {max_latency_ms:g} ms")
    if min_retention is not None:
        rows = [r for r in rows if r["dev_mean"] >= min_retention * r["teacher_dev_mean"]]
        limits.append(f"dev {results[0]['metric']} ≥ {100 * min_retention:g}% of the teacher's")
    budget = " and ".join(limits) or "no budget"
    if not rows:
        return None, f"no cell meets the budget ({budget}) among {len(results)} cells"
    best = max(rows, key=lambda r: r["dev_mean"])
    why = (
        f"{best['key']}: highest dev mean {best['metric']} ({best['dev_mean']:.2f}) of the {len(rows)} of {len(results)} cells "
        f"within the budget ({budget}); {best['params']:,} parameters, {best['latency_ms']:.2f} ms at batch 1, "
        f"{best['throughput']:.0f} windows/s at batch 32"
    )
    return best, why


def save_selection(run_dir: Path, best: dict[str, Any], why: str) -> Path:
    """Copy the chosen cell's student to ``selected-student``; for D0 (one student per language) every
    language's student, as ``selected-student/<lang>``."""
    import shutil

    cell_dir = run_dir / "cells" / best["key"]
    target = run_dir / "selected-student"
    tmp = run_dir / ".selected-student.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    per_language = sorted(cell_dir.glob("lang-*/student"))
    if per_language:
        for source in per_language:
            shutil.copytree(source, tmp / source.parent.name.removeprefix("lang-"))
    else:
        shutil.copytree(cell_dir / "joint" / "student", tmp)
    write_json(
        tmp / "selection.json",
        {"why": why, "cell": best["cell"], "metric": best["metric"], "dev_mean": best["dev_mean"]},
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
