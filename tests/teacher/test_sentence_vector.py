"""The teacher's sentence vector for classification: the first token's, or the mean over real sub-words."""

from __future__ import annotations

import pytest
import torch

from xtremedistil.teacher.model import sentence_vector


def test_mean_reads_only_the_windows_sub_words():
    states = torch.randn(2, 6, 3)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])  # [CLS] a b [SEP] pad pad
    mean = sentence_vector(states, mask, "mean")
    torch.testing.assert_close(mean[0], states[0, 1:3].mean(0))
    torch.testing.assert_close(mean[1], states[1, 1:5].mean(0))
    noisy = states.clone()
    noisy[0, 4:] = 1e4  # padding must not move it
    noisy[0, 0] = -1e4  # nor the [CLS]
    torch.testing.assert_close(sentence_vector(noisy, mask, "mean")[0], mean[0])
    torch.testing.assert_close(sentence_vector(states, mask, "first"), states[:, 0])
    with pytest.raises(ValueError, match="unknown sentence vector"):
        sentence_vector(states, mask, "max")
