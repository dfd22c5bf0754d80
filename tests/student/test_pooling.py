"""The classification student's sentence vector reads only a row's real positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xtremedistil.batching import SpecialIds, collate
from xtremedistil.student.model import BiLSTMStudent, StudentConfig, pool_states
from xtremedistil.tasks.base import IGNORE_INDEX, Encoded


def window(ids: list[int], label: int = 0) -> Encoded:
    n = len(ids)
    return Encoded(np.array(ids, np.int32), np.full(n, IGNORE_INDEX), np.zeros(n, bool), 0, 0, "en", label)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_sentence_vector_does_not_depend_on_padding(pooling):
    torch.manual_seed(0)
    config = StudentConfig(
        teacher_vocab_size=40,
        vocab_size=22,
        embedding_dim=6,
        hidden_size=5,
        projection_dim=7,
        num_labels=3,
        pooling=pooling,
    )
    student = BiLSTMStudent(config, np.arange(5, 25)).eval()
    special = SpecialIds(cls=1, sep=2, pad=0)
    short = window([7, 8, 9])
    alone = student(collate([short], [0], special))
    padded = student(collate([short, window(list(range(5, 25)))], [0, 1], special, pad_to=30))
    assert alone.logits.shape == (1, 3) and alone.hidden.shape == (1, 7) and alone.mask is None
    torch.testing.assert_close(padded.logits[0], alone.logits[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(padded.hidden[0], alone.hidden[0], atol=1e-6, rtol=1e-5)
    # the padding positions hold garbage on purpose: the vector must not move
    lengths = torch.tensor([3, 5])
    states = torch.randn(2, 9, 4)
    noisy = states.clone()
    noisy[0, 3:] = 100.0
    torch.testing.assert_close(
        pool_states(states, lengths, pooling)[0], pool_states(noisy, lengths, pooling)[0]
    )


def test_last_pooling_takes_each_direction_final_state():
    states = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 4, 4)
    pooled = pool_states(states, torch.tensor([2, 4]), "last")
    # forward half (first 2 dims) at the last real position, backward half at position 0
    assert pooled[0].tolist() == [
        states[0, 1, 0].item(),
        states[0, 1, 1].item(),
        states[0, 0, 2].item(),
        states[0, 0, 3].item(),
    ]
    assert pooled[1, :2].tolist() == states[1, 3, :2].tolist()
