"""How Chinese and Japanese text is cut into units (`data.cjk`), decided on dev data.

1. Without training: for each embedded corpus (and WikiAnn when present), the share of dev entities whose
   both ends fall on unit boundaries (the most a model reading those units can get exactly right on raw
   text) and the sub-words per sentence the teacher reads, for the gold words (the code before the fix),
   one unit per character (`char`), the tokenizer's pieces (`piece`), and pieces with those that a train
   entity starts or ends inside cut into characters (`piece-split`).
2. Trained: the quickstart default distilled once per policy (each its own teacher, since the policy
   changes what the teacher reads), compared on dev only, gold words and raw text.

    python benchmarks/segmentation.py [--char runs/cjk-char] [--piece runs/cjk-piece] [--piece-split ...]

A missing run folder is made with `xtremedistil distil --output FOLDER --set data.cjk="POLICY"`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from results import provenance, run_cli, write_section
from xtremedistil.data.embedded import load_embedded
from xtremedistil.data.readers import read_corpus_folder
from xtremedistil.evaluate import markdown_table
from xtremedistil.segment import segmenter, straddled_pieces, units_of
from xtremedistil.tasks.ner import NerTask
from xtremedistil.teacher.registry import resolve_teacher

WIKIANN = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikiann"
WIKIANN_LANGUAGES = ["ar", "de", "en", "es", "hi", "ru", "tr", "vi"]
POLICIES = ("char", "piece", "piece-split")


def boundary_table(tokenizer) -> str:
    corpora = {name: load_embedded(name) for name in ("pku-zh", "hironsan-ja", "wnut16-en")}
    if WIKIANN.is_dir():
        corpora["wikiann (8 languages)"] = read_corpus_folder(WIKIANN, languages=WIKIANN_LANGUAGES)
    task = NerTask(["LOC", "ORG", "PER"])
    rows = [
        "| corpus (dev) | sentences | gold entities | exact: char | piece | piece-split | "
        "sub-words/sentence: gold words | char | piece | piece-split |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, corpus in corpora.items():
        dev = corpus.split("dev")
        split = straddled_pieces(corpus.split("train"), tokenizer)  # learned on train, measured on dev
        cells, subwords = {}, {"gold words": task.encode(dev, tokenizer, 10_000)[1].subwords / len(dev)}
        for policy in POLICIES:
            units, cells[policy] = units_of(
                dev, segmenter(tokenizer, policy, split)
            )  # split: piece-split only
            subwords[policy] = task.encode(units, tokenizer, 10_000)[1].subwords / len(dev)
        exact = " | ".join(f"{100 * (1 - s.inexact / s.entities):.2f}%" for s in cells.values())
        cost = " | ".join(f"{v:.1f}" for v in subwords.values())
        rows.append(f"| {name} | {len(dev):,} | {cells['char'].entities:,} | {exact} | {cost} |")
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
    for policy in POLICIES:
        parser.add_argument(
            f"--{policy}", type=Path, default=Path(f"runs/cjk-{policy}"), help="its run folder"
        )
    args = parser.parse_args()
    runs = {policy: getattr(args, policy.replace("-", "_")) for policy in POLICIES}
    for policy, run in runs.items():
        if not (run / "metrics.json").is_file():
            run_cli(
                ["distil", "--output", str(run), "--set", f'data.cjk="{policy}"'], run.with_suffix(".log")
            )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_teacher("multilingual-e5-small"))
    folders = "; ".join(f"`{p}`: `{r}`" for p, r in runs.items())
    body = (
        "## Raw text: Chinese/Japanese as characters, as the tokenizer's pieces, or pieces cut where train "
        "entities need it (`data.cjk`)\n\n"
        + provenance()
        + "\n### Where entity boundaries fall (no training)\n\n"
        "*Exact*: dev entities whose start and end are unit boundaries of the detokenised text (the rest can "
        "never be matched exactly on raw text); `piece-split` cuts into characters the pieces that an entity "
        "of the corpus's *train* split starts or ends inside. *Sub-words/sentence*: what the teacher reads "
        "(its cost).\n\n"
        + boundary_table(tokenizer)
        + "\n### The quickstart default distilled with each policy (dev F1 only)\n\n"
        f"{folders} (`--set data.cjk=...`); each fine-tunes its own teacher on the units it reads. "
        "Entity-level F1 on dev, mean over languages.\n\n" + dev_table(runs)
    )
    write_section("segmentation", body)


if __name__ == "__main__":
    main()
