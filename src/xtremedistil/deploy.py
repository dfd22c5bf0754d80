"""The teacher's own best deployment, and the side-by-side benchmark of ``xtremedistil benchmark RUN_DIR``.

``export_teacher`` writes the run's teacher to ONNX (fp32 and int8, in the run's ``teacher/`` folder, which
for a ready teacher holds only the run's record of it), so the student is compared with the teacher at its
fastest on this CPU, not only with PyTorch. ``run_benchmark`` measures, in one process with the same
threads, warm-up and fixed length-bucketed batches of the dev set's real windows: teacher PyTorch fp32,
teacher ONNX Runtime int8, student PyTorch fp32, student ONNX Runtime fp32 and int8; throughput at batch
32, latency at batch 1 (median, p95), and each variant's dev F1.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import torch

from xtremedistil.batching import SpecialIds
from xtremedistil.errors import XtremeDistilError
from xtremedistil.io import read_json, write_json, write_text
from xtremedistil.progress import Reporter, SilentReporter
from xtremedistil.student.export import (
    MANIFEST,
    ONNX_FILES,
    PARITY_TOLERANCE,
    LogitsGraph,
    OnnxForward,
    export_student,
    onnx_export,
    quantize_int8,
    session,
)
from xtremedistil.teacher.model import Teacher

BENCHMARK_FILE = "benchmark.json"


def _teacher_example(teacher: Teacher) -> tuple[torch.Tensor, torch.Tensor]:
    special = SpecialIds.from_tokenizer(teacher.tokenizer)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, len(teacher.tokenizer), (2, 9), generator=generator)
    ids[:, 0] = special.cls
    ids[0, -1] = special.sep
    ids[1, 5], ids[1, 6:] = special.sep, special.pad
    mask = (torch.arange(9)[None] < torch.tensor([[9], [6]])).long()
    return ids, mask


def export_teacher(teacher: Teacher, folder: Path, quantize: bool = True) -> dict[str, Any]:
    """ONNX fp32 (and int8) of ``teacher`` into ``folder`` with a manifest; fp32 checked against PyTorch."""
    graph = LogitsGraph(teacher).eval()
    ids, mask = _teacher_example(teacher)
    fp32 = onnx_export(graph, (ids, mask), folder / ONNX_FILES["fp32"], {"input_ids": 2, "attention_mask": 2})
    with torch.no_grad():
        reference = graph(ids, mask).numpy()
    out = session(fp32).run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    difference = float(abs(out - reference)[mask.bool().numpy()].max())
    if difference > 1e-3:  # twelve layers of fp32 reordering: looser than the student's 1e-4
        raise XtremeDistilError(
            f"the teacher's ONNX export differs from PyTorch by {difference:.2e}", path=folder
        )
    files = {"fp32": {"file": fp32.name, "max_abs_difference_to_torch": difference}}
    if quantize:
        int8 = quantize_int8(fp32, folder / ONNX_FILES["int8"])
        files["int8"] = {"file": int8.name}
    manifest = {"inputs": ["input_ids", "attention_mask"], "labels": teacher.labels, "files": files}
    write_json(folder / MANIFEST, manifest)
    return manifest


def run_benchmark(run_dir: Path, reporter: Reporter | None = None) -> dict[str, Any]:
    """Export what is missing, then measure the five variants and their dev F1; writes ``benchmark.json``
    (and the report's benchmark section) into the run folder."""
    from xtremedistil.data.sources import load_labeled_all
    from xtremedistil.evaluate import eval_set, evaluate_set
    from xtremedistil.pipeline import find_teacher_folder, run_config_of
    from xtremedistil.segment import model_segmenter
    from xtremedistil.speed import measure_model
    from xtremedistil.student.saved import load_student, student_folder
    from xtremedistil.teacher.model import load_teacher
    from xtremedistil.training import setup_torch

    reporter = reporter or SilentReporter()
    run_dir = Path(run_dir)
    student_dir = student_folder(run_dir)
    config = run_config_of(run_dir)
    if student_dir is None or config is None:
        raise XtremeDistilError(
            "not a finished distil run folder (config.toml and student/ needed)", path=run_dir
        )
    if config.task != "ner":
        raise XtremeDistilError(
            "`xtremedistil benchmark` compares NER runs so far; a classification run's report has teacher and "
            "student speed, and `xtremedistil export` + `predict --backend onnx|onnx-int8` run its student on "
            "ONNX Runtime",
            path=run_dir,
        )
    threads = setup_torch(config.threads, config.seed)
    teacher_dir = find_teacher_folder(run_dir)
    teacher = load_teacher(teacher_dir)
    onnx_dir = run_dir / "teacher" if teacher.is_ready else teacher_dir
    if "int8" not in (
        read_json(onnx_dir / MANIFEST).get("files", {}) if (onnx_dir / MANIFEST).is_file() else {}
    ):
        reporter.info(f"exporting the teacher to ONNX (fp32, int8) in {onnx_dir} ...")
        export_teacher(teacher, onnx_dir)
    manifest = read_json(student_dir / MANIFEST) if (student_dir / MANIFEST).is_file() else {}
    if "int8" not in manifest.get("files", {}):
        reporter.info("exporting the student to ONNX (fp32, int8) ...")
        export_student(student_dir, quantize=True)

    predictor = load_student(student_dir, backend="torch")
    corpus = load_labeled_all(config.data.labeled, seed=config.seed)
    dev = corpus.split("dev")
    if not dev:
        raise XtremeDistilError("the run's data has no dev split to benchmark on", path=run_dir)
    task = predictor.task
    special = SpecialIds.from_tokenizer(teacher.tokenizer)
    data = eval_set(
        task,
        dev,
        teacher.tokenizer,
        int(teacher.meta["max_length"]),
        model_segmenter(teacher.tokenizer, teacher.meta),
    )
    variants = {
        "teacher PyTorch fp32": lambda b: teacher(b).logits,
        "teacher ONNX Runtime int8": OnnxForward(onnx_dir, "int8", threads),
        "student PyTorch fp32": predictor.forward,
        "student ONNX Runtime fp32": OnnxForward(student_dir, "fp32", threads),
        "student ONNX Runtime int8": OnnxForward(student_dir, "int8", threads),
    }
    s = config.speed
    rows: dict[str, dict[str, Any]] = {}
    tags: dict[str, list[list[str]]] = {}
    for name, forward in variants.items():
        reporter.info(f"benchmark: {name}")
        speed = measure_model(
            forward,
            data.encoded,
            special,
            **s.measure_kwargs(),
        )
        scores, tags[name] = evaluate_set(
            forward,
            task,
            data,
            special,
            batch_size=config.evaluation.batch_size,
            scheme=config.evaluation.scheme,
        )
        rows[name] = {
            **speed,
            "dev_mean_f1": scores["mean_f1"],
            "dev_raw_mean_f1": scores["end_to_end"]["mean_f1"],
        }
    for name, row in rows.items():  # each export against its own PyTorch model, unit by unit
        reference = tags[name.split()[0] + " PyTorch fp32"]
        pairs = [
            (a, b) for x, y in zip(tags[name], reference, strict=True) for a, b in zip(x, y, strict=True)
        ]
        row["same_tags_as_pytorch"] = sum(a == b for a, b in pairs) / max(len(pairs), 1)
    base = rows["teacher PyTorch fp32"]
    for row in rows.values():
        row["throughput_vs_teacher_torch"] = row["throughput"] / base["throughput"]
        row["latency_vs_teacher_torch"] = base["latency_ms_median"] / row["latency_ms_median"]
        row["throughput_vs_teacher_int8"] = (
            row["throughput"] / rows["teacher ONNX Runtime int8"]["throughput"]
        )
    result = {
        "rows": rows,
        "threads": threads,
        "windows": f"dev split, {len(data.encoded):,} windows, length-bucketed",
        "measured": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "parity_tolerance": PARITY_TOLERANCE,
    }
    write_json(run_dir / BENCHMARK_FILE, result)
    write_text(run_dir / "benchmark.md", benchmark_markdown(result))
    _plot(result, run_dir / "benchmark.png")
    if (run_dir / "metrics.json").is_file():
        from xtremedistil.report import write_report

        write_report(run_dir)  # the report gains the benchmark section
    return result


def benchmark_markdown(result: dict[str, Any]) -> str:
    lines = [
        "## Deployment benchmark (same process, same threads)\n",
        f"{result['windows']}; batch {next(iter(result['rows'].values()))['batch_size']} throughput, batch-1 "
        f"latency; {result['threads']} threads; {result['measured']}.\n",
        "| variant | windows/s | × teacher PyTorch | × teacher int8 | latency ms (median / p95) | × teacher | "
        "dev F1 | dev F1 raw text | same tags as its PyTorch model |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["rows"].items():
        lines.append(
            f"| {name} | {r['throughput']:.0f} | {r['throughput_vs_teacher_torch']:.1f}× | "
            f"{r['throughput_vs_teacher_int8']:.1f}× | {r['latency_ms_median']:.2f} / {r['latency_ms_p95']:.2f} | "
            f"{r['latency_vs_teacher_torch']:.1f}× | {r['dev_mean_f1']:.2f} | {r['dev_raw_mean_f1']:.2f} | "
            f"{100 * r['same_tags_as_pytorch']:.2f}% |"
        )
    return "\n".join(lines) + "\n"


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xtremedistil.io import atomic_path

    names = list(result["rows"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, key, title in (
        (axes[0], "throughput", "throughput at batch 32 (windows/s, log)"),
        (axes[1], "latency_ms_median", "latency at batch 1 (ms, median, log)"),
    ):
        values = [result["rows"][n][key] for n in names]
        ax.barh(names, values, color=["#888"] * 2 + ["#2a7"] * 3)
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.invert_yaxis()
    axes[1].set_yticklabels([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
