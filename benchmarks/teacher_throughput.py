"""Teacher training and inference throughput at batch 32: length-bucketed dynamic padding against plain
padding (random order, every batch padded to the max length). Writes a section of docs/RESULTS.md.

    python benchmarks/teacher_throughput.py [--wikiann ../shared/data/wikiann] [--batches 10]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from results import provenance, write_section
from xtremedistil.batching import SpecialIds
from xtremedistil.data.embedded import load_embedded_all
from xtremedistil.data.readers import limit_corpus, read_corpus_folder
from xtremedistil.speed import measure_model, measure_training
from xtremedistil.tasks.ner import NerTask
from xtremedistil.teacher.model import new_teacher
from xtremedistil.teacher.registry import resolve_teacher
from xtremedistil.teacher.train import parameter_groups
from xtremedistil.training import setup_torch

LANGUAGES = ["en", "de", "es", "fr", "ru", "ar", "hi", "vi"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wikiann", type=Path, default=Path("../shared/data/wikiann"))
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    threads = setup_torch(seed=0)
    start = time.perf_counter()
    if args.wikiann.is_dir():
        corpus = read_corpus_folder(args.wikiann, languages=LANGUAGES)
        data = f"WikiAnn train, {', '.join(LANGUAGES)} (400 sentences each)"
    else:
        corpus, data = load_embedded_all(), "embedded pku-zh + wnut16-en + hironsan-ja train"
    corpus = limit_corpus(corpus, max_per_split={"train": 400, "dev": 1, "test": 1}, seed=0)
    task = NerTask(corpus.labels())
    teacher = new_teacher(
        resolve_teacher("multilingual-e5-small"), task.labels, {"max_length": args.max_length}
    )
    encoded, stats = task.encode(corpus.split("train"), teacher.tokenizer, args.max_length)
    special = SpecialIds.from_tokenizer(teacher.tokenizer)
    seen = np.unique(np.concatenate([e.input_ids for e in encoded])).astype(np.int64)
    teacher.restrict_embedding_rows(torch.from_numpy(seen))  # as in fine-tuning
    optimizer = torch.optim.AdamW(parameter_groups(teacher, 1e-5, 1e-5, 0.0))

    def train_step(batch) -> None:
        loss = task.loss(teacher(batch).logits, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    modes = {
        "length-bucketed, dynamic padding": {"bucketing": True, "pad_to": None},
        "random order, padded to the batch max": {"bucketing": False, "pad_to": None},
        f"random order, padded to max length {args.max_length}": {
            "bucketing": False,
            "pad_to": args.max_length,
        },
    }
    rows = []
    for name, mode in modes.items():
        teacher.train()
        train = measure_training(train_step, encoded, special, batches=args.batches, **mode)
        teacher.eval()
        infer = measure_model(
            lambda b: teacher(b).logits, encoded, special, batches=args.batches, latency_samples=1, **mode
        )
        rows.append((name, train["throughput"], infer["throughput"]))
        print(name, train, infer, flush=True)
    base_train, base_infer = rows[0][1], rows[0][2]
    table = [
        "| batching | train sentences/s | inference sentences/s | train speed-up of bucketing | inference speed-up of bucketing |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, tr, inf in rows:
        table.append(f"| {name} | {tr:.1f} | {inf:.1f} | {base_train / tr:.2f}× | {base_infer / inf:.2f}× |")
    body = (
        "## Teacher throughput: bucketing against plain padding\n\n"
        + provenance(time.perf_counter() - start)
        + f"\nTeacher multilingual-e5-small, batch 32, {threads} threads, {data}: "
        f"{stats.windows} windows, {stats.subwords / stats.windows:.1f} sub-words on average. Training = "
        f"forward + backward + AdamW step, only the embedding rows of seen sub-words trainable, as in "
        f"fine-tuning; median over {args.batches} batches after 2 warm-up batches, one process.\n\n"
        + "\n".join(table)
        + "\n"
    )
    write_section("teacher-throughput", body)


if __name__ == "__main__":
    main()
