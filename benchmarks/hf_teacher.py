"""Fine-tune a Hugging Face token-classification model the way a user would outside xtremedistil.

Plain transformers + PyTorch: AutoTokenizer/AutoModelForTokenClassification, AdamW with a linear schedule
and 10% warm-up, the label on the first sub-word of each word (``word_ids()``), dev entity F1 with seqeval
after every epoch and the best epoch kept. The result is saved as a plain HF folder (``save_pretrained`` of
model and tokenizer) whose labels are renamed and ordered the way a user's model often has them (``PERSON``
instead of ``PER``, O first, not sorted), so that xtremedistil can be tested distilling a "ready teacher"
as it is. ``training.json`` in the folder records how it was trained. Only the data is read with
xtremedistil's loader, and the base model is found through its offline registry.

    python benchmarks/hf_teacher.py [--base all-minilm-l6-v2] [--data embedded:wnut16-en]
        [--output runs/minilm-wnut16-teacher] [--epochs 4] [--max-train N] [--max-dev N] [--force]

If ``--output`` already holds a finished model (``training.json`` present), the script prints that and
exits 0 without training unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    get_linear_schedule_with_warmup,
)

from xtremedistil.config import LabeledSource
from xtremedistil.data.records import Sentence
from xtremedistil.data.sources import load_labeled
from xtremedistil.errors import XtremeDistilError
from xtremedistil.teacher.registry import resolve_teacher

DEFAULT_BASE = "all-minilm-l6-v2"
DEFAULT_RENAME = "PER=PERSON,LOC=LOCATION,ORG=ORGANIZATION"
NO_DECAY = ("bias", "LayerNorm.weight")  # as in transformers' run_ner_no_trainer.py / Trainer
BUCKET_BATCHES = 50  # sort by length within chunks of this many batches (less padding, still shuffled)


class UsageError(Exception):
    """A problem with the arguments or inputs: one line on stderr, exit code 2."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Writes a plain HF model folder plus training.json; exit code 2 on bad inputs.",
    )
    parser.add_argument(
        "--base",
        default=DEFAULT_BASE,
        help=f"registry teacher name or local HF model folder (default: {DEFAULT_BASE})",
    )
    parser.add_argument(
        "--data",
        default="embedded:wnut16-en",
        help="labeled data as xtremedistil reads it: embedded:<name> or a corpus folder (default: %(default)s)",
    )
    parser.add_argument("--output", type=Path, default=Path("runs/minilm-wnut16-teacher"))
    parser.add_argument(
        "--rename",
        default=DEFAULT_RENAME,
        help="entity types renamed in the saved labels, OLD=NEW,...; also fixes the label order "
        "(O, then B-/I- per type in this order); '' keeps the data's names (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128, help="sub-word truncation length")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-train", type=int, default=None, help="use the first N train sentences")
    parser.add_argument("--max-dev", type=int, default=None, help="use the first N dev sentences")
    parser.add_argument("--force", action="store_true", help="retrain even if --output holds a model")
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "max_length", "max_train", "max_dev"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.lr <= 0:
        parser.error("--lr must be positive")
    return args


def parse_rename(text: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        old, sep, new = (s.strip() for s in item.partition("="))
        if not sep or not old or not new:
            raise UsageError(f"--rename: expected OLD=NEW, got {item!r}")
        if old in mapping:
            raise UsageError(f"--rename: {old!r} is renamed twice")
        mapping[old] = new
    return mapping


def label_names(types: list[str], rename: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The saved label list (O, then B-/I- per renamed type in mapping order, other types after, sorted)
    and the map from a saved tag back to the data's tag."""
    ordered = [t for t in rename if t in types] + sorted(t for t in types if t not in rename)
    new_names = [rename.get(t, t) for t in ordered]
    if len(set(new_names)) != len(new_names):
        raise UsageError(f"--rename maps two entity types to one name: {new_names}")
    labels, back = ["O"], {"O": "O"}
    for old, new in zip(ordered, new_names, strict=True):
        for prefix in ("B-", "I-"):
            labels.append(prefix + new)
            back[prefix + new] = prefix + old
    return labels, back


def encode(sentences: list[Sentence], tokenizer, label2id: dict[str, int], max_length: int) -> list[dict]:
    """Tokenize pre-split words; the label goes to the first sub-word of each word, -100 elsewhere."""
    encoded = tokenizer(
        [list(s.words) for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length
    )
    features = []
    for i, sentence in enumerate(sentences):
        word_ids = encoded.word_ids(i)
        labels, previous = [], None
        for word in word_ids:
            labels.append(-100 if word is None or word == previous else label2id[sentence.tags[word]])
            previous = word
        feature = {key: encoded[key][i] for key in encoded}
        feature["labels"] = labels
        features.append({"feature": feature, "word_ids": word_ids, "index": i})
    return features


def train_batches(features: list[dict], batch_size: int, rng: random.Random) -> list[list[dict]]:
    """Shuffled batches of similar length: shuffle, sort within chunks, shuffle the batches."""
    order = features[:]
    rng.shuffle(order)
    chunk = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda f: len(f["feature"]["input_ids"]))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def dev_f1(model, features, sentences, collator, batch_size, id2label, back) -> float:
    """Entity F1 (seqeval, strict IOB2) of first-sub-word predictions, in the data's tag names; words cut
    off by truncation count as O."""
    model.eval()
    predicted: list[list[str]] = [["O"] * len(s.words) for s in sentences]
    ordered = sorted(features, key=lambda f: len(f["feature"]["input_ids"]))
    for start in range(0, len(ordered), batch_size):
        chunk = ordered[start : start + batch_size]
        batch = collator([f["feature"] for f in chunk])
        batch.pop("labels")
        ids = model(**batch).logits.argmax(-1).tolist()
        for f, row in zip(chunk, ids, strict=True):
            previous = None
            for position, word in enumerate(f["word_ids"]):
                if word is not None and word != previous:
                    predicted[f["index"]][word] = back[id2label[row[position]]]
                previous = word
    gold = [list(s.tags) for s in sentences]
    return float(f1_score(gold, predicted, mode="strict", scheme=IOB2))


def finished(output: Path) -> bool:
    return (output / "training.json").is_file()


def load_inputs(args: argparse.Namespace):
    try:
        base = resolve_teacher(args.base)
        corpus = load_labeled(LabeledSource(source=args.data), seed=args.seed)
    except XtremeDistilError as exc:
        raise UsageError(str(exc)) from None
    train, dev = corpus.split("train"), corpus.split("dev")
    if not train:
        raise UsageError(f"{args.data}: no train split")
    if not dev:
        raise UsageError(f"{args.data}: no dev split (needed to pick the best epoch)")
    if args.max_train is not None:
        train = train[: args.max_train]
    if args.max_dev is not None:
        dev = dev[: args.max_dev]
    return base, corpus.labels(), train, dev


def run(args: argparse.Namespace) -> None:
    output = args.output
    if finished(output) and not args.force:
        print(f"{output} already holds a trained model (training.json); use --force to retrain")
        return
    rename = parse_rename(args.rename)
    base, types, train, dev = load_inputs(args)
    labels, back = label_names(types, rename)
    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in id2label.items()}
    to_saved = {old: new for new, old in back.items()}

    torch.manual_seed(args.seed)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.set_flush_denormal(True)  # denormal floats slow CPU training ~2x on this machine
    rng = random.Random(args.seed)

    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"{base}: cannot load a tokenizer ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from None
    if not tokenizer.is_fast:
        raise UsageError(f"{base}: needs a fast tokenizer (tokenizer.json) for word_ids()")
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            base, num_labels=len(labels), id2label=id2label, label2id=label2id
        )
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"{base}: cannot load the model ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from None

    def saved_tags(sentences: list[Sentence]) -> list[Sentence]:
        return [Sentence(s.words, tuple(to_saved[t] for t in s.tags), s.lang) for s in sentences]

    train_features = encode(saved_tags(train), tokenizer, label2id, args.max_length)
    dev_features = encode(saved_tags(dev), tokenizer, label2id, args.max_length)
    collator = DataCollatorForTokenClassification(tokenizer, return_tensors="pt")

    decay = [p for n, p in model.named_parameters() if not any(nd in n for nd in NO_DECAY)]
    no_decay = [p for n, p in model.named_parameters() if any(nd in n for nd in NO_DECAY)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr
    )
    steps_per_epoch = -(-len(train_features) // args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, round(0.1 * total_steps), total_steps)

    print(
        f"base {base} | {len(train)} train / {len(dev)} dev sentences | {len(labels)} labels | "
        f"{args.epochs} epochs x {steps_per_epoch} steps | {torch.get_num_threads()} threads",
        flush=True,
    )
    start = time.perf_counter()
    history: list[dict] = []
    best_f1, best_epoch, best_state = -1.0, 0, None
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        total_loss, count = 0.0, 0
        for chunk in train_batches(train_features, args.batch_size, rng):
            batch = collator([f["feature"] for f in chunk])
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the Trainer's default
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            total_loss += loss.item() * len(chunk)
            count += len(chunk)
        f1 = dev_f1(model, dev_features, dev, collator, args.batch_size, id2label, back)
        seconds = time.perf_counter() - epoch_start
        history.append({"epoch": epoch, "loss": total_loss / count, "dev_f1": f1, "seconds": seconds})
        print(
            f"epoch {epoch}/{args.epochs}  loss {total_loss / count:.4f}  dev F1 {f1:.4f}  {seconds:.1f}s",
            flush=True,
        )
        if f1 > best_f1:
            best_f1, best_epoch = f1, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)

    record = {
        "base": args.base,
        "base_folder": str(base),
        "data": args.data,
        "epochs": args.epochs,
        "dev_f1": [h["dev_f1"] for h in history],
        "history": history,
        "best_epoch": best_epoch,
        "best_dev_f1": best_f1,
        "train_sentences": len(train),
        "dev_sentences": len(dev),
        "seconds": seconds,
        "labels": labels,
        "rename": rename,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "seed": args.seed,
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
    }
    save(model, tokenizer, record, output)
    print(f"saved {output} (best epoch {best_epoch}, dev F1 {best_f1:.4f}, {seconds:.0f}s)")


def save(model, tokenizer, record: dict, output: Path) -> None:
    """Write into a temporary sibling folder, then swap it in; an existing folder is replaced only here."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a user's save_pretrained folder is not
    try:
        # transformers 5.x writes safetensors only and ignores the flag; 4.x defaults to it since 4.35
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "training.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        old = None
        if output.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
            output.rename(old / output.name)
        tmp.rename(output)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
