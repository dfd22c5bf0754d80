"""The whole pipeline on a tiny random teacher, through the CLI, in a few seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TOY
from xtremedistil import distillation
from xtremedistil.cli import main
from xtremedistil.student.saved import load_student


def write_toy_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "xx"):
        for split, reps in (("train", 3), ("dev", 1), ("test", 1)):
            lines = []
            for text, tags in TOY * reps:
                lines += [f"{w}\t{t}" for w, t in zip(text.split(), tags.split(), strict=True)] + [""]
            (folder / f"{split}-{lang}.tsv").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")


def write_toy_config(
    tmp_path: Path,
    teacher: str,
    *,
    labeled: str = "",
    distil: str = "",
    unlabeled: str = "alice works in london\nbob and the city\nparis lives\n",
    name: str = "toy.toml",
) -> Path:
    """A tiny run config over the toy corpus: ``teacher`` is the [teacher] section's lines, ``labeled`` and
    ``distil`` extra lines of those sections; students, stages, cache and speed measured in a few seconds."""
    write_toy_corpus(tmp_path / "corpus")
    (tmp_path / "unlabeled.txt").write_text(unlabeled, encoding="utf-8")
    config = f"""
output_dir = "{tmp_path / "run"}"
[[data.labeled]]
source = "{tmp_path / "corpus"}"
{labeled}
[[data.transfer]]
source = "{tmp_path / "unlabeled.txt"}"
lang = "en"
[teacher]
{teacher}
[student]
embedding_dim = 8
hidden_size = 8
[distil]
{distil}
batch_size = 8
representation_epochs = 1
logit_epochs = 1
label_epochs = 1
[cache]
shard_size = 16
[speed]
batches = 2
warmup = 1
latency_samples = 3
min_seconds = 0
batch_size = 4
"""
    path = tmp_path / name
    path.write_text(config, encoding="utf-8")
    return path


@pytest.fixture
def toy_config(tmp_path, tiny_bert_dir) -> Path:
    teacher = f'''name = "{tiny_bert_dir}"
max_length = 16
epochs = 2
batch_size = 8
lr = 5e-3'''
    return write_toy_config(tmp_path, teacher, labeled="max_test = 4", distil="layer = 1")


def test_distil_end_to_end_and_resume(toy_config, tmp_path, capsys, monkeypatch):
    assert main(["distil", str(toy_config)]) == 0
    run = tmp_path / "run"
    for name in (
        "config.toml",
        "metrics.json",
        "report.md",
        "report.json",
        "report.png",
        "student/student.json",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["student"]["test"]["languages"]) == {"en", "xx"}
    assert [s["stage"] for s in metrics["stages"]][0] == "1 representation" and len(metrics["stages"]) == 9
    assert metrics["size"]["student"]["total"] < metrics["size"]["teacher"]["total"]
    phases = metrics["phase_seconds"]
    assert {"teacher", "teacher cache", "student stages", "speed"} <= set(phases)
    assert 0 < sum(phases.values()) <= metrics["distil_job_seconds"]
    assert "Where the time went" in (run / "report.md").read_text()
    report = (run / "report.md").read_text()
    assert "F1 per language" in report and "Dev F1 after each step" in report
    printed = capsys.readouterr()
    assert "Student keeps" in printed.out

    # rerunning resumes: teacher, cache and all stages are reused, nothing is retrained (nor the backoff map)
    (backoff,) = (run / "cache").glob("transfer-*/backoff-nearest.npy")
    saved = np.load(backoff)

    def no_search(*args, **kwargs):
        raise AssertionError("the backoff map was searched again")

    monkeypatch.setattr(distillation, "nearest_kept", no_search)
    assert main(["distil", str(toy_config)]) == 0
    assert np.array_equal(np.load(backoff), saved)
    err = capsys.readouterr().err
    assert "reusing the finished fine-tuning" in err and "resuming after 3.4 +embedding" in err

    predictor = load_student(run / "student")
    text = "alice works at acme corp"
    (entities,) = predictor.predict([text])
    assert main(["predict", str(run), text]) == 0  # the command prints what the library returns
    line = json.loads(capsys.readouterr().out.strip())
    assert line == {"text": text, "entities": [e.to_dict() for e in entities]}
    assert main(["predict", str(run), "bob lives in paris", "--format", "conll"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split("\t")[0] == "bob"
    assert main(["report", str(run)]) == 0

    # `evaluate` scores the saved student (and, with --teacher, the run's teacher) as the run did; the run
    # scored the teacher's dev split from the logits of its dev-cache pass, `evaluate` runs it afresh
    for flags, model, split in (
        ([], "student", "test"),
        (["--teacher"], "teacher", "test"),
        (["--teacher"], "teacher", "dev"),
    ):
        out = tmp_path / f"{model}-{split}.json"
        args = [
            "evaluate",
            str(run),
            "--data",
            str(tmp_path / "corpus"),
            "--split",
            split,
            "--output",
            str(out),
        ]
        assert main(args + flags) == 0
        printed = capsys.readouterr().out
        assert f"{model} F1, raw text" in printed
        scored = json.loads(out.read_text())
        assert scored["languages"] == metrics[model][split]["languages"]
        assert scored["end_to_end"] == metrics[model][split]["end_to_end"]
        if split == "test":  # the run's sample of the test split (max_test = 4), not all 6 sentences
            assert "at most 4 per language" in printed
            assert {m["sentences"] for m in scored["languages"].values()} == {4}
    every = ["evaluate", str(run), "--data", str(tmp_path / "corpus"), "--every-sentence"]
    assert main(every) == 0
    assert "every sentence (en 6, xx 6 sentences)" in capsys.readouterr().out


def test_raw_text_score_is_the_score_of_predict(toy_config, tmp_path):
    """The report's raw-text F1 equals scoring ``predict()`` on the detokenised test sentences by exact
    character spans, computed here independently of the evaluation code."""
    from xtremedistil.data.sources import load_labeled_all
    from xtremedistil.pipeline import run_config_of
    from xtremedistil.segment import char_entities, detokenize

    assert main(["distil", str(toy_config)]) == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    config = run_config_of(run)
    test = load_labeled_all(config.data.labeled, seed=config.seed).split("test")
    predictor = load_student(run / "student")
    for lang in ("en", "xx"):
        sentences = [s for s in test if s.lang == lang]
        texts = [detokenize(s.words) for s in sentences]
        gold = {
            (i, *e)
            for i, (s, (_, spans)) in enumerate(zip(sentences, texts, strict=True))
            for e in char_entities(spans, s.tags)
        }
        found = predictor.predict([text for text, _ in texts])
        pred = {(i, e.type, e.start, e.end) for i, entities in enumerate(found) for e in entities}
        for entities in found:  # entities never overlap
            ends = sorted((e.start, e.end) for e in entities)
            assert all(b <= c for (_, b), (c, _) in zip(ends, ends[1:], strict=False))
        hits = len(gold & pred)
        f1 = 2 * hits / (len(gold) + len(pred)) if gold or pred else 0.0
        assert metrics["student"]["test"]["end_to_end"]["languages"][lang]["f1"] == pytest.approx(f1)
    # the student records its decoding; one saved before decoding was recorded keeps the argmax it was
    # scored with
    assert predictor.meta["decoding"] == predictor.task.decoding == "iob2-viterbi"
    meta_path = run / "student" / "student.json"
    meta = json.loads(meta_path.read_text())
    del meta["decoding"]
    meta_path.write_text(json.dumps(meta))
    assert load_student(run / "student").task.decoding == "argmax"


def test_cache_dry_run_writes_nothing(toy_config, tmp_path, capsys):
    assert main(["cache", str(toy_config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "estimated cache size" in out and "windows/s per device measured" in out and "on one device" in out
    assert main(["cache", str(toy_config), "--dry-run", "--devices", "4"]) == 0
    assert "on 4 devices like this one (cpu" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()


def test_config_mismatch_in_run_folder_is_refused(toy_config, tmp_path, capsys):
    assert main(["teacher", "train", str(toy_config)]) == 0
    capsys.readouterr()
    assert main(["teacher", "train", str(toy_config), "--set", "teacher.epochs=3"]) == 2
    assert "different teacher" in capsys.readouterr().err
    # a change that leaves the teacher alone reuses the folder
    assert main(["teacher", "train", str(toy_config), "--set", "distil.lr=0.01"]) == 0
    assert "reusing the finished fine-tuning" in capsys.readouterr().err


def test_teacher_and_student_are_always_scored_with_the_same_scheme(toy_config, tmp_path):
    run = tmp_path / "run"
    paper = 'evaluation.scheme="conlleval-subword"'
    assert main(["distil", str(toy_config), "--set", paper]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    schemes = {
        metrics[model][split]["scheme"] for model in ("teacher", "student") for split in ("dev", "test")
    }
    assert schemes == {"conlleval-subword"}
    decodings = {
        metrics[model][split]["decoding"] for model in ("teacher", "student") for split in ("dev", "test")
    }
    assert decodings == {"iob2-viterbi"}
    # the last step's dev F1 (read inside the stages) is the student's dev score under the same scheme
    assert metrics["stages"][-1]["dev_mean_f1"] == pytest.approx(metrics["student"]["dev"]["mean_f1"])
    # the same folder with the other scheme: the teacher's stored scores are not reused, both are rescored
    assert main(["distil", str(toy_config)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    schemes = {
        metrics[model][split]["scheme"] for model in ("teacher", "student") for split in ("dev", "test")
    }
    assert schemes == {"strict-word"}
    assert metrics["stages"][-1]["dev_mean_f1"] == pytest.approx(metrics["student"]["dev"]["mean_f1"])


def test_a_transformer_student_distils_saves_and_predicts(toy_config, tmp_path, capsys):
    """The transformer family through the whole pipeline: the teacher's shapes (hidden 32, 2 heads,
    feed-forward 64), so its layers are copied; the schedule unfreezes layer by layer; the saved student
    loads as a transformer and predicts."""
    student = [
        "kind=transformer",
        "preset=t2-32",
        "hidden_size=32",
        "intermediate_size=64",
        "teacher_layers=[1]",
    ]
    args = ["distil", str(toy_config)] + [f"--set=student.{s}" for s in student] + ["--set=student.layers=1"]
    assert main(args) == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    stages = [s["stage"] for s in metrics["stages"]]
    assert stages[:5] == ["1 representation", "2.1 +head", "2.2 +projection", "2.3 +layer0", "2.4 +embedding"]
    meta = json.loads((run / "student" / "student.json").read_text())
    assert meta["architecture"] == "transformer" and meta["config"]["layers"] == 1
    assert metrics["size"]["student"]["total"] < metrics["size"]["teacher"]["total"]
    (entities,) = load_student(run / "student").predict(["alice works at acme corp"])
    assert all(e.text in "alice works at acme corp" for e in entities)
    capsys.readouterr()
    assert (
        main(["plan", str(toy_config), "--set=student.kind=transformer", "--set=student.preset=t3-16"]) == 0
    )
    assert "+layer2" in capsys.readouterr().out


def test_a_layer_map_caches_each_teacher_layer_once_and_trains(toy_config, tmp_path):
    """distil.layer_map: the student's layer 1 also matches teacher layer 2 (the toy's representation layer
    is 1): a second cache per split, keyed by its layer; the run ends with the maps in the saved config."""
    student = ["kind=transformer", "preset=t2-16"]
    args = ["distil", str(toy_config), "--set=distil.layer_map=[[1, 2]]"] + [
        f"--set=student.{s}" for s in student
    ]
    assert main(args) == 0
    run = tmp_path / "run"
    layers = sorted(json.loads((p / "manifest.json").read_text())["layer"] for p in (run / "cache").iterdir())
    assert layers == [1, 1, 2, 2]  # transfer and dev, each at layers 1 and 2
    meta = json.loads((run / "student" / "student.json").read_text())
    assert meta["config"]["map_layers"] == [1]
    bilstm = ["distil", str(toy_config), "--set=distil.layer_map=[[1, 2]]"]
    assert main(bilstm) == 2  # a BiLSTM has one representation: refused, with the key's name


def test_a_capped_vocabulary_gives_a_smaller_student_that_backs_off(toy_config, tmp_path):
    """student.max_vocab: the table keeps the most frequent sub-words; the others read as their nearest kept
    one (a map of its own beside the cache), and the student still predicts."""
    assert main(["distil", str(toy_config), "--set=student.max_vocab=16"]) == 0
    run = tmp_path / "run"
    kept = json.loads((run / "student" / "vocab.json").read_text())
    assert len(kept) == 16  # of the 18 the toy text holds
    assert list((run / "cache").glob("transfer-*/backoff-nearest-16.npy"))
    predictor = load_student(run / "student")
    assert predictor.student.has_backoff()
    (entities,) = predictor.predict(["alice works at acme corp"])
    assert all(e.text in "alice works at acme corp" for e in entities)


def test_attention_relations_cache_the_teachers_block_and_join_the_representation_stage(
    toy_config, tmp_path, capsys
):
    """distil.attention_layer: the teacher's attention states of that block cached once per split (three
    times its width, no logits), the first stage's objective adds the relation loss, and the run ends."""
    args = ["distil", str(toy_config), "--set=student.kind=transformer", "--set=student.preset=t2-16"]
    assert (
        main(["plan", *args[1:], "--set=distil.attention_layer=2", "--set=distil.attention_weight=0.5"]) == 0
    )
    assert "representation + 0.5*relations" in capsys.readouterr().out
    assert main([*args, "--set=distil.attention_layer=2", "--set=distil.attention_heads=4"]) == 0
    run = tmp_path / "run"
    manifests = [json.loads((p / "manifest.json").read_text()) for p in (run / "cache").iterdir()]
    attention = [m for m in manifests if m.get("states") == "attention"]
    assert len(attention) == 2 and all(m["layer"] == 2 and m["num_labels"] == 0 for m in attention)
    states = [m for m in manifests if "states" not in m]
    assert {m["hidden_size"] for m in attention} == {3 * m["hidden_size"] for m in states}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stages"][0]["stage"] == "1 representation"
    assert json.loads((run / "student" / "student.json").read_text())["config"]["relations"]
    capsys.readouterr()
    assert main([*args, "--set=distil.attention_layer=2", "--set=distil.attention_heads=5"]) == 2
    assert "common divisor" in capsys.readouterr().err
    assert main(["distil", str(toy_config), "--set=distil.attention_layer=2"]) == 2  # a BiLSTM: refused
