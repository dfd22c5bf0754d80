"""Hugging Face datasets as labeled data: save_to_disk folders (Dataset and DatasetDict), parquet files named
by split; tag names from the features or label_names; bad datasets get one clear line."""

from __future__ import annotations

import pytest

datasets = pytest.importorskip(
    "datasets", reason="the hf extra is not installed (pip install 'xtremedistil[hf]')"
)

from xtremedistil.config import LabeledSource  # noqa: E402
from xtremedistil.data.sources import load_labeled  # noqa: E402
from xtremedistil.errors import DataError  # noqa: E402

NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
ROWS = {
    "train": {
        "tokens": [["Bob", "Dylan", "lives", "in", "Paris"], ["Rome"]],
        "ner_tags": [[1, 2, 0, 0, 3], [3]],
    },
    "validation": {"tokens": [["Ann", "left"]], "ner_tags": [[1, 0]]},
    "test": {"tokens": [["in", "Oslo"]], "ner_tags": [[0, 3]]},
}


def _dataset(split, names=NAMES):
    features = datasets.Features(
        {
            "tokens": datasets.List(datasets.Value("string")),
            "ner_tags": datasets.List(datasets.ClassLabel(names=names)),
        }
    )
    return datasets.Dataset.from_dict(ROWS[split], features=features)


def test_a_saved_dataset_dict_is_a_corpus_with_its_tag_names(tmp_path):
    datasets.DatasetDict({split: _dataset(split) for split in ROWS}).save_to_disk(str(tmp_path / "dd"))
    corpus = load_labeled(LabeledSource(source=str(tmp_path / "dd"), lang="en"))
    assert set(corpus.splits["en"]) == {"train", "dev", "test"}
    assert corpus.split("train")[0].tags == ("B-PER", "I-PER", "O", "O", "B-LOC")
    assert corpus.split("dev")[0].words == ("Ann", "left")


def test_parquet_files_named_by_split(tmp_path):
    folder = tmp_path / "hub" / "data"
    folder.mkdir(parents=True)
    for split in ROWS:
        _dataset(split).to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    corpus = load_labeled(LabeledSource(source=str(tmp_path / "hub"), lang="de"))
    assert {k: len(v) for k, v in corpus.splits["de"].items()} == {"train": 2, "dev": 1, "test": 1}


def test_a_plain_sequence_of_ids_needs_label_names(tmp_path):
    plain = datasets.Dataset.from_dict(ROWS["train"])  # ids without ClassLabel names
    plain.save_to_disk(str(tmp_path / "plain"))
    with pytest.raises(DataError, match="label_names"):
        load_labeled(LabeledSource(source=str(tmp_path / "plain")))
    corpus = load_labeled(LabeledSource(source=str(tmp_path / "plain"), label_names=NAMES))
    assert corpus.split("train")[1].tags == ("B-LOC",)


def test_missing_columns_and_damaged_files_are_clear_errors(tmp_path):
    datasets.Dataset.from_dict({"words": [["a"]], "labels": [[0]]}).save_to_disk(str(tmp_path / "other"))
    with pytest.raises(DataError, match="no column tokens, ner_tags"):
        load_labeled(LabeledSource(source=str(tmp_path / "other")))
    corpus = load_labeled(
        LabeledSource(
            source=str(tmp_path / "other"), tokens_field="words", tags_field="labels", label_names=["O"]
        )
    )
    assert corpus.split("train")[0].tags == ("O",)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot read as a Hugging Face dataset") as info:
        load_labeled(LabeledSource(train=str(tmp_path / "bad.parquet")))
    assert "bad.parquet" in str(info.value)


def test_parquet_files_in_folders_named_by_split(tmp_path):
    for split in ROWS:  # the hub's converted layout: <config>/<split>/0000.parquet
        (tmp_path / "hub" / "default" / split).mkdir(parents=True)
        _dataset(split).to_parquet(str(tmp_path / "hub" / "default" / split / "0000.parquet"))
    corpus = load_labeled(LabeledSource(source=str(tmp_path / "hub"), lang="en"))
    assert {k: len(v) for k, v in corpus.splits["en"].items()} == {"train": 2, "dev": 1, "test": 1}


def test_a_stray_parquet_file_does_not_turn_a_conll_folder_into_a_dataset(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "train.conll").write_text("Bonn B-LOC\n")
    _dataset("test").to_parquet(str(tmp_path / "notes.parquet"))
    assert load_labeled(LabeledSource(source=str(tmp_path))).split("train")[0].tags == ("B-LOC",)
