"""The BiLSTM student: embedding -> BiLSTM -> projection to the teacher's hidden size -> dropout -> head,
per sub-word (NER), or over one sentence vector pooled from the BiLSTM states (text classification).

It reads the teacher's own sub-word ids; a lookup table maps them onto its trimmed vocabulary, so it
tokenizes raw text with the teacher's tokenizer and needs nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xtremedistil.outputs import TokenOutput
from xtremedistil.tasks.base import Batch

PRESETS = {
    "xs": {"embedding_dim": 50, "hidden_size": 200},  # the paper's 35x-compression point (Table 16)
    "s": {"embedding_dim": 100, "hidden_size": 300},
    "base": {"embedding_dim": 300, "hidden_size": 600},  # the paper's best F1 (Table 12)
}

# Top to bottom: the order of gradual unfreezing.
LAYER_GROUPS = ("head", "projection", "bilstm", "embedding")


@dataclass(frozen=True)
class StudentConfig:
    teacher_vocab_size: int
    vocab_size: int  # trimmed vocabulary, incl. padding (0) and unknown (1)
    embedding_dim: int
    hidden_size: int  # per LSTM direction
    projection_dim: int  # the teacher's hidden size
    num_labels: int
    dropout: float = 0.2
    word_dropout: float = 0.0  # training only: a real sub-word is read as UNK with this probability
    representation: str = "pre-activation"  # where the representation loss reads the projection
    # "none": one output per sub-word (token tasks); "last" (both directions' final states), "mean" or
    # "max": one sentence vector per window (sequence tasks)
    pooling: str = "none"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


PAD, UNK = 0, 1


def build_vocabulary(
    teacher_ids: Iterable[np.ndarray], always: Sequence[int], max_size: int | None = None
) -> np.ndarray:
    """Sorted teacher ids the student keeps: those that occur in train + transfer text, plus ``always``
    (the tokenizer's specials). Student id = 2 + position in this array (0 = padding, 1 = unknown).
    ``max_size``: only the most frequent ids (ties by id), the specials always, so the table does not grow
    with the transfer set; the others read as UNK or as their nearest kept sub-word (``set_backoff``)."""
    seen = np.concatenate([np.asarray(a, dtype=np.int64) for a in teacher_ids] or [np.zeros(0, np.int64)])
    specials = np.unique(np.asarray(always, dtype=np.int64))
    ids, counts = np.unique(seen, return_counts=True)
    if max_size is not None and len(np.union1d(ids, specials)) > max_size:
        ordinary = ~np.isin(ids, specials)
        ids, counts = ids[ordinary], counts[ordinary]
        room = max(0, max_size - len(specials))
        ids = ids[np.lexsort((ids, -counts))[:room]]  # most frequent first, ties by id
    return np.union1d(ids, specials)


POOLINGS = ("none", "last", "mean", "max")


def pool_states(states: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, 2H) BiLSTM states of right-padded rows -> (B, 2H) sentence vectors that read only each row's
    first ``length`` positions: ``last`` = the forward state at the last real position and the backward
    state at the first (each direction's final state), ``mean`` / ``max`` over the real positions."""
    positions = torch.ones_like(states[..., 0], dtype=torch.long).cumsum(1) - 1  # (B, T)
    real = (positions < lengths.unsqueeze(1)).unsqueeze(-1)  # (B, T, 1)
    if how == "last":
        half = states.shape[-1] // 2
        last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, half)
        forward_final = states[..., :half].gather(1, last).squeeze(1)
        return torch.cat([forward_final, states[:, 0, half:]], dim=-1)
    if how == "mean":
        return (states * real).sum(1) / lengths.clamp(min=1).unsqueeze(1).to(states.dtype)
    if how == "max":
        return states.masked_fill(~real, torch.finfo(states.dtype).min).amax(1)
    raise ValueError(f"unknown pooling {how!r}; expected one of {', '.join(POOLINGS)}")


def reverse_within_lengths(lengths: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, T) positions that reverse each row's first ``length`` entries and keep the padding in place;
    ``like``: any (B, T, ...) tensor (its shape is read in the graph, so an ONNX export keeps it dynamic)."""
    positions = torch.ones_like(like[..., 0], dtype=torch.long).cumsum(1) - 1
    last = lengths.unsqueeze(1) - 1
    return torch.where(positions <= last, last - positions, positions)


class BiLSTM(nn.Module):
    """A bidirectional LSTM over right-padded batches, exact for every row's real length.

    The backward direction runs on each row reversed within its length, so neither direction ever reads
    padding before a real token. This avoids packed sequences: PyTorch's CPU backward for packed LSTMs
    zero-fills a (tokens x 4H) buffer at every time step, which made training ~10x slower.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.forward_lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(input_size, hidden_size, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # (B, T, E) -> (B, T, 2H)
        order = reverse_within_lengths(lengths, x).unsqueeze(-1)
        # explicit zero states shaped from x: an ONNX export would otherwise fix the batch size it saw
        zeros = x.new_zeros(1, x.shape[0], self.forward_lstm.hidden_size)
        forward_states, _ = self.forward_lstm(x, (zeros, zeros))
        backward_states, _ = self.backward_lstm(
            x.gather(1, order.expand(-1, -1, x.shape[-1])), (zeros, zeros)
        )
        backward_states = backward_states.gather(1, order.expand(-1, -1, backward_states.shape[-1]))
        return torch.cat([forward_states, backward_states], dim=-1)


class StudentBase(nn.Module):
    """What every student family shares: it reads the teacher's sub-word ids through a map onto its trimmed
    vocabulary (``id_map``, with an optional nearest-neighbour backoff for unkept ids), and owns its
    freezing through named layer groups, listed top to bottom (the order of gradual unfreezing)."""

    config: Any

    def __init__(self, teacher_vocab_size: int, vocab_size: int, kept_teacher_ids: np.ndarray) -> None:
        super().__init__()
        if len(kept_teacher_ids) + 2 != vocab_size:
            raise ValueError("vocab_size must be the number of kept teacher ids + 2")
        kept = torch.as_tensor(np.asarray(kept_teacher_ids), dtype=torch.long)
        id_map = torch.full((teacher_vocab_size,), UNK, dtype=torch.int32)
        id_map[kept] = torch.arange(2, vocab_size, dtype=torch.int32)
        self.register_buffer("kept_ids", kept, persistent=False)  # student id - 2 -> teacher id
        # teacher id -> student id; unkept ids read UNK, or a kept neighbour after `set_backoff`
        self.register_buffer("id_map", id_map)

    # --- layer groups: the student owns its freezing -------------------------------------------------
    def layer_groups(self) -> dict[str, nn.Module]:
        """Name -> module, top to bottom."""
        raise NotImplementedError

    def set_trainable(self, groups: Iterable[str]) -> None:
        """Make exactly ``groups`` trainable; every other group is frozen."""
        groups = set(groups)
        known = self.layer_groups()
        unknown = groups - set(known)
        if unknown:
            raise ValueError(f"unknown layer groups {sorted(unknown)}; expected some of {tuple(known)}")
        for name, module in known.items():
            module.requires_grad_(name in groups)

    def freeze(self, groups: Iterable[str]) -> None:
        for name in groups:
            self.layer_groups()[name].requires_grad_(False)

    def unfreeze(self, groups: Iterable[str]) -> None:
        for name in groups:
            self.layer_groups()[name].requires_grad_(True)

    def trainable_groups(self) -> list[str]:
        return [n for n, m in self.layer_groups().items() if any(p.requires_grad for p in m.parameters())]

    def parameter_counts(self) -> dict[str, int]:
        counts = {name: sum(p.numel() for p in m.parameters()) for name, m in self.layer_groups().items()}
        counts["total"] = sum(counts.values())
        return counts

    # --- the map from teacher ids ----------------------------------------------------------------------
    def unkept(self) -> torch.Tensor:
        """(teacher vocab,) bool: the teacher ids outside the kept vocabulary."""
        return ~torch.isin(torch.arange(len(self.id_map)), self.kept_ids)

    def set_backoff(self, nearest: np.ndarray) -> None:
        """Read every teacher id the student does not keep as the kept id ``nearest[id]`` (a teacher id)
        instead of UNK. Kept ids, padding and the teacher's specials are left as they are."""
        nearest = torch.as_tensor(np.asarray(nearest), dtype=torch.long)
        if nearest.shape != self.id_map.shape:
            raise ValueError(
                f"backoff map has shape {tuple(nearest.shape)}, expected {tuple(self.id_map.shape)}"
            )
        if not bool(torch.isin(nearest, self.kept_ids).all()):
            raise ValueError("the backoff map must point at kept teacher ids")
        unkept = self.unkept()
        self.id_map[unkept] = self.id_map[nearest][unkept]

    def clear_backoff(self) -> None:
        """Unkept teacher ids read UNK again (the paper's behaviour)."""
        self.id_map[self.unkept()] = UNK

    def has_backoff(self) -> bool:
        return bool((self.id_map[self.unkept()] != UNK).any())

    def student_ids(self, teacher_ids: torch.Tensor) -> torch.Tensor:
        return self.id_map[teacher_ids].long()

    def read_ids(self, batch: Batch) -> torch.Tensor:
        """(B, T) student ids of a batch, padding as PAD; in training, word dropout reads real ids as UNK."""
        ids = self.student_ids(batch.input_ids).masked_fill(batch.attention_mask == 0, PAD)
        if self.training and self.config.word_dropout > 0:
            dropped = (torch.rand(ids.shape, device=ids.device) < self.config.word_dropout) & (ids != PAD)
            ids = ids.masked_fill(dropped, UNK)
        return ids

    def padded_ids(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Inference from tensors: (B, T) teacher ids and (B,) lengths -> student ids, padding as PAD."""
        positions = torch.ones_like(input_ids).cumsum(1) - 1
        return self.student_ids(input_ids).masked_fill(positions >= lengths.unsqueeze(1), PAD)

    @property
    def embedding_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def init_from_teacher(
        self, teacher_model: nn.Module, unk_id: int, teacher_layers: Sequence[int] = ()
    ) -> None:
        """Start from the (fine-tuned) teacher: the embedding by SVD of its kept rows (paper Table 7); a
        family that can take more of the teacher overrides this."""
        init_embedding_svd(self, teacher_model.get_input_embeddings().weight, unk_id)


class BiLSTMStudent(StudentBase):
    def __init__(self, config: StudentConfig, kept_teacher_ids: np.ndarray) -> None:
        super().__init__(config.teacher_vocab_size, config.vocab_size, kept_teacher_ids)
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD)
        self.bilstm = BiLSTM(config.embedding_dim, config.hidden_size)
        self.projection = nn.Linear(2 * config.hidden_size, config.projection_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.projection_dim, config.num_labels)

    def layer_groups(self) -> dict[str, nn.Module]:
        return {
            "head": self.head,
            "projection": self.projection,
            "bilstm": self.bilstm,
            "embedding": self.embedding,
        }

    @property
    def embedding_weight(self) -> torch.Tensor:
        return self.embedding.weight

    # --- forward ------------------------------------------------------------------------------------
    def forward(self, batch: Batch, extras: bool = False) -> TokenOutput:  # a BiLSTM has no extras
        batch = batch.to(self.embedding.weight.device)
        ids = self.read_ids(batch)  # (B, T)
        projected, activated, logits = self._layers(ids, batch.attention_mask.sum(1))
        hidden = projected if self.config.representation == "pre-activation" else activated
        mask = None if self.config.pooling != "none" else batch.token_mask
        return TokenOutput(logits=logits, hidden=hidden, mask=mask)

    def logits(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Inference only, from tensors: (B, T) teacher ids (with specials, right-padded) and (B,) lengths
        (with specials) -> (B, T, C) logits, or (B, C) for a pooled student. The graph ``student.export``
        writes to ONNX."""
        return self._layers(self.padded_ids(input_ids, lengths), lengths)[2]

    def _layers(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        states = self.bilstm(self.embedding(ids), lengths)  # (B, T, 2H)
        if self.config.pooling != "none":
            states = pool_states(states, lengths, self.config.pooling)  # (B, 2H)
        projected = self.projection(states)  # (B, T, D) before the activation, or (B, D) pooled
        activated = F.gelu(projected)
        return projected, activated, self.head(self.dropout(activated))  # logits (B, T, C)


def svd_embedding(teacher_rows: np.ndarray, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Truncated SVD of the teacher's input-embedding rows to ``dim`` dimensions (paper Table 7).

    Returns the rows' coordinates in the top-``dim`` right-singular subspace (U_k S_k, i.e. rows @ V_k) and
    the basis V_k (H, k), so other teacher rows (e.g. <unk>) can be projected the same way. Dimensions beyond
    the teacher's width, if asked for, are small random values."""
    rows = np.asarray(teacher_rows, dtype=np.float64)
    _, s, vt = np.linalg.svd(rows, full_matrices=False)
    k = min(dim, len(s))
    basis = vt[:k].T  # (H, k)
    out = np.zeros((rows.shape[0], dim))
    out[:, :k] = rows @ basis
    if dim > k:
        scale = out[:, :k].std() / 10
        out[:, k:] = np.random.default_rng(seed).normal(0, scale, size=(rows.shape[0], dim - k))
    return out.astype(np.float32), basis.astype(np.float32)


def init_embedding_svd(student: StudentBase, teacher_table: torch.Tensor, unk_id: int) -> np.ndarray:
    """Initialise the student embedding from the (fine-tuned) teacher's rows of the kept vocabulary; returns
    the SVD basis (teacher hidden x embedding dim) the rows were projected on."""
    rows = teacher_table[student.kept_ids.to(teacher_table.device)].detach().float().cpu().numpy()
    weight = student.embedding_weight
    coords, basis = svd_embedding(rows, weight.shape[1])
    with torch.no_grad():
        weight[2:] = torch.from_numpy(coords)
        weight[PAD] = 0.0
        unk = teacher_table[unk_id].detach().float().cpu().numpy() @ basis
        weight[UNK, : len(unk)] = torch.from_numpy(unk)
    return basis


def piece_shapes(tokens: Sequence[str]) -> np.ndarray:
    """A shape class per sub-word piece: word-start (SentencePiece ``▁``) or continuation, times a first
    character that is upper-case, lower-case or neither (digits, punctuation, CJK). Backing off within a
    class keeps the cues a name gives away: ``▁Drake`` reads as a capitalised word start, not ``▁drago``."""
    out = np.empty(len(tokens), dtype=np.int8)
    for i, token in enumerate(tokens):
        core = token.removeprefix("▁")
        case = 0 if core[:1].isupper() else 1 if core[:1].islower() else 2
        out[i] = case + (3 if len(core) < len(token) else 0)
    return out


def nearest_kept(
    teacher_table: torch.Tensor,
    kept_ids: np.ndarray,
    exclude: Sequence[int] = (),
    dim: int = 48,
    block: int = 2048,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """For every teacher id, the kept teacher id whose input embedding is most similar (cosine), so the
    student can read a sub-word it never saw as its nearest known neighbour rather than as UNK.

    The search runs in the top-``dim`` SVD subspace of the kept rows, in cache-sized blocks with a running
    maximum instead of one (teacher vocab x kept) score matrix; ``benchmarks/backoff.py`` times it and
    compares search dimensions on dev. Ids in ``exclude`` (the specials) are never a target. Kept ids map
    to themselves. With ``groups`` (teacher id -> group, e.g. :func:`piece_shapes`), a neighbour of the
    same group is always preferred; another group's is taken only when no kept id has the query's group."""
    table = teacher_table.detach().float().cpu()
    kept = np.asarray(kept_ids, dtype=np.int64)
    targets = kept[~np.isin(kept, np.asarray(exclude, dtype=np.int64))]
    if len(targets) == 0:
        raise ValueError("no kept ids to back off to")
    _, basis = svd_embedding(table[torch.as_tensor(targets)].numpy(), min(dim, table.shape[1]))
    basis_t = torch.from_numpy(basis)

    def unit(rows: torch.Tensor) -> torch.Tensor:
        return F.normalize(rows @ basis_t, dim=-1)

    keys = unit(table[torch.as_tensor(targets)]).T.contiguous()  # (dim, K)
    group = None if groups is None else torch.as_tensor(np.asarray(groups, dtype=np.int64))
    target_group = None if group is None else group[torch.as_tensor(targets)]
    query_ids = torch.from_numpy(np.setdiff1d(np.arange(table.shape[0]), kept))  # kept ids map to themselves
    out = torch.empty(len(query_ids), dtype=torch.long)
    for start in range(0, len(query_ids), block):
        ids = query_ids[start : start + block]
        queries = unit(table[ids])
        best = torch.full((len(queries),), -5.0)
        arg = torch.zeros(len(queries), dtype=torch.long)
        for col in range(0, keys.shape[1], block):
            scores = queries @ keys[:, col : col + block]
            if group is not None:  # cosines lie in [-1, 1]: a penalty of 3 ranks every other group last
                key_group = target_group[col : col + block]
                scores -= 3.0 * (group[ids, None] != key_group[None, :])
            value, index = scores.max(dim=1)
            better = value > best
            best, arg = torch.where(better, value, best), torch.where(better, index + col, arg)
        out[start : start + block] = arg
    nearest = np.empty(table.shape[0], dtype=np.int64)
    nearest[query_ids.numpy()] = targets[out.numpy()]
    nearest[kept] = kept
    return nearest
