"""The WikiAnn benchmark on ../shared/data/wikiann (configs/wikiann.toml): the teacher half
(`xtremedistil teacher train`), then the distillation (`xtremedistil distil`, reusing that teacher).
Writes two sections of docs/RESULTS.md.

    python benchmarks/wikiann.py [--config configs/wikiann.toml] [--teacher-only]
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

from results import provenance, run_cli, verdict, write_section
from xtremedistil.evaluate import markdown_table, per_type_table
from xtremedistil.report import render_markdown, summary


def teacher_section(metrics: dict, seconds: float, config: Path) -> str:
    teacher = metrics["teacher"]
    training = metrics.get("teacher_training", {})
    return (
        f"## WikiAnn: teacher fine-tuning (`xtremedistil teacher train {config}`)\n\n"
        + provenance(seconds)
        + f"\nmultilingual-e5-small fine-tuned jointly on {training.get('train_sentences', '?')} labeled sentences "
        f"({training.get('epochs', '?')} epochs, {training.get('steps', '?')} steps, "
        f"{training.get('train_seconds', 0) / 60:.1f} min of training); best dev mean F1 "
        f"{training.get('best_dev_mean_f1', 0):.2f} at step {training.get('best_step', '?')}. "
        "Entity-level span F1 (seqeval, strict IOB2, word level), mean ± std over languages.\n\n"
        + markdown_table({"teacher dev F1": teacher["dev"], "teacher test F1": teacher["test"]})
        + "\n<details><summary>P / R / F1 per language and type (test)</summary>\n\n"
        + per_type_table(teacher["test"])
        + "\n</details>\n"
    )


def distil_section(metrics: dict, seconds: float, config: Path) -> str:
    s = summary(metrics)
    rows = [
        "| target | value | target | |",
        "|---|---:|---:|---|",
        f"| student mean F1 / teacher mean F1 (%) | {100 * s['retained']:.1f} | ≥ 95 | {verdict(100 * s['retained'], 95)} |",
        f"| parameter compression (×) | {s['compression']:.1f} | ≥ 30 | {verdict(s['compression'], 30)} |",
    ]
    report = render_markdown(metrics).replace("# XtremeDistil run report\n", "").replace("## ", "#### ")
    report = report.replace("![teacher vs student](report.png)", "![wikiann report](wikiann.png)")
    return (
        f"## WikiAnn: distillation (`xtremedistil distil {config}`)\n\n"
        + provenance(seconds)
        + f"\nTransfer set: {metrics.get('transfer_sentences', 0):,} untagged WikiAnn train sentences "
        "plus the labeled train text; strategy D4.2, `xs` student. Wall time includes caching and every stage "
        "(the teacher was reused from the previous section).\n\n" + "\n".join(rows) + "\n" + report
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("configs/wikiann.toml"))
    parser.add_argument("--teacher-only", action="store_true")
    parser.add_argument(
        "--distil-only", action="store_true", help="keep the teacher section; run only the distillation"
    )
    args = parser.parse_args()
    config = tomllib.loads(args.config.read_text())
    data = Path(config["data"]["labeled"][0]["source"])
    if not data.is_dir():
        raise SystemExit(f"WikiAnn data not found at {data} (see ../shared/data/README.md); nothing written")
    run_dir = Path(config["output_dir"])
    if not args.distil_only:
        seconds, _ = run_cli(["teacher", "train", str(args.config)], run_dir.with_suffix(".teacher.log"))
        metrics = json.loads((run_dir / "metrics.json").read_text())
        write_section("wikiann-teacher", teacher_section(metrics, seconds, args.config))
    if args.teacher_only:
        return
    seconds, _ = run_cli(["distil", str(args.config)], run_dir.with_suffix(".distil.log"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    import shutil

    shutil.copy(run_dir / "report.png", Path(__file__).resolve().parents[1] / "docs" / "wikiann.png")
    write_section("wikiann-distil", distil_section(metrics, seconds, args.config))


if __name__ == "__main__":
    main()
