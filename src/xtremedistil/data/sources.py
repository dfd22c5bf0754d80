"""Config entries -> data: labeled corpora and unlabeled transfer-set text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xtremedistil.config import LabeledSource, TransferSource
from xtremedistil.data.augment import mention_replacement
from xtremedistil.data.embedded import EMBEDDED_CORPORA, load_embedded
from xtremedistil.data.hf import HF_FILES, is_hf_dataset, read_hf_dataset
from xtremedistil.data.readers import (
    JsonlFields,
    ReadReport,
    check_label_sets,
    hold_out_dev,
    limit_corpus,
    read_corpus_folder,
    read_tagged_file,
)
from xtremedistil.data.records import Corpus, Document, Sentence
from xtremedistil.data.unlabeled import embedded_pool, read_text_file, sample_sentences, unlabeled_view
from xtremedistil.errors import DataError
from xtremedistil.segment import units_of

EMBEDDED = "embedded:"


def load_labeled(
    source: LabeledSource, seed: int = 13, reports: list[ReadReport] | None = None, task: str = "ner"
) -> Corpus:
    """One labeled source: ``embedded:<name>``, a corpus folder, a single file (train split only), or one
    file per split. ``reports`` collects what each file read found (``data check``). ``task``: ``ner``
    reads tagged sentences, ``classification`` labeled texts (``data.texts``); both then get
    ``dev_from_train`` and the ``max_*`` sampling."""
    readers = _text_readers(source) if task == "classification" else _tagged_readers(source, reports)
    read_file, read_folder, embedded, load = readers
    if source.source is None:
        lang = source.lang or "und"
        files = {"train": source.train, "dev": source.dev, "test": source.test}
        splits = {split: read_file(Path(f), lang) for split, f in files.items() if f}
        corpus = Corpus({lang: splits}, Path(next(f for f in files.values() if f)).parent.name)
    elif source.source.startswith(EMBEDDED):
        name = source.source.removeprefix(EMBEDDED)
        if name not in embedded:
            kind = "classification corpus" if task == "classification" else "corpus"
            raise DataError(f"unknown embedded {kind} {name!r}; available: {', '.join(sorted(embedded))}")
        corpus = load(name)
        if source.languages:
            corpus = Corpus({k: v for k, v in corpus.splits.items() if k in source.languages}, corpus.name)
    else:
        path = Path(source.source)
        if path.is_dir():
            corpus = read_folder(path)
        elif path.is_file():
            lang = source.lang or "und"
            corpus = Corpus({lang: {"train": read_file(path, lang)}}, path.name)
        else:
            raise DataError(
                "labeled data not found (expected embedded:<name>, a folder or a file)", path=path
            )
    if source.dev_from_train:
        corpus = hold_out_dev(corpus, source.dev_from_train, seed)
    limits = {"train": source.max_train, "dev": source.max_dev, "test": source.max_test}
    return limit_corpus(corpus, max_per_split=limits, seed=seed)


Readers = tuple[
    Callable[[Path, str], list[Any]], Callable[[Path], Corpus], dict[str, Any], Callable[[str], Corpus]
]


def _tagged_readers(source: LabeledSource, reports: list[ReadReport] | None) -> Readers:
    """NER: (read one file, read a folder, the embedded corpora, load one of them)."""
    options = {
        "format": "auto" if source.format == "hf" else source.format,
        "encoding": source.encoding,
        "scheme": source.scheme,
        "strict_columns": source.strict_columns,
        "jsonl": JsonlFields(
            source.tokens_field, source.tags_field, tuple(source.label_names) if source.label_names else None
        ),
    }

    def read_file(path: Path, lang: str) -> list[Any]:
        if not path.is_file():
            raise DataError("labeled data file not found", path=path)
        if source.format == "hf" or path.suffix in HF_FILES:
            splits = read_hf_dataset(
                path, lang=lang, scheme=source.scheme, fields=options["jsonl"], reports=reports
            )
            return [s for sentences in splits.values() for s in sentences]
        report = ReadReport(str(path))
        sentences = read_tagged_file(path, lang=lang, report=report, **options)
        if reports is not None:
            reports.append(report)
        return sentences

    def read_folder(path: Path) -> Corpus:
        if source.format == "hf" or is_hf_dataset(path):
            lang = source.lang or "und"
            splits = read_hf_dataset(
                path, lang=lang, scheme=source.scheme, fields=options["jsonl"], reports=reports
            )
            return Corpus({lang: splits}, path.name)
        return read_corpus_folder(path, languages=source.languages, reports=reports, **options)

    return read_file, read_folder, EMBEDDED_CORPORA, load_embedded


def _text_readers(source: LabeledSource) -> Readers:
    """Classification: (read one file, read a folder, the embedded corpora, load one of them)."""
    from xtremedistil.data.embedded_texts import EMBEDDED_TEXTS, load_embedded_texts
    from xtremedistil.data.texts import read_text_folder, read_text_table

    if source.format not in ("auto", "tsv", "csv", "jsonl"):
        raise DataError(f'format = "{source.format}" is for NER data; classification reads tsv, csv or jsonl')
    options = {"fmt": source.format, "encoding": source.encoding, "fields": text_fields(source)}

    def read_file(path: Path, lang: str) -> list[Any]:
        if not path.is_file():
            raise DataError("labeled data file not found", path=path)
        return read_text_table(path, lang=lang, **options)

    def read_folder(path: Path) -> Corpus:
        return read_text_folder(path, lang=source.lang, languages=source.languages, **options)

    return read_file, read_folder, EMBEDDED_TEXTS, load_embedded_texts


def text_fields(source: LabeledSource | TransferSource) -> Any:
    """The ``TextFields`` of a classification source's config."""
    from xtremedistil.data.texts import TextFields

    text = source.text_field
    label_names = getattr(source, "label_names", None)
    return TextFields(
        text=(text,) if isinstance(text, str) else tuple(text) if text else None,
        label=getattr(source, "label_field", None),
        columns=tuple(source.columns) if source.columns else None,
        label_names=tuple(label_names) if label_names else None,
        label_base=getattr(source, "label_base", 0),
    )


def load_labeled_all(sources: Sequence[LabeledSource], seed: int = 13, task: str = "ner") -> Corpus:
    """All labeled sources merged into one multilingual corpus with one shared label set."""
    corpus = Corpus()
    for source in sources:
        corpus = corpus.merge(load_labeled(source, seed=seed, task=task))
    if task == "classification":
        from xtremedistil.data.texts import check_class_labels

        check_class_labels(corpus)
    else:
        check_label_sets(corpus)
    return corpus


def load_corpus(config: Any) -> Corpus:
    """The labeled data of a run config."""
    return load_labeled_all(config.data.labeled, seed=config.seed, task=config.task)


def load_transfer(
    sources: Sequence[TransferSource],
    labeled: Corpus,
    limit: int | None,
    seed: int = 13,
    exclude_train: bool = True,
    segment: Callable[[str], list[tuple[int, int]]] | None = None,
    task: str = "ner",
) -> list[Any]:
    r"""The unlabeled transfer set: every source, deduplicated, optionally sampled down to ``limit``.

    Dev and test text never enters it; train text neither when ``exclude_train`` (it joins the cache as
    the labeled windows instead). With ``segment``, every sentence is then cut into the units ``predict``
    reads (raw text as it was, gold-tokenised text detokenised first), so the student trains on the inputs
    it will see. For ``task = "classification"`` the result is ``Document``\ s (the texts as they are)."""
    from xtremedistil.data.texts import TABLE_FORMATS, read_text_table, split_sentences

    sentences: list[Any] = []
    for source in sources:
        name = Path(source.source).name.removesuffix(".gz")
        table = Path(source.source).is_file() and Path(name).suffix.lstrip(".") in TABLE_FORMATS
        if (
            source.text_field is not None
            or source.columns is not None
            or source.split_sentences
            or (task == "classification" and table)
        ):
            docs = read_text_table(
                source.source,
                lang=source.lang or "und",
                encoding=source.encoding,
                fields=text_fields(source),
                labeled=False,
            )
            part = split_sentences(docs) if source.split_sentences else docs
        elif source.source.startswith(EMBEDDED):
            from xtremedistil.data.embedded_texts import EMBEDDED_TEXTS, embedded_text_pool

            pool = source.source.removeprefix(EMBEDDED)
            part = embedded_text_pool(pool) if pool in EMBEDDED_TEXTS else embedded_pool(pool)
        elif source.source == "augment:train":
            if task != "ner":
                raise DataError(
                    "augment:train replaces entity mentions in NER sentences; a classification transfer set "
                    "takes texts (embedded pools, labeled:train, text or classification files)"
                )
            part = mention_replacement(labeled.split("train"), source.copies, seed, source.mentions)
        elif source.source.startswith("labeled:"):
            part = unlabeled_view(labeled, split=source.source.removeprefix("labeled:"))
        elif Path(source.source).is_dir() and task == "classification":
            from xtremedistil.data.texts import read_text_folder

            folder = read_text_folder(
                Path(source.source), lang=source.lang, languages=source.languages, encoding=source.encoding
            )
            part = unlabeled_view(folder, split=source.split)
        elif Path(source.source).is_dir():
            folder = read_corpus_folder(
                Path(source.source), languages=source.languages, encoding=source.encoding
            )
            part = unlabeled_view(folder, split=source.split)
        else:
            part = read_text_file(source.source, lang=source.lang, encoding=source.encoding)
        if source.languages:
            part = [x for x in part if x.lang in source.languages]
        if source.max_sentences is not None:
            part = sample_sentences(part, source.max_sentences, seed)
        sentences += part
    excluded = ("train", "dev", "test") if exclude_train else ("dev", "test")
    seen: set[tuple[str, ...]] = {s.words for split in excluded for s in labeled.split(split)}
    unique = [s for s in sentences if not (s.words in seen or seen.add(s.words))]
    chosen = sample_sentences(unique, limit, seed) if limit is not None else unique
    if task == "classification":
        return [as_document(s) for s in chosen]
    if segment is None:
        return chosen
    return [s for s in units_of(chosen, segment)[0] if s.words]


def stats_table(sources: Sequence[str] | None) -> str:
    """``xtremedistil data stats``: markdown tables of sentences, words and entities per split and type."""
    from xtremedistil.data.embedded import corpus_stats, embedded_stats, stats_markdown
    from xtremedistil.data.unlabeled import pool_stats, pool_stats_markdown

    if not sources:
        return stats_markdown(embedded_stats()) + "\n\n" + pool_stats_markdown(pool_stats())
    tables = []
    for source in sources:
        corpus = load_labeled(LabeledSource(source=source))
        tables.append(stats_markdown(corpus_stats(corpus), title=source))
    return "\n\n".join(tables)


def check_texts_table(sources: Sequence[LabeledSource], seed: int = 13) -> str:
    """``xtremedistil data check`` for text classification: per source, texts per language, split and label
    (after dev_from_train and the max_* sampling); a bad row stops the read with its file and line."""
    from xtremedistil.data.texts import check_class_labels, texts_stats_markdown

    parts, corpus = [], Corpus()
    for source in sources:
        part = load_labeled(source, seed=seed, task="classification")
        title = source.source or ", ".join(
            f"{k}={v}" for k, v in source.model_dump().items() if k in ("train", "dev", "test") and v
        )
        parts.append(texts_stats_markdown(part, title))
        corpus = corpus.merge(part)
    check_class_labels(corpus)
    return "\n".join(parts) + f"\nLabels: {', '.join(corpus.labels())}.\n"


def check_table(sources: Sequence[LabeledSource], seed: int = 13) -> str:
    """``xtremedistil data check``: for each labeled source, what would be read: each file's format, tag
    scheme (as detected or named), sentences and the lines read leniently; then the corpus's sentences,
    words and entities per language, split and type (after the config's max_* sampling)."""
    from xtremedistil.data.embedded import corpus_stats, stats_markdown

    parts = []
    for source in sources:
        reports: list[ReadReport] = []
        corpus = load_labeled(source, seed=seed, reports=reports)
        title = source.source or ", ".join(
            f"{k}={v}" for k, v in source.model_dump().items() if k in ("train", "dev", "test") and v
        )
        rows = [
            "| file | format | scheme (read as) | sentences | lines with another column count |",
            "|---|---|---|---:|---|",
        ]
        for r in reports:
            lenient = (
                "none"
                if not r.other_columns
                else (
                    f"{len(r.other_columns)} (line{'s' if len(r.other_columns) > 1 else ''} {', '.join(map(str, r.other_columns[:5]))}"
                    + (", ..." if len(r.other_columns) > 5 else "")
                    + ")"
                )
            )
            rows.append(f"| {r.path} | {r.format} | {r.scheme} | {r.sentences:,} | {lenient} |")
        if not reports:
            rows = ["(embedded corpus: read from the installed package)"]
        parts.append(
            f"## {title}\n\n" + "\n".join(rows) + "\n\n" + stats_markdown(corpus_stats(corpus), title=title)
        )
    return "\n\n".join(parts)


def as_document(item: Sentence | Document) -> Document:
    """Unlabeled text for a classification transfer set: a document as it is, a sentence as its text."""
    if isinstance(item, Document):
        return item.unlabeled()
    from xtremedistil.segment import detokenize

    text = item.text if item.text is not None else detokenize(item.words)[0]
    return Document(text, None, item.lang)
