"""The task abstraction: a task owns its labels, how text becomes model inputs, loss masking, decoding and
its metric. Two tasks: NER (token classification, ``tasks.ner``) and text classification
(``tasks.classify``); the orchestrators get theirs from ``tasks.registry`` and never name one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
import torch

from xtremedistil.data.records import Sentence

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Encoded:
    """One model input: a window of a sentence as sub-word ids (no specials), with its labels.

    ``targets`` holds one class id per sub-word, ``IGNORE_INDEX`` where the loss must not look (for NER: all
    but the first sub-word of each word; everywhere for unlabeled text). A sequence-level task (text
    classification) puts the window's class in ``label`` instead (``IGNORE_INDEX`` when unlabeled).
    """

    input_ids: np.ndarray  # (T,) int32, without [CLS]/[SEP]
    targets: np.ndarray  # (T,) int64
    word_start: np.ndarray  # (T,) bool, True at the first sub-word of a word
    sentence: int  # index of the source sentence
    first_word: int  # index of this window's first word within the source sentence
    lang: str
    label: int = IGNORE_INDEX  # sequence-level tasks: the class of the whole window

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class Batch:
    """A padded batch; positions 0 and ``length+1`` of each row hold the tokenizer's specials."""

    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long
    targets: torch.Tensor  # (B, T) long, IGNORE_INDEX on specials, padding and unlabeled positions
    word_start: torch.Tensor  # (B, T) bool
    index: torch.Tensor  # (B,) positions of the rows in the encoded dataset
    labels: torch.Tensor | None = None  # (B,) long: sequence-level classes, IGNORE_INDEX when unlabeled

    @property
    def token_mask(self) -> torch.Tensor:
        """(B, T) bool: real sub-words (not specials, not padding)."""
        mask = self.attention_mask.bool().clone()
        lengths = self.attention_mask.sum(1)
        mask[:, 0] = False
        mask[torch.arange(len(lengths), device=mask.device), lengths - 1] = False
        return mask

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def _map(self, change: Any, *, index: bool = True) -> Batch:
        """A batch with ``change`` applied to every tensor field (``index``: to the row index too)."""
        values = {
            f.name: change(getattr(self, f.name))
            if getattr(self, f.name) is not None and (index or f.name != "index")
            else getattr(self, f.name)
            for f in fields(self)
        }
        return Batch(**values)

    def to(self, device: torch.device) -> Batch:
        """The batch on ``device`` (itself when it is there already: the CPU path copies nothing); the row
        index stays on the CPU, where the cache reads it."""
        if self.input_ids.device == device:
            return self
        return self._map(lambda t: t.to(device), index=False)

    def rows(self, start: int, stop: int) -> Batch:
        """Rows ``start:stop``, trimmed to their own longest row (the padding they no longer need dropped)."""
        width = int(self.attention_mask[start:stop].sum(1).max())
        return self._map(lambda t: t[start:stop, :width] if t.dim() == 2 else t[start:stop])

    def micro_batches(self, max_tokens: int) -> list[Batch]:
        """The batch cut into consecutive row slices of at most ``max_tokens`` padded positions each (at least
        one row per slice); ``max_tokens = 0``: the batch whole. Gradients accumulated over the slices, each
        loss weighted by its share of rows, equal the whole batch's up to the per-row weighting of token-level
        losses: the activations held for backward shrink with the slices."""
        rows, width = self.input_ids.shape
        if max_tokens <= 0 or rows * width <= max_tokens:
            return [self]
        step = max(1, max_tokens // width)
        return [self.rows(start, min(start + step, rows)) for start in range(0, rows, step)]


@dataclass(frozen=True)
class EncodingStats:
    sentences: int
    windows: int
    split_sentences: int  # sentences longer than max_length, split into windows (no word is lost)
    truncated_words: int  # words with more sub-words than fit a window: only their first sub-words are kept
    subwords: int

    def describe(self) -> str:
        return (
            f"{self.sentences:,} sentences -> {self.windows:,} windows, {self.subwords:,} sub-words; "
            f"{self.split_sentences:,} long sentences split into windows, "
            f"{self.truncated_words:,} over-long words cut to their first sub-words"
        )


class Task(Protocol):
    name: str
    labels: list[str]
    level: str  # "token": outputs per sub-word (B, T, C); "sequence": one per window (B, C)
    metric: str  # the headline metric of its scores ("f1", "accuracy")

    def encode(
        self, sentences: Sequence[Sentence], tokenizer: Any, max_length: int
    ) -> tuple[list[Encoded], EncodingStats]: ...

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor: ...

    def decode(
        self, sentences: Sequence[Sentence], encoded: Sequence[Encoded], logits: Sequence[np.ndarray]
    ) -> list[list[str]]: ...

    def score(self, sentences: Sequence[Any], predictions: Sequence[Any]) -> dict[str, Any]: ...

    # what the orchestrators call: the model's inputs from labeled items, and scoring a split
    def inputs(self, items: Sequence[Any], segment: Any) -> list[Any]: ...

    def eval_set(self, items: Sequence[Any], tokenizer: Any, max_length: int, segment: Any) -> Any: ...

    def score_eval_set(
        self, data: Any, logits: Sequence[np.ndarray], *, scheme: str = ...
    ) -> tuple[dict[str, Any], Any]: ...
