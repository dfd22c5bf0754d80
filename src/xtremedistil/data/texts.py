"""Readers for text classification: one labeled text per row of a TSV/CSV file with a header (GLUE SST-2,
the IMDb layout), a headerless CSV as AG News / DBpedia / Yelp distribute it (``class,title,text``, 1-based
class ids), or JSON lines (``{"text": ..., "label": ...}``); one file per split, or a folder of
``{train,dev,test}.{tsv,csv,jsonl}[.gz]``, optionally one sub-folder per language.

Every problem stops the read with the file and line: a missing or unknown label, an empty text, a wrong
column count, an undecodable byte, a label column that holds text.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xtremedistil.data.readers import read_lines
from xtremedistil.data.records import SPLITS, Corpus, Document
from xtremedistil.errors import DataError

TABLE_FORMATS = ("tsv", "csv", "jsonl")
TEXT_FIELDS = ("text", "sentence", "review", "content", "document")
LABEL_FIELDS = ("label", "labels", "class", "sentiment", "category")
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass(frozen=True)
class TextFields:
    """Where a row keeps its text and label. ``text``: the field(s) joined into the text (None = the first of
    ``TEXT_FIELDS`` present, else, and always for ``columns``, every column but the label joined); ``label``: None = the first of
    ``LABEL_FIELDS``; ``columns``: the column names of a file without a header; ``label_names``: class
    names of integer label ids, the first id being ``label_base`` (AG News: 1)."""

    text: tuple[str, ...] | None = None
    label: str | None = None
    columns: tuple[str, ...] | None = None
    label_names: tuple[str, ...] | None = None
    label_base: int = 0


def table_format(path: Path, fmt: str = "auto") -> str:
    """``tsv``, ``csv`` or ``jsonl``: as named, else from the file name (``.gz`` ignored)."""
    if fmt in TABLE_FORMATS:
        return fmt
    suffix = Path(path.name.removesuffix(".gz")).suffix.lstrip(".").lower()
    if suffix in TABLE_FORMATS:
        return suffix
    raise DataError(
        "cannot tell the format of this classification file from its name: expected .tsv, .csv or .jsonl "
        '(optionally .gz), or set format = "tsv" | "csv" | "jsonl"',
        path=path,
    )


def clean_text(text: str) -> str:
    """HTML line breaks (IMDb's ``<br />``) as spaces, runs of whitespace as one space."""
    return " ".join(_HTML_BREAK.sub(" ", text).split())


def _rows(path: Path, lines: list[str], fmt: str, fields: TextFields) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row as a mapping) of every non-blank row."""
    if fmt == "jsonl":
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not a JSON object ({exc.msg})", path=path, line=lineno) from None
            if not isinstance(row, dict):
                raise DataError(f"expected a JSON object, found {type(row).__name__}", path=path, line=lineno)
            yield lineno, row
        return
    delimiter = "\t" if fmt == "tsv" else ","
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    previous = csv.field_size_limit(1 << 30)
    try:
        reader = csv.reader(lines, delimiter=delimiter, quoting=quoting)
        header = list(fields.columns) if fields.columns else None
        try:
            for cells in reader:
                lineno = reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                if header is None:
                    header = [c.strip() for c in cells]
                    continue
                if len(cells) != len(header):
                    what = "a header" if not fields.columns else "columns"
                    raise DataError(
                        f"{len(cells)} {fmt.upper()} columns, expected {len(header)} as in {what} "
                        f"({', '.join(header)})",
                        path=path,
                        line=lineno,
                    )
                yield lineno, dict(zip(header, cells, strict=True))
        except csv.Error as exc:
            raise DataError(f"cannot read {fmt.upper()}: {exc}", path=path, line=reader.line_num) from None
    finally:
        csv.field_size_limit(previous)


def _pick(row: dict[str, Any], wanted: str | None, defaults: Sequence[str], what: str, path: Path) -> str:
    if wanted is not None:
        if wanted not in row:
            raise DataError(f"no {what} field {wanted!r}; the rows have {', '.join(row)}", path=path, line=1)
        return wanted
    for name in defaults:
        if name in row:
            return name
    raise DataError(
        f"no {what} field among {', '.join(defaults)}; the rows have {', '.join(row)} (set the source's "
        f"{what}_field)",
        path=path,
        line=1,
    )


def read_text_table(
    path: str | Path,
    *,
    lang: str = "und",
    fmt: str = "auto",
    encoding: str = "utf-8",
    fields: TextFields = TextFields(),
    labeled: bool = True,
) -> list[Document]:
    """The labeled texts of one file (``labeled=False``: the texts only, labels not read)."""
    path = Path(path)
    fmt = table_format(path, fmt)
    lines = read_lines(path, encoding)
    out: list[Document] = []
    lines_of: list[int] = []
    text_fields: list[str] | None = list(fields.text) if fields.text else None
    label_field: str | None = None
    for lineno, row in _rows(path, lines, fmt, fields):
        if label_field is None and labeled:
            label_field = _pick(row, fields.label, LABEL_FIELDS, "label", path)
        if text_fields is None:  # named columns (AG News: label, title, text): every one but the label
            present = [] if fields.columns else [f for f in TEXT_FIELDS if f in row]
            text_fields = present[:1] or [k for k in row if k != (label_field or fields.label)]
        missing = [f for f in text_fields if f not in row]
        if missing:
            raise DataError(f"no text field {missing[0]!r} in this row", path=path, line=lineno)
        text = clean_text(" ".join(str(row[f] or "") for f in text_fields))
        if not text:
            raise DataError(f"empty text (field {', '.join(text_fields)})", path=path, line=lineno)
        label = _label(row.get(label_field), fields, path, lineno) if labeled and label_field else None
        out.append(Document(text, label, lang))
        lines_of.append(lineno)
    if not out:
        raise DataError("no rows with text", path=path)
    if labeled:
        _check_label_column(out, lines_of, path)
    return out


def _label(value: Any, fields: TextFields, path: Path, lineno: int) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError("missing label", path=path, line=lineno)
    if isinstance(value, bool | list | dict | float):
        raise DataError(f"label {value!r} is not a class name or an integer id", path=path, line=lineno)
    text = str(value).strip()
    if fields.label_names is None:
        return text
    if text in fields.label_names:
        return text
    try:
        index = int(text) - fields.label_base
    except ValueError:
        index = -1
    if not 0 <= index < len(fields.label_names):
        first = fields.label_base
        raise DataError(
            f"unknown label {text!r}: expected one of {', '.join(fields.label_names)} or an id "
            f"{first}..{first + len(fields.label_names) - 1}",
            path=path,
            line=lineno,
        )
    return fields.label_names[index]


def _check_label_column(docs: Sequence[Document], lines: Sequence[int], path: Path) -> None:
    """A label column that holds text (a mix-up of columns) is refused rather than read as 10,000 classes."""
    labels = {d.label for d in docs}
    wordy = [k for k, d in enumerate(docs) if d.label and len(d.label.split()) > 3]
    if wordy or len(labels) > max(1000, len(docs) // 2 + 1):
        k = wordy[0] if wordy else max(range(len(docs)), key=lambda i: len(docs[i].label or ""))
        example, line = docs[k].label or "", lines[k]
        raise DataError(
            f"the label column holds text ({len(labels):,} distinct values, e.g. {example[:60]!r}): set the "
            "source's label_field / text_field (or columns for a file without a header)",
            path=path,
            line=line,
        )


def _split_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for split in SPLITS:
        matches = [
            f
            for f in sorted(folder.iterdir())
            if f.is_file()
            and f.name.removesuffix(".gz").rsplit(".", 1)[0] == split
            and Path(f.name.removesuffix(".gz")).suffix.lstrip(".") in TABLE_FORMATS
        ]
        if len(matches) > 1:
            raise DataError(
                f"more than one {split} file here ({', '.join(m.name for m in matches)}): keep one",
                path=folder,
            )
        if matches:
            found[split] = matches[0]
    return found


def read_text_folder(
    folder: str | Path,
    *,
    lang: str | None = None,
    languages: Sequence[str] | None = None,
    fmt: str = "auto",
    encoding: str = "utf-8",
    fields: TextFields = TextFields(),
) -> Corpus:
    """``{train,dev,test}.{tsv,csv,jsonl}[.gz]`` in ``folder`` (language ``lang``), or in one sub-folder per
    language (``en/train.tsv`` ...)."""
    folder = Path(folder)
    flat = _split_files(folder)
    splits: dict[str, dict[str, list[Document]]] = {}
    if flat:
        code = lang or "und"
        splits[code] = {
            s: read_text_table(f, lang=code, fmt=fmt, encoding=encoding, fields=fields)
            for s, f in flat.items()
        }
    else:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if languages and sub.name not in languages:
                continue
            files = _split_files(sub)
            if files:
                splits[sub.name] = {
                    s: read_text_table(f, lang=sub.name, fmt=fmt, encoding=encoding, fields=fields)
                    for s, f in files.items()
                }
    if not splits:
        raise DataError(
            "no classification files here: expected train/dev/test.{tsv,csv,jsonl}[.gz], or one sub-folder per "
            "language holding them",
            path=folder,
        )
    return Corpus(splits, folder.name)


def check_class_labels(corpus: Corpus) -> None:
    """Every dev/test label must be one train has (a model cannot predict a class it never saw)."""
    train = {d.label for d in corpus.split("train")}
    if not train:
        return
    for split in ("dev", "test"):
        for lang in corpus.languages:
            extra = sorted({d.label for d in corpus.splits[lang].get(split, [])} - train)
            if extra:
                raise DataError(
                    f"the {lang} {split} split has label(s) {', '.join(map(repr, extra))} that no train text "
                    f"has (train labels: {', '.join(sorted(train))})"
                )
    if len(train) < 2:
        raise DataError(f"text classification needs at least two labels in train; found {sorted(train)}")


def split_sentences(docs: Sequence[Document], min_words: int = 3, max_words: int = 60) -> list[Document]:
    """Each document cut into sentences (the paper's IMDb-sentences transfer set for SST-2)."""
    from xtremedistil.data.unlabeled import english_sentences

    return [
        Document(sentence, None, d.lang)
        for d in docs
        for sentence in english_sentences(d.text, min_words, max_words)
    ]


def texts_stats_markdown(corpus: Corpus, title: str = "") -> str:
    """Texts per language and split, per label, and their median length in characters."""
    import statistics

    labels = corpus.labels()
    rows = [
        "| language | split | texts | " + " | ".join(labels) + " | median characters |",
        "|---|---|---:|" + "---:|" * len(labels) + "---:|",
    ]
    for lang in corpus.languages:
        for split in SPLITS:
            docs = corpus.splits[lang].get(split, [])
            if not docs:
                continue
            counts = " | ".join(f"{sum(d.label == label for d in docs):,}" for label in labels)
            median = statistics.median(len(d.text) for d in docs)
            rows.append(f"| {lang} | {split} | {len(docs):,} | {counts} | {median:.0f} |")
    head = f"## {title}\n\n" if title else ""
    return head + "\n".join(rows) + "\n"
