"""The teacher: a pretrained encoder with a token-classification head, saved as a plain HF folder.

Two kinds: one fine-tuned here (``new_teacher``, saved with its weights), and a *ready* model the user
fine-tuned elsewhere, used as it is (``ready_teacher``): its own head and labels, read in the data's label
space through ``teacher.labels.align_labels``. A run records a ready teacher as a folder holding only
``xtremedistil.json``, which points at the model and the hash of its weights (nothing is copied).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

from xtremedistil.distributed import autocast
from xtremedistil.errors import XtremeDistilError
from xtremedistil.io import read_json, write_json
from xtremedistil.outputs import TokenOutput
from xtremedistil.tasks.base import Batch
from xtremedistil.teacher.convert import sha256_file
from xtremedistil.teacher.labels import align_labels, map_logits

META_FILE = "xtremedistil.json"
AUTO_CLASSES = {"ner": AutoModelForTokenClassification, "classification": AutoModelForSequenceClassification}
VECTORS = ("first", "mean")


def auto_class(task: str) -> Any:
    """The Hugging Face model class of a task: token classification (NER) or sequence classification."""
    return AUTO_CLASSES[task]


def sentence_vector(states: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, H) layer states -> (B, H): the first token's (the paper's CLS) or the mean over the window's
    sub-words (specials and padding excluded)."""
    if how == "first":
        return states[:, 0]
    if how != "mean":
        raise ValueError(f"unknown sentence vector {how!r}; expected one of {', '.join(VECTORS)}")
    mask = attention_mask.bool().clone()
    lengths = attention_mask.sum(1)
    mask[:, 0] = False
    mask[torch.arange(len(lengths), device=mask.device), lengths - 1] = False
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1)


READY = "ready"  # the meta key of a ready teacher's record
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


def load_tokenizer(path: str | Path) -> Any:
    """The fast tokenizer of a model folder, set up to tokenize words one by one the way it tokenizes them
    inside text: byte-level BPE tokenizers (RoBERTa, GPT-2 style) need ``add_prefix_space`` for that, or a
    word read on its own loses the space marker that every mid-sentence word has."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise XtremeDistilError(
            f"cannot load a tokenizer from here ({reason}); a model or student folder holds its tokenizer "
            "files (tokenizer.json, tokenizer_config.json)",
            path=path,
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise XtremeDistilError(
            f"the model's tokenizer ({type(tokenizer).__name__}) is not a fast (Rust) tokenizer: xtremedistil "
            "needs character offsets, which only fast tokenizers give; save the model with a tokenizer.json "
            "(AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained(folder))",
            path=path,
        )
    pre_tokenizer = repr(getattr(tokenizer.backend_tokenizer, "pre_tokenizer", None))
    if "ByteLevel(add_prefix_space=False" in pre_tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(path, add_prefix_space=True)
    needed = ("cls_token", "sep_token", "pad_token", "unk_token")
    missing = [name for name in needed if getattr(tokenizer, name) is None]
    if missing:
        raise XtremeDistilError(
            f"the tokenizer has no {', '.join(missing)}: xtremedistil needs an encoder's [CLS] ... [SEP] "
            "inputs with padding and an unknown token (BERT, RoBERTa, XLM-R, DistilBERT, ...)",
            path=path,
        )
    return tokenizer


def weights_sha256(folder: str | Path) -> str:
    """One hash over a model folder's weight files (safetensors or PyTorch, sharded or not)."""
    folder = Path(folder)
    files = sorted({f for pattern in WEIGHT_PATTERNS for f in folder.glob(pattern)})
    if not files:
        raise XtremeDistilError(
            "no weights (*.safetensors or pytorch_model*.bin) in the model folder", path=folder
        )
    if len(files) == 1:
        return sha256_file(files[0])
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{sha256_file(file)}\n".encode())
    return digest.hexdigest()


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
        """A plain embedding over the table with the trained rows written into it (in place: no second
        250k-row copy; this module is not used afterwards)."""
        table = self.table.index_copy_(0, self.rows, self.trainable.detach())
        return nn.Embedding.from_pretrained(table, freeze=False, padding_idx=self.padding_idx)


class Teacher(nn.Module):
    """Wraps an HF token-classification model (or a sequence-classification one, ``meta["task"] =
    "classification"``); ``forward`` returns a ``TokenOutput`` whose logits are over ``labels`` (the
    data's), whatever the order and names of the model's own head (a ready teacher)."""

    def __init__(self, model: nn.Module, tokenizer: Any, meta: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        ready = meta.get(READY)
        self.label_groups: list[list[int]] | None = ready["label_groups"] if ready else None

    @property
    def reading(self) -> str:
        """How words become sub-words for this teacher (``tasks.ner.word_pieces``): ``text`` for teachers
        fine-tuned here, often ``words`` for ready ones (Hugging Face's token-classification recipe)."""
        return str(self.meta.get("reading", "text"))

    @property
    def task(self) -> str:
        return str(self.meta.get("task", "ner"))

    @property
    def is_ready(self) -> bool:
        """True for a model fine-tuned elsewhere and used as it is."""
        return READY in self.meta

    @property
    def identity(self) -> str:
        """What the teacher's outputs depend on: the weights, and for a ready teacher how its labels are read."""
        ready = self.meta.get(READY)
        if not ready:
            raise ValueError("a fine-tuned teacher's identity is the hash of its saved weights")
        groups = ",".join("+".join(map(str, g)) for g in ready["label_groups"])
        return hashlib.sha256(f"{ready['weights_sha256']}|{groups}".encode()).hexdigest()

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def forward(
        self, batch: Batch, layer: int | None = None, vector: str = "first", attention: bool = False
    ) -> TokenOutput:
        """Logits, and with ``layer`` that layer's states (a sequence task: its ``vector``, one per row); with
        ``attention`` instead the attention queries, keys and values inside block ``layer`` (the one that
        outputs hidden_states[layer]), side by side (B, T, 3H), per sub-word, and no logits: the blocks
        above it are not run."""
        device = self.model.device
        batch = batch.to(device)
        # inference on a GPU in mixed precision (training chooses its own: teacher.train); nothing on the CPU
        precision = autocast(device) if not torch.is_grad_enabled() else contextlib.nullcontext()
        if attention:
            if layer is None or not 1 <= layer <= self.num_layers:
                raise ValueError(f"attention states: a block 1..{self.num_layers}, not {layer}")
            with precision, attention_states(self.model, layer - 1, stop=True) as kept:
                self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
            hidden = torch.cat(kept, -1).float()
            return TokenOutput(logits=hidden[..., :0], hidden=hidden, mask=batch.token_mask)
        with precision:
            out = self.model(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                output_hidden_states=layer is not None,
            )
        # fp32 out whatever ran inside (a no-op on the CPU): caches and metrics read numpy arrays
        logits = self._data_logits(out.logits.float())
        hidden = out.hidden_states[layer].float() if layer is not None else None
        if logits.dim() == 2:  # one output per window
            if hidden is not None:
                hidden = sentence_vector(hidden, batch.attention_mask, vector)
            return TokenOutput(logits=logits, hidden=hidden)
        return TokenOutput(logits=logits, hidden=hidden, mask=batch.token_mask)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Inference only, from tensors (the graph an ONNX export takes): logits over ``labels``."""
        return self._data_logits(self.model(input_ids=input_ids, attention_mask=attention_mask).logits)

    def _data_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.label_groups is None else map_logits(logits, self.label_groups)

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
        into a temporary sibling, then rename it into place. A ready teacher writes only its record."""
        self.merge_embedding_rows()
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        if self.is_ready:
            tmp.mkdir(parents=True)
        else:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
        write_json(tmp / META_FILE, self.meta)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
        return path


def new_teacher(base: str | Path, labels: list[str], meta: dict[str, Any]) -> Teacher:
    """A pretrained encoder from the local folder ``base`` with a fresh head over ``labels``."""
    tokenizer = load_tokenizer(base)
    model = auto_class(meta.get("task", "ner")).from_pretrained(
        base,
        dtype=torch.float32,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    return Teacher(model, tokenizer, {**meta, "labels": labels})


def model_labels(config: Any) -> list[str]:
    """The labels of a model's head, in the order of its logits."""
    id2label = {int(k): v for k, v in (config.id2label or {}).items()}
    return [id2label.get(i, f"LABEL_{i}") for i in range(int(config.num_labels))]


def ready_teacher(
    folder: str | Path,
    data_labels: Sequence[str],
    label_map: Mapping[str, str] | None,
    meta: dict[str, Any],
    *,
    weights_sha: str | None = None,
) -> Teacher:
    """A token-classification model fine-tuned elsewhere, used as it is: its own head, its labels matched
    to ``data_labels`` by name (``label_map`` for names that differ). ``weights_sha``, if given, must be the
    hash of the folder's weights (a run checks that its ready teacher did not change)."""
    folder = Path(folder)
    if weights_sha is not None and not folder.is_dir():
        raise XtremeDistilError(
            "the ready teacher this run recorded is no longer there (moved or deleted): restore it, or "
            "distil into a new run folder",
            path=folder,
        )
    sha = weights_sha256(folder)
    if weights_sha is not None and sha != weights_sha:
        raise XtremeDistilError(
            "the ready teacher's weights changed since this run used it (their hash differs): distil into a "
            "new run folder, or restore the model",
            path=folder,
        )
    # fp32 whatever the model was saved in: bf16/fp16 weights are slow on CPU, and numpy has no bf16
    model, info = AutoModelForTokenClassification.from_pretrained(
        folder, output_loading_info=True, dtype=torch.float32
    )
    fresh = [key for key in info.get("missing_keys", ()) if "classifier" in key or "score" in key]
    if fresh:
        raise XtremeDistilError(
            f"not a token-classification model: it has no trained head ({', '.join(sorted(fresh))} would be "
            "new). Set teacher.fine_tune = true to fine-tune it on the labeled data first",
            path=folder,
        )
    names = model_labels(model.config)
    groups = align_labels(names, data_labels, label_map)
    record = {
        "source": str(folder.resolve()),
        "weights_sha256": sha,
        "model_labels": names,
        "label_map": dict(label_map or {}),
        "label_groups": groups,
    }
    return Teacher(model.eval(), load_tokenizer(folder), {**meta, "labels": list(data_labels), READY: record})


def load_teacher(path: str | Path) -> Teacher:
    """Load a teacher folder written by ``Teacher.save``: a fine-tuned teacher, or a run's record of a ready
    one (then the model is read from where the record points, after checking its weights' hash)."""
    path = Path(path)
    if not (path / META_FILE).is_file():
        raise XtremeDistilError(f"not a fine-tuned teacher folder (no {META_FILE})", path=path)
    meta = read_json(path / META_FILE)
    ready = meta.get(READY)
    if ready:
        rest = {k: v for k, v in meta.items() if k not in (READY, "labels")}
        teacher = ready_teacher(
            ready["source"], meta["labels"], ready["label_map"], rest, weights_sha=ready["weights_sha256"]
        )
        if teacher.label_groups != ready["label_groups"]:
            raise XtremeDistilError("the ready teacher's labels changed since this run used it", path=path)
        return teacher
    model = auto_class(meta.get("task", "ner")).from_pretrained(path, dtype=torch.float32)
    return Teacher(model.eval(), load_tokenizer(path), meta)


def encoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The encoder blocks of a BERT-like model (BERT, XLM-R, ...), bottom to top."""
    try:
        return getattr(model, "base_model", model).encoder.layer
    except AttributeError:
        raise ValueError(
            f"{type(model).__name__} has no BERT-like encoder blocks (base_model.encoder.layer)"
        ) from None


def attention_block(model: torch.nn.Module, index: int) -> torch.nn.Module:
    """The self-attention (``query``, ``key``, ``value`` projections) of encoder block ``index`` (0-based)."""
    return encoder_blocks(model)[index].attention.self


class _Captured(Exception):
    """Raised by the value projection's hook to stop a forward pass once the attention states are taken."""


@contextlib.contextmanager
def attention_states(
    model: torch.nn.Module, index: int, *, stop: bool = False
) -> Iterator[list[torch.Tensor]]:
    """Collect the query, key and value projections of block ``index`` during a forward pass of ``model``
    (the list holds them in that order once the pass went through the block). ``stop``: end the pass right
    there (the blocks above, and the head, are not run; the caller gets no model output)."""
    block = attention_block(model, index)
    kept: list[torch.Tensor] = [None] * 3  # type: ignore[list-item]

    def hook(k: int):
        def keep(_module: torch.nn.Module, _inputs: Any, out: torch.Tensor) -> None:
            kept[k] = out
            if stop and all(t is not None for t in kept):
                raise _Captured

        return keep

    hooks = [
        getattr(block, name).register_forward_hook(hook(k))
        for k, name in enumerate(("query", "key", "value"))
    ]
    try:
        yield kept
    except _Captured:
        pass
    finally:
        for handle in hooks:
            handle.remove()
