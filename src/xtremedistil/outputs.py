"""The one record that teacher and student outputs become before any loss or metric sees them."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenOutput:
    """Per sub-word for token tasks (NER); one row per window for sequence tasks (text classification):
    logits (B, C), hidden (B, H) the teacher's layer vector or the student's projected sentence vector,
    and no mask."""

    logits: torch.Tensor  # (B, T, C)
    hidden: torch.Tensor | None = None  # (B, T, H): teacher layer state, or the student's projection
    mask: torch.Tensor | None = None  # (B, T) bool, real sub-words (no specials, no padding)
    # the layer map's further matches (``distil.layer_map``), pair by pair: the teacher's layer states, or
    # the student's layer states through each pair's projection; () without a map
    layers: tuple[torch.Tensor, ...] = ()
    # the self-attention relation loss (``distil.attention_layer``): one layer's attention queries, keys and
    # values side by side (B, T, 3 x width), the teacher's from its cache, the student's from its top layer
    relations: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> TokenOutput:
        """The record on ``device`` (itself when it is there already)."""
        if self.logits.device == torch.device(device):
            return self

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return TokenOutput(
            self.logits.to(device),
            move(self.hidden),
            move(self.mask),
            tuple(layer.to(device) for layer in self.layers),
            move(self.relations),
        )

    @property
    def per_sequence(self) -> bool:
        return self.logits.dim() == 2
