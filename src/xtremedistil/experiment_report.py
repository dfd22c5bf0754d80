"""Tables and plots of an experiment grid: one row per cell (CSV, JSON, markdown), the Table-3-style
strategy comparison, and plots of F1 by strategy, against transfer-set and labeled-set size, and the
accuracy/size/speed frontier over student sizes."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
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
    "dev_mean_f1",
    "test_mean_f1",
    "test_std_f1",
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
            f"| {r['key']} | {r['dev_mean_f1']:.2f} | {r['test_mean_f1']:.2f} ± {r['test_std_f1']:.2f} | "
            f"{100 * r['retained']:.1f} | {r['params']:,} | {r['throughput']:.0f} | {r['latency_ms']:.2f} | "
            f"{r['seconds'] / 60:.1f} |"
        )
    return "\n".join(lines) + "\n"


def strategy_table(results: list[dict[str, Any]]) -> str:
    """Table 3: test mean F1 by strategy (mean over seeds, ± their std when there are several) and transfer size."""
    by: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in results:
        by[(r["cell"]["strategy"], r["cell"]["transfer_size"])].append(r["test_mean_f1"])
    strategies = list(dict.fromkeys(r["cell"]["strategy"] for r in results))
    sizes = sorted({r["cell"]["transfer_size"] for r in results}, key=lambda s: (s == 0, s))
    head = "| strategy | " + " | ".join(f"transfer {s or 'all'}" for s in sizes) + " |"
    lines = [head, "|---|" + "---:|" * len(sizes)]
    for strategy in strategies:
        cells = []
        for size in sizes:
            values = by.get((strategy, size), [])
            if not values:
                cells.append("–")
            elif len(values) == 1:
                cells.append(f"{values[0]:.2f}")
            else:
                cells.append(
                    f"{statistics.fmean(values):.2f} ± {statistics.pstdev(values):.2f} (n={len(values)})"
                )
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def stage_table(result: dict[str, Any]) -> str:
    """Table 4 for one cell: dev mean F1 after each step."""
    lines = ["| step | epochs | dev mean F1 |", "|---|---:|---:|"]
    lines += [f"| {s['stage']} | {s['epochs_run']} | {s['dev_mean_f1']:.2f} |" for s in result["stages"]]
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    by_strategy: dict[str, list[float]] = defaultdict(list)
    for r in results:
        by_strategy[r["cell"]["strategy"]].append(r["test_mean_f1"])
    names = list(by_strategy)
    means = [statistics.fmean(by_strategy[n]) for n in names]
    errors = [statistics.pstdev(by_strategy[n]) if len(by_strategy[n]) > 1 else 0 for n in names]
    axes[0, 0].bar(names, means, yerr=errors, capsize=4)
    axes[0, 0].set_title("test mean F1 by strategy (all cells)")
    for ax, axis, title in (
        (axes[0, 1], "transfer_size", "F1 against transfer-set size (windows)"),
        (axes[1, 0], "labeled_size", "F1 against labeled sentences per language"),
    ):
        for strategy in names:
            points = sorted(
                (
                    r["transfer_windows"] if axis == "transfer_size" else r["cell"]["labeled_size"],
                    r["test_mean_f1"],
                )
                for r in results
                if r["cell"]["strategy"] == strategy
            )
            if len({p[0] for p in points}) > 1:
                ax.plot(*zip(*points, strict=True), marker="o", label=strategy)
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "one size only in this grid", ha="center", transform=ax.transAxes)
    ax = axes[1, 1]
    ax.scatter([r["throughput"] for r in results], [r["test_mean_f1"] for r in results])
    for r in results:
        ax.annotate(
            f"{r['cell']['student']} {r['cell']['strategy']}\n{r['params'] / 1e6:.1f}M",
            (r["throughput"], r["test_mean_f1"]),
            fontsize=7,
        )
    ax.set_xlabel("batch-32 throughput (windows/s)")
    ax.set_title("accuracy / speed / size frontier")
    for a in axes.flat:
        a.set_ylabel("test mean F1")
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
        f"Teacher test mean F1: {results[0]['teacher_test_mean_f1']:.2f}. Model selection on dev only.\n",
        "## Strategies (paper Table 3): test mean F1 over languages\n",
        strategy_table(results),
        "\n## Every cell\n",
        rows_markdown(results),
    ]
    method = [r for r in results if r["cell"]["strategy"] == "D4.2"]
    if method:
        parts += [
            f"\n## Dev F1 after each step, {method[0]['key']} (paper Table 4)\n",
            stage_table(method[0]),
        ]
    parts.append("\n![experiment plots](results.png)\n")
    return "\n".join(parts)
