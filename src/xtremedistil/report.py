"""The run report: teacher and student side by side (F1 per language, size, speed), as markdown, JSON and
PNG plots. ``xtremedistil report RUN_DIR`` rebuilds it from the run folder's metrics."""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path
from typing import Any

import torch

from xtremedistil.evaluate import markdown_table
from xtremedistil.io import atomic_path, read_json, write_json, write_text
from xtremedistil.progress import Reporter
from xtremedistil.segment import model_segmenter
from xtremedistil.speed import folder_size, measure_model, measure_tokenizer, parameter_counts
from xtremedistil.tasks.registry import headline

REPORT_MD, REPORT_JSON, REPORT_PNG = "report.md", "report.json", "report.png"
CONFUSION_PNG = "confusion.png"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def machine() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "tokenizers": _version("tokenizers"),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def measure_and_report(
    config: Any, prepared: Any, student: Any, run_dir: Path, metrics: dict[str, Any], reporter: Reporter
) -> dict[str, Any]:
    """Size and speed of teacher and student in this process (same threads), saved in the metrics."""
    from xtremedistil.pipeline import teacher_folder, update_metrics

    teacher = prepared.teacher
    gold = prepared.corpus.split("test") or prepared.corpus.split("dev")
    segment = model_segmenter(teacher.tokenizer, teacher.meta)
    sentences = prepared.task.inputs(gold, segment)
    encoded, _ = prepared.task.encode(sentences, teacher.tokenizer, int(teacher.meta["max_length"]))
    s = config.speed
    kwargs = s.measure_kwargs()
    # a ready teacher's files are where the user keeps the model; a reused one's in its own run
    teacher_files = (
        Path(teacher.meta["ready"]["source"]) if teacher.is_ready else teacher_folder(config, run_dir)
    )
    reporter.info("measuring speed (same process, same threads, warm-up, medians)...")
    speed = {
        "teacher": measure_model(lambda b: teacher(b).logits, encoded, prepared.special, **kwargs),
        "student": measure_model(lambda b: student(b).logits, encoded, prepared.special, **kwargs),
        "tokenizer": measure_tokenizer(teacher.tokenizer, [x.text or "" for x in sentences[:2000]], segment),
        "windows": "test split" if prepared.corpus.split("test") else "dev split",
    }
    size = {
        "teacher": {
            **parameter_counts(teacher.model, teacher.model.get_input_embeddings()),
            "disk_bytes": folder_size(teacher_files) if teacher_files.is_dir() else None,
        },
        "student": {
            **parameter_counts(student, student.embedding),
            "disk_bytes": folder_size(run_dir / "student"),
        },
    }
    return update_metrics(run_dir, speed=speed, size=size, machine=machine())


def summary(metrics: dict[str, Any], split: str = "test") -> dict[str, Any]:
    teacher, student = metrics["teacher"][split], metrics["student"][split]
    size, speed = metrics["size"], metrics["speed"]
    if teacher.get("metric") == "accuracy":
        t, st = headline(teacher), headline(student)
        return {
            "split": split,
            "metric": "accuracy",
            "teacher_mean_accuracy": t,
            "student_mean_accuracy": st,
            "teacher_mean_macro_f1": teacher["mean_macro_f1"],
            "student_mean_macro_f1": student["mean_macro_f1"],
            "retained": st / t if t else 0.0,
            "retained_macro_f1": student["mean_macro_f1"] / teacher["mean_macro_f1"]
            if teacher["mean_macro_f1"]
            else 0.0,
            "compression": size["teacher"]["total"] / size["student"]["total"],
            "throughput_speedup": speed["student"]["throughput"] / speed["teacher"]["throughput"],
            "latency_speedup": speed["teacher"]["latency_ms_median"] / speed["student"]["latency_ms_median"],
        }
    raw = {}
    if "end_to_end" in teacher and "end_to_end" in student:
        t, s = teacher["end_to_end"]["mean_f1"], student["end_to_end"]["mean_f1"]
        raw = {"teacher_raw_mean_f1": t, "student_raw_mean_f1": s, "retained_raw": s / t if t else 0.0}
    return {
        "split": split,
        "teacher_mean_f1": teacher["mean_f1"],
        "student_mean_f1": student["mean_f1"],
        "retained": student["mean_f1"] / teacher["mean_f1"] if teacher["mean_f1"] else 0.0,
        **raw,
        "compression": size["teacher"]["total"] / size["student"]["total"],
        "throughput_speedup": speed["student"]["throughput"] / speed["teacher"]["throughput"],
        "latency_speedup": speed["teacher"]["latency_ms_median"] / speed["student"]["latency_ms_median"],
    }


def f1_columns(teacher: dict[str, Any], student: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Teacher and student F1 at gold word boundaries, then on raw text (when scored)."""
    columns = {"teacher (gold words)": teacher, "student (gold words)": student}
    if "end_to_end" in teacher and "end_to_end" in student:
        columns |= {"teacher (raw text)": teacher["end_to_end"], "student (raw text)": student["end_to_end"]}
    return columns


def stage_table(metrics: dict[str, Any], start_f1: float | None, metric: str = "F1") -> str:
    """Table-4 style: the dev metric after each step of the schedule."""
    rows = [f"| step | losses | trainable | epochs | dev mean {metric} |", "|---|---|---|---:|---:|"]
    if start_f1 is not None:
        rows.append(f"| start | – | – | 0 | {start_f1:.2f} |")
    for s in metrics.get("stages", []):
        losses = " + ".join(s["losses"])
        value = s.get("dev_mean", s.get("dev_mean_f1"))
        rows.append(
            f"| {s['stage']} | {losses} | {', '.join(s['trainable'])} | {s['epochs_run']} | {value:.2f} |"
        )
    return "\n".join(rows) + "\n"


def _mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:.1f} MB"


def classification_tables(columns: dict[str, dict[str, Any]]) -> str:
    """Accuracy and macro-F1 per language for each model (columns), then mean ± std over languages."""
    names = list(columns)
    header = ["language"] + [f"{n} accuracy" for n in names] + [f"{n} macro-F1" for n in names]
    rows = [header, ["---"] + ["---:"] * (len(header) - 1)]
    languages = sorted({lang for r in columns.values() for lang in r["languages"]})
    for lang in languages:
        cells = [columns[n]["languages"].get(lang) for n in names]
        rows.append(
            [lang]
            + [f"{100 * c['accuracy']:.2f}" if c else "–" for c in cells]
            + [f"{100 * c['macro_f1']:.2f}" if c else "–" for c in cells]
        )
    rows.append(
        ["**mean ± std**"]
        + [f"**{columns[n]['mean_accuracy']:.2f} ± {columns[n]['std_accuracy']:.2f}**" for n in names]
        + [f"**{columns[n]['mean_macro_f1']:.2f} ± {columns[n]['std_macro_f1']:.2f}**" for n in names]
    )
    support = ", ".join(
        f"{lang} {r['support']:,}" for lang, r in next(iter(columns.values()))["languages"].items()
    )
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + f"\n\nTexts scored: {support}.\n"


def size_speed_rows(metrics: dict[str, Any], s: dict[str, Any]) -> list[str]:
    size, speed = metrics["size"], metrics["speed"]
    return [
        "| | teacher | student | ratio |",
        "|---|---:|---:|---:|",
        f"| parameters | {size['teacher']['total']:,} | {size['student']['total']:,} | {s['compression']:.1f}× |",
        f"| embedding parameters | {size['teacher']['embedding']:,} | {size['student']['embedding']:,} | "
        f"{size['teacher']['embedding'] / size['student']['embedding']:.1f}× |",
        f"| weights on disk | {_mb(size['teacher']['disk_bytes'])} | {_mb(size['student']['disk_bytes'])} | |",
        f"| throughput, batch {speed['teacher']['batch_size']} (windows/s) | {speed['teacher']['throughput']:.1f} | "
        f"{speed['student']['throughput']:.1f} | {s['throughput_speedup']:.1f}× |",
        f"| latency, batch 1, median (ms) | {speed['teacher']['latency_ms_median']:.2f} | "
        f"{speed['student']['latency_ms_median']:.2f} | {s['latency_speedup']:.1f}× |",
        f"| latency, batch 1, p95 (ms) | {speed['teacher']['latency_ms_p95']:.2f} | {speed['student']['latency_ms_p95']:.2f} | |",
    ]


def render_classification(metrics: dict[str, Any]) -> str:
    s = summary(metrics)
    m = metrics.get("machine", {})
    teacher, student = metrics["teacher"]["test"], metrics["student"]["test"]
    return "\n".join(
        [
            "# XtremeDistil run report (text classification)\n",
            f"Machine: {m.get('cpu', '?')}, {m.get('threads', '?')} threads, torch {m.get('torch', '?')}, "
            f"transformers {m.get('transformers', '?')}, tokenizers {m.get('tokenizers', '?')}; {m.get('date', '')}.\n",
            "## Accuracy and macro-F1 per language (test)\n",
            classification_tables({"teacher": teacher, "student": student}),
            f"\nStudent keeps **{100 * s['retained']:.1f}%** of the teacher's mean accuracy "
            f"({s['student_mean_accuracy']:.2f} vs {s['teacher_mean_accuracy']:.2f}) and "
            f"{100 * s['retained_macro_f1']:.1f}% of its mean macro-F1 "
            f"({s['student_mean_macro_f1']:.2f} vs {s['teacher_mean_macro_f1']:.2f}). Texts longer than the "
            f"window were cut ({teacher.get('truncation', 'head')}).\n",
            "\n## Size and speed (PyTorch fp32, same process and threads)\n",
            *size_speed_rows(metrics, s),
            "\n## Dev accuracy after each step (paper Table 4)\n",
            stage_table(metrics, metrics.get("student_start_dev_mean_f1"), "accuracy"),
            f"\n![teacher vs student]({REPORT_PNG})\n",
            f"\n![confusion matrices]({CONFUSION_PNG})\n",
            *time_table(metrics),
        ]
    )


def render_markdown(metrics: dict[str, Any]) -> str:
    if metrics["teacher"]["test"].get("metric") == "accuracy":
        return render_classification(metrics)
    s = summary(metrics)
    start_f1 = metrics.get("student_start_dev_mean_f1")
    speed, m = metrics["speed"], metrics.get("machine", {})
    lines = [
        "# XtremeDistil run report\n",
        f"Machine: {m.get('cpu', '?')}, {m.get('threads', '?')} threads, torch {m.get('torch', '?')}, "
        f"transformers {m.get('transformers', '?')}, tokenizers {m.get('tokenizers', '?')}; {m.get('date', '')}.\n",
        "## F1 per language (test, entity-level span F1)\n",
        f"*Gold words*: the model tags the corpus's own words (seqeval, {metrics['teacher']['test']['scheme']}), "
        "the paper's way. *Raw text*: `predict()` on the test sentences written out as plain text, an entity "
        "counting only with the exact type and character span, what users get.\n",
        markdown_table(f1_columns(metrics["teacher"]["test"], metrics["student"]["test"])),
        f"\nStudent keeps **{100 * s['retained']:.1f}%** of the teacher's mean F1 at gold word boundaries "
        f"({s['student_mean_f1']:.2f} vs {s['teacher_mean_f1']:.2f})"
        + (
            f" and **{100 * s['retained_raw']:.1f}%** on raw text ({s['student_raw_mean_f1']:.2f} vs "
            f"{s['teacher_raw_mean_f1']:.2f}); raw text costs the teacher "
            f"{s['teacher_mean_f1'] - s['teacher_raw_mean_f1']:.2f} and the student "
            f"{s['student_mean_f1'] - s['student_raw_mean_f1']:.2f} points of mean F1.\n"
            if "retained_raw" in s
            else ".\n"
        ),
        "\n## Size and speed (PyTorch fp32, same process and threads)\n",
        *size_speed_rows(metrics, s),
        f"\nRaw text to sub-words (units, then the tokenizer; shared by both, timed apart): "
        f"{speed['tokenizer']['sentences_per_second']:.0f} sentences/s.\n",
        "\n## Dev F1 after each step (paper Table 4)\n",
        stage_table(metrics, start_f1),
        f"\n![teacher vs student]({REPORT_PNG})\n",
        *time_table(metrics),
    ]
    return "\n".join(lines)


def time_table(metrics: dict[str, Any]) -> list[str]:
    """Where the job's wall time went (phases of this invocation; a resumed run shows only what it redid)."""
    phases, total = metrics.get("phase_seconds"), metrics.get("distil_job_seconds")
    if not phases or not total:
        return []
    rows = [f"| {name} | {sec:.0f} | {100 * sec / total:.0f}% |" for name, sec in phases.items()]
    other = total - sum(phases.values())
    return [
        "\n## Where the time went (this invocation)\n",
        "| phase | seconds | share |",
        "|---|---:|---:|",
        *rows,
        f"| other | {other:.0f} | {100 * other / total:.0f}% |",
        f"| **total** | **{total:.0f}** | |",
    ]


def _bars_and_stages(
    metrics: dict[str, Any], path: Path, columns: dict[str, Any], metric: str, key: str
) -> None:
    """Left: ``key`` per language for each column (raw-text columns hatched); right: the dev metric after
    each stage."""
    plt = _pyplot()
    langs = sorted(metrics["teacher"]["test"]["languages"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / len(columns)
    for k, (name, result) in enumerate(columns.items()):
        offset = (k - (len(columns) - 1) / 2) * width
        values = [100 * result["languages"].get(lang, {}).get(key, 0.0) for lang in langs]
        hatch = "//" if "raw" in name else None
        ax1.bar([i + offset for i in range(len(langs))], values, width, label=name, hatch=hatch)
    ax1.set_xticks(list(range(len(langs))), langs)
    ax1.set_ylabel(f"test {metric}")
    ax1.set_title(f"{metric} per language")
    ax1.legend(fontsize=8)
    stages = metrics.get("stages", [])
    start = metrics.get("student_start_dev_mean_f1")
    values = ([start] if start is not None else []) + [
        s.get("dev_mean", s.get("dev_mean_f1")) for s in stages
    ]
    names = (["start"] if start is not None else []) + [s["stage"] for s in stages]
    ax2.plot(range(len(values)), values, marker="o")
    ax2.axhline(headline(metrics["teacher"]["dev"]), color="gray", linestyle="--", label="teacher (dev)")
    ax2.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax2.set_ylabel(f"dev mean {metric}")
    ax2.set_title("Student after each step")
    ax2.legend()
    _save(fig, path)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    """Write ``fig`` as a PNG atomically and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_confusion(metrics: dict[str, Any], path: Path) -> None:
    """Test confusion matrices (rows: gold, columns: predicted), teacher and student, per language."""
    import numpy as np

    plt = _pyplot()
    models = {"teacher": metrics["teacher"]["test"], "student": metrics["student"]["test"]}
    langs = sorted(models["teacher"]["languages"])
    fig, axes = plt.subplots(len(models), len(langs), figsize=(3.4 * len(langs) + 0.6, 6.4), squeeze=False)
    for r, (name, result) in enumerate(models.items()):
        for c, lang in enumerate(langs):
            ax = axes[r][c]
            scores = result["languages"][lang]
            matrix = np.asarray(scores["confusion"], dtype=float)
            labels = scores["labels"]
            shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
            ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
            for i in range(len(labels)):
                for j in range(len(labels)):
                    ax.text(
                        j,
                        i,
                        f"{int(matrix[i, j])}",
                        ha="center",
                        va="center",
                        color="white" if shares[i, j] > 0.6 else "black",
                        fontsize=9,
                    )
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
            ax.set_yticks(range(len(labels)), labels, fontsize=8)
            ax.set_title(f"{name}, {lang}: acc {100 * scores['accuracy']:.1f}", fontsize=9)
            if c == 0:
                ax.set_ylabel("gold")
            if r == len(models) - 1:
                ax.set_xlabel("predicted")
    _save(fig, path)


def plot(metrics: dict[str, Any], path: Path) -> None:
    """The report's picture: the metric per language and after each stage; for classification also the
    confusion matrices beside it."""
    teacher, student = metrics["teacher"]["test"], metrics["student"]["test"]
    if teacher.get("metric") == "accuracy":
        _bars_and_stages(metrics, path, {"teacher": teacher, "student": student}, "accuracy", "accuracy")
        plot_confusion(metrics, path.with_name(CONFUSION_PNG))
    else:
        _bars_and_stages(metrics, path, f1_columns(teacher, student), "F1", "f1")


def write_report(run_dir: Path, metrics: dict[str, Any] | None = None) -> str:
    """(Re)write report.md, report.json and report.png from the run folder's metrics."""
    run_dir = Path(run_dir)
    metrics = metrics or read_json(run_dir / "metrics.json")
    text = render_markdown(metrics)
    benchmark = run_dir / "benchmark.json"
    if benchmark.is_file():  # `xtremedistil benchmark` ran: its table belongs in the report
        from xtremedistil.deploy import benchmark_markdown

        text = (
            text.rstrip()
            + "\n\n"
            + benchmark_markdown(read_json(benchmark))
            + "\n![benchmark](benchmark.png)\n"
        )
    write_text(run_dir / REPORT_MD, text)
    write_json(run_dir / REPORT_JSON, {"summary": summary(metrics), **metrics})
    plot(metrics, run_dir / REPORT_PNG)
    return text
