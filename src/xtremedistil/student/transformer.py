"""The transformer student: embedding (factorised: a small table projected to the model width, as ALBERT)
+ positions -> k post-norm encoder layers (BERT's) -> projection to the teacher's hidden size -> dropout ->
head, per sub-word (NER) or over one sentence vector (text classification).

It reads the teacher's sub-word ids through the same trimmed vocabulary as the BiLSTM. Initialised from the
fine-tuned teacher: the embedding rows of the kept vocabulary by SVD (the factorisation E -> H then starts as
the teacher's rank-E table), and, when the width, heads and intermediate size are the teacher's, a chosen
subset of its layers and its position table; otherwise the layers start random.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xtremedistil.outputs import TokenOutput
from xtremedistil.student.model import PAD, UNK, StudentBase, init_embedding_svd, pool_states
from xtremedistil.tasks.base import Batch
from xtremedistil.teacher.model import encoder_blocks

# "t<layers>-<hidden>[-e<embedding>]": heads of 32 dimensions (at least 2; 12 at 384 wide, as the teacher),
# intermediate = 4 x hidden (the teacher's ratio), so a 384-wide student can take the teacher's layers
TRANSFORMER_NAME = re.compile(r"^t(\d+)-(\d+)(?:-e(\d+))?$")
DEFAULT_EMBEDDING_DIM = 50  # the BiLSTM xs student's: the table dominates the size of a small student


@dataclass(frozen=True)
class TransformerConfig:
    teacher_vocab_size: int
    vocab_size: int  # trimmed vocabulary, incl. padding (0) and unknown (1)
    embedding_dim: int
    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int
    max_positions: int  # the teacher's window: the student never reads longer
    projection_dim: int  # the teacher's hidden size
    num_labels: int
    dropout: float = 0.1
    word_dropout: float = 0.0
    representation: str = "pre-activation"
    pooling: str = "none"  # "none" per sub-word; "last" (the first token's state, <s>), "mean", "max"
    layer_norm_eps: float = 1e-12
    # student layers (1..layers) the layer map also matches to teacher layers, one projection each; the
    # projections serve training only (``forward(extras=True)``; inference and the ONNX graph never run them)
    map_layers: tuple[int, ...] = ()
    # the top layer's attention queries, keys and values go out with the outputs the representation stages
    # ask for (``forward(extras=True)``: the self-attention relation loss, ``distil.attention_layer``)
    relations: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def transformer_sizes(name: str) -> dict[str, int]:
    """Sizes from a student name like ``t4-128`` or ``t2-384-e128``."""
    match = TRANSFORMER_NAME.match(name)
    if not match:
        raise ValueError(f"not a transformer student name: {name!r} (expected t<layers>-<hidden>[-e<dim>])")
    layers, hidden = int(match[1]), int(match[2])
    embedding = int(match[3]) if match[3] else min(hidden, DEFAULT_EMBEDDING_DIM)
    return {
        "layers": layers,
        "hidden_size": hidden,
        "heads": max(2, hidden // 32),
        "intermediate_size": 4 * hidden,
        "embedding_dim": embedding,
    }


def layer_group_names(layers: int) -> tuple[str, ...]:
    """Top to bottom: head, projection, the encoder layers from the top, the embedding."""
    return ("head", "projection", *(f"layer{i}" for i in reversed(range(layers))), "embedding")


class Embeddings(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.words = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD)
        factorised = config.embedding_dim != config.hidden_size
        self.up = nn.Linear(config.embedding_dim, config.hidden_size) if factorised else nn.Identity()
        self.positions = nn.Embedding(config.max_positions, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, H)
        positions = torch.ones_like(ids).cumsum(1) - 1
        return self.dropout(self.norm(self.up(self.words(ids)) + self.positions(positions)))


class EncoderLayer(nn.Module):
    """A BERT layer (post-norm: attention -> add & norm -> GELU feed-forward -> add & norm), written out so
    its ONNX export keeps the batch and length axes dynamic (a traced ``nn.MultiheadAttention`` fixes them)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.heads = config.heads
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.attention_out = nn.Linear(h, h)
        self.attention_norm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(h, config.intermediate_size)
        self.output = nn.Linear(config.intermediate_size, h)
        self.output_norm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.attention_dropout = config.dropout

    def forward(
        self, x: torch.Tensor, attend: torch.Tensor, keep: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """(B, T, H), attend (B, 1, 1, T) bool (True = a real position to attend to) -> (B, T, H); ``keep``
        receives the queries, keys and values side by side (B, T, 3H)."""

        def split(y: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, heads, T, H / heads)
            return y.unflatten(-1, (self.heads, -1)).transpose(1, 2)

        query, key, value = self.query(x), self.key(x), self.value(x)
        if keep is not None:
            keep.append(torch.cat([query, key, value], -1))
        context = F.scaled_dot_product_attention(
            split(query),
            split(key),
            split(value),
            attn_mask=attend,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        x = self.attention_norm(x + self.dropout(self.attention_out(context.transpose(1, 2).flatten(2))))
        return self.output_norm(x + self.dropout(self.output(F.gelu(self.intermediate(x)))))


class TransformerStudent(StudentBase):
    def __init__(self, config: TransformerConfig, kept_teacher_ids: np.ndarray) -> None:
        super().__init__(config.teacher_vocab_size, config.vocab_size, kept_teacher_ids)
        if config.hidden_size % config.heads:
            raise ValueError(f"hidden size {config.hidden_size} is not a multiple of {config.heads} heads")
        self.config = config
        self.embedding = Embeddings(config)
        self.encoder = nn.ModuleList(EncoderLayer(config) for _ in range(config.layers))
        self.projection = nn.Linear(config.hidden_size, config.projection_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.projection_dim, config.num_labels)
        if any(not 1 <= i <= config.layers for i in config.map_layers):
            raise ValueError(
                f"layer map: student layers are 1..{config.layers}, not {list(config.map_layers)}"
            )
        self.maps = nn.ModuleList(
            nn.Linear(config.hidden_size, config.projection_dim) for _ in config.map_layers
        )

    def layer_groups(self) -> dict[str, nn.Module]:
        """Encoder layer i with the projections of the layer map that read its output (they freeze with it)."""
        layers: dict[str, nn.Module] = {}
        for i in reversed(range(self.config.layers)):
            maps = [m for m, j in zip(self.maps, self.config.map_layers, strict=True) if j == i + 1]
            layers[f"layer{i}"] = nn.ModuleList([self.encoder[i], *maps]) if maps else self.encoder[i]
        return {"head": self.head, "projection": self.projection, **layers, "embedding": self.embedding}

    @property
    def embedding_weight(self) -> torch.Tensor:
        return self.embedding.words.weight

    def init_from_teacher(
        self, teacher_model: nn.Module, unk_id: int, teacher_layers: Sequence[int] = ()
    ) -> None:
        init_from_teacher(self, teacher_model, unk_id, teacher_layers)

    def forward(self, batch: Batch, extras: bool = False) -> TokenOutput:
        """``extras``: also the training-only outputs the representation stages read (the layer map's
        projected states, the top layer's attention states); evaluation, speed and predictions skip them."""
        batch = batch.to(self.embedding_weight.device)
        lengths = batch.attention_mask.sum(1)
        every: list[torch.Tensor] = []
        relations: list[torch.Tensor] | None = [] if extras and self.config.relations else None
        projected, activated, logits = self._layers(
            self.read_ids(batch), lengths, every if extras and self.maps else None, relations
        )
        hidden = projected if self.config.representation == "pre-activation" else activated
        mask = None if self.config.pooling != "none" else batch.token_mask
        layers = tuple(
            project(self._pooled(every[i - 1], lengths))
            for project, i in zip(self.maps, self.config.map_layers, strict=True)
            if every
        )
        return TokenOutput(
            logits=logits,
            hidden=hidden,
            mask=mask,
            layers=layers,
            relations=relations[0] if relations else None,
        )

    def logits(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Inference from tensors (the graph ONNX export traces), as ``BiLSTMStudent.logits``."""
        return self._layers(self.padded_ids(input_ids, lengths), lengths)[2]

    def states(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        every: list[torch.Tensor] | None = None,
        relations: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:  # (B, T) -> (B, T, H); ``every`` collects each layer's output, ``relations`` the top
        # layer's attention queries, keys and values
        positions = torch.ones_like(ids).cumsum(1) - 1
        attend = (positions < lengths.unsqueeze(1))[:, None, None, :]  # (B, 1, 1, T)
        x = self.embedding(ids)
        for k, layer in enumerate(self.encoder):
            x = layer(x, attend, relations if k == len(self.encoder) - 1 else None)
            if every is not None:
                every.append(x)
        return x

    def _pooled(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return states if self.config.pooling == "none" else _pool(states, lengths, self.config.pooling)

    def _layers(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        every: list[torch.Tensor] | None = None,
        relations: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        states = self._pooled(
            self.states(ids, lengths, every, relations), lengths
        )  # (B, T, H), or (B, H) pooled
        projected = self.projection(states)
        activated = F.gelu(projected)
        return projected, activated, self.head(self.dropout(activated))


def _pool(states: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, H) -> (B, H): ``last`` reads the first token (<s>, which every layer lets attend to the whole
    text: a transformer's summary position); ``mean`` / ``max`` over the real positions."""
    if how == "last":
        return states[:, 0]

    return pool_states(states, lengths, how)


def init_from_teacher(
    student: TransformerStudent, teacher_model: nn.Module, unk_id: int, teacher_layers: Sequence[int] = ()
) -> list[int]:
    """Initialise ``student`` from a (fine-tuned) BERT-family teacher: the embedding by SVD of the kept rows
    (with the factorisation's up-projection set to the SVD basis, so up(words) is the teacher's rank-E
    table); when the shapes allow, the position table (plus the teacher's token-type-0 vector, which it
    always adds), the embedding norm and the encoder layers ``teacher_layers`` (0-based; default the bottom
    k). Returns the teacher layers copied ([] when the shapes differ: the layers stay random)."""
    config = student.config
    table = teacher_model.get_input_embeddings().weight
    base = getattr(teacher_model, "base_model", teacher_model)
    tconf = base.config
    same_width = config.hidden_size == tconf.hidden_size
    factorised = isinstance(student.embedding.up, nn.Linear)
    with torch.no_grad():
        if same_width and not factorised:  # the kept rows themselves
            student.embedding_weight[2:] = table[student.kept_ids.to(table.device)].float()
            student.embedding_weight[UNK] = table[unk_id].float()
        else:
            basis = init_embedding_svd(student, table, unk_id)
            if same_width:  # (H, E): up(rows @ V_E) = rows V_E V_E^T, the teacher's rank-E table
                student.embedding.up.weight.copy_(torch.from_numpy(basis))
                student.embedding.up.bias.zero_()
        if not (
            same_width
            and config.heads == tconf.num_attention_heads
            and config.intermediate_size == tconf.intermediate_size
        ):
            return []
        emb = base.embeddings
        offset = (getattr(tconf, "pad_token_id", 0) or 0) + 1 if tconf.model_type in ROBERTA_LIKE else 0
        table = emb.position_embeddings.weight[offset : offset + config.max_positions]
        token_type = emb.token_type_embeddings.weight[0] if hasattr(emb, "token_type_embeddings") else 0.0
        student.embedding.positions.weight[: len(table)] = table + token_type
        student.embedding.norm.load_state_dict(emb.LayerNorm.state_dict())
        chosen = list(teacher_layers) or list(range(config.layers))
        if len(chosen) != config.layers or max(chosen) >= tconf.num_hidden_layers or min(chosen) < 0:
            raise ValueError(
                f"teacher layers {chosen}: need {config.layers} of 0..{tconf.num_hidden_layers - 1}"
            )
        blocks = encoder_blocks(teacher_model)
        for target, j in zip(student.encoder, chosen, strict=True):
            _copy_bert_layer(target, blocks[j])
    return chosen


ROBERTA_LIKE = {"xlm-roberta", "roberta", "camembert"}  # position ids start after the padding index


def _copy_bert_layer(target: EncoderLayer, source: nn.Module) -> None:
    """A Hugging Face BERT layer (post-norm, GELU) into an encoder layer of the same shape."""
    attention = source.attention
    pairs = [
        (target.query, attention.self.query),
        (target.key, attention.self.key),
        (target.value, attention.self.value),
        (target.attention_out, attention.output.dense),
        (target.attention_norm, attention.output.LayerNorm),
        (target.intermediate, source.intermediate.dense),
        (target.output, source.output.dense),
        (target.output_norm, source.output.LayerNorm),
    ]
    for mine, theirs in pairs:
        mine.load_state_dict(theirs.state_dict())
