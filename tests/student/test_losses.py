from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from xtremedistil.outputs import TokenOutput
from xtremedistil.student.losses import logit_loss, objective, representation_loss, soft_target_loss
from xtremedistil.tasks.base import IGNORE_INDEX, Batch

FIXTURE = Path(__file__).parent / "fixtures" / "losses.json"


def _fixed_inputs():
    g = torch.Generator().manual_seed(0)
    student = TokenOutput(logits=torch.randn(2, 5, 3, generator=g), hidden=torch.randn(2, 5, 4, generator=g))
    teacher = TokenOutput(logits=torch.randn(2, 5, 3, generator=g), hidden=torch.randn(2, 5, 4, generator=g))
    attention = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    targets = torch.full((2, 5), IGNORE_INDEX)
    targets[0, 1], targets[0, 3], targets[1, 1] = 2, 0, 1
    batch = Batch(
        input_ids=torch.zeros(2, 5, dtype=torch.long),
        attention_mask=attention,
        targets=targets,
        word_start=targets != IGNORE_INDEX,
        index=torch.arange(2),
    )
    return student, teacher, batch


def _values():
    student, teacher, batch = _fixed_inputs()
    mask = batch.token_mask
    return {
        "representation_mse": representation_loss(student, teacher, mask).item(),
        "representation_kl": representation_loss(student, teacher, mask, "kl").item(),
        "logits": logit_loss(student, teacher, mask).item(),
        "soft_t2": soft_target_loss(student, teacher, mask, 2.0).item(),
        "labels": objective({"labels": 1.0}, student, None, batch).item(),
        "joint": objective(
            {"labels": 1.0, "logits": 0.5, "representation": 2.0}, student, teacher, batch
        ).item(),
    }


def test_losses_match_stored_values():
    """Stored expected values: a silent change in the maths fails here (regenerate deliberately only)."""
    stored = json.loads(FIXTURE.read_text())
    for name, value in _values().items():
        assert value == pytest.approx(stored[name], rel=1e-5), name


def test_losses_ignore_padding_and_specials():
    student, teacher, batch = _fixed_inputs()
    base = {k: v for k, v in _values().items()}
    ignored = ~batch.token_mask  # specials ([CLS], [SEP]) and padding
    noisy_hidden = student.hidden.clone()
    noisy_hidden[ignored] = 1e3
    noisy_logits = student.logits.clone()
    noisy_logits[ignored] = -1e3
    noisy = TokenOutput(logits=noisy_logits, hidden=noisy_hidden)
    mask = batch.token_mask
    assert representation_loss(noisy, teacher, mask).item() == pytest.approx(base["representation_mse"])
    assert logit_loss(noisy, teacher, mask).item() == pytest.approx(base["logits"])
    # the mse is over the 3 + 1 real sub-words only
    manual = ((student.logits - teacher.logits) ** 2)[mask].mean()
    assert logit_loss(student, teacher, mask).item() == pytest.approx(manual.item())


def test_unknown_loss_and_missing_teacher_are_errors():
    student, teacher, batch = _fixed_inputs()
    with pytest.raises(ValueError, match="needs teacher outputs"):
        objective({"logits": 1.0}, student, None, batch)
    with pytest.raises(ValueError, match="unknown loss"):
        objective({"cosine": 1.0}, student, teacher, batch)


def test_logit_losses_read_word_starts_only_by_default():
    student, teacher, batch = _fixed_inputs()
    word_starts = batch.token_mask & batch.word_start
    assert objective({"logits": 1.0}, student, teacher, batch).item() == pytest.approx(
        logit_loss(student, teacher, word_starts).item()
    )
    every = objective({"logits": 1.0}, student, teacher, batch, logit_positions="all")
    assert every.item() == pytest.approx(logit_loss(student, teacher, batch.token_mask).item())
    assert every.item() != pytest.approx(objective({"logits": 1.0}, student, teacher, batch).item())


def _reference_relation_loss(student, teacher, mask, heads):
    """The relation loss written out position by position (what ``relation_loss`` computes batched)."""
    values = []
    for s_all, t_all in zip(student.chunk(3, -1), teacher.chunk(3, -1), strict=True):
        per = []
        for b in range(mask.shape[0]):
            real = mask[b].nonzero().flatten()
            for h in range(heads):
                s = s_all[b, real].chunk(heads, -1)[h]
                t = t_all[b, real].chunk(heads, -1)[h]
                p_s = torch.softmax(s @ s.T / s.shape[-1] ** 0.5, -1)
                p_t = torch.softmax(t @ t.T / t.shape[-1] ** 0.5, -1)
                per.append((p_t * (p_t.log() - p_s.log())).sum(-1))  # one value per query position
        values.append(torch.cat(per).mean())
    return torch.stack(values).mean()


def test_relation_loss_compares_attention_relations_across_widths():
    from xtremedistil.student.losses import relation_loss

    g = torch.Generator().manual_seed(3)
    mask = torch.tensor([[False, True, True, True, False], [False, True, True, False, False]])
    student = torch.randn(2, 5, 3 * 8, generator=g, requires_grad=True)
    teacher = torch.randn(2, 5, 3 * 24, generator=g)
    logits = torch.zeros(2, 5, 3)
    out = TokenOutput(logits, relations=student)
    value = relation_loss(out, TokenOutput(logits, relations=teacher), mask, heads=4)
    assert torch.allclose(value, _reference_relation_loss(student, teacher, mask, 4), atol=1e-5)
    assert value > 0
    value.backward()
    assert torch.isfinite(student.grad).all() and (student.grad[~mask] == 0).all()
    # padding and specials are read by neither side; equal relations cost nothing
    noisy = teacher.clone()
    noisy[~mask] = 100.0
    again = relation_loss(out, TokenOutput(logits, relations=noisy), mask, heads=4)
    assert torch.allclose(again, value)
    assert relation_loss(out, out, mask, heads=2).abs() < 1e-6
    with pytest.raises(ValueError, match="attention states"):
        relation_loss(TokenOutput(logits), TokenOutput(logits, relations=teacher), mask, heads=4)
