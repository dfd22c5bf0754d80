"""`data.cjk`: the tokenizer's pieces (`piece`) against pieces cut where train entities need it
(`piece-split`, the default) over several student seeds, on dev only. `benchmarks/segmentation.py` compared
them with one student seed each; here each policy's finished run (its own teacher and teacher cache) is
distilled again with other student seeds, and the dev mean F1 of every student is shown at gold word
boundaries and on raw text. Test is not read.

    python benchmarks/segmentation_seeds.py [--piece runs/cjk-piece] [--piece-split runs/quickstart-bench]
        [--seeds 13 14 15]

A seed whose student already exists with today's scoring is reused: the run itself when the seed is its
own, else `<run's parent>/<run's name>-seeds/seedN` (for the quickstart run, the folders of
`benchmarks/quickstart_seeds.py`, `runs/quickstart-seeds/seedN`, are used when present).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from statistics import mean, stdev
from typing import Any

from results import base_seed, provenance, seed_variant, write_section
from xtremedistil.pipeline import scored_as


def student_metrics(run: Path, seed: int, folder: Path) -> tuple[Path, dict[str, Any]]:
    """The metrics of ``run``'s config with student seed ``seed``, distilled if no current one exists."""
    if seed == base_seed(run):
        metrics = json.loads((run / "metrics.json").read_text())
        if scored_as(metrics.get("student"), metrics["student"]["dev"]["scheme"]):
            return run, metrics
        folder = folder.with_name(f"{folder.name}-rescored")  # the run predates today's scoring
    return folder, seed_variant(run, seed, folder)


def seeds_folder(run: Path) -> Path:
    if run.name == "quickstart-bench" and (run.parent / "quickstart-seeds").is_dir():
        return run.parent / "quickstart-seeds"
    return run.parent / f"{run.name}-seeds"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--piece", type=Path, default=Path("runs/cjk-piece"))
    parser.add_argument("--piece-split", type=Path, default=Path("runs/quickstart-bench"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    args = parser.parse_args()
    start = time.perf_counter()
    policies = {"piece": args.piece, "piece-split": args.piece_split}
    rows, means = [], {}
    for policy, run in policies.items():
        gold, raw = [], []
        for seed in args.seeds:
            folder, metrics = student_metrics(run, seed, seeds_folder(run) / f"seed{seed}")
            dev = metrics["student"]["dev"]
            gold.append(dev["mean_f1"])
            raw.append(dev["end_to_end"]["mean_f1"])
            langs = " | ".join(f"{100 * v['f1']:.2f}" for _, v in sorted(dev["languages"].items()))
            rows.append(f"| `{policy}` | {seed} | `{folder}` | {langs} | {gold[-1]:.2f} | {raw[-1]:.2f} |")
            print(rows[-1], flush=True)
        means[policy] = (gold, raw)
        teacher = metrics["teacher"]["dev"]
        rows.append(
            f"| `{policy}` | teacher | `{run}` | "
            + " | ".join(f"{100 * v['f1']:.2f}" for _, v in sorted(teacher["languages"].items()))
            + f" | {teacher['mean_f1']:.2f} | {teacher['end_to_end']['mean_f1']:.2f} |"
        )
    languages = sorted(metrics["student"]["dev"]["languages"])

    def spread(values: list[float]) -> str:
        return f"{mean(values):.2f} ± {stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"

    summary = "\n".join(
        f"- `{policy}`: student dev mean F1 over seeds {', '.join(map(str, args.seeds))}: gold words "
        f"{spread(gold)}, raw text {spread(raw)}."
        for policy, (gold, raw) in means.items()
    )
    body = "\n".join(
        [
            "## `data.cjk`: piece against piece-split over student seeds (dev)\n",
            provenance(time.perf_counter() - start),
            "Each policy's run (its own fine-tuned teacher and cache) distilled with each student seed; dev "
            "only, tags read with the constrained decoding. Per-language columns are gold-word F1.\n",
            f"| policy | student seed | run | {' | '.join(f'dev {x}' for x in languages)} | "
            "dev mean F1, gold words | dev mean F1, raw text |",
            "|---|---|---|" + "---:|" * len(languages) + "---:|---:|",
            *rows,
            "",
            summary,
            "",
        ]
    )
    write_section("segmentation-seeds", body)


if __name__ == "__main__":
    main()
