"""Text-classification readers: the layouts datasets are distributed in, and every bad input named by file
and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from xtremedistil.config import LabeledSource, TransferSource
from xtremedistil.data.readers import hold_out_dev
from xtremedistil.data.records import Corpus, Document
from xtremedistil.data.sources import load_labeled, load_labeled_all, load_transfer
from xtremedistil.data.texts import (
    TextFields,
    check_class_labels,
    read_text_folder,
    read_text_table,
    split_sentences,
)
from xtremedistil.errors import DataError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_glue_tsv_with_header(tmp_path):
    path = write(tmp_path / "train.tsv.gz", "sentence\tlabel\nit 's a charming film \t1\na dull mess \t0\n")
    docs = read_text_table(path, lang="en")
    assert docs == [Document("it 's a charming film", "1", "en"), Document("a dull mess", "0", "en")]


def test_imdb_layout_label_first_and_html_breaks(tmp_path):
    path = write(tmp_path / "test.tsv", "label\tid\ttext\npos\t1_10.txt\tGreat.<br /><br />Loved it.\n")
    (doc,) = read_text_table(path)
    assert doc.label == "pos" and doc.text == "Great. Loved it."


def test_ag_news_csv_without_header(tmp_path):
    path = write(
        tmp_path / "train.csv",
        '"3","Wall St. Bears","Short-sellers, Wall Street\'s dwindling band"\n"1","Iraq","News, today"\n',
    )
    fields = TextFields(
        columns=("label", "title", "text"),
        label_names=("World", "Sports", "Business", "Sci/Tech"),
        label_base=1,
    )
    docs = read_text_table(path, fields=fields)
    assert [d.label for d in docs] == ["Business", "World"]
    assert docs[0].text == "Wall St. Bears Short-sellers, Wall Street's dwindling band"


def test_jsonl_with_named_fields(tmp_path):
    path = write(tmp_path / "dev.jsonl", json.dumps({"review": "bien", "stars": "pos"}) + "\n\n")
    (doc,) = read_text_table(path, fields=TextFields(text=("review",), label="stars"))
    assert doc == Document("bien", "pos")


def test_folder_per_language_and_flat(tmp_path):
    for lang in ("en", "de"):
        write(
            tmp_path / "multi" / lang / "train.jsonl",
            '{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n',
        )
        write(tmp_path / "multi" / lang / "test.jsonl", '{"text": "c", "label": "x"}\n')
    corpus = read_text_folder(tmp_path / "multi")
    assert corpus.counts() == {
        "de": {"train": 2, "dev": 0, "test": 1},
        "en": {"train": 2, "dev": 0, "test": 1},
    }
    assert corpus.labels() == ["x", "y"]
    write(tmp_path / "flat" / "train.tsv", "text\tlabel\na\tx\nb\ty\n")
    assert read_text_folder(tmp_path / "flat", lang="fr").languages == ["fr"]


def test_dev_from_train_is_seeded_and_disjoint(tmp_path):
    rows = "".join(f"text {i}\t{i % 2}\n" for i in range(50))
    write(tmp_path / "train.tsv", "sentence\tlabel\n" + rows)
    source = LabeledSource(train=str(tmp_path / "train.tsv"), lang="en", dev_from_train=10)
    a, b = (load_labeled(source, seed=1, task="classification") for _ in range(2))
    assert len(a.split("dev")) == 10 and len(a.split("train")) == 40
    assert a.split("dev") == b.split("dev")
    assert not {d.text for d in a.split("dev")} & {d.text for d in a.split("train")}
    assert load_labeled(source, seed=2, task="classification").split("dev") != a.split("dev")
    corpus = Corpus({"en": {"train": a.split("train")[:3]}})
    with pytest.raises(DataError, match="dev_from_train = 5"):
        hold_out_dev(corpus, 5, seed=0)


BAD = [
    ("missing.tsv", "sentence\tlabel\ngood\t1\nno label\t\n", "missing label", 3),
    ("empty.tsv", "sentence\tlabel\ngood\t1\n \t0\n", "empty text", 3),
    ("columns.tsv", "sentence\tlabel\ngood\t1\nbad\t0\textra\n", "3 TSV columns, expected 2", 3),
    (
        "swapped.tsv",
        "label\tsentence\n" + "".join(f"a fine film number {i}\tpos\n" for i in range(4)),
        "label column holds text",
        2,
    ),
    ("json.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n', "not a JSON object", 2),
    ("nolabel.jsonl", '{"text": "a"}\n', "no label field among", 1),
]


@pytest.mark.parametrize(("name", "content", "message", "line"), BAD, ids=[b[0] for b in BAD])
def test_bad_rows_name_file_and_line(tmp_path, name, content, message, line):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError, match=message) as info:
        read_text_table(path)
    assert info.value.line == line and str(path) in str(info.value)


def test_unknown_label_id_and_undecodable_byte(tmp_path):
    path = write(tmp_path / "ag.csv", '"1","t","x"\n"5","t","y"\n')
    fields = TextFields(columns=("label", "title", "text"), label_names=("A", "B"), label_base=1)
    with pytest.raises(DataError, match="unknown label '5'") as info:
        read_text_table(path, fields=fields)
    assert info.value.line == 2
    raw = tmp_path / "latin.tsv"
    raw.write_bytes(b"sentence\tlabel\ncaf\xe9\t1\n")
    with pytest.raises(DataError, match="cannot decode") as info:
        read_text_table(raw)
    assert info.value.line == 2


def test_dev_label_unknown_to_train_and_single_class():
    docs = {"train": [Document("a", "x"), Document("b", "y")], "test": [Document("c", "z")]}
    with pytest.raises(DataError, match="test split has label\\(s\\) 'z'"):
        check_class_labels(Corpus({"en": docs}))
    with pytest.raises(DataError, match="at least two labels"):
        check_class_labels(Corpus({"en": {"train": [Document("a", "x")]}}))


def test_transfer_from_a_labeled_file_split_into_sentences(tmp_path):
    review = "The film opens slowly. Then it soars above everything. A classic of the genre!"
    write(tmp_path / "imdb.tsv", f"label\tid\ttext\npos\t1\t{review}\n")
    labeled = Corpus({"en": {"train": [Document("a classic of the genre !", "1", "en")]}})
    source = TransferSource(source=str(tmp_path / "imdb.tsv"), lang="en", split_sentences=True)
    docs = load_transfer([source], labeled, None, task="classification")
    assert [d.text for d in docs] == [
        "The film opens slowly.",
        "Then it soars above everything.",
        "A classic of the genre!",
    ]
    assert all(d.label is None and d.lang == "en" for d in docs)
    assert split_sentences([Document("One two three. Four five six.")])[1].text == "Four five six."


def test_embedded_classification_corpora_are_disjoint():
    from xtremedistil.data.embedded_texts import embedded_text_pool

    corpus = load_labeled_all([LabeledSource(source="embedded:rt-en")], task="classification")
    assert corpus.labels() == ["negative", "positive"]
    counts = corpus.counts()["en"]
    assert counts == {"train": 2000, "dev": 500, "test": 500}
    labeled = {d.text for split in ("train", "dev", "test") for d in corpus.split(split)}
    pool = embedded_text_pool("rt-en")
    assert len(pool) > 5000 and not labeled & {d.text for d in pool}


def test_transfer_from_a_classification_folder_and_refused_augmentation(tmp_path):
    write(
        tmp_path / "other" / "train.jsonl",
        '{"text": "one text", "label": "x"}\n{"text": "two", "label": "y"}\n',
    )
    labeled = Corpus({"en": {"train": [Document("two", "y", "en")]}})
    source = TransferSource(source=str(tmp_path / "other"), lang="en")
    docs = load_transfer([source], labeled, None, task="classification")
    assert [d.text for d in docs] == ["one text"]  # the labeled train text is not repeated
    with pytest.raises(DataError, match="augment:train replaces entity mentions"):
        load_transfer([TransferSource(source="augment:train")], labeled, None, task="classification")
