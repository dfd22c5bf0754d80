"""A ready model's labels matched to the data's, by name: IOB prefix and entity type, case-insensitive.

A model fine-tuned elsewhere names its labels its own way (``B-PERSON``, ``S-LOC``, ``b-per``) and in its own
order. ``align_labels`` says, for every label of the data, which of the model's labels make it, so the
teacher's logits can be read in the data's label space (``map_logits``):

- prefixes: IOB2 ``B``/``I``; BIOES/BILOU single (``S``/``U``) and last (``E``/``L``) tags read as ``B`` and
  ``I``; ``-`` or ``_`` after the prefix;
- ``label_map`` renames what differs, keyed by a type (``PERSON = "PER"``, ``GPE = "LOC"``) or by a whole
  label (``LABEL_1 = "B-PER"``); the value ``"O"`` counts that type or label as outside (its probability
  goes to ``O``);
- a model type with no data counterpart and no entry in ``label_map`` is an error, and so is a data label
  that no model label makes: the student could never learn it.

When several model labels make one data label (``GPE`` and ``LOC`` both to ``LOC``, or ``MISC`` to ``O``),
their probabilities are added: the data label's logit is the log-sum-exp of theirs. A one-to-one match is a
plain permutation of the logits (the numbers are unchanged).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch

from xtremedistil.errors import XtremeDistilError

_PREFIXED = re.compile(r"^([BIESLU])[-_](.+)$")
_AS_IOB2 = {"B": "B", "I": "I", "S": "B", "U": "B", "E": "I", "L": "I"}
OUTSIDE = "O"


def _types(labels: Sequence[str]) -> dict[str, str]:
    """Upper-cased entity type -> the data's own spelling."""
    return {label[2:].upper(): label[2:] for label in labels if label != OUTSIDE}


def align_labels(
    model_labels: Sequence[str], data_labels: Sequence[str], label_map: Mapping[str, str] | None = None
) -> list[list[int]]:
    """``groups[j]``: the indices of the model labels whose probabilities make data label ``j`` (see the
    module docstring). Raises ``XtremeDistilError`` naming every label that cannot be matched."""
    data_types = _types(data_labels)
    rename: dict[str, str] = {}
    for key, value in (label_map or {}).items():
        upper = key.strip().upper()
        if upper in rename:
            raise XtremeDistilError(f"teacher.label_map names {upper!r} twice (keys are case-insensitive)")
        rename[upper] = value.strip()
    # a key that is one of the model's labels renames that label only; any other key renames a type
    whole = {key: value for key, value in rename.items() if key in {m.strip().upper() for m in model_labels}}
    types = {key: value for key, value in rename.items() if key not in whole}
    groups: dict[str, list[int]] = {label: [] for label in data_labels}
    used: set[str] = set()
    unparsed: list[str] = []
    unknown: dict[str, list[str]] = {}
    bad_targets: set[str] = set()

    def target_of(name: str) -> str | None:
        key = name.strip().upper()
        if key in whole:  # a whole label renamed: "LABEL_1" = "B-PER", or = "O"
            used.add(key)
            value = whole[key].upper()
            if value == OUTSIDE:
                return OUTSIDE
            match = _PREFIXED.match(value)
            if match is None or match.group(2) not in data_types:
                bad_targets.add(f"{name} = {whole[key]!r}")
                return None
            return f"{_AS_IOB2[match.group(1)]}-{data_types[match.group(2)]}"
        if key == OUTSIDE:
            return OUTSIDE
        match = _PREFIXED.match(key)
        if match is None:
            unparsed.append(name)
            return None
        prefix, etype = _AS_IOB2[match.group(1)], match.group(2)
        if etype in types:  # a type renamed: "PERSON" = "PER", or = "O"
            used.add(etype)
            etype = types[etype].upper()
            if etype == OUTSIDE:
                return OUTSIDE
            if etype not in data_types:
                bad_targets.add(f"{match.group(2)} = {types[match.group(2)]!r}")
                return None
        if etype not in data_types:
            unknown.setdefault(match.group(2), []).append(name)
            return None
        return f"{prefix}-{data_types[etype]}"

    for index, name in enumerate(model_labels):
        target = target_of(name)
        if target is not None:
            groups[target].append(index)

    problems = []
    if unparsed:
        example = next((label for label in data_labels if label != OUTSIDE), OUTSIDE)
        problems.append(
            f"labels {unparsed} are neither O nor a prefixed type (B-X, I-X; S-/E-/U-/L- are read too): "
            f'name them in teacher.label_map, e.g. {{ "{unparsed[0]}" = "{example}" }} or = "O" (only IOB2 and '
            "BIOES/BILOU tagging can be read: a model tagging bare types (IO) cannot mark where entities start)"
        )
    if unknown:
        names = ", ".join(sorted(unknown))
        guess = ", ".join(f'{t} = "{_likely_type(t, data_types)}"' for t in sorted(unknown))
        problems.append(
            f"the model's types {names} are not among the data's ({', '.join(sorted(data_types.values()))}): "
            f'map each in teacher.label_map to a data type, or to "O" to count it as outside; perhaps '
            f"label_map = {{ {guess} }}"
        )
    if bad_targets:
        problems.append(
            f"teacher.label_map entries {sorted(bad_targets)} name no data label (data labels: "
            f"{list(data_labels)}, or O)"
        )
    if not problems:
        starts = {label[2:] for label, group in groups.items() if label.startswith("B-") and group}
        insides = {label[2:] for label, group in groups.items() if label.startswith("I-") and group}
        if insides and not starts:
            problems.append(
                "the model has I- labels but no B- (or S-) labels: IO or IOB1 tagging, which cannot be read as "
                "IOB2 (only IOB2 and BIOES/BILOU are supported)"
            )
    unused = sorted(set(rename) - used)
    if unused:
        problems.append(f"teacher.label_map keys {unused} match none of the model's labels")
    if not problems:
        missing = [label for label, group in groups.items() if not group]
        if missing:
            problems.append(
                f"the data has labels {missing} that no label of the model makes: the teacher cannot "
                "predict them (map a model type onto them with teacher.label_map, or leave those types out "
                "of the data)"
            )
    if problems:
        raise XtremeDistilError(
            f"the teacher's labels {list(model_labels)} do not match the data's: " + "; ".join(problems)
        )
    return [groups[label] for label in data_labels]


# common spellings of the usual types in other corpora (OntoNotes, CoNLL, BIOES-tagged models)
_ALIASES = {"PERSON": "PER", "GPE": "LOC", "LOCATION": "LOC", "ORGANIZATION": "ORG", "ORGANISATION": "ORG"}


def _likely_type(model_type: str, data_types: Mapping[str, str]) -> str:
    """The data type a model's type is a common spelling of (for the error's suggestion only), else "O";
    never a guess by prefix (``PERCENT`` is not ``PER``)."""
    return data_types.get(_ALIASES.get(model_type.upper(), ""), OUTSIDE)


def is_permutation(groups: Sequence[Sequence[int]]) -> bool:
    """True if every data label is made by exactly one model label (the logits are only reordered)."""
    return all(len(group) == 1 for group in groups)


def map_logits(logits: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """The model's logits (last axis: its labels) as logits over the data's labels."""
    if is_permutation(groups):
        return logits[..., [group[0] for group in groups]]
    return torch.stack([logits[..., list(group)].logsumexp(-1) for group in groups], dim=-1)
