"""The schedule is data: a pure function turns the config into a list of stage records; one training
function (``student.distil.run_stage``) runs any of them.

Strategies (paper Table 3), all expressed with the same records:
  D0-S  labels only, all languages jointly            D0 is D0-S with one student per language
  D1    labels + logits in one joint loss (Tang et al. 2019); ``kd``: labels + temperature-scaled soft targets
  D2    labels + logits + representation in one joint loss
  D3.1  representation -> labels+logits;  D3.2 = D3.1 with gradual unfreezing
  D4.1  representation -> logits -> labels;  D4.2 = D4.1 with gradual unfreezing (XtremeDistil, the default)
"""

from __future__ import annotations

from dataclasses import dataclass

from xtremedistil.student.model import LAYER_GROUPS

STRATEGIES = ("D0", "D0-S", "D1", "kd", "D2", "D3.1", "D3.2", "D4.1", "D4.2")


@dataclass(frozen=True)
class Stage:
    name: str
    losses: tuple[tuple[str, float], ...]  # (loss name, weight): representation, logits, labels, soft
    data: str  # "transfer" (teacher outputs only), "labeled" (gold labels), "labeled+transfer"
    trainable: tuple[str, ...]  # layer groups, top to bottom
    epochs: int
    lr: float
    patience: int

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.losses)

    @property
    def needs_teacher(self) -> bool:
        return any(name != "labels" for name, _ in self.losses)

    @property
    def needs_hidden(self) -> bool:
        """Whether the stage reads the teacher's layer states (the bulk of the cache), not only its logits."""
        return any(name in ("representation", "relations") for name, _ in self.losses)

    def describe(self) -> str:
        losses = " + ".join(name if w == 1.0 else f"{w:g}*{name}" for name, w in self.losses)
        return f"{self.name:<22} {losses:<34} {self.data:<17} {','.join(self.trainable):<36} {self.epochs:>3} {self.lr:g}"


@dataclass(frozen=True)
class ScheduleSettings:
    """The config values a schedule depends on (a plain record so ``plan`` stays a pure function)."""

    strategy: str = "D4.2"
    representation_epochs: int = 4
    logit_epochs: int = 2
    label_epochs: int = 3
    joint_epochs: int = 10
    lr: float = 3e-3
    patience: int = 2
    joint_weights: tuple[tuple[str, float], ...] = (("labels", 1.0), ("logits", 1.0), ("representation", 1.0))
    layer_groups: tuple[str, ...] = LAYER_GROUPS  # the student's, top to bottom (the BiLSTM's by default)
    relation_weight: float = 0.0  # > 0: the self-attention relation loss joins the representation loss


def _unfreezing(
    prefix: str, losses: tuple[tuple[str, float], ...], data: str, epochs: int, s: ScheduleSettings
) -> list[Stage]:
    """Gradual unfreezing, top to bottom: head -> +projection -> +bilstm -> +embedding (cumulative; a
    transformer student unfreezes its encoder layers one at a time from the top)."""
    groups = s.layer_groups
    return [
        Stage(f"{prefix}.{k + 1} +{group}", losses, data, groups[: k + 1], epochs, s.lr, s.patience)
        for k, group in enumerate(groups)
    ]


def _whole(
    name: str, losses: tuple[tuple[str, float], ...], data: str, epochs: int, s: ScheduleSettings
) -> Stage:
    return Stage(name, losses, data, s.layer_groups, epochs, s.lr, s.patience)


def plan(s: ScheduleSettings) -> list[Stage]:
    """The list of stages of a strategy."""
    weights = dict(s.joint_weights)
    relations = (("relations", s.relation_weight),) if s.relation_weight > 0 else ()
    rep = (("representation", 1.0), *relations)
    logits = (("logits", 1.0),)
    labels = (("labels", 1.0),)
    labels_logits = (("labels", weights.get("labels", 1.0)), ("logits", weights.get("logits", 1.0)))
    below_head = s.layer_groups[1:]
    stage1 = Stage("1 representation", rep, "transfer", below_head, s.representation_epochs, s.lr, s.patience)
    match s.strategy:
        case "D0" | "D0-S":
            return [_whole("labels", labels, "labeled", s.joint_epochs, s)]
        case "D1":
            return [_whole("labels+logits", labels_logits, "labeled+transfer", s.joint_epochs, s)]
        case "kd":
            kd = (("labels", weights.get("labels", 1.0)), ("soft", weights.get("logits", 1.0)))
            return [_whole("labels+soft", kd, "labeled+transfer", s.joint_epochs, s)]
        case "D2":
            joint = (*labels_logits, ("representation", weights.get("representation", 1.0)), *relations)
            return [_whole("labels+logits+repr", joint, "labeled+transfer", s.joint_epochs, s)]
        case "D3.1":
            return [stage1, _whole("2 labels+logits", labels_logits, "labeled+transfer", s.joint_epochs, s)]
        case "D3.2":
            return [stage1, *_unfreezing("2", labels_logits, "labeled+transfer", s.logit_epochs, s)]
        case "D4.1":
            return [
                stage1,
                _whole("2 logits", logits, "transfer", s.logit_epochs, s),
                _whole("3 labels", labels, "labeled", s.label_epochs, s),
            ]
        case "D4.2":
            return [
                stage1,
                *_unfreezing("2", logits, "transfer", s.logit_epochs, s),
                *_unfreezing("3", labels, "labeled", s.label_epochs, s),
            ]
    raise ValueError(f"unknown strategy {s.strategy!r}; expected one of {STRATEGIES}")


def format_plan(stages: list[Stage]) -> str:
    header = f"{'stage':<22} {'losses':<34} {'data':<17} {'trainable':<36} {'ep':>3} lr"
    return "\n".join([header, "-" * len(header), *(stage.describe() for stage in stages)])
