"""Raw-text F1 before and after the raw-text fix, teacher and student, per language: what `predict()` gets on
the test sentences written out as plain text (entities matched by exact type and character span), beside the
F1 at the corpus's gold word boundaries.

    python benchmarks/raw_text.py --name quickstart --before ../runs/before-quickstart --after runs/quickstart-bench
    python benchmarks/raw_text.py --name wikiann --before ../runs/before-wikiann-small --after runs/wikiann-small

``--before`` is a run folder made by the code before the fix (commit bbaebe3: models trained on the gold
words, raw text cut by the old splitter), for example with

    git worktree add ../before bbaebe3 && cd ../before && xtremedistil distil --output ../runs/before-quickstart
    (and, for WikiAnn, `xtremedistil distil configs/wikiann-small.toml --output ../runs/before-wikiann-small`
    with this repository's configs/wikiann-small.toml copied there)

Its gold-word F1 is the model tagging the gold words (as that code scored it); its raw-text F1 runs that
code's splitter, kept below as ``legacy_split_words`` for this measurement only; both read tags by argmax,
as that code did. ``--after`` is a run of the current code, scored the way its report scores it. Both are
scored on the test split as sampled by their runs (the same sentences: the labeled data and seed are the
same).
"""

from __future__ import annotations

import argparse
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

from results import provenance, write_section
from xtremedistil.batching import SpecialIds
from xtremedistil.data.records import Sentence
from xtremedistil.data.sources import load_labeled_all
from xtremedistil.evaluate import EvalSet, evaluate_set
from xtremedistil.pipeline import evaluate_model, find_teacher_folder, run_config_of
from xtremedistil.progress import SilentReporter
from xtremedistil.segment import detokenize, to_units
from xtremedistil.student.saved import load_student
from xtremedistil.tasks.ner import NerTask
from xtremedistil.teacher.model import load_teacher

_LEGACY_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def legacy_split_words(text: str, tokenizer: Any) -> list[tuple[int, int]]:
    """The raw-text splitter of commit bbaebe3, unchanged (duplicated CJK characters, marks cut off)."""
    spans = []
    for match in _LEGACY_WORD.finditer(text):
        a, b = match.span()
        word = match.group()
        cjk = any(unicodedata.name(c, "").startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")) for c in word)
        if not word.isascii() and cjk:
            offsets = tokenizer(word, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            for s, e in offsets:
                s, e = a + s, a + e
                while s < e and text[s].isspace():
                    s += 1
                if s < e:
                    spans.append((s, e))
        else:
            spans.append((a, b))
    return spans


def _legacy_scores(name: str, model: Any, forward: Any, gold: list[Sentence]) -> dict[str, Any]:
    """Gold-word F1 (the model tags the gold words) and raw-text F1 with the legacy splitter."""
    task = NerTask.from_labels(list(model.meta["labels"]), decoding="argmax")  # that code's decoding
    special = SpecialIds.from_tokenizer(model.tokenizer)
    max_length = int(model.meta.get("max_length", 64))
    as_words = []
    for sentence in gold:
        text, spans = detokenize(sentence.words)
        as_words.append(Sentence(sentence.words, sentence.tags, sentence.lang, text, tuple(spans)))
    legacy = [to_units(s, lambda text: legacy_split_words(text, model.tokenizer))[0] for s in gold]
    out = {}
    for kind, units in (("gold", as_words), ("raw", legacy)):
        # that code tokenized every word on its own (no text given), the gold words and its split alike
        as_separate_words = [Sentence(u.words, u.tags, u.lang) for u in units]
        encoded, _ = task.encode(as_separate_words, model.tokenizer, max_length)
        scores, _ = evaluate_set(forward, task, EvalSet(gold, units, encoded), special, batch_size=64)
        out[kind] = scores if kind == "gold" else scores["end_to_end"]
    print(f"{name}: gold words {out['gold']['mean_f1']:.2f}, raw text {out['raw']['mean_f1']:.2f}")
    return out


def score_run(run: Path, legacy: bool) -> dict[str, dict[str, Any]]:
    """``{"teacher"|"student": {"gold": scores, "raw": scores}}`` on the run's test sample."""
    config = run_config_of(run)
    assert config is not None, f"{run} is not a run folder"
    corpus = load_labeled_all(config.data.labeled, seed=config.seed)
    teacher = load_teacher(find_teacher_folder(run))
    student = load_student(run / "student")
    if legacy:
        return {
            "teacher": _legacy_scores("teacher", teacher, lambda b: teacher(b).logits, corpus.split("test")),
            "student": _legacy_scores(
                "student", student, lambda b: student.student(b).logits, corpus.split("test")
            ),
        }
    out = {}
    for name, model in (("teacher", teacher), ("student", student)):
        scores = evaluate_model(
            model, corpus, SilentReporter(), splits=("test",), scheme=config.evaluation.scheme
        )["test"]
        out[name] = {"gold": scores, "raw": scores["end_to_end"]}
        print(f"{name}: gold words {scores['mean_f1']:.2f}, raw text {scores['end_to_end']['mean_f1']:.2f}")
    return out


def table(before: dict[str, Any], after: dict[str, Any]) -> str:
    columns = [
        (when, model, kind)
        for when in ("before", "after")
        for model in ("teacher", "student")
        for kind in ("gold", "raw")
    ]
    scores = {"before": before, "after": after}
    header = ["language"] + [f"{m} {'gold words' if k == 'gold' else 'raw text'}, {w}" for w, m, k in columns]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    languages = sorted(after["teacher"]["gold"]["languages"])
    for lang in languages:
        cells = [f"{100 * scores[w][m][k]['languages'][lang]['f1']:.2f}" for w, m, k in columns]
        rows.append(f"| {lang} | " + " | ".join(cells) + " |")
    means = [f"**{scores[w][m][k]['mean_f1']:.2f}**" for w, m, k in columns]
    rows.append("| **mean** | " + " | ".join(means) + " |")
    return "\n".join(rows) + "\n"


def gaps(scores: dict[str, Any], when: str) -> str:
    parts = []
    for model in ("teacher", "student"):
        gold, raw = scores[model]["gold"]["mean_f1"], scores[model]["raw"]["mean_f1"]
        parts.append(
            f"the {model} loses {gold - raw:.2f} points of mean F1 on raw text ({gold:.2f} → {raw:.2f})"
        )
    retained = scores["student"]["raw"]["mean_f1"] / scores["teacher"]["raw"]["mean_f1"]
    return (
        f"{when.capitalize()}: "
        + "; ".join(parts)
        + f"; the student keeps {100 * retained:.1f}% of the teacher on raw text."
    )


def reproduced(run: Path, scores: dict[str, Any]) -> str:
    """Whether the *before* gold-word columns equal what that run's own report printed (a check that they
    are scored the way that code scored them)."""
    metrics = json.loads((run / "metrics.json").read_text())
    parts = []
    for model in ("teacher", "student"):
        ours, theirs = scores[model]["gold"]["mean_f1"], metrics[model]["test"]["mean_f1"]
        parts.append(f"{model} {ours:.2f} here, {theirs:.2f} in its report")
    return f"\nBefore, gold words, mean F1 rescored against the run's own report: {'; '.join(parts)}.\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--name", required=True, help="section name: raw-text-NAME")
    parser.add_argument("--before", type=Path, required=True, help="a run folder of commit bbaebe3")
    parser.add_argument("--after", type=Path, required=True, help="a run folder of the current code")
    args = parser.parse_args()
    before = score_run(args.before, legacy=True)
    after = score_run(args.after, legacy=False)
    body = (
        f"## Raw text against gold words, before and after the fix: {args.name}\n\n"
        + provenance()
        + f"\nTest F1 per language. *Gold words*: the model tags the corpus's own words (seqeval, strict IOB2). "
        "*Raw text*: `predict()` on the test sentences written out as plain text (`segment.detokenize`), an "
        "entity counting only with its exact type and character span. *Before*: run folder "
        f"`{args.before}`, made by commit bbaebe3 (trained on gold words; raw text cut by its splitter). "
        f"*After*: run folder `{args.after}` of the current code (trained on the units `predict` reads).\n\n"
        + table(before, after)
        + "\n"
        + gaps(before, "before")
        + "\n"
        + gaps(after, "after")
        + "\n"
        + reproduced(args.before, before)
    )
    write_section(f"raw-text-{args.name}", body)


if __name__ == "__main__":
    main()
