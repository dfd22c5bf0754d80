from __future__ import annotations

import numpy as np
import torch

from xtremedistil.batching import SpecialIds, batch_indices, collate
from xtremedistil.tasks.base import IGNORE_INDEX, Encoded


def _encoded(n: int) -> Encoded:
    return Encoded(
        input_ids=np.arange(10, 10 + n, dtype=np.int32),
        targets=np.zeros(n, dtype=np.int64),
        word_start=np.ones(n, dtype=bool),
        sentence=0,
        first_word=0,
        lang="en",
    )


def test_bucketed_training_batches_cover_everything_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, size=1000)
    batches = batch_indices(lengths, 32, shuffle=True, seed=1, pool_batches=50)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    bucketed_pad = sum(lengths[b].max() * len(b) - lengths[b].sum() for b in batches)
    plain = batch_indices(lengths, 32, shuffle=True, seed=1, bucketing=False)
    plain_pad = sum(lengths[b].max() * len(b) - lengths[b].sum() for b in plain)
    assert bucketed_pad < plain_pad / 5
    # the order differs between epochs (seeds) so training sees varied batches
    assert not np.array_equal(flat, np.concatenate(batch_indices(lengths, 32, shuffle=True, seed=2)))


def test_inference_batches_are_sorted_by_length():
    lengths = [3, 9, 1, 7]
    assert [b.tolist() for b in batch_indices(lengths, 2, shuffle=False)] == [[1, 3], [0, 2]]


def test_collate_wraps_with_specials_and_pads():
    special = SpecialIds(cls=2, sep=3, pad=0)
    batch = collate([_encoded(3), _encoded(1)], [5, 6], special)
    assert batch.input_ids.tolist() == [[2, 10, 11, 12, 3], [2, 10, 3, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch.token_mask.tolist() == [[False, True, True, True, False], [False, True, False, False, False]]
    assert (batch.targets[batch.input_ids == 0] == IGNORE_INDEX).all()
    assert batch.index.tolist() == [5, 6]
    padded = collate([_encoded(1)], [0], special, pad_to=8)
    assert padded.input_ids.shape == torch.Size([1, 8])


def test_micro_batches_cover_the_rows_and_trim_their_padding():
    special = SpecialIds(cls=101, sep=102, pad=0)
    items = [_encoded(n) for n in (9, 8, 3, 2, 2)]
    batch = collate(items, list(range(5)), special)
    assert batch.micro_batches(0) == [batch]
    assert batch.micro_batches(batch.input_ids.numel()) == [batch]
    parts = batch.micro_batches(22)  # width 11: two rows per slice
    assert [len(p) for p in parts] == [2, 2, 1]
    assert torch.equal(torch.cat([p.index for p in parts]), batch.index)
    assert [p.input_ids.shape[1] for p in parts] == [11, 5, 4]  # each slice as wide as its longest row
    for p, start in zip(parts, (0, 2, 4), strict=True):
        width = p.input_ids.shape[1]
        assert torch.equal(p.input_ids, batch.input_ids[start : start + len(p), :width])
        assert not batch.attention_mask[start : start + len(p), width:].any()  # only padding was cut
    assert [len(p) for p in batch.micro_batches(1)] == [1] * 5  # at least one row per slice
