"""One validated config format (TOML): unknown keys and bad values are rejected with a message naming the key.

A config never imports or runs code. The commented defaults live in ``xtremedistil/configs/<task>.toml``.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xtremedistil.errors import ConfigError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabeledSource(Strict):
    """A labeled corpus: ``source`` (``embedded:<name>``, a corpus folder, or one file: its train split), or
    one file per split (``train``/``dev``/``test``, any of them absent) as corpora are distributed; ``lang``
    names a file's language."""

    source: str | None = None
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    languages: list[str] | None = None
    lang: str | None = None
    # hf: a Hugging Face dataset; classification files: tsv (with a header), csv, jsonl, by name when "auto"
    format: Literal["auto", "conll", "tsv", "csv", "wikiann", "jsonl", "hf"] = "auto"
    encoding: str = "utf-8"
    # auto: IOBES/BILOU if their prefixes occur, IOB1 if most entities start with I-, else IOB2 (kept as is)
    scheme: Literal["auto", "iob2", "iob1", "iobes", "bilou"] = "auto"
    # CoNLL lines with another column count than the file's: read as token first, tag last (one warning),
    # or refused with their line number (true)
    strict_columns: bool = False
    # JSONL: the fields of a sentence's words and tags; tag ids are read through label_names
    tokens_field: str = "tokens"
    tags_field: str = "ner_tags"
    label_names: list[str] | None = None
    # classification: the field(s) joined into the text (default: text/sentence/review/...), the label field
    # (default: label/class/...), the column names of a CSV/TSV without a header (AG News: label,title,text),
    # the id of label_names[0] (AG News counts classes from 1)
    text_field: str | list[str] | None = None
    label_field: str | None = None
    columns: list[str] | None = None
    label_base: int = 0
    # move this many seeded train items (per language) into dev when the source has no dev split: the
    # model is selected on them, never on test (SST-2's GLUE dev and IMDb's test are test sets here)
    dev_from_train: int | None = Field(default=None, ge=1)
    max_train: int | None = Field(default=None, ge=1)
    max_dev: int | None = Field(default=None, ge=1)
    max_test: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_kind_of_source(self) -> LabeledSource:
        files = [self.train, self.dev, self.test]
        if self.source is None and not any(files):
            raise ValueError("give source (embedded:<name>, a folder or a file) or train/dev/test files")
        if self.source is not None and any(files):
            raise ValueError("give source or train/dev/test files, not both")
        return self


class TransferSource(Strict):
    """Unlabeled text: ``embedded:<pool>``, ``labeled:train`` (the labeled train split without its tags), a
    plain-text file (one sentence per line, optional ``lang<TAB>`` column), a labeled corpus folder whose
    ``split`` is read without its tags (e.g. the rest of WikiAnn's train split), or ``augment:train``
    (mention replacement over the labeled train sentences, ``copies`` variants each)."""

    source: str
    lang: str | None = None
    languages: list[str] | None = None  # keep only these languages of the source
    split: str = "train"  # corpus folders only
    copies: int = Field(default=1, ge=1)  # augment:train: variants per labeled sentence with entities
    mentions: Literal["train", "generated", "both"] = "train"  # augment:train: where new mentions come from
    encoding: str = "utf-8"
    max_sentences: int | None = Field(default=None, ge=1)
    # a classification file (tsv/csv/jsonl) read without its labels: its text field(s), header-less column
    # names, and whether each document is cut into sentences (the paper's IMDb sentences for SST-2)
    text_field: str | list[str] | None = None
    columns: list[str] | None = None
    split_sentences: bool = False


class DataConfig(Strict):
    labeled: list[LabeledSource] = Field(min_length=1)
    transfer: list[TransferSource] = Field(default_factory=list)
    max_transfer: int | None = Field(default=None, ge=1)
    # the labeled train text (without tags) is part of the transfer set, as unlabeled text
    transfer_includes_train: bool = True
    # Chinese/Japanese text is cut at the teacher tokenizer's piece boundaries, except pieces that a train
    # entity starts or ends inside, cut into characters ("piece-split"); at every piece boundary only
    # ("piece"); or one character per unit ("char"). The same for training, evaluation and predict
    # (docs/METHOD.md, "Raw text").
    cjk: Literal["piece", "piece-split", "char"] = "piece-split"


class TeacherConfig(Strict):
    name: str = "multilingual-e5-small"
    run: str | None = None  # reuse the fine-tuned teacher of this run folder instead of training
    # false: ``name`` is a token-classification model fine-tuned elsewhere (HF folder or hub name), used as
    # it is: its own head and labels, no fine-tuning here (README, "Distil your own model")
    fine_tune: bool = True
    # the ready model's label or type names -> the data's (PERSON = "PER", LABEL_1 = "B-PER"); "O" = outside
    label_map: dict[str, str] = Field(default_factory=dict)
    # how the ready model was fine-tuned to read words: "words" (each word tokenized on its own, its label on
    # the first piece: Hugging Face's recipe), "text" (sentences tokenized as text: xtremedistil's teachers);
    # "auto" = "text" for a folder xtremedistil made, else "words"
    reading: Literal["auto", "text", "words"] = "auto"
    max_length: int = Field(default=64, ge=8, le=512)
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=32, ge=1)
    # a batch with more padded positions than this is run as consecutive slices whose gradients add up to the
    # batch's (the same update, less memory held for backward: long texts); 0 = never split
    max_batch_tokens: int = Field(default=0, ge=0)
    eval_batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=1e-4, gt=0, lt=1)
    head_lr: float = Field(default=3e-3, gt=0, lt=1)  # the fresh classification head
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    clip_grad_norm: float = Field(default=1.0, gt=0)
    patience: int = Field(default=2, ge=1)
    eval_every: int = Field(default=0, ge=0)  # steps between dev evaluations; 0 = once per epoch
    # a resumable checkpoint of fine-tuning every this many steps (and at every epoch's end; 0 = only there):
    # a killed run continues from it
    checkpoint_every: int = Field(default=200, ge=0)
    embedding_rows: Literal["seen", "all", "frozen"] = "seen"
    bucketing: bool = True
    # classification: a text longer than max_length keeps its first quarter and last three quarters of the
    # budget ("head+tail", Sun et al. 2019; better on IMDb dev: docs/RESULTS.md), or its first sub-words
    # ("head"); the counts are logged
    truncation: Literal["head", "head+tail"] = "head+tail"

    @model_validator(mode="after")
    def _one_source(self) -> TeacherConfig:
        if self.run and not self.fine_tune:
            raise ValueError(
                "teacher.run (a teacher fine-tuned in another run) and teacher.fine_tune = false (a ready model "
                "in teacher.name) exclude each other"
            )
        if (self.label_map or self.reading != "auto") and self.fine_tune:
            raise ValueError(
                "teacher.label_map and teacher.reading are for a ready model (teacher.fine_tune = false)"
            )
        return self


TRANSFORMER_STUDENT = r"^t\d+-\d+(-e\d+)?$"  # t<layers>-<hidden>[-e<embedding dim>], e.g. t4-128
PRESETS = ("xs", "s", "base")  # both families have these


class StudentSection(Strict):
    # "bilstm" (the paper's student) or "transformer" (k encoder layers, BERT's, over a factorised embedding)
    kind: Literal["bilstm", "transformer"] = "bilstm"
    # bilstm: xs, s, base; transformer: xs, s, base or t<layers>-<hidden>[-e<embedding dim>] (heads =
    # hidden / 32, intermediate = 4 x hidden); the sizes are in docs/METHOD.md
    preset: str = "xs"
    embedding_dim: int | None = Field(default=None, ge=1)  # overrides the preset
    hidden_size: int | None = Field(default=None, ge=1)  # per LSTM direction (transformer: width)
    layers: int | None = Field(default=None, ge=1)  # transformer: encoder layers; overrides the preset
    heads: int | None = Field(default=None, ge=1)  # transformer: attention heads; overrides the preset
    intermediate_size: int | None = Field(default=None, ge=1)  # transformer: feed-forward width
    # transformer, init "svd" with the teacher's width, heads and feed-forward width: the teacher layers
    # (0-based) copied into the student's, bottom to top; empty = the teacher's bottom k
    teacher_layers: list[int] = []
    dropout: float = Field(default=0.2, ge=0, lt=1)
    word_dropout: float = Field(default=0.0, ge=0, lt=1)  # training: read a sub-word as UNK (context only)
    init: Literal["svd", "random"] = "svd"
    representation: Literal["pre-activation", "post-activation"] = "pre-activation"
    # a sub-word outside the kept vocabulary: read as its nearest kept neighbour, or as UNK (the paper)
    unknown: Literal["nearest", "unk"] = "nearest"
    # keep only the most frequent sub-words of the train + transfer text (specials always): the table, most
    # of a small student, then no longer grows with the transfer set; None = every sub-word that occurs
    max_vocab: int | None = Field(default=None, ge=16)
    # classification: the sentence vector is the final state of both directions ("last", the paper's), or
    # the mean or max over the text's states
    pooling: Literal["last", "mean", "max"] = "last"

    @model_validator(mode="after")
    def _preset_of_kind(self) -> StudentSection:
        if self.kind == "bilstm" and self.preset not in PRESETS:
            raise ValueError(
                f"student.preset {self.preset!r}: a bilstm student is xs, s or base"
                + (
                    ' (set student.kind = "transformer" for this name)'
                    if re.match(TRANSFORMER_STUDENT, self.preset)
                    else ""
                )
            )
        if self.kind == "transformer" and not (
            self.preset in PRESETS or re.match(TRANSFORMER_STUDENT, self.preset)
        ):
            raise ValueError(
                f"student.preset {self.preset!r}: a transformer student is xs, s, base or "
                "t<layers>-<hidden>[-e<embedding dim>] (e.g. t4-128)"
            )
        if self.kind == "bilstm" and (
            self.layers or self.heads or self.intermediate_size or self.teacher_layers
        ):
            raise ValueError(
                'student.layers/heads/intermediate_size/teacher_layers are for kind = "transformer"'
            )
        return self


class DistilSection(Strict):
    strategy: Literal["D0", "D0-S", "D1", "kd", "D2", "D3.1", "D3.2", "D4.1", "D4.2"] = "D4.2"
    # teacher hidden_states[layer] for the representation loss; None = the teacher's middle layer (6 of 12)
    layer: int | None = Field(default=None, ge=0)
    # transformer students: further (student layer, teacher layer) pairs the representation loss matches
    # beside the paper's one (the student's top -> `layer`), each through its own linear projection; student
    # layers count from 1 (the output of its first encoder layer), teacher layers as `layer`; e.g.
    # [[2, 3]] for a 4-layer student. Each teacher layer is cached once more (its own cache).
    layer_map: list[tuple[int, int]] = []
    # transformer students: MiniLMv2's self-attention relation loss joins the representation loss: the
    # relations (softmax of scaled dot products) of the queries, keys and values of the student's top layer
    # against those inside teacher block `attention_layer` (counted as `layer`: the block that outputs
    # hidden_states[attention_layer]); None = off. Its attention states are cached once (3 x the teacher's
    # width per sub-word). `attention_heads`: the relation heads both widths are cut into (None = the
    # student's heads); `attention_weight`: the relation loss's weight beside the representation loss.
    attention_layer: int | None = Field(default=None, ge=1)
    attention_heads: int | None = Field(default=None, ge=1)
    attention_weight: float = Field(default=1.0, gt=0)
    representation_loss: Literal["mse", "kl"] = "mse"
    # classification: the teacher's layer vector the student's sentence vector matches: the mean over the
    # text's sub-words, or the first token's (the paper's CLS: nearly constant at e5's middle layer, see
    # docs/METHOD.md, "Text classification")
    sentence_vector: Literal["first", "mean"] = "mean"
    logit_positions: Literal["word-start", "all"] = "word-start"  # where logit losses read
    batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=3e-3, gt=0, lt=1)
    # the stages' learning rate for a transformer student (lr is the BiLSTM's): chosen on WikiAnn dev for a
    # 4 x 128 student among 5e-4, 1e-3, 2e-3 (RESULTS "Tuning the transformer student"; METHOD.md)
    transformer_lr: float = Field(default=1e-3, gt=0, lt=1)
    min_lr: float = Field(default=1e-8, ge=0)
    restart_epochs: int = Field(default=1, ge=1)
    representation_epochs: int = Field(default=4, ge=1)
    logit_epochs: int = Field(default=2, ge=1)
    label_epochs: int = Field(default=3, ge=1)
    joint_epochs: int = Field(default=10, ge=1)
    joint_weights: dict[Literal["labels", "logits", "representation"], float] = Field(
        default_factory=lambda: {"labels": 1.0, "logits": 1.0, "representation": 1.0}
    )
    temperature: float = Field(default=2.0, gt=0)
    patience: int = Field(default=2, ge=1)
    select_on: Literal["objective", "f1"] = "objective"
    eval_every: int = Field(default=0, ge=0)
    # a resumable checkpoint inside a stage every this many steps (and at every epoch's end; 0 = only there)
    checkpoint_every: int = Field(default=500, ge=0)
    seed: int | None = None  # the student's seed; None = the top-level seed


class CacheSection(Strict):
    dir: str | None = None  # default: <output_dir>/cache
    shard_size: int = Field(default=4096, ge=1)
    batch_size: int = Field(default=64, ge=1)


class SpeedSection(Strict):
    batch_size: int = Field(default=32, ge=1)
    batches: int = Field(default=10, ge=1)
    warmup: int = Field(default=2, ge=0)
    latency_samples: int = Field(default=100, ge=1)
    # throughput: the fixed batches are timed again in turn until their times add up to this many seconds
    min_seconds: float = Field(default=1.0, ge=0)
    # experiment rows: paired rounds (students, then the teacher); the row takes the median ratio's round
    rounds: int = Field(default=3, ge=1)

    def measure_kwargs(self, **override: Any) -> dict[str, Any]:
        """The keyword arguments of ``speed.measure_model``."""
        return self.model_dump(exclude={"rounds"}) | override


class ExperimentCell(Strict):
    """One extra cell beyond the grid (e.g. a second seed for some strategies)."""

    strategy: str
    seed: int | None = None
    transfer_size: int | None = None
    labeled_size: int | None = None
    layer: int | None = None
    student: str | None = None


class ExperimentSection(Strict):
    """The grid of `xtremedistil experiment`: every combination of the axes, plus ``extra`` cells.
    Sizes of 0 mean "all configured"; students are presets (xs, s, base), a BiLSTM's "E,H" (e.g. "100,300") or a transformer's
    "t<layers>-<hidden>[-e<dim>]" (e.g. "t4-128")."""

    strategies: list[Literal["D0", "D0-S", "D1", "kd", "D2", "D3.1", "D3.2", "D4.1", "D4.2"]] = ["D4.2"]
    transfer_sizes: list[int] = [0]
    labeled_sizes: list[int] = [0]  # labeled train sentences per language; each size fine-tunes its teacher
    layers: list[int] = []  # teacher layers; empty = distil.layer (the middle layer unless set)
    students: list[str] = ["xs"]
    seeds: list[int] = [13]
    extra: list[ExperimentCell] = []


class EvaluationConfig(Strict):
    scheme: Literal["strict-word", "conlleval-subword"] = "strict-word"
    batch_size: int = Field(default=64, ge=1)


class RunConfig(Strict):
    task: Literal["ner", "classification"] = "ner"
    seed: int = 13
    # 0 = one per available core (under torchrun: the cores shared among the processes of a machine)
    threads: int = Field(default=0, ge=0)
    # "auto": this process's GPU when torch sees one (under torchrun: the one of its local rank), else the CPU
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    output_dir: str = "runs/default"
    data: DataConfig
    teacher: TeacherConfig = TeacherConfig()
    student: StudentSection = StudentSection()
    distil: DistilSection = DistilSection()
    cache: CacheSection = CacheSection()
    speed: SpeedSection = SpeedSection()
    evaluation: EvaluationConfig = EvaluationConfig()
    experiment: ExperimentSection = ExperimentSection()

    @model_validator(mode="after")
    def _layer_map_student(self) -> RunConfig:
        # an experiment's cells name their students: a transformer there is checked again in its cell's config
        if self.student.kind == "transformer" or any(
            re.match(TRANSFORMER_STUDENT, s) for s in self.experiment.students
        ):
            return self
        if self.distil.layer_map:
            raise ValueError(
                'distil.layer_map matches a transformer student\'s layers; set student.kind = "transformer" '
                "(a BiLSTM student has one representation, matched to distil.layer)"
            )
        if self.distil.attention_layer is not None:
            raise ValueError(
                "distil.attention_layer matches a transformer student's attention; set student.kind = "
                '"transformer" (a BiLSTM student has no attention)'
            )
        return self

    @field_validator("output_dir")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


def default_config_text(task: str = "ner") -> str:
    """The commented default config of a task (shipped inside the package)."""
    try:
        return resources.files("xtremedistil").joinpath(f"configs/{task}.toml").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"no default config for task {task!r}") from exc


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``key.sub=value`` with a TOML value (strings may be bare): ``teacher.epochs=2``, ``output_dir=runs/x``."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. teacher.epochs=2")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _format_validation_error(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key {key!r}")
        elif err["type"] == "missing":
            lines.append(f"missing required key {key!r}")
        elif isinstance(err.get("input"), dict):  # a section's own check: its message says it all
            lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return f"invalid config {origin}: " + "; ".join(lines)


def config_from_dict(tree: dict[str, Any], origin: str = "") -> RunConfig:
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origin)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None, task: str = "ner") -> RunConfig:
    """Read a TOML config (or the task's default when ``path`` is None) and apply ``key=value`` overrides."""
    if path is None:
        text, origin = default_config_text(task), f"(default {task} config)"
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError("config file not found", path=path)
        text, origin = path.read_text(encoding="utf-8"), str(path)
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=origin) from None
    for override in overrides or []:
        _set_dotted(tree, *parse_override(override))
    return config_from_dict(tree, origin)


def config_to_toml(config: RunConfig) -> str:
    return tomli_w.dumps(config.model_dump(exclude_none=True))
