"""Labeled data as public corpora distribute it: per-split files, CoNLL lines with another column count,
IOBES/BILOU tags, UTF-16, JSONL exports of Hugging Face datasets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from xtremedistil.config import LabeledSource
from xtremedistil.data.readers import ReadReport, detect_scheme, read_corpus_folder, read_tagged_file, to_iob2
from xtremedistil.data.sources import load_labeled
from xtremedistil.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"

CONLL = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n"


def test_per_split_files_named_as_distributed(tmp_path):
    (tmp_path / "eng.train").write_text(CONLL)
    (tmp_path / "eng.testb").write_text("Bonn NNP B-NP B-LOC\n")
    corpus = load_labeled(
        LabeledSource(train=str(tmp_path / "eng.train"), test=str(tmp_path / "eng.testb"), lang="en")
    )
    assert set(corpus.splits["en"]) == {"train", "test"}  # dev absent: fine
    assert [s.words for s in corpus.split("train")] == [("EU", "rejects"), ("Peter", "Blackburn")]
    assert corpus.split("test")[0].tags == ("B-LOC",)


def test_per_split_files_and_source_exclude_each_other(tmp_path):
    with pytest.raises(ValidationError, match="not both"):
        LabeledSource(source="embedded:wnut16-en", train="x.conll")
    with pytest.raises(ValidationError, match="train/dev/test"):
        LabeledSource()
    with pytest.raises(DataError, match="not found") as info:
        load_labeled(LabeledSource(train=str(tmp_path / "missing.conll")))
    assert "missing.conll" in str(info.value)


def test_lines_with_another_column_count_are_read_and_counted_once(tmp_path, caplog):
    path = tmp_path / "broken.conll"
    # a broken character swallowed a separator on lines 4 and 6
    path.write_text("Paris NNP B-NP B-LOC\nis VBZ B-VP O\n\nBob NNPB-NP B-PER\nsaid VBD B-VP O\nhi UHO O\n")
    report = ReadReport(str(path))
    with caplog.at_level(logging.WARNING):
        sents = read_tagged_file(path, report=report)
    assert [s.words for s in sents] == [("Paris", "is"), ("Bob", "said", "hi")]
    assert sents[1].tags == ("B-PER", "O", "O")
    assert report.other_columns == [4, 6]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 line(s)" in warnings[0] and "line 4" in warnings[0]
    with pytest.raises(DataError, match=r"broken\.conll:4: inconsistent column count"):
        read_tagged_file(path, strict_columns=True)


@pytest.mark.parametrize(
    ("tags", "scheme", "iob2"),
    [
        (
            ["S-PER", "O", "B-LOC", "E-LOC", "B-ORG", "I-ORG", "E-ORG"],
            "iobes",
            ["B-PER", "O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "I-ORG"],
        ),
        (["U-PER", "O", "B-LOC", "L-LOC"], "bilou", ["B-PER", "O", "B-LOC", "I-LOC"]),
        (["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], "iob1", ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]),
        (["B-PER", "I-PER", "O", "B-LOC", "B-LOC"], "iob2", ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]),
    ],
)
def test_schemes_are_detected_and_converted(tmp_path, tags, scheme, iob2):
    assert detect_scheme([tags]) == scheme
    assert to_iob2(tags, scheme) == iob2
    path = tmp_path / "tags.tsv"
    path.write_text("".join(f"w{i}\t{t}\n" for i, t in enumerate(tags)))
    report = ReadReport(str(path))
    assert read_tagged_file(path, report=report)[0].tags == tuple(iob2)
    assert report.scheme == scheme
    assert read_tagged_file(path, scheme=scheme)[0].tags == tuple(iob2)


def test_a_named_scheme_refuses_another_schemes_prefix_with_the_line(tmp_path):
    path = tmp_path / "iobes.tsv"
    path.write_text("Bob\tS-PER\nsaid\tO\n")
    with pytest.raises(DataError, match=r"iobes\.tsv:1: tag 'S-PER' is not IOB2"):
        read_tagged_file(path, scheme="iob2")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_byte_order_marks_decide_the_encoding(tmp_path, encoding):
    path = tmp_path / "bom.tsv"
    text = "Zürich\tB-LOC\r\nist\tO\r\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path.write_bytes(data)
    assert read_tagged_file(path)[0].words == ("Zürich", "ist")


def _jsonl(path: Path, records: list) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def test_jsonl_with_tag_names_or_ids(tmp_path):
    names = _jsonl(
        tmp_path / "train.jsonl", [{"id": "0", "tokens": ["Bob", "lives"], "ner_tags": ["B-PER", "O"]}]
    )
    assert read_tagged_file(names)[0].tags == ("B-PER", "O")
    ids = _jsonl(
        tmp_path / "ids.jsonl",
        [{"tokens": ["Paris", "Hilton"], "ner_tags": [1, 2]}, {"tokens": [], "ner_tags": []}],
    )
    source = LabeledSource(train=str(ids), label_names=["O", "B-PER", "I-PER"])
    assert load_labeled(source).split("train")[0].tags == ("B-PER", "I-PER")
    custom = _jsonl(tmp_path / "custom.jsonl", [{"words": ["Rome"], "labels": ["U-LOC"]}])
    source = LabeledSource(train=str(custom), tokens_field="words", tags_field="labels")
    assert load_labeled(source).split("train")[0].tags == ("B-LOC",)


@pytest.mark.parametrize(
    ("records", "line", "fragment"),
    [
        ([{"tokens": ["a"], "ner_tags": ["O"]}, "{not json"], 2, "not a JSON object"),
        ([{"tokens": ["a"], "tags": ["O"]}], 1, '"ner_tags"'),
        ([{"tokens": ["a", "b"], "ner_tags": ["O"]}], 1, "same length"),
        ([{"tokens": ["a"], "ner_tags": [3]}], 1, "label_names"),
        ([{"tokens": ["a"], "ner_tags": ["X-PER"]}], 1, "'X-PER'"),
        ([{"tokens": [""], "ner_tags": ["O"]}], 1, "non-empty strings"),
    ],
)
def test_bad_jsonl_names_the_line(tmp_path, records, line, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    with pytest.raises(DataError) as info:
        read_tagged_file(path)
    assert info.value.line == line and fragment in str(info.value)


def test_a_folder_of_jsonl_files_is_a_corpus(tmp_path):
    for split in ("train", "dev"):
        (tmp_path / "de").mkdir(exist_ok=True)
        _jsonl(tmp_path / "de" / f"{split}.jsonl", [{"tokens": ["Bonn"], "ner_tags": ["B-LOC"]}])
    reports: list[ReadReport] = []
    corpus = read_corpus_folder(tmp_path, reports=reports)
    assert set(corpus.splits["de"]) == {"train", "dev"}
    assert {r.format for r in reports} == {"jsonl"} and len(reports) == 2


def test_data_check_shows_what_a_config_reads(tmp_path, capsys):
    from xtremedistil.cli import main

    (tmp_path / "eng.train").write_text("EU NNP B-NP S-ORG\nsaid VBD B-VP O\n\nBob NNPB-NP S-PER\n")
    config = tmp_path / "c.toml"
    config.write_text(f'[[data.labeled]]\ntrain = "{tmp_path / "eng.train"}"\nlang = "en"\n')
    assert main(["data", "check", str(config)]) == 0
    out = capsys.readouterr().out
    assert "| conll | iobes | 2 | 1 (line 4) |" in out
    assert "| en | train | 2 | 3 | 1 | 0 | 1 |" in out  # sentences, words, PER, LOC, ORG


def test_the_scheme_default_change_keeps_embedded_run_folders_and_separates_file_ones():
    from xtremedistil.pipeline import teacher_identity

    old = {"data": {"labeled": [{"source": "embedded:wnut16-en", "scheme": "iob2"}]}}
    new = {"data": {"labeled": [{"source": "embedded:wnut16-en"}]}}
    assert teacher_identity(old) == teacher_identity(new)  # an embedded corpus is not read by scheme
    # a file read as "iob2" kept IOB1 tags as they were; "auto" converts them: not the same teacher data
    old_file = {"data": {"labeled": [{"source": "train.conll", "scheme": "iob2"}]}}
    new_file = {"data": {"labeled": [{"source": "train.conll"}]}}
    assert teacher_identity(old_file) != teacher_identity(new_file)


def test_evaluate_finds_a_runs_source_by_any_of_its_split_files(tmp_path):
    from xtremedistil.pipeline import _reads

    source = LabeledSource(train=str(tmp_path / "eng.train"), test=str(tmp_path / "eng.testb"))
    assert _reads(source, str(tmp_path / "eng.testb")) and _reads(
        source, str(tmp_path / "x" / ".." / "eng.train")
    )
    assert not _reads(source, str(tmp_path / "eng.testa"))
    assert _reads(LabeledSource(source="embedded:wnut16-en"), "embedded:wnut16-en")
