"""How word tags are read from logits, on dev: each word's argmax (the paper's) against the most probable
valid IOB2 sequence (`iob2-viterbi`, the default), for a run's teacher and student, at gold word boundaries
and on raw text. Each model runs once per run; both decodings read the same logits.

    python benchmarks/decoding.py [--run quickstart=runs/quickstart-bench] [--run wikiann-small=runs/wikiann-small]

A run folder that does not exist is skipped with a note.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from results import provenance, write_section
from xtremedistil.batching import SpecialIds
from xtremedistil.data.sources import load_labeled_all
from xtremedistil.evaluate import eval_set, predict_logits, score_eval_set
from xtremedistil.pipeline import find_teacher_folder, run_config_of
from xtremedistil.segment import model_segmenter
from xtremedistil.student.saved import load_student
from xtremedistil.tasks.ner import DECODINGS, NerTask, valid_iob2
from xtremedistil.teacher.model import load_teacher


def broken(tags: list[list[str]]) -> int:
    """Sentences with an I-X that does not continue an X entity."""
    return sum(not valid_iob2(row) for row in tags)


def score_run(run: Path) -> list[list[str]]:
    config = run_config_of(run)
    assert config is not None, f"{run} is not a run folder"
    dev = load_labeled_all(config.data.labeled, seed=config.seed).split("dev")
    teacher = load_teacher(find_teacher_folder(run))
    student = load_student(run / "student")
    models: dict[str, tuple[Any, Any, int]] = {
        "teacher": (teacher, lambda b: teacher(b).logits, int(teacher.meta["max_length"])),
        "student": (student, lambda b: student.student(b).logits, student.max_length),
    }
    rows = []
    for name, (model, forward, max_length) in models.items():
        labels = list(model.meta["labels"])
        data = eval_set(
            NerTask.from_labels(labels),
            dev,
            model.tokenizer,
            max_length,
            model_segmenter(model.tokenizer, model.meta),
        )
        logits = predict_logits(forward, data.encoded, SpecialIds.from_tokenizer(model.tokenizer), 64)
        for decoding in reversed(DECODINGS):  # argmax first
            task = NerTask.from_labels(labels, decoding=decoding)
            scores, unit_tags = score_eval_set(task, data, logits, scheme=config.evaluation.scheme)
            rows.append(
                [
                    f"`{run}`",
                    name,
                    decoding,
                    f"{scores['mean_f1']:.2f}",
                    f"{scores['end_to_end']['mean_f1']:.2f}",
                    f"{100 * broken(unit_tags) / len(unit_tags):.2f}%",
                ]
            )
            print(" ".join(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run",
        action="append",
        help="NAME=RUN_FOLDER (repeatable); default: the quickstart benchmark's and wikiann-small's runs",
    )
    args = parser.parse_args()
    runs = dict(item.split("=", 1) for item in args.run or ())
    runs = runs or {"quickstart": "runs/quickstart-bench", "wikiann-small": "runs/wikiann-small"}
    rows, skipped = [], []
    for _, folder in runs.items():
        if (Path(folder) / "metrics.json").is_file():
            rows += score_run(Path(folder))
        else:
            skipped.append(folder)
    header = [
        "run",
        "model",
        "decoding",
        "dev F1, gold words",
        "dev F1, raw text",
        "sentences with a broken entity",
    ]
    table = [header, ["---"] * 3 + ["---:"] * 3, *rows]
    body = (
        "## Reading tags: per-word argmax against the best valid IOB2 sequence\n\n"
        f"{provenance()}\n\n"
        "Dev only, each run's own sample and scheme; the same logits read both ways. A broken entity is an "
        "`I-X` that does not continue an `X` entity (argmax can produce it: the units of one name tagged "
        "with two types, or an entity without its first unit); the constrained decoding never does.\n\n"
        + "\n".join("| " + " | ".join(row) + " |" for row in table)
        + "\n"
        + (f"\nNot measured (no finished run): {', '.join(f'`{s}`' for s in skipped)}.\n" if skipped else "")
    )
    write_section("decoding", body)


if __name__ == "__main__":
    main()
