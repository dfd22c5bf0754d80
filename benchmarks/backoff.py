"""Unseen sub-words read as UNK (the paper) or as their nearest kept neighbour (our default; also restricted
to neighbours of the same piece shape): the same trained student of a finished run, scored on the run's
*dev* split each way. Writes a section of
docs/RESULTS.md.

    python benchmarks/backoff.py RUN_DIR [--dims 24 48 128]
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

from results import provenance, write_section
from xtremedistil.config import RunConfig
from xtremedistil.data.sources import load_labeled_all
from xtremedistil.evaluate import markdown_table
from xtremedistil.pipeline import evaluate_model, find_teacher_folder
from xtremedistil.progress import SilentReporter
from xtremedistil.student.model import nearest_kept, piece_shapes
from xtremedistil.student.saved import load_student
from xtremedistil.teacher.model import load_teacher
from xtremedistil.training import setup_torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--dims", type=int, nargs="+", default=[24, 48, 128])
    args = parser.parse_args()
    setup_torch(seed=0)
    start = time.perf_counter()
    config = RunConfig.model_validate(tomllib.loads((args.run / "config.toml").read_text()))
    corpus = load_labeled_all(config.data.labeled, seed=config.seed)
    predictor = load_student(args.run / "student")
    student = predictor.student
    teacher = load_teacher(find_teacher_folder(args.run))
    table = teacher.model.get_input_embeddings().weight
    kept = student.kept_ids.numpy()

    def dev_scores() -> dict:
        return evaluate_model(predictor, corpus, SilentReporter(), splits=("dev",))["dev"]

    student.clear_backoff()
    results = {"UNK (paper)": dev_scores()}
    rows = []
    for dim in args.dims:
        t = time.perf_counter()
        nearest = nearest_kept(table, kept, exclude=teacher.tokenizer.all_special_ids, dim=dim)
        seconds = time.perf_counter() - t
        student.set_backoff(nearest)
        results[f"nearest, {dim} dims"] = dev_scores()
        rows.append(f"| {dim} | {seconds:.1f} |")
    # the same search restricted to neighbours of the same piece shape (word start x case): keeps the cue
    # that an unseen piece is a capitalised word start, at the cost of a less similar neighbour
    tokens = teacher.tokenizer.convert_ids_to_tokens(list(range(table.shape[0])))
    shapes = piece_shapes([token or "" for token in tokens])
    exclude = teacher.tokenizer.all_special_ids
    student.set_backoff(nearest_kept(table, kept, exclude=exclude, groups=shapes))
    results["nearest of the same shape, 48 dims"] = dev_scores()
    body = [
        "## Unseen sub-words: UNK or nearest kept neighbour (dev)\n",
        provenance(time.perf_counter() - start),
        f"The trained student of `{args.run}` (its vocabulary: {len(kept):,} of "
        f"{student.config.teacher_vocab_size:,} teacher sub-words), its weights unchanged, scored on the run's dev split "
        "with unseen sub-words read as UNK and as their nearest kept neighbour (`student.unknown`). "
        f'The run itself used `unknown = "{config.student.unknown}"` while its steps were selected on '
        "dev, which favours that reading (the 48-dimension map when `nearest`).\n",
        markdown_table(results),
        "\n| search dims | seconds for the map |\n|---:|---:|",
        *rows,
    ]
    write_section("backoff", "\n".join(body))


if __name__ == "__main__":
    main()
