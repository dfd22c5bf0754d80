"""How Chinese and Japanese text is cut into units (`data.cjk`), decided on dev data.

1. Without training: for each embedded corpus (and WikiAnn when present), the share of gold entities whose
   both ends fall on unit boundaries (the most a model reading those units can get exactly right on raw
   text) and the sub-words per sentence the teacher reads, for the gold words (the code before the fix),
   one unit per character (`cjk = "char"`) and the tokenizer's pieces (`cjk = "piece"`).
2. Trained: the quickstart default distilled twice, once per policy (each its own teacher, since the
   policy changes what the teacher reads), compared on dev only, gold words and raw text.

    python benchmarks/segmentation.py [--char runs/quickstart-bench] [--piece runs/quickstart-piece]

A missing run folder is made with `xtremedistil distil --output FOLDER [--set data.cjk="piece"]`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from results import provenance, run_cli, write_section
from xtremedistil.data.embedded import load_embedded
from xtremedistil.data.readers import read_corpus_folder
from xtremedistil.evaluate import markdown_table
from xtremedistil.segment import segmenter, units_of
from xtremedistil.tasks.ner import NerTask
from xtremedistil.teacher.registry import resolve_teacher

WIKIANN = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikiann"
WIKIANN_LANGUAGES = ["ar", "de", "en", "es", "hi", "ru", "tr", "vi"]


def boundary_table(tokenizer) -> str:
    corpora = {name: load_embedded(name) for name in ("pku-zh", "hironsan-ja", "wnut16-en")}
    if WIKIANN.is_dir():
        corpora["wikiann (8 languages, dev)"] = read_corpus_folder(WIKIANN, languages=WIKIANN_LANGUAGES)
    task = NerTask(["LOC", "ORG", "PER"])
    rows = [
        "| corpus | sentences | gold entities | exact, char | exact, piece | sub-words/sentence: gold words | char | piece |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, corpus in corpora.items():
        sentences = corpus.split("dev") if "wikiann" in name else corpus.split("train") + corpus.split("dev")
        cells, subwords = {}, {}
        for policy in ("char", "piece"):
            units, stats = units_of(sentences, segmenter(tokenizer, policy))
            cells[policy] = stats
            subwords[policy] = task.encode(units, tokenizer, 10_000)[1].subwords / len(sentences)
        subwords["gold"] = task.encode(sentences, tokenizer, 10_000)[1].subwords / len(sentences)
        exact = {p: 100 * (1 - s.inexact / s.entities) for p, s in cells.items()}
        rows.append(
            f"| {name} | {len(sentences):,} | {cells['char'].entities:,} | {exact['char']:.2f}% | "
            f"{exact['piece']:.2f}% | {subwords['gold']:.1f} | {subwords['char']:.1f} | {subwords['piece']:.1f} |"
        )
    return "\n".join(rows) + "\n"


def dev_table(runs: dict[str, Path]) -> str:
    metrics = {policy: json.loads((run / "metrics.json").read_text()) for policy, run in runs.items()}
    columns = {}
    for model in ("teacher", "student"):
        for policy, m in metrics.items():
            columns[f"{model} {policy}, gold words"] = m[model]["dev"]
            columns[f"{model} {policy}, raw text"] = m[model]["dev"]["end_to_end"]
    minutes = {p: m["distil_job_seconds"] / 60 for p, m in metrics.items()}
    times = ", ".join(f"`{p}` {minutes[p]:.1f} min" for p in metrics)
    return markdown_table(columns) + f"\nJob wall time (same machine, one run after the other): {times}.\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--char", type=Path, default=Path("runs/quickstart-bench"))
    parser.add_argument("--piece", type=Path, default=Path("runs/quickstart-piece"))
    args = parser.parse_args()
    runs = {"char": args.char, "piece": args.piece}
    for policy, run in runs.items():
        if not (run / "metrics.json").is_file():
            run_cli(
                ["distil", "--output", str(run), "--set", f'data.cjk="{policy}"'], run.with_suffix(".log")
            )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_teacher("multilingual-e5-small"))
    body = (
        "## Raw text: one unit per Chinese/Japanese character, or the tokenizer's pieces (`data.cjk`)\n\n"
        + provenance()
        + "\n### Where entity boundaries fall (no training)\n\n"
        "*Exact*: gold entities whose start and end are unit boundaries of the detokenised text (the rest can "
        "never be matched exactly on raw text). *Sub-words/sentence*: what the teacher reads (its cost).\n\n"
        + boundary_table(tokenizer)
        + "\n### The quickstart default distilled with each policy (dev F1 only)\n\n"
        f'`char`: `{args.char}`; `piece`: `{args.piece}` (`--set data.cjk="piece"`); each fine-tunes its own '
        "teacher on the units it reads. Entity-level F1 on dev, mean over languages.\n\n" + dev_table(runs)
    )
    write_section("segmentation", body)


if __name__ == "__main__":
    main()
