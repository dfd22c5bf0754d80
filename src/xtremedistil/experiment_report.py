"""Tables and plots of an experiment grid: one row per cell (CSV, JSON, markdown), the Table-3-style
strategy comparison, and plots of F1 by strategy, against transfer-set and labeled-set size, and the
accuracy/size/speed frontier over student sizes."""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from xtremedistil.io import atomic_path, write_json, write_text

COLUMNS = [
    "key",
    "strategy",
    "transfer_size",
    "labeled_size",
    "layer",
    "student",
    "seed",
    "metric",
    "dev_mean",
    "test_mean",
    "test_std",
    "retained",
    "params",
    "compression",
    "throughput",
    "throughput_speedup",
    "latency_ms",
    "seconds",
]


def flat(row: dict[str, Any]) -> dict[str, Any]:
    return {**row["cell"], **{k: v for k, v in row.items() if k in COLUMNS}}


def rows_markdown(results: list[dict[str, Any]]) -> str:
    head = "| cell | dev F1 | test F1 (mean ± std) | % of teacher | params | batch-32 windows/s | batch-1 ms | min |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r['key']} | {r['dev_mean']:.2f} | {r['test_mean']:.2f} ± {r['test_std']:.2f} | "
            f"{100 * r['retained']:.1f} | {r['params']:,} | {r['throughput']:.0f} | {r['latency_ms']:.2f} | "
            f"{r['seconds'] / 60:.1f} |"
        )
    return "\n".join(lines) + "\n"


def base_setting(results: list[dict[str, Any]]) -> tuple[int, int, str]:
    """The (labeled size, layer, student) most cells share: strategies are compared at that setting only."""
    counts = Counter((r["cell"]["labeled_size"], r["cell"]["layer"], r["cell"]["student"]) for r in results)
    return counts.most_common(1)[0][0]


def _setting(r: dict[str, Any]) -> tuple[int, int, str]:
    return r["cell"]["labeled_size"], r["cell"]["layer"], r["cell"]["student"]


def _main_transfer(rows: list[dict[str, Any]]) -> int:
    return Counter(r["cell"]["transfer_size"] for r in rows).most_common(1)[0][0]


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.pstdev(values):.2f} (n={len(values)})"


def strategy_table(results: list[dict[str, Any]]) -> str:
    """Table 3: test mean F1 by strategy and transfer size at the base setting; over seeds: mean ± std."""
    base = base_setting(results)
    rows = [r for r in results if _setting(r) == base]
    by: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in rows:
        by[(r["cell"]["strategy"], r["cell"]["transfer_size"])].append(r["test_mean"])
    strategies = list(dict.fromkeys(r["cell"]["strategy"] for r in rows))
    sizes = sorted({r["cell"]["transfer_size"] for r in rows}, key=lambda s: (s == 0, s))
    head = "| strategy | " + " | ".join(f"transfer {s or 'all'}" for s in sizes) + " |"
    lines = [head, "|---|" + "---:|" * len(sizes)]
    for strategy in strategies:
        cells = [_mean_std(by[(strategy, size)]) if by.get((strategy, size)) else "–" for size in sizes]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    labeled, layer, student = base
    note = (
        f"\nStudent `{student}`, teacher layer {layer}, "
        f"{labeled or 'all configured'} labeled sentences per language; "
        "± is the spread over seeds (population std) where a strategy ran with several.\n"
    )
    return "\n".join(lines) + "\n" + note


def language_table(results: list[dict[str, Any]]) -> str:
    """Per-language test F1 of each strategy at the base setting and main transfer size (mean over seeds)."""
    base = base_setting(results)
    rows = [r for r in results if _setting(r) == base]
    rows = [r for r in rows if r["cell"]["transfer_size"] == _main_transfer(rows)]
    languages = list(rows[0]["test_by_language"])
    lines = [
        "| | " + " | ".join(languages) + " | mean ± std |",
        "|---|" + "---:|" * (len(languages) + 1),
    ]
    teacher = rows[0].get("teacher_test_by_language")
    if teacher:
        values = [teacher[lang] for lang in languages]
        lines.append(
            "| teacher | "
            + " | ".join(f"{v:.2f}" for v in values)
            + f" | {statistics.fmean(values):.2f} ± {statistics.pstdev(values):.2f} |"
        )
    for strategy in dict.fromkeys(r["cell"]["strategy"] for r in rows):
        runs = [r for r in rows if r["cell"]["strategy"] == strategy]
        values = [statistics.fmean(r["test_by_language"][lang] for r in runs) for lang in languages]
        seeds = f" (mean of {len(runs)} seeds)" if len(runs) > 1 else ""
        lines.append(
            f"| {strategy}{seeds} | "
            + " | ".join(f"{v:.2f}" for v in values)
            + f" | {statistics.fmean(values):.2f} ± {statistics.pstdev(values):.2f} |"
        )
    return "\n".join(lines) + "\n"


def _curve(results: list[dict[str, Any]], strategy: str, axis: str) -> list[tuple[float, float]]:
    """(x, mean test F1 over seeds) of one strategy along one axis, the other axes held at the base."""
    labeled, layer, student = base_setting(results)
    main_transfer = _main_transfer(results)
    points: dict[float, list[float]] = defaultdict(list)
    for r in results:
        c = r["cell"]
        if c["strategy"] != strategy or c["layer"] != layer or c["student"] != student:
            continue
        if axis == "transfer_size" and c["labeled_size"] == labeled:
            points[r["transfer_windows"]].append(r["test_mean"])
        elif axis == "labeled_size" and c["transfer_size"] == main_transfer:
            # 0 means "as configured": plot it at the configured per-language count
            x = c["labeled_size"] or r["labeled_windows"] / max(1, len(r["test_by_language"]))
            points[x].append(r["test_mean"])
    return sorted((x, statistics.fmean(v)) for x, v in points.items())


def stage_table(result: dict[str, Any]) -> str:
    """Table 4 for one cell: dev mean F1 after each step."""
    lines = ["| step | epochs | dev mean F1 |", "|---|---:|---:|"]
    lines += [f"| {s['stage']} | {s['epochs_run']} | {s['dev_mean']:.2f} |" for s in result["stages"]]
    return "\n".join(lines) + "\n"


def frontier(results: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Student sizes of the strategy that ran with the most of them (other axes at the base; seeds averaged):
    mean test F1, parameters, throughput and latency per size, smallest first."""
    labeled, layer, _ = base_setting(results)
    main_transfer = _main_transfer(results)
    by: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        c = r["cell"]
        if (c["labeled_size"], c["layer"], c["transfer_size"]) == (labeled, layer, main_transfer):
            by[c["strategy"]][c["student"]].append(r)
    strategy = max(by, key=lambda k: len(by[k]))
    sizes = [
        {
            "student": student,
            "f1": statistics.fmean(r["test_mean"] for r in rows),
            "params": rows[0]["params"],
            "throughput": statistics.median(r["throughput"] for r in rows),
            "latency_ms": statistics.median(r["latency_ms"] for r in rows),
        }
        for student, rows in by[strategy].items()
    ]
    return strategy, sorted(sizes, key=lambda p: p["params"])


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    base = base_setting(results)
    main_transfer = _main_transfer([r for r in results if _setting(r) == base])
    by_strategy: dict[str, list[float]] = defaultdict(list)
    for r in results:
        if _setting(r) == base and r["cell"]["transfer_size"] == main_transfer:
            by_strategy[r["cell"]["strategy"]].append(r["test_mean"])
    names = list(by_strategy)
    means = [statistics.fmean(by_strategy[n]) for n in names]
    errors = [statistics.pstdev(by_strategy[n]) if len(by_strategy[n]) > 1 else 0 for n in names]
    axes[0, 0].bar(names, means, yerr=errors, capsize=4)
    low = min(means) if means else 0
    axes[0, 0].set_ylim(max(0, low - 10), None)
    axes[0, 0].set_title("test mean F1 by strategy (error bar: spread over seeds)")
    for ax, axis, title in (
        (axes[0, 1], "transfer_size", "F1 against transfer-set size (windows)"),
        (axes[0, 2], "labeled_size", "F1 against labeled sentences per language"),
    ):
        for strategy in dict.fromkeys(r["cell"]["strategy"] for r in results):
            points = _curve(results, strategy, axis)
            if len(points) > 1:
                ax.plot(*zip(*points, strict=True), marker="o", label=strategy)
        ax.set_title(title)
        if axis == "labeled_size":
            ax.set_xscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "one size only in this grid", ha="center", transform=ax.transAxes)
    strategy, sizes = frontier(results)
    for ax, key, label in (
        (axes[1, 0], "throughput", "batch-32 throughput (windows/s)"),
        (axes[1, 1], "params", "parameters"),
        (axes[1, 2], "latency_ms", "batch-1 latency, median (ms)"),
    ):
        ax.plot([p[key] for p in sizes], [p["f1"] for p in sizes], marker="o")
        for p in sizes:
            ax.annotate(f"{p['student']} ({p['params'] / 1e6:.1f}M)", (p[key], p["f1"]), fontsize=8)
        ax.set_xlabel(label)
        ax.set_title(f"student sizes ({strategy}): F1 against {label.split(',')[0].split(' (')[0]}")
    for a in axes.flat:
        a.set_ylabel("test mean F1")
        a.set_title(metric_names(a.get_title(), results))
        a.set_ylabel(metric_names(a.get_ylabel(), results))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_experiment_report(run_dir: Path, results: list[dict[str, Any]]) -> str:
    run_dir = Path(run_dir)
    write_json(run_dir / "results.json", results)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in results:
        writer.writerow(flat(row))
    write_text(run_dir / "results.csv", buffer.getvalue())
    text = render(results)
    write_text(run_dir / "results.md", text)
    if results:
        plot(results, run_dir / "results.png")
    return text


def render(results: list[dict[str, Any]]) -> str:
    if not results:
        return "# Experiment\n\nNo finished cells yet.\n"
    parts = [
        "# Experiment\n",
        f"Teacher test mean F1: {results[0]['teacher_test_mean']:.2f} (cells with fewer labels fine-tune "
        "their own teacher on those labels; '% of teacher' is against each cell's own). "
        "Model selection on dev only.\n",
        "## Strategies (paper Table 3): test mean F1 over languages\n",
        strategy_table(results),
        "\n## Test F1 per language, by strategy\n",
        language_table(results),
        "\n## Every cell\n",
        rows_markdown(results),
    ]
    strategy, sizes = frontier(results)
    if len(sizes) > 1:
        lines = [
            "| student | params | test mean F1 | batch-32 windows/s | batch-1 ms (median) |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {p['student']} | {p['params']:,} | {p['f1']:.2f} | {p['throughput']:.0f} | {p['latency_ms']:.2f} |"
            for p in sizes
        ]
        parts += [f"\n## Student sizes, {strategy} (paper Table 16)\n", "\n".join(lines) + "\n"]
    base = base_setting(results)
    method = [r for r in results if r["cell"]["strategy"] == "D4.2" and _setting(r) == base]
    if method:
        parts += [
            f"\n## Dev F1 after each step, {method[0]['key']} (paper Table 4)\n",
            stage_table(method[0]),
        ]
    parts.append("\n![experiment plots](results.png)\n")
    return metric_names("\n".join(parts), results)


def metric_names(text: str, results: list[dict[str, Any]]) -> str:
    """The report says F1 for NER; for another task, the name of its headline metric (accuracy)."""
    metric = results[0].get("metric", "f1") if results else "f1"
    return text if metric == "f1" else text.replace("F1", metric)
