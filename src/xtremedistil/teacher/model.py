"""The teacher: a pretrained encoder with a token-classification head, saved as a plain HF folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForTokenClassification, AutoTokenizer

from xtremedistil.errors import XtremeDistilError
from xtremedistil.io import read_json, write_json
from xtremedistil.outputs import TokenOutput
from xtremedistil.tasks.base import Batch

META_FILE = "xtremedistil.json"


class RowSubsetEmbedding(nn.Module):
    """An embedding table whose rows are frozen except ``rows`` (the sub-words seen in training).

    Only rows of sub-words that occur get gradients; keeping the other ~240k rows out of the optimiser
    saves most of its work over the 96M-parameter table. ``merged()`` gives back a plain ``nn.Embedding``.
    """

    def __init__(self, base: nn.Embedding, rows: torch.Tensor) -> None:
        super().__init__()
        rows = torch.unique(rows)
        self.register_buffer("table", base.weight.detach().clone(), persistent=False)
        self.register_buffer("rows", rows, persistent=False)
        slot = torch.full((base.num_embeddings,), -1, dtype=torch.long)
        slot[rows] = torch.arange(len(rows))
        self.register_buffer("slot", slot, persistent=False)
        self.trainable = nn.Parameter(base.weight.detach()[rows].clone())
        self.padding_idx = base.padding_idx
        self.num_embeddings, self.embedding_dim = base.weight.shape

    @property
    def weight(self) -> torch.Tensor:  # read-only view for code that inspects the table
        return self.table.index_copy(0, self.rows, self.trainable.detach())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        slot = self.slot[ids]
        frozen = F.embedding(ids, self.table)
        trained = F.embedding(slot.clamp(min=0), self.trainable)
        return torch.where((slot >= 0).unsqueeze(-1), trained, frozen)

    def merged(self) -> nn.Embedding:
        merged = nn.Embedding(self.num_embeddings, self.embedding_dim, padding_idx=self.padding_idx)
        merged.weight.data.copy_(self.weight)
        return merged


class Teacher(nn.Module):
    """Wraps an HF token-classification model; ``forward`` returns a ``TokenOutput``."""

    def __init__(self, model: nn.Module, tokenizer: Any, meta: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def forward(self, batch: Batch, layer: int | None = None) -> TokenOutput:
        out = self.model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            output_hidden_states=layer is not None,
        )
        hidden = out.hidden_states[layer] if layer is not None else None
        return TokenOutput(logits=out.logits, hidden=hidden, mask=batch.token_mask)

    def restrict_embedding_rows(self, token_ids: torch.Tensor) -> None:
        """Train only the embedding rows of ``token_ids`` (plus specials); the rest of the table is frozen."""
        base = self.model.get_input_embeddings()
        special = torch.tensor(self.tokenizer.all_special_ids, dtype=torch.long)
        self.model.set_input_embeddings(RowSubsetEmbedding(base, torch.cat([token_ids.long(), special])))

    def freeze_embeddings(self) -> None:
        self.model.get_input_embeddings().weight.requires_grad_(False)

    def merge_embedding_rows(self) -> None:
        embedding = self.model.get_input_embeddings()
        if isinstance(embedding, RowSubsetEmbedding):
            self.model.set_input_embeddings(embedding.merged())

    def save(self, path: str | Path) -> Path:
        """Write a self-contained HF folder (weights, config with labels, tokenizer, ``xtremedistil.json``)
        into a temporary sibling, then rename it into place."""
        self.merge_embedding_rows()
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp, safe_serialization=True)
        self.tokenizer.save_pretrained(tmp)
        write_json(tmp / META_FILE, self.meta)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
        return path


def new_teacher(base: str | Path, labels: list[str], meta: dict[str, Any]) -> Teacher:
    """A pretrained encoder from the local folder ``base`` with a fresh head over ``labels``."""
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    return Teacher(model, tokenizer, {**meta, "labels": labels})


def load_teacher(path: str | Path) -> Teacher:
    """Load a fine-tuned teacher folder written by ``Teacher.save``."""
    path = Path(path)
    if not (path / META_FILE).is_file():
        raise XtremeDistilError(f"not a fine-tuned teacher folder (no {META_FILE})", path=path)
    meta = read_json(path / META_FILE)
    model = AutoModelForTokenClassification.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return Teacher(model.eval(), tokenizer, meta)
