"""Distillation losses over ``TokenOutput`` records; every loss looks at real sub-words only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xtremedistil.outputs import TokenOutput
from xtremedistil.tasks.base import IGNORE_INDEX, Batch


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (B, T, ...) over positions where ``mask`` (B, T) is True and its trailing dims;
    ``mask=None`` (one row per window, sequence tasks): over everything."""
    if mask is None:
        return values.mean() if values.numel() else values.sum() * 0.0
    selected = values[mask]
    return selected.mean() if selected.numel() else values.sum() * 0.0


def representation_loss(
    student: TokenOutput, teacher: TokenOutput, mask: torch.Tensor | None, kind: str = "mse"
) -> torch.Tensor:
    """L_RL: the student's projected state against the teacher's layer state (MSE, or the paper's KL); with
    a layer map, the mean of that and of every further pair's."""
    if len(student.layers) != len(teacher.layers):
        raise ValueError(
            f"the student matches {len(student.layers)} further layers, the teacher outputs {len(teacher.layers)}"
        )
    pairs = [(student.hidden, teacher.hidden), *zip(student.layers, teacher.layers, strict=True)]
    return torch.stack([_state_loss(s, t, mask, kind) for s, t in pairs]).mean()


def _state_loss(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None, kind: str
) -> torch.Tensor:
    if kind == "kl":
        log_p_student = F.log_softmax(student, dim=-1)
        p_teacher = F.softmax(teacher, dim=-1)
        kl = (p_teacher * (torch.log(p_teacher.clamp_min(1e-12)) - log_p_student)).sum(-1)
        return _masked_mean(kl, mask)
    return _masked_mean((student - teacher) ** 2, mask)


def relation_loss(student: TokenOutput, teacher: TokenOutput, mask: torch.Tensor, heads: int) -> torch.Tensor:
    """MiniLMv2's self-attention relation loss: for the queries, the keys and the values of one attention
    layer each, the rows of softmax(X_r X_r^T / sqrt(d_r)) over ``heads`` relation heads (the width cut into
    ``heads`` parts, so teacher and student need not have the same width or heads), the student's against the
    teacher's by KL, over real sub-words (as query and as key); the mean over the three and the heads."""
    if student.relations is None or teacher.relations is None:
        raise ValueError("the relation loss needs both sides' attention states, per sub-word")
    keys = mask[:, None, None, :]  # (B, 1, 1, T)

    def log_relations(states: torch.Tensor) -> torch.Tensor:  # (B, T, W) -> (B, heads, T, T)
        parts = states.unflatten(-1, (heads, -1)).transpose(1, 2)
        scores = parts @ parts.transpose(-1, -2) / parts.shape[-1] ** 0.5
        return F.log_softmax(scores.masked_fill(~keys, -1e9), dim=-1)  # finite: no inf - inf

    total = []
    for s, t in zip(student.relations.chunk(3, -1), teacher.relations.chunk(3, -1), strict=True):
        log_s, log_t = log_relations(s), log_relations(t)
        kl = (log_t.exp() * (log_t - log_s)).masked_fill(~keys, 0.0).sum(-1)  # (B, heads, T)
        total.append(_masked_mean(kl.transpose(1, 2), mask))
    return torch.stack(total).mean()


def logit_loss(student: TokenOutput, teacher: TokenOutput, mask: torch.Tensor | None) -> torch.Tensor:
    """L_LL: MSE between student and teacher logits (no temperature), as in the paper."""
    return _masked_mean((student.logits - teacher.logits) ** 2, mask)


def label_loss(student: TokenOutput, batch: Batch) -> torch.Tensor:
    """L_CE: cross-entropy on gold labels at first sub-words (other positions are ignored), or on the
    window's class for sequence tasks."""
    if student.per_sequence:
        assert batch.labels is not None
        if not (batch.labels != IGNORE_INDEX).any():
            return student.logits.sum() * 0.0
        return F.cross_entropy(student.logits, batch.labels, ignore_index=IGNORE_INDEX)
    if not (batch.targets != IGNORE_INDEX).any():
        return student.logits.sum() * 0.0
    return F.cross_entropy(student.logits.flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE_INDEX)


def soft_target_loss(
    student: TokenOutput, teacher: TokenOutput, mask: torch.Tensor | None, temperature: float = 2.0
) -> torch.Tensor:
    """Hinton et al.: KL between temperature-softened distributions, scaled by T^2."""
    log_p = F.log_softmax(student.logits / temperature, dim=-1)
    q = F.softmax(teacher.logits / temperature, dim=-1)
    kl = (q * (torch.log(q.clamp_min(1e-12)) - log_p)).sum(-1)
    return _masked_mean(kl, mask) * temperature**2


LOSSES = ("representation", "relations", "logits", "labels", "soft")


def objective(
    weights: dict[str, float],
    student: TokenOutput,
    teacher: TokenOutput | None,
    batch: Batch,
    *,
    representation_kind: str = "mse",
    temperature: float = 2.0,
    logit_positions: str = "word-start",
    relation_heads: int = 1,
) -> torch.Tensor:
    """A stage's objective: the weighted sum of the named losses (one name for the paper's stage-wise
    method, several for the joint-loss baselines).

    The representation loss reads every real sub-word; the logit losses read word starts only by default,
    since the teacher was trained to classify first sub-words and its logits elsewhere carry no label.
    Sequence-level outputs (one row per window) are read whole."""
    mask: torch.Tensor | None
    if student.per_sequence:
        mask = logit_mask = None
    else:
        mask = batch.token_mask
        logit_mask = mask & batch.word_start if logit_positions == "word-start" else mask
    total = student.logits.new_zeros(())
    for name, weight in weights.items():
        if name == "labels":
            value = label_loss(student, batch)
        elif teacher is None:
            raise ValueError(f"loss {name!r} needs teacher outputs")
        elif name == "representation":
            value = representation_loss(student, teacher, mask, representation_kind)
        elif name == "relations":
            value = relation_loss(student, teacher, batch.token_mask, relation_heads)  # per sub-word
        elif name == "logits":
            value = logit_loss(student, teacher, logit_mask)
        elif name == "soft":
            value = soft_target_loss(student, teacher, logit_mask, temperature)
        else:
            raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")
        total = total + weight * value
    return total
