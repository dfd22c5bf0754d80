from __future__ import annotations

import time

import numpy as np

from tests.test_batching import _encoded
from xtremedistil.batching import SpecialIds
from xtremedistil.config import SpeedSection
from xtremedistil.speed import measure_model
from xtremedistil.tasks.base import Encoded


def _windows(n: int) -> list[Encoded]:
    rng = np.random.default_rng(0)
    return [_encoded(int(length)) for length in rng.integers(3, 12, size=n)]


def _timed_forward(seconds: float):
    seen = []

    def forward(batch):
        seen.append(batch.input_ids.shape)
        time.sleep(seconds)
        return batch.input_ids

    return forward, seen


def test_a_fast_model_is_timed_over_at_least_min_seconds_on_the_same_batches():
    windows, special = _windows(64), SpecialIds(cls=1, sep=2, pad=0)
    forward, seen = _timed_forward(0.002)
    once = measure_model(forward, windows, special, batch_size=4, batches=3, warmup=1, latency_samples=2)
    assert once["batches_timed"] == 3
    shapes = set(seen[1:4])  # the three timed batches
    forward, seen = _timed_forward(0.002)
    long = measure_model(
        forward, windows, special, batch_size=4, batches=3, warmup=1, latency_samples=2, min_seconds=0.1
    )
    timed = long["batches_timed"]
    assert timed > 3 and timed * 0.002 >= 0.1 * 0.9
    assert set(seen[1 : 1 + timed]) == shapes  # the same batches again, no new ones
    assert abs(long["throughput"] - 4 / 0.002) / (4 / 0.002) < 0.5


def test_speed_section_gives_measure_model_its_arguments():
    kwargs = SpeedSection(batches=3).measure_kwargs(latency_samples=5)
    assert kwargs["batches"] == 3 and kwargs["latency_samples"] == 5 and kwargs["min_seconds"] == 1.0
    windows, special = _windows(64), SpecialIds(cls=1, sep=2, pad=0)
    forward, _ = _timed_forward(0.0)
    out = measure_model(forward, windows, special, **(kwargs | {"batch_size": 4, "min_seconds": 0.0}))
    assert out["batches_timed"] == 3 and out["latency_samples"] == 5
