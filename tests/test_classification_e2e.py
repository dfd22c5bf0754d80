"""Text classification through the same pipeline as NER, on a tiny random teacher, via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xtremedistil.batching import SpecialIds, collate
from xtremedistil.cache import TeacherCache
from xtremedistil.cli import main
from xtremedistil.student.saved import ClassifierPredictor, load_student
from xtremedistil.teacher.model import load_teacher

POSITIVE = ["alice lives in paris", "bob and the city", "the city and paris", "alice and bob"]
NEGATIVE = ["acme corp works", "works at acme", "corp works at the", "acme and corp works at"]


def write_split(path: Path, reps: int) -> None:
    rows = [f"{t}\tpos" for t in POSITIVE] + [f"{t}\tneg" for t in NEGATIVE]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sentence\tlabel\n" + "\n".join(rows * reps) + "\n", encoding="utf-8")


@pytest.fixture
def classify_config(tmp_path, tiny_bert_dir) -> Path:
    for lang in ("en", "xx"):
        write_split(tmp_path / "data" / lang / "train.tsv", 3)
        write_split(tmp_path / "data" / lang / "dev.tsv", 1)
        write_split(tmp_path / "data" / lang / "test.tsv", 1)
    (tmp_path / "unlabeled.txt").write_text(
        "alice works in london\nbob and acme\nparis lives\n", encoding="utf-8"
    )
    path = tmp_path / "classify.toml"
    path.write_text(
        f"""
task = "classification"
output_dir = "{tmp_path / "run"}"
[[data.labeled]]
source = "{tmp_path / "data"}"
[[data.transfer]]
source = "{tmp_path / "unlabeled.txt"}"
lang = "en"
[teacher]
name = "{tiny_bert_dir}"
max_length = 8
truncation = "head+tail"
epochs = 2
batch_size = 8
lr = 5e-3
[student]
embedding_dim = 8
hidden_size = 8
[distil]
layer = 1
sentence_vector = "mean"
batch_size = 8
representation_epochs = 1
logit_epochs = 1
label_epochs = 1
[speed]
batches = 2
warmup = 1
latency_samples = 3
min_seconds = 0
batch_size = 4
""",
        encoding="utf-8",
    )
    return path


def test_classification_end_to_end(classify_config, tmp_path, capsys):
    assert main(["distil", str(classify_config)]) == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    for model in ("teacher", "student"):
        test = metrics[model]["test"]
        assert test["metric"] == "accuracy" and set(test["languages"]) == {"en", "xx"}
        assert 0 <= test["mean_accuracy"] <= 100 and "mean_macro_f1" in test
        assert np.asarray(test["languages"]["en"]["confusion"]).sum() == 8
    assert len(metrics["stages"]) == 9 and all(s["metric"] == "accuracy" for s in metrics["stages"])
    for name in ("report.md", "report.png", "confusion.png", "student/student.json"):
        assert (run / name).is_file(), name
    report = (run / "report.md").read_text()
    assert "Accuracy and macro-F1 per language" in report and "confusion.png" in report

    # the cache holds one row per window: the teacher's layer-1 mean vector and logits of that window
    teacher = load_teacher(run / "teacher")
    (root,) = (run / "cache").glob("transfer-*")
    cache = TeacherCache(root)
    assert cache.per_window and cache.manifest["vector"] == "mean"
    from xtremedistil.data.texts import read_text_table
    from xtremedistil.tasks.classify import ClassificationTask

    docs = read_text_table(tmp_path / "data" / "en" / "train.tsv", lang="en")[:3]
    task = ClassificationTask(["neg", "pos"], "head+tail")
    encoded, _ = task.encode(docs, teacher.tokenizer, 8)
    batch = collate(encoded, list(range(3)), SpecialIds.from_tokenizer(teacher.tokenizer))
    with torch.inference_mode():
        expected = teacher(batch, layer=1, vector="mean")
    # the labeled train windows of the run come first, in language order (en first)
    got = cache.outputs([0, 1, 2], 0)
    torch.testing.assert_close(got.logits, expected.logits, atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(got.hidden, expected.hidden, atol=2e-2, rtol=1e-2)

    predictor = load_student(run / "student")
    assert isinstance(predictor, ClassifierPredictor) and predictor.labels == ["neg", "pos"]
    (answer,) = predictor.predict(["alice lives in paris"])
    assert answer["label"] in ("neg", "pos") and sum(answer["probabilities"].values()) == pytest.approx(
        1, abs=1e-5
    )
    capsys.readouterr()
    assert main(["predict", str(run), "alice lives in paris"]) == 0
    assert json.loads(capsys.readouterr().out) == {"text": "alice lives in paris", **answer}
    assert main(["predict", str(run), "x", "--format", "conll"]) != 0  # classification predicts JSON only
    assert "JSON lines only" in capsys.readouterr().err

    # out of PyTorch: the ONNX export predicts the same
    assert main(["export", str(run / "student")]) == 0
    (onnx_answer,) = load_student(run / "student", backend="onnx").predict(["alice lives in paris"])
    assert onnx_answer["label"] == answer["label"]
    for label, p in answer["probabilities"].items():
        assert onnx_answer["probabilities"][label] == pytest.approx(p, abs=1e-4)
    assert main(["serve", str(run / "student")]) != 0  # NER only so far, refused with a message
    assert "serves NER students so far" in capsys.readouterr().err

    # `evaluate` reproduces the run's test accuracy from the saved student
    out = tmp_path / "student-test.json"
    assert main(["evaluate", str(run), "--data", str(tmp_path / "data"), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["mean_accuracy"] == pytest.approx(
        metrics["student"]["test"]["mean_accuracy"]
    )

    (run / "confusion.png").unlink()
    assert main(["report", str(run)]) == 0 and (run / "confusion.png").is_file()  # rebuilt from the metrics

    # resuming reuses everything
    assert main(["distil", str(classify_config)]) == 0
    assert "resuming after 3.4 +embedding" in capsys.readouterr().err


def test_classification_experiment_and_budget_pick(classify_config, tmp_path, capsys):
    text = classify_config.read_text(encoding="utf-8")
    text += '\n[experiment]\nstrategies = ["D0", "D0-S", "D4.2"]\nstudents = ["8,8"]\n'
    classify_config.write_text(
        text.replace('output_dir = "', 'output_dir = "' + str(tmp_path / "exp") + '" #')
    )
    assert main(["experiment", str(classify_config), "--max-params", "10000000"]) == 0
    rows = json.loads((tmp_path / "exp" / "results.json").read_text())
    assert {r["cell"]["strategy"] for r in rows} == {"D0", "D0-S", "D4.2"}
    assert all(r["metric"] == "accuracy" and 0 <= r["test_mean"] <= 100 for r in rows)
    assert set(rows[0]["test_by_language"]) == {"en", "xx"}
    report = (tmp_path / "exp" / "results.md").read_text()
    assert "test mean accuracy" in report and "F1" not in report
    selection = json.loads((tmp_path / "exp" / "selected-student" / "selection.json").read_text())
    assert selection["metric"] == "accuracy"
    assert selection["dev_mean"] == max(r["dev_mean"] for r in rows)
    assert isinstance(load_student(tmp_path / "exp" / "selected-student"), ClassifierPredictor)
