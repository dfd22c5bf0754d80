"""Size and speed, measured like a scientist: same process, same threads, warm-up, fixed batches, medians
and p95. Tokenization is timed apart from the model."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xtremedistil.batching import SpecialIds, batch_indices, collate
from xtremedistil.tasks.base import Batch, Encoded

Forward = Callable[[Batch], Any]


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _finished(out: object) -> None:
    """Wait for a GPU's queued work (a CUDA call returns before it is done); nothing on the CPU."""
    if isinstance(out, torch.Tensor) and out.is_cuda:
        torch.cuda.synchronize(out.device)


def measure_model(
    forward: Forward,
    encoded: Sequence[Encoded],
    special: SpecialIds,
    *,
    batch_size: int = 32,
    batches: int = 10,
    warmup: int = 2,
    latency_samples: int = 100,
    bucketing: bool = True,
    pad_to: int | None = None,
    min_seconds: float = 0.0,
) -> dict[str, float]:
    """Throughput (windows/s) at ``batch_size`` and latency at batch 1 (ms, median and p95).

    ``min_seconds``: time the same batches again, in turn, until the timed ones add up to at least this
    long. A small student's ten batches take a few tens of milliseconds, so one busy moment of a shared
    machine moves its median; a longer sample of the same batches does not (the teacher's take seconds)."""
    order = batch_indices([len(e) for e in encoded], batch_size, shuffle=True, seed=0, bucketing=bucketing)
    full = [b for b in order if len(b) == batch_size][: warmup + batches]
    if len(full) <= warmup:
        raise ValueError(f"need more than {warmup * batch_size} windows to measure throughput")
    prepared = [collate([encoded[i] for i in b], b, special, pad_to=pad_to) for b in full]
    batch_times = []
    with torch.inference_mode():
        for k, batch in enumerate(prepared):
            start = time.perf_counter()
            _finished(forward(batch))
            if k >= warmup:
                batch_times.append(time.perf_counter() - start)
        timed = prepared[warmup:]
        while sum(batch_times) < min_seconds and len(batch_times) < 10_000:
            batch = timed[len(batch_times) % len(timed)]
            start = time.perf_counter()
            _finished(forward(batch))
            batch_times.append(time.perf_counter() - start)
        singles = [
            collate([encoded[i]], [i], special) for i in range(min(latency_samples + warmup, len(encoded)))
        ]
        latencies = []
        for k, batch in enumerate(singles):
            start = time.perf_counter()
            _finished(forward(batch))
            if k >= warmup:
                latencies.append(1000 * (time.perf_counter() - start))
    median_batch = statistics.median(batch_times)
    return {
        "batch_size": batch_size,
        "throughput": batch_size / median_batch,  # windows (~sentences) per second
        "batch_ms_median": 1000 * median_batch,
        "batch_ms_p95": 1000 * _percentile(batch_times, 95),
        "latency_ms_median": statistics.median(latencies),
        "latency_ms_p95": _percentile(latencies, 95),
        "batches_timed": len(batch_times),
        "latency_samples": len(latencies),
    }


def measure_tokenizer(
    tokenizer: Any, texts: Sequence[str], segment: Callable[[str], list[tuple[int, int]]], repeats: int = 3
) -> dict[str, float]:
    """Throughput (sentences/s) of turning raw text into sub-words (``segment`` into units, then the
    tokenizer), reported apart from the models (both read text the same way)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        words = [[text[a:b] for a, b in segment(text)] for text in texts]
        tokenizer(words, is_split_into_words=True, add_special_tokens=False)
        times.append(time.perf_counter() - start)
    return {"sentences_per_second": len(texts) / statistics.median(times)}


def parameter_counts(model: torch.nn.Module, embedding: torch.nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for p in embedding.parameters())
    return {"total": total, "embedding": emb, "non_embedding": total - emb}


def folder_size(path: Path, pattern: str = "*.safetensors") -> int:
    return sum(f.stat().st_size for f in Path(path).glob(pattern))


def measure_training(
    step: Callable[[Batch], None],
    encoded: Sequence[Encoded],
    special: SpecialIds,
    *,
    batch_size: int = 32,
    batches: int = 10,
    warmup: int = 2,
    bucketing: bool = True,
    pad_to: int | None = None,
) -> dict[str, float]:
    """Training throughput (windows/s) of ``step`` (forward + backward + optimiser) over fixed batches."""
    order = batch_indices([len(e) for e in encoded], batch_size, shuffle=True, seed=0, bucketing=bucketing)
    full = [b for b in order if len(b) == batch_size][: warmup + batches]
    times = []
    for k, idx in enumerate(full):
        batch = collate([encoded[i] for i in idx], idx, special, pad_to=pad_to)
        start = time.perf_counter()
        step(batch)
        if k >= warmup:
            times.append(time.perf_counter() - start)
    return {
        "throughput": batch_size * len(times) / sum(times),
        "step_s_median": statistics.median(times),
        "steps_timed": len(times),
    }
