"""Student families behind one contract (``StudentBase``: layer groups top to bottom, a forward to the typed
``TokenOutput``, ``logits`` from tensors, the teacher-id map): which family a config or a saved folder names,
its sizes, and its layer groups (what the schedule unfreezes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from xtremedistil.errors import ConfigError
from xtremedistil.student.model import LAYER_GROUPS, PRESETS, BiLSTMStudent, StudentBase, StudentConfig
from xtremedistil.student.transformer import (
    TransformerConfig,
    TransformerStudent,
    layer_group_names,
    transformer_sizes,
)

FAMILIES: dict[str, tuple[type, type[StudentBase]]] = {
    "bilstm": (StudentConfig, BiLSTMStudent),
    "transformer": (TransformerConfig, TransformerStudent),
}
# transformer presets by name: xs about the BiLSTM xs's parameters, s wider, base the teacher's width (its
# layers can then be copied); the embedding stays factorised so the table does not dominate
TRANSFORMER_PRESETS = {"xs": "t4-128", "s": "t4-256", "base": "t4-384-e128"}


def student_sizes(section: Any) -> dict[str, int]:
    """The family's size fields from a ``StudentSection`` (preset, then explicit overrides)."""
    if section.kind == "transformer":
        sizes = transformer_sizes(TRANSFORMER_PRESETS.get(section.preset, section.preset))
        for key in ("embedding_dim", "hidden_size", "layers", "heads", "intermediate_size"):
            if getattr(section, key):
                sizes[key] = getattr(section, key)
        return sizes
    sizes = dict(PRESETS[section.preset])
    for key in ("embedding_dim", "hidden_size"):
        if getattr(section, key):
            sizes[key] = getattr(section, key)
    return sizes


def group_names(section: Any) -> tuple[str, ...]:
    """The layer groups of the student a ``StudentSection`` describes, top to bottom."""
    if section.kind == "transformer":
        return layer_group_names(student_sizes(section)["layers"])
    return LAYER_GROUPS


def relation_heads(section: Any, distil: Any) -> int:
    """The self-attention relation loss's heads: ``distil.attention_heads``, else the student's heads."""
    return distil.attention_heads or int(student_sizes(section).get("heads") or 1)


def family_fields(config: Any, teacher: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """What a family's config reads from the teacher and the distil section beside its sizes (``fields``):
    a transformer its window, norm epsilon, layer-map layers and relation output, checked against the
    teacher's layers and width; a BiLSTM nothing."""
    distil = config.distil
    if config.student.kind != "transformer":
        if distil.layer_map or distil.attention_layer is not None:  # config validation lets an experiment
            raise ConfigError(  # grid naming transformers through; its BiLSTM students stop here
                "distil.layer_map and distil.attention_layer are for transformer students; this student is a "
                f"{config.student.kind}"
            )
        return {}
    for i, j in distil.layer_map:
        if not (1 <= i <= fields["layers"] and 0 <= j <= teacher.num_layers):
            raise ConfigError(
                f"distil.layer_map pair [{i}, {j}]: student layers are 1..{fields['layers']}, teacher "
                f"layers 0..{teacher.num_layers}"
            )
    attention = distil.attention_layer
    if attention is not None:
        heads, widths = (
            relation_heads(config.student, distil),
            (fields["hidden_size"], fields["projection_dim"]),
        )
        if not 1 <= attention <= teacher.num_layers:
            raise ConfigError(
                f"distil.attention_layer = {attention}: the teacher's blocks are 1..{teacher.num_layers}"
            )
        if any(w % heads for w in widths):
            raise ConfigError(
                f"distil.attention_heads = {heads}: the relation heads cut the student's width "
                f"{widths[0]} and the teacher's {widths[1]} into equal parts; choose a common divisor"
            )
    return {
        "max_positions": int(teacher.meta["max_length"]),
        "map_layers": tuple(i for i, _ in distil.layer_map),
        "layer_norm_eps": float(getattr(teacher.model.config, "layer_norm_eps", 1e-12)),
        "relations": attention is not None,
    }


def build_family(kind: str, fields: dict[str, Any], kept_teacher_ids: np.ndarray) -> StudentBase:
    config_class, model_class = FAMILIES[kind]
    return model_class(config_class(**fields), kept_teacher_ids)


def family_of(student: StudentBase) -> str:
    return next(kind for kind, (_, model_class) in FAMILIES.items() if isinstance(student, model_class))
