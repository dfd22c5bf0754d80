"""The WikiAnn strategy comparison: `xtremedistil experiment configs/wikiann-experiment.toml`, then its
results.md (tables) and results.png (plots) into docs/RESULTS.md. Rerunning resumes the grid: finished
cells are skipped (the log says so) and only new or unfinished cells run.

    python benchmarks/experiment.py [--config configs/wikiann-experiment.toml] [--max-params 4000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tomllib
from pathlib import Path

from results import provenance, run_cli, write_section

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("configs/wikiann-experiment.toml"))
    parser.add_argument("--max-params", type=int, default=4_000_000, help="budget for the selected student")
    args = parser.parse_args()
    out = Path(tomllib.loads(args.config.read_text())["output_dir"])
    log = out.with_suffix(".log")
    previous = log.read_text(encoding="utf-8") if log.is_file() else ""
    seconds, _ = run_cli(["experiment", str(args.config), "--max-params", str(args.max_params)], log)
    text = log.read_text(encoding="utf-8")
    if previous:  # keep every invocation's log: the resume lines are the evidence
        log.write_text(previous + "\n--- rerun ---\n" + text, encoding="utf-8")
    full = log.read_text(encoding="utf-8")  # every invocation: the skipped/added cells show the resume
    progress = [line for line in full.splitlines() if line.startswith(("experiment:", "[", "--- rerun"))]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    cell_minutes = sum(r["seconds"] for r in results) / 60
    selected = [line for line in text.splitlines() if line.startswith("selected:")]
    shutil.copy(out / "results.png", DOCS / "experiment.png")
    tables = (out / "results.md").read_text(encoding="utf-8")
    tables = (
        tables.replace("# Experiment\n", "")
        .replace("## ", "#### ")
        .replace("(results.png)", "(experiment.png)")
    )
    body = (
        f"## WikiAnn strategy comparison (`xtremedistil experiment {args.config}`)\n\n"
        + provenance(seconds)
        + "\nWall time of this invocation; cells finished by an earlier invocation are skipped, not rerun. "
        + f"The {len(results)} cells took {cell_minutes:.0f} min in all (sum of their own times; the shared "
        + "teacher and its cache come from `benchmarks/wikiann.py`; a cell's time includes whatever "
        + "preparation it was first to need: data, a teacher fine-tuning or a cache not yet on disk).\n\n"
        + "Budget pick (`--max-params "
        + f"{args.max_params}`): "
        + (selected[0].removeprefix("selected: ") if selected else "none")
        + "\n\n<details><summary>runner log of every invocation (cells run or skipped)</summary>\n\n```\n"
        + "\n".join(progress)
        + "\n```\n</details>\n"
        + tables
    )
    write_section("experiment", body)


if __name__ == "__main__":
    main()
