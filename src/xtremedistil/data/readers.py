"""Readers for NER files (CoNLL, XTREME/WikiAnn TSV, original WikiAnn, JSONL) and corpus folders.

Every malformed input raises :class:`~xtremedistil.errors.DataError` naming the file and the 1-based line,
because a silently skipped line in a gold file changes the scores a paper comparison depends on. The one
leniency: CoNLL lines whose column count differs from the file's (a broken character that swallowed a
separator, in some public corpora) are read as token first, tag last, and counted in one warning, unless
``strict_columns`` asks for refusal.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xtremedistil.data.records import Corpus, Sentence
from xtremedistil.errors import DataError

log = logging.getLogger(__name__)

FORMATS = ("auto", "conll", "tsv", "wikiann", "jsonl")
# auto: IOBES/BILOU when such prefixes occur, IOB1 when more entities start with I- than with B-, else IOB2
SCHEMES = ("auto", "iob1", "iob2", "iobes", "bilou")
_PREFIXES = {"auto": "BIESLU", "iob1": "BI", "iob2": "BI", "iobes": "BIES", "bilou": "BILU"}
SPLIT_ALIASES = {"train": "train", "dev": "dev", "valid": "dev", "validation": "dev", "test": "test"}
EXTENSIONS = (".tsv", ".txt", ".conll", ".jsonl")

_TAG_RE = re.compile(r"^[BIESLU]-\S+$")
_WIKIANN_PREFIX_RE = re.compile(r"^([a-z]{2,3}(?:[-_][A-Za-z0-9]+)?):(.+)$")
_LANG_RE = r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)*"
_FLAT_FILE_RE = re.compile(
    rf"^(train|dev|valid|validation|test)-({_LANG_RE})(\.tsv|\.txt|\.conll|\.jsonl)(\.gz)?$", re.IGNORECASE
)
_NESTED_FILE_RE = re.compile(
    r"^(train|dev|valid|validation|test)(\.tsv|\.txt|\.conll|\.jsonl)(\.gz)?$", re.IGNORECASE
)


@dataclass
class ReadReport:
    """What reading one file found (``xtremedistil data check``): format and tag scheme as read, sentences,
    and the lines read leniently (another column count than the file's)."""

    path: str
    format: str = ""
    scheme: str = ""
    sentences: int = 0
    other_columns: list[int] = field(default_factory=list)


_SNIFF_LINES = 50


# --------------------------------------------------------------------------------------------------------
# Raw text access shared with the unlabeled reader.
# --------------------------------------------------------------------------------------------------------


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """Decode a (possibly gzipped) text file into lines without line terminators.

    The whole file is decoded at once for speed; on a decoding error the byte offset is turned into a line
    number so the user can find the bad byte, and ``encoding=`` is suggested (CoNLL-2002 is Latin-1).
    """
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path=path)
    if not path.is_file():
        raise DataError("not a regular file", path=path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"not a valid gzip file ({exc})", path=path) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # a UTF-16 byte-order mark decides the encoding
        encoding = "utf-16"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.end].hex(" ")
        raise DataError(
            f"cannot decode byte(s) {bad} as {encoding}; if the file uses another encoding, "
            f"pass encoding= (e.g. encoding='latin-1' for CoNLL-2002)",
            path=path,
            line=line,
        ) from None
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r}", path=path) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# --------------------------------------------------------------------------------------------------------
# Tag schemes.
# --------------------------------------------------------------------------------------------------------


def normalise_iob2(tags: Sequence[str]) -> list[str]:
    """Repair IOB2: an ``I-X`` that does not continue a ``B-X``/``I-X`` becomes ``B-X``.

    Used after mapping or dropping entity types, where removing a ``B-`` would otherwise leave a dangling
    ``I-`` that seqeval would count as a separate entity.
    """
    out: list[str] = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Convert IOB1 (``B-`` only between two adjacent same-type entities) to IOB2.

    In IOB1 an entity starts with ``I-`` unless it directly follows one of the same type, so the
    conversion is exactly the IOB2 repair rule: every ``I-X`` that does not continue an ``X`` starts one.
    """
    return normalise_iob2(tags)


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """The tag scheme a file is written in: ``bilou`` or ``iobes`` when their prefixes occur, ``iob1`` when
    more entities start with ``I-`` (not continuing one of their type) than with ``B-``, else ``iob2``."""
    prefixes: set[str] = set()
    b_starts = i_starts = 0
    for tags in tag_sequences:
        previous = "O"
        for tag in tags:
            if tag != "O":
                prefixes.add(tag[0])
            if tag.startswith("B-"):
                b_starts += 1
            elif tag.startswith("I-") and previous[2:] != tag[2:]:
                i_starts += 1
            previous = tag
    if prefixes & {"L", "U"}:
        return "bilou"
    if prefixes & {"S", "E"}:
        return "iobes"
    return "iob1" if i_starts > b_starts else "iob2"


def to_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """Tags of ``scheme`` as IOB2: IOBES/BILOU single (``S-``/``U-``) and end (``E-``/``L-``) tags become
    ``B-``/``I-``; IOB1 is converted; IOB2 is kept as it is (like seqeval)."""
    if scheme in ("iobes", "bilou"):
        return [
            "B-" + t[2:] if t[:2] in ("S-", "U-") else "I-" + t[2:] if t[:2] in ("E-", "L-") else t
            for t in tags
        ]
    if scheme == "iob1":
        return iob1_to_iob2(tags)
    return list(tags)


def map_tags(tags: Sequence[str], tag_map: dict[str, str], *, drop_unmapped: bool = True) -> list[str]:
    """Rename entity types with ``tag_map`` (unmapped types become ``O`` when ``drop_unmapped``).

    The result is re-normalised so that dropping a type never leaves a dangling ``I-``.
    """
    out: list[str] = []
    for tag in tags:
        if tag == "O":
            out.append(tag)
            continue
        target = tag_map.get(tag[2:])
        if target is None:
            out.append("O" if drop_unmapped else tag)
        elif target == "O":
            out.append("O")
        else:
            out.append(tag[:2] + target)
    return normalise_iob2(out)


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, start, end)`` spans of an IOB2 sequence, ``end`` exclusive, with seqeval's lenient rule
    that an ``I-X`` not continuing an ``X`` starts a new entity."""
    spans: list[tuple[str, int, int]] = []
    start, kind = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        continues = tag.startswith("I-") and tag[2:] == kind and start >= 0
        if continues:
            continue
        if start >= 0:
            spans.append((kind, start, i))
            start, kind = -1, ""
        if tag != "O":
            start, kind = i, tag[2:]
    return spans


# --------------------------------------------------------------------------------------------------------
# Tagged files.
# --------------------------------------------------------------------------------------------------------


def sniff_format(lines: Sequence[str]) -> str:
    """Guess ``conll``, ``tsv`` or ``wikiann`` from the first non-blank, non ``-DOCSTART-`` lines.

    The first token line decides between TSV and CoNLL so that a later line without its tab is reported as
    an error instead of silently switching the whole file to whitespace splitting.
    """
    sample = [line for line in lines if line.strip() and not line.startswith("-DOCSTART-")][:_SNIFF_LINES]
    if not sample:
        return "conll"
    firsts = [line.split(None, 1)[0] for line in sample]
    if all(_WIKIANN_PREFIX_RE.match(first) for first in firsts):
        return "wikiann"
    if sample[0].count("\t") == 1:
        return "tsv"
    return "conll"


def _split_columns(line: str, fmt: str) -> list[str]:
    if fmt == "tsv":
        return line.split("\t")
    return line.split()


def _check_tag(tag: str, path: Path, lineno: int, scheme: str = "auto") -> None:
    if tag == "O":
        return
    if not _TAG_RE.match(tag):
        raise DataError(
            f"invalid tag {tag!r}: expected 'O' or PREFIX-TYPE with prefix B, I (IOB1/IOB2), also S, E "
            "(IOBES) or L, U (BILOU)",
            path=path,
            line=lineno,
        )
    if tag[0] not in _PREFIXES[scheme]:
        raise DataError(
            f"tag {tag!r} is not {scheme.upper()}: set the source's scheme to \"auto\" or the file's scheme "
            "(iob1, iob2, iobes, bilou)",
            path=path,
            line=lineno,
        )


def _parse_token(
    line: str,
    fmt: str,
    ncols: int | None,
    path: Path,
    lineno: int,
    scheme: str = "auto",
    lenient: bool = False,
) -> tuple[str, str, int]:
    """Return ``(word, tag, column count)`` of one token line. Another column count than the file's is an
    error, or with ``lenient`` (CoNLL only) read as token first, tag last; the caller counts it."""
    cols = _split_columns(line, fmt)
    if fmt == "tsv":
        if len(cols) != 2:
            raise DataError(
                f"expected 2 tab-separated columns 'token<TAB>tag', found {len(cols)}: {line!r}",
                path=path,
                line=lineno,
            )
        if not cols[0].strip() or not cols[1].strip():
            raise DataError(f"empty token or tag in {line!r}", path=path, line=lineno)
        cols = [cols[0].strip(), cols[1].strip()]
    elif len(cols) < 2:
        raise DataError(
            f"expected at least 2 whitespace-separated columns 'token ... tag', found {len(cols)}: {line!r}",
            path=path,
            line=lineno,
        )
    if ncols is not None and len(cols) != ncols and not (lenient and fmt == "conll"):
        raise DataError(
            f"inconsistent column count: {len(cols)} columns here but {ncols} earlier in the file"
            + (
                " (strict_columns = false reads such lines as token first, tag last)"
                if fmt == "conll"
                else ""
            ),
            path=path,
            line=lineno,
        )
    _check_tag(cols[-1], path, lineno, scheme)
    return cols[0], cols[-1], len(cols)


def _strip_prefix(word: str, path: Path, lineno: int) -> tuple[str, str]:
    match = _WIKIANN_PREFIX_RE.match(word)
    if match is None:
        raise DataError(
            f"expected a 'lang:token' prefix in the original WikiAnn format, got {word!r}",
            path=path,
            line=lineno,
        )
    return match.group(2), match.group(1)


def _parse_sentences(
    lines: Sequence[str], fmt: str, path: Path, scheme: str = "auto", other_columns: list[int] | None = None
) -> list[tuple[list[str], list[str], str | None]]:
    """Group token lines into ``(words, tags, prefix language)``; whitespace-only lines separate sentences.
    With ``other_columns`` (a list), CoNLL lines with another column count than the first token line's are
    read leniently and their numbers appended."""
    sentences: list[tuple[list[str], list[str], str | None]] = []
    words: list[str] = []
    tags: list[str] = []
    prefix_lang: str | None = None
    ncols: int | None = None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            if words:
                sentences.append((words, tags, prefix_lang))
                words, tags, prefix_lang = [], [], None
            continue
        if line.startswith("-DOCSTART-"):
            continue
        word, tag, columns = _parse_token(line, fmt, ncols, path, lineno, scheme, other_columns is not None)
        if ncols is None:
            ncols = columns
        elif columns != ncols and other_columns is not None:
            other_columns.append(lineno)
        if fmt == "wikiann":
            word, lang = _strip_prefix(word, path, lineno)
            prefix_lang = prefix_lang or lang
        words.append(word)
        tags.append(tag)
    if words:
        sentences.append((words, tags, prefix_lang))
    return sentences


def read_tagged_file(
    path: str | Path,
    *,
    lang: str = "und",
    format: str = "auto",
    encoding: str = "utf-8",
    scheme: str = "auto",
    tag_map: dict[str, str] | None = None,
    drop_unmapped: bool = True,
    strict_columns: bool = False,
    jsonl: JsonlFields | None = None,
    report: ReadReport | None = None,
) -> list[Sentence]:
    """Read a NER file into IOB2-tagged sentences.

    ``format``: ``conll`` (whitespace columns, token first, tag last, ``-DOCSTART-`` skipped), ``tsv``
    (``token<TAB>tag``), ``wikiann`` (``lang:token tag``; the prefix gives the language unless ``lang`` is
    given), ``jsonl`` (one sentence per line, see ``JsonlFields``) or ``auto`` (``.jsonl`` files are JSONL,
    otherwise sniffed). ``scheme``: ``auto`` (detected per file, see ``detect_scheme``), ``iob1``, ``iob2``
    (kept as it is, like seqeval), ``iobes`` or ``bilou``, converted to IOB2. ``tag_map`` renames entity
    types (``{"person": "PER"}``); unmapped types become ``O`` if ``drop_unmapped``. CoNLL lines with another
    column count than the file's are read as token first, tag last and counted in one warning, unless
    ``strict_columns``. ``report``, if given, is filled with what was found.
    """
    path = Path(path)
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}", path=path)
    if scheme not in SCHEMES:
        raise DataError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}", path=path)
    lines = read_lines(path, encoding)
    is_jsonl = format == "jsonl" or (
        format == "auto" and path.name.lower().removesuffix(".gz").endswith(".jsonl")
    )
    fmt = "jsonl" if is_jsonl else sniff_format(lines) if format == "auto" else format
    other_columns: list[int] | None = None if strict_columns else []
    if is_jsonl:
        parsed = _parse_jsonl(lines, path, jsonl or JsonlFields(), scheme)
    else:
        parsed = _parse_sentences(lines, fmt, path, scheme, other_columns)
    if not parsed:
        raise DataError("file is empty (no token lines)", path=path)
    if other_columns:
        first = ", ".join(map(str, other_columns[:5]))
        log.warning(
            "%s: %d line(s) have another column count than the file's first token line (first at line %s); "
            "read as token first, tag last (strict_columns = true refuses them)",
            path,
            len(other_columns),
            first,
        )
    out, read_as = to_sentences(parsed, lang, scheme, tag_map, drop_unmapped)
    if report is not None:
        report.format, report.scheme, report.sentences = fmt, read_as, len(out)
        report.other_columns = list(other_columns or [])
    return out


def to_sentences(
    parsed: Sequence[tuple[list[str], list[str], str | None]],
    lang: str = "und",
    scheme: str = "auto",
    tag_map: dict[str, str] | None = None,
    drop_unmapped: bool = True,
) -> tuple[list[Sentence], str]:
    """(words, tags, language or None) records as IOB2 sentences; returns them and the scheme read."""
    read_as = detect_scheme(tags for _, tags, _ in parsed) if scheme == "auto" else scheme
    out: list[Sentence] = []
    for words, tags, prefix_lang in parsed:
        tags = to_iob2(tags, read_as)
        if tag_map is not None:
            tags = map_tags(tags, tag_map, drop_unmapped=drop_unmapped)
        sent_lang = prefix_lang if (lang == "und" and prefix_lang) else lang
        out.append(Sentence(tuple(words), tuple(tags), sent_lang))
    return out, read_as


@dataclass(frozen=True)
class JsonlFields:
    """Where a JSONL sentence keeps its words and tags (Hugging Face's export: ``tokens`` and ``ner_tags``).
    Tags are names, or ids into ``label_names`` (the dataset's tag names in id order)."""

    tokens: str = "tokens"
    tags: str = "ner_tags"
    label_names: tuple[str, ...] | None = None


def _parse_jsonl(
    lines: Sequence[str], path: Path, fields: JsonlFields, scheme: str
) -> list[tuple[list[str], list[str], str | None]]:
    def records():
        for lineno, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"not a JSON object: {exc.msg} (column {exc.colno})", path=path, line=lineno
                    ) from None

    return parse_records(records(), path, fields, scheme)


def parse_records(
    records: Iterable[tuple[int, Any]], path: Path, fields: JsonlFields, scheme: str
) -> list[tuple[list[str], list[str], str | None]]:
    """Sentences from ``(number, record)`` pairs, each record a mapping with ``fields.tokens`` and
    ``fields.tags`` (JSONL lines, rows of a Hugging Face dataset); errors name the record's number as the
    line."""
    sentences: list[tuple[list[str], list[str], str | None]] = []
    for lineno, record in records:
        if not isinstance(record, dict) or fields.tokens not in record or fields.tags not in record:
            raise DataError(
                f'expected an object with "{fields.tokens}" and "{fields.tags}" lists (set tokens_field / '
                "tags_field for other names)",
                path=path,
                line=lineno,
            )
        words, tags = record[fields.tokens], record[fields.tags]
        if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
            raise DataError(
                f'"{fields.tokens}" and "{fields.tags}" must be lists of the same length',
                path=path,
                line=lineno,
            )
        if not words:
            continue
        if not all(isinstance(w, str) and w.strip() for w in words):
            raise DataError(f'"{fields.tokens}" must hold non-empty strings', path=path, line=lineno)
        names = [_tag_name(t, fields, path, lineno) for t in tags]
        for name in names:
            _check_tag(name, path, lineno, scheme)
        sentences.append((list(words), names, None))
    return sentences


def _tag_name(tag: Any, fields: JsonlFields, path: Path, lineno: int) -> str:
    if isinstance(tag, str):
        return tag
    if isinstance(tag, int) and not isinstance(tag, bool):
        if fields.label_names is None:
            raise DataError(
                f'"{fields.tags}" holds ids: give label_names = [...] (the tag names in id order, as the '
                "dataset's features list them)",
                path=path,
                line=lineno,
            )
        if not 0 <= tag < len(fields.label_names):
            raise DataError(
                f"tag id {tag} is outside label_names (0..{len(fields.label_names) - 1})",
                path=path,
                line=lineno,
            )
        return fields.label_names[tag]
    raise DataError(f"a tag must be a name or an id, not {tag!r}", path=path, line=lineno)


# --------------------------------------------------------------------------------------------------------
# Corpus folders.
# --------------------------------------------------------------------------------------------------------


def _find_flat(folder: Path) -> dict[tuple[str, str], Path]:
    found: dict[tuple[str, str], Path] = {}
    for file in sorted(folder.iterdir()):
        match = _FLAT_FILE_RE.match(file.name)
        if match and file.is_file():
            _add_file(found, (match.group(2), SPLIT_ALIASES[match.group(1).lower()]), file)
    return found


def _find_nested(folder: Path) -> dict[tuple[str, str], Path]:
    found: dict[tuple[str, str], Path] = {}
    for sub in sorted(folder.iterdir()):
        if not sub.is_dir() or not re.fullmatch(_LANG_RE, sub.name):
            continue
        for file in sorted(sub.iterdir()):
            match = _NESTED_FILE_RE.match(file.name)
            if match and file.is_file():
                _add_file(found, (sub.name, SPLIT_ALIASES[match.group(1).lower()]), file)
    return found


def _add_file(found: dict[tuple[str, str], Path], key: tuple[str, str], file: Path) -> None:
    if key in found:
        raise DataError(
            f"two files for language {key[0]!r} split {key[1]!r}: {found[key].name} and {file.name}; "
            "remove one",
            path=file.parent,
        )
    found[key] = file


def discover_corpus_files(path: str | Path) -> dict[tuple[str, str], Path]:
    """Map ``(lang, split)`` to files for the ``{split}-{lang}.{ext}[.gz]`` or ``{lang}/{split}.{ext}[.gz]`` layout."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError("corpus folder not found", path=folder)
    found = _find_flat(folder) or _find_nested(folder)
    if not found:
        raise DataError(
            "no data files found; expected {split}-{lang}.{tsv,txt,conll,jsonl}[.gz] (e.g. train-en.tsv.gz) "
            "or {lang}/{split}.{tsv,txt,conll,jsonl}[.gz], with split train/dev/test; or name the files "
            "with train/dev/test keys on the source",
            path=folder,
        )
    return found


def read_corpus_folder(
    path: str | Path,
    *,
    languages: Iterable[str] | None = None,
    reports: list[ReadReport] | None = None,
    **options: Any,
) -> Corpus:
    """Read a multilingual NER folder (XTREME/WikiAnn layout or one folder per language) into a Corpus.

    The entity types must be identical across languages (see :func:`check_label_sets`), since the joint
    student has a single output layer. ``options`` go to ``read_tagged_file``; ``reports`` collects a
    ``ReadReport`` per file.
    """
    folder = Path(path)
    found = discover_corpus_files(folder)
    available = sorted({lang for lang, _ in found})
    wanted = available if languages is None else list(dict.fromkeys(languages))
    unknown = [lang for lang in wanted if lang not in available]
    if unknown:
        raise DataError(
            f"language(s) {', '.join(unknown)} not found; available: {', '.join(available)}", path=folder
        )
    splits: dict[str, dict[str, list[Sentence]]] = {lang: {} for lang in wanted}
    for (lang, split), file in sorted(found.items()):
        if lang in splits:
            report = ReadReport(str(file))
            splits[lang][split] = read_tagged_file(file, lang=lang, report=report, **options)
            if reports is not None:
                reports.append(report)
    corpus = Corpus(splits, folder.name)
    check_label_sets(corpus, path=folder)
    return corpus


def language_labels(corpus: Corpus) -> dict[str, set[str]]:
    """Entity types per language, over all splits."""
    return {
        lang: {tag[2:] for sents in by_split.values() for s in sents for tag in (s.tags or ()) if tag != "O"}
        for lang, by_split in corpus.splits.items()
    }


def check_label_sets(corpus: Corpus, *, path: str | Path | None = None) -> None:
    """Raise DataError unless every language uses the same entity types.

    The reference is the most common label set, so the message names the odd language(s) out.
    """
    per_lang = language_labels(corpus)
    if len(per_lang) < 2:
        return
    counts = Counter(frozenset(types) for types in per_lang.values())
    reference = max(counts, key=lambda types: (counts[types], sorted(types)))
    if len(counts) == 1:
        return
    ref_langs = sorted(lang for lang, types in per_lang.items() if types == reference)
    problems = []
    for lang in sorted(per_lang):
        types = per_lang[lang]
        if types == reference:
            continue
        parts = []
        if types - reference:
            parts.append(f"extra type(s) {', '.join(sorted(types - reference))}")
        if reference - types:
            parts.append(f"missing type(s) {', '.join(sorted(reference - types))}")
        problems.append(f"{lang!r} has {' and '.join(parts)}")
    raise DataError(
        "entity types differ across languages: "
        + "; ".join(problems)
        + f" (compared with {', '.join(sorted(reference))} used by {', '.join(ref_langs)})",
        path=path,
    )


# --------------------------------------------------------------------------------------------------------
# Deterministic subsetting.
# --------------------------------------------------------------------------------------------------------


def seeded_rng(seed: int, *keys: str) -> random.Random:
    """A random generator derived from ``seed`` and string keys, stable across processes and platforms."""
    digest = hashlib.sha256(":".join([str(seed), *keys]).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def seeded_indices(n: int, k: int, seed: int, *keys: str) -> list[int]:
    """``k`` of ``range(n)`` chosen by a seeded permutation, returned in ascending order.

    Taking a prefix of one permutation makes smaller samples subsets of larger ones (nested learning curves).
    """
    order = list(range(n))
    seeded_rng(seed, *keys).shuffle(order)
    return sorted(order[: max(0, min(k, n))])


def limit_corpus(corpus: Corpus, *, max_per_split: dict[str, int | None], seed: int = 0) -> Corpus:
    """Keep at most ``max_per_split[split]`` sentences per language and split (``None``: keep all).

    The sample is seeded per (language, split) and keeps the original sentence order.
    """
    splits: dict[str, dict[str, list[Sentence]]] = {}
    for lang, by_split in corpus.splits.items():
        splits[lang] = {}
        for split, sents in by_split.items():
            limit = max_per_split.get(split)
            if limit is None or len(sents) <= limit:
                splits[lang][split] = list(sents)
            else:
                splits[lang][split] = [sents[i] for i in seeded_indices(len(sents), limit, seed, lang, split)]
    return Corpus(splits, corpus.name)


def hold_out_dev(corpus: Corpus, n: int, seed: int) -> Corpus:
    """Move ``n`` seeded train items per language into a dev split (for data whose only labeled evaluation
    split must stay the test set: SST-2's GLUE dev, IMDb's test). A language that has a dev split is kept."""
    splits = {}
    for lang, by_split in corpus.splits.items():
        by_split = dict(by_split)
        train = by_split.get("train", [])
        if not by_split.get("dev") and train:
            if n >= len(train):
                raise DataError(
                    f"dev_from_train = {n} but {lang!r} has only {len(train)} train items: lower it"
                )
            chosen = set(seeded_indices(len(train), n, seed, lang, "dev-from-train"))
            by_split["dev"] = [x for i, x in enumerate(train) if i in chosen]
            by_split["train"] = [x for i, x in enumerate(train) if i not in chosen]
        splits[lang] = by_split
    return Corpus(splits, corpus.name)
