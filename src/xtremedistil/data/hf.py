"""Labeled NER data as Hugging Face datasets: a folder written by ``save_to_disk`` (a Dataset or a
DatasetDict), or parquet / arrow files (one per split, named by it, as the hub stores them), read through the
``datasets`` library (the ``hf`` extra). Tag names come from the dataset's features (a list of ClassLabel),
or from ``label_names``; rows go through the JSONL checks, a row's number standing for a line."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from xtremedistil.data.readers import SPLIT_ALIASES, JsonlFields, ReadReport, parse_records, to_sentences
from xtremedistil.data.records import Sentence
from xtremedistil.errors import DataError

HF_FILES = (".parquet", ".arrow")
# a split named in a file name (train-0000.parquet) or a folder (default/validation/0000.parquet)
_SPLIT_IN_NAME = re.compile(r"(?:^|[-_/])(train|dev|valid|validation|test)(?=[-_./])", re.IGNORECASE)


def is_hf_dataset(path: Path) -> bool:
    """A ``save_to_disk`` folder, a parquet/arrow file, or a folder of them with no text data files (a stray
    parquet file in a CoNLL/XTREME folder does not make it a dataset)."""
    if path.is_file():
        return path.suffix in HF_FILES
    if not path.is_dir():
        return False
    if any((path / name).is_file() for name in ("dataset_dict.json", "state.json")):
        return True
    files = [f for f in path.rglob("*") if f.is_file()]
    text = {".tsv", ".txt", ".conll", ".jsonl", ".gz"}
    return any(f.suffix in HF_FILES for f in files) and not any(f.suffix in text for f in files)


def _datasets():
    try:
        import datasets
    except ImportError:
        raise DataError(
            "reading a Hugging Face dataset needs the hf extra: pip install 'xtremedistil[hf]'"
        ) from None
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _load(path: Path) -> dict[str, Any]:
    """Split name -> ``datasets.Dataset``."""
    datasets = _datasets()
    try:
        if path.is_dir() and any((path / n).is_file() for n in ("dataset_dict.json", "state.json")):
            loaded = datasets.load_from_disk(str(path), keep_in_memory=True)
            return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
        files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.suffix in HF_FILES)
        if not files:
            raise DataError("no parquet or arrow files, and no save_to_disk folder", path=path)
        by_split: dict[str, list[str]] = {}
        for file in files:
            match = _SPLIT_IN_NAME.search(
                file.relative_to(path.parent if path.is_file() else path).as_posix()
            )
            split = SPLIT_ALIASES[match.group(1).lower()] if match else "train"
            by_split.setdefault(split, []).append(str(file))
        kinds = {f.suffix for f in files}
        if len(kinds) != 1:
            raise DataError("parquet and arrow files mixed in one dataset", path=path)
        kind = kinds.pop().lstrip(".")
        with tempfile.TemporaryDirectory() as cache:
            return dict(
                datasets.load_dataset(kind, data_files=by_split, cache_dir=cache, keep_in_memory=True)
            )
    except DataError:
        raise
    except Exception as exc:  # the library's own errors for damaged or foreign files
        raise DataError(
            f"cannot read as a Hugging Face dataset ({type(exc).__name__}: {exc})", path=path
        ) from None


def _tag_names(dataset: Any, fields: JsonlFields) -> tuple[str, ...] | None:
    if fields.label_names is not None:
        return fields.label_names
    feature = dataset.features.get(fields.tags)
    inner = getattr(feature, "feature", None)  # List / Sequence of ClassLabel
    names = getattr(inner, "names", None)
    return tuple(names) if names else None


def read_hf_dataset(
    path: str | Path,
    *,
    lang: str = "und",
    scheme: str = "auto",
    fields: JsonlFields | None = None,
    reports: list[ReadReport] | None = None,
) -> dict[str, list[Sentence]]:
    """Split (train/dev/test) -> IOB2 sentences of a Hugging Face dataset at ``path``."""
    path = Path(path)
    fields = fields or JsonlFields()
    out: dict[str, list[Sentence]] = {}
    for name, dataset in _load(path).items():
        split = SPLIT_ALIASES.get(name.lower())
        if split is None:
            raise DataError(f"split {name!r} is not train, dev/validation or test", path=path)
        missing = [f for f in (fields.tokens, fields.tags) if f not in dataset.column_names]
        if missing:
            raise DataError(
                f"split {name!r} has no column {', '.join(missing)} (columns: {', '.join(dataset.column_names)}); "
                "set tokens_field / tags_field",
                path=path,
            )
        named = JsonlFields(fields.tokens, fields.tags, _tag_names(dataset, fields))
        rows = (
            (i + 1, {fields.tokens: t, fields.tags: g})
            for i, (t, g) in enumerate(zip(dataset[fields.tokens], dataset[fields.tags], strict=True))
        )
        parsed = parse_records(rows, Path(f"{path}[{name}] row"), named, scheme)
        sentences, read_as = to_sentences(parsed, lang, scheme)
        out[split] = out.get(split, []) + sentences
        if reports is not None:
            reports.append(ReadReport(f"{path} [{name}]", "hf", read_as, len(sentences)))
    if not any(out.values()):
        raise DataError("the dataset holds no sentences", path=path)
    return out
