"""Ready teachers: models fine-tuned elsewhere, distilled as they are (label alignment, any tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.teacher.families import FAMILIES, LABEL_MAP, LABELS, fine_tune_ready_model
from tests.test_distil_e2e import write_toy_config
from xtremedistil.batching import SpecialIds, iterate_batches
from xtremedistil.cli import main
from xtremedistil.errors import XtremeDistilError
from xtremedistil.student.saved import load_student
from xtremedistil.tasks.ner import NerTask
from xtremedistil.teacher.labels import align_labels, map_logits
from xtremedistil.teacher.model import load_teacher, ready_teacher

DATA = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


# --- label alignment --------------------------------------------------------------------------------------
def test_labels_in_another_order_are_a_permutation():
    model = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    groups = align_labels(model, DATA)
    assert [[model[i] for i in g] for g in groups] == [[label] for label in DATA]
    logits = torch.randn(2, 3, len(model))
    mapped = map_logits(logits, groups)
    assert torch.equal(mapped[..., DATA.index("B-PER")], logits[..., 1])  # values untouched, only moved


def test_case_bioes_and_renamed_types_are_read():
    model = [
        "o",
        "S-person",
        "B-PERSON",
        "I-person",
        "E-person",
        "b_gpe",
        "i_gpe",
        "B-LOC",
        "I-LOC",
        "B-ORG",
        "I-ORG",
    ]
    groups = align_labels(model, DATA, {"person": "PER", "GPE": "LOC"})
    named = {label: sorted(model[i] for i in g) for label, g in zip(DATA, groups, strict=True)}
    assert named["B-PER"] == ["B-PERSON", "S-person"]
    assert named["I-PER"] == ["E-person", "I-person"]
    assert named["B-LOC"] == ["B-LOC", "b_gpe"]


def test_merged_labels_add_their_probabilities():
    model = ["O", "B-MISC", "I-MISC", "B-PER", "S-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    groups = align_labels(model, DATA, {"MISC": "O"})
    logits = torch.randn(4, len(model))
    merged = map_logits(logits, groups).softmax(-1)
    probs = logits.softmax(-1)
    assert torch.allclose(merged[:, DATA.index("O")], probs[:, [0, 1, 2]].sum(-1), atol=1e-6)
    assert torch.allclose(merged[:, DATA.index("B-PER")], probs[:, [3, 4]].sum(-1), atol=1e-6)
    assert torch.allclose(merged.sum(-1), torch.ones(4), atol=1e-6)


def test_a_whole_label_can_be_named():
    model = ["LABEL_0", "LABEL_1", "LABEL_2"]
    groups = align_labels(
        model, ["O", "B-PER", "I-PER"], {"LABEL_0": "O", "label_1": "B-PER", "LABEL_2": "I-PER"}
    )
    assert groups == [[0], [1], [2]]


@pytest.mark.parametrize(
    ("model", "label_map", "message"),
    [
        (["O", "B-PER", "I-PER", "B-MISC", "I-MISC", "B-LOC", "I-LOC", "B-ORG", "I-ORG"], {}, "types MISC"),
        (
            ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
            {},
            "['B-ORG', 'I-ORG'] that no label of the model makes",
        ),
        (
            ["O", "LABEL_1", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"],
            {},
            "['LABEL_1'] are neither",
        ),
        (DATA, {"PERSON": "PER"}, "keys ['PERSON'] match none"),
        (
            ["O", "B-PERSON", "I-PERSON", "B-GPE", "I-GPE", "B-ORG", "I-ORG"],
            {},
            '{ GPE = "LOC", PERSON = "PER" }',
        ),
        (
            ["O", "B-PERSON", "I-PERSON", "B-LOC", "I-LOC", "B-ORG", "I-ORG"],
            {"PERSON": "HUMAN"},
            "name no data label",
        ),
    ],
)
def test_labels_that_cannot_be_matched_are_named(model, label_map, message):
    with pytest.raises(XtremeDistilError, match="do not match") as caught:
        align_labels(model, DATA, label_map)
    assert message in str(caught.value)


# --- the three tokenizer families, end to end -------------------------------------------------------------
@pytest.fixture(scope="module", params=FAMILIES)
def ready_model(request, tmp_path_factory) -> tuple[str, Path]:
    family = request.param
    return family, fine_tune_ready_model(family, tmp_path_factory.mktemp(f"ready-{family}") / "model")


def _config(tmp_path: Path, model: Path, label_map: dict[str, str]) -> Path:
    mapping = ", ".join(f'{k} = "{v}"' for k, v in label_map.items())
    teacher = f'''name = "{model}"
fine_tune = false
label_map = {{ {mapping} }}
max_length = 32'''
    unlabeled = "alice works in london\nbob and the city\nparis lives\nalice lives in 北京 .\n"
    return write_toy_config(tmp_path, teacher, unlabeled=unlabeled, name="ready.toml")


def expected_sources(family: str, label: str) -> list[str]:
    """The model labels that make data ``label``, written out per family (independent of align_labels)."""
    if label == "O":
        return {"bert": ["O"], "xlmr": ["O"], "roberta": ["o", "b-misc", "i-misc"]}[family]
    prefix, etype = label.split("-")
    if family == "bert":
        return [f"{prefix}-{ {'PER': 'PERSON', 'LOC': 'LOCATION', 'ORG': 'ORGANIZATION'}[etype] }"]
    if family == "xlmr":
        return [f"{'S' if prefix == 'B' else 'E'}-{etype}", label]
    return [label.lower()]


def test_a_ready_teacher_reads_its_own_head_in_the_data_label_order(ready_model, toy_corpus):
    family, folder = ready_model
    teacher = ready_teacher(folder, DATA, LABEL_MAP[family], {})
    task = NerTask.from_labels(DATA)
    encoded, _ = task.encode(toy_corpus.split("dev"), teacher.tokenizer, 32)
    (batch,) = iterate_batches(encoded, 64, SpecialIds.from_tokenizer(teacher.tokenizer), shuffle=False)
    with torch.no_grad():
        raw = teacher.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        mapped = teacher(batch).logits
    for j, label in enumerate(DATA):
        sources = [LABELS[family].index(name) for name in expected_sources(family, label)]
        assert torch.allclose(mapped[..., j], raw[..., sources].logsumexp(-1), atol=1e-5), (family, label)


def test_each_tokenizer_family_distils_saves_loads_and_predicts_raw_text(ready_model, tmp_path, capsys):
    family, folder = ready_model
    config = _config(tmp_path, folder, LABEL_MAP[family])
    assert main(["distil", str(config)]) == 0
    err = capsys.readouterr().err
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    # the toy sentences were fitted by the ready model: a wrong label reading would show here
    assert metrics["teacher"]["dev"]["mean_f1"] > 90, (family, metrics["teacher"]["dev"])
    assert err.index("ready teacher: dev mean F1") < err.index("cache teacher")  # scored before the cache
    assert "fine-tune teacher" not in err
    teacher_meta = json.loads((run / "teacher" / "xtremedistil.json").read_text())
    assert teacher_meta["ready"]["source"] == str(folder.resolve())
    assert not (run / "teacher" / "model.safetensors").exists()  # the model is not copied
    student = json.loads((run / "student" / "student.json").read_text())
    assert student["labels"] == DATA and student["layer"] == 1  # the middle of two layers
    assert student["config"]["projection_dim"] == 32  # the teacher's width

    predictor = load_student(run / "student")
    text = "alice works at acme corp in 北京, london"
    (entities,) = predictor.predict([text])
    assert all(text[e.start : e.end] == e.text and e.type in ("PER", "LOC", "ORG") for e in entities)
    words = [text[a:b] for a, b in predictor.segment(text)]
    assert "北京" in "".join(words) and "," in words  # CJK and punctuation are units of their own

    # the run's record of the ready teacher loads again (resume, `evaluate --teacher`), and notices a change
    assert load_teacher(run / "teacher").label_groups == teacher_meta["ready"]["label_groups"]
    assert main(["distil", str(config)]) == 0
    assert "reusing the ready model" in capsys.readouterr().err


def test_a_changed_ready_model_is_refused(tmp_path):
    folder = fine_tune_ready_model("bert", tmp_path / "model", steps=1)
    teacher = ready_teacher(folder, DATA, LABEL_MAP["bert"], {"max_length": 16})
    teacher.save(tmp_path / "record")
    with torch.no_grad():
        model = teacher.model
        model.classifier.bias += 1.0
        model.save_pretrained(folder)
    with pytest.raises(XtremeDistilError, match="weights changed"):
        load_teacher(tmp_path / "record")


def test_a_model_without_a_trained_head_is_refused(tiny_bert_dir):
    with pytest.raises(XtremeDistilError, match="no trained head"):
        ready_teacher(tiny_bert_dir, DATA, {}, {})


def test_reading_word_by_word_recovers_what_the_hugging_face_recipe_taught(tmp_path, toy_corpus):
    """The tiny XLM-R model starts many words with a bare "▁", where the recipe put their labels: read as
    running text (bare pieces dropped) it misses entities it knows; read word by word it finds them all."""
    from seqeval.metrics import f1_score

    from xtremedistil.evaluate import predict_logits
    from xtremedistil.segment import segmenter, units_of

    folder = fine_tune_ready_model("xlmr", tmp_path / "model")
    f1 = {}
    for reading in ("text", "words"):
        teacher = ready_teacher(folder, DATA, {}, {"reading": reading})
        task = NerTask.from_labels(DATA, reading=reading)
        units, _ = units_of(toy_corpus.split("dev"), segmenter(teacher.tokenizer, "piece"))
        encoded, _ = task.encode(units, teacher.tokenizer, 32)
        special = SpecialIds.from_tokenizer(teacher.tokenizer)
        logits = predict_logits(lambda b, t=teacher: t(b).logits, encoded, special, 8)
        f1[reading] = f1_score([list(s.tags) for s in units], task.decode(units, encoded, logits))
    assert f1["words"] == 1.0 and f1["text"] < 0.9, f1


def test_position_limits_follow_the_tokenizer_or_the_position_table(ready_model):
    from xtremedistil.teacher.train import position_limit

    family, folder = ready_model
    teacher = ready_teacher(folder, DATA, LABEL_MAP[family], {})
    # bert and xlmr state 32 in their tokenizers; roberta states none and has 34 position rows, 2 reserved
    assert position_limit(teacher) == 32


def test_a_distilbert_teacher_reads_like_a_bert(tmp_path, toy_corpus):
    from transformers import DistilBertConfig, DistilBertForTokenClassification

    from tests.teacher.families import build_tokenizer

    tokenizer = build_tokenizer("bert")
    labels = LABELS["bert"]
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=32,
        n_layers=4,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=32,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)},
    )
    DistilBertForTokenClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    teacher = ready_teacher(tmp_path, DATA, LABEL_MAP["bert"], {})
    assert teacher.num_layers == 4 and teacher.model.config.hidden_size == 32
    task = NerTask.from_labels(DATA, reading="words")
    encoded, _ = task.encode(toy_corpus.split("dev"), teacher.tokenizer, 32)
    (batch,) = iterate_batches(encoded, 64, SpecialIds.from_tokenizer(teacher.tokenizer), shuffle=False)
    out = teacher(batch, layer=2)
    assert out.logits.shape[-1] == len(DATA) and out.hidden.shape[-1] == 32


def test_a_tokenizer_without_offsets_is_refused(monkeypatch, tmp_path):
    from xtremedistil.teacher import model as teacher_model

    class Slow:
        is_fast = False

    monkeypatch.setattr(teacher_model.AutoTokenizer, "from_pretrained", lambda *a, **k: Slow())
    with pytest.raises(XtremeDistilError, match="not a fast"):
        teacher_model.load_tokenizer(tmp_path)


@pytest.mark.parametrize("family", ["xlmr-real", "roberta"])
def test_reading_by_words_tokenizes_each_corpus_word_whole(family, xlmr_tokenizer, tmp_path):
    """Units that touch (O'Neil = O ' Neil) are one word to the recipe: read by words, the pieces are those
    of the whole word (▁O ' Ne il), not of each unit on its own (▁O ▁' ▁Neil); CJK units stay words."""
    from transformers import AutoTokenizer

    from tests.teacher.families import build_tokenizer
    from xtremedistil.data.records import Sentence
    from xtremedistil.segment import segmenter, to_units
    from xtremedistil.tasks.ner import word_pieces

    if family == "roberta":
        build_tokenizer("roberta").save_pretrained(tmp_path)
        tokenizer = AutoTokenizer.from_pretrained(tmp_path, add_prefix_space=True)
    else:
        tokenizer = xlmr_tokenizer
    words = ["O'Neil", "visited", "the", "U.S.", "and", "北", "京", "(", "2020", ")"]
    units, _ = to_units(Sentence(tuple(words), ("O",) * len(words), "en"), segmenter(tokenizer, "char"))
    assert len(units.words) > len(words)  # O ' Neil, U . S . are units of their own
    pieces = word_pieces([units], tokenizer, "words")[0]
    got = [piece for unit in pieces for piece in unit]
    # the text is "O'Neil visited the U.S. and北京(2020)": its words are what spaces and CJK separate
    text_words = ["O'Neil", "visited", "the", "U.S.", "and", "北", "京", "(2020)"]
    expected = tokenizer([text_words], is_split_into_words=True, add_special_tokens=False)["input_ids"][0]
    assert got == expected
    assert all(pieces)  # every unit has a first piece to carry its label


def test_a_bf16_model_is_read_in_fp32(tmp_path, toy_corpus):
    from transformers import AutoModelForTokenClassification

    folder = fine_tune_ready_model("roberta", tmp_path / "model", steps=1)
    AutoModelForTokenClassification.from_pretrained(folder).to(torch.bfloat16).save_pretrained(folder)
    teacher = ready_teacher(folder, DATA, LABEL_MAP["roberta"], {})
    assert next(teacher.model.parameters()).dtype == torch.float32


def test_a_key_that_is_a_model_label_renames_that_label_only():
    model = ["O", "B-PER", "I-PER", "PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    groups = align_labels(model, DATA, {"per": "O"})  # the bare PER label, not the PER type
    assert groups[DATA.index("O")] == [0, 3] and groups[DATA.index("B-PER")] == [1]
    with pytest.raises(XtremeDistilError, match="twice"):
        align_labels(model, DATA, {"Person": "PER", "PERSON": "PER"})


def test_io_tagging_is_refused_and_suggestions_never_guess_by_prefix():
    with pytest.raises(XtremeDistilError, match="IO or IOB1"):
        align_labels(["O", "I-PER", "I-LOC", "I-ORG"], DATA)
    with pytest.raises(XtremeDistilError) as caught:
        align_labels(["O", "B-PERCENT", "I-PERCENT", *DATA[1:]], DATA)
    assert 'PERCENT = "O"' in str(caught.value)


def test_a_folder_holding_another_ready_teacher_is_refused(ready_model, tmp_path, toy_corpus):
    from xtremedistil.config import load_config
    from xtremedistil.pipeline import obtain_teacher
    from xtremedistil.progress import SilentReporter

    family, folder = ready_model
    if family != "bert":
        pytest.skip("one family is enough")
    base = [
        "teacher.fine_tune=false",
        f"teacher.name={folder}",
        f"output_dir={tmp_path}",
        "teacher.max_length=32",
    ]
    maps = [f"teacher.label_map.{k}={v}" for k, v in LABEL_MAP["bert"].items()]
    obtain_teacher(load_config(None, base + maps), toy_corpus, tmp_path, SilentReporter())
    again = obtain_teacher(load_config(None, base + maps), toy_corpus, tmp_path, SilentReporter())
    assert again.is_ready
    other = maps[:-1] + ["teacher.label_map.ORGANIZATION=O", "teacher.label_map.MISC=O"]
    with pytest.raises(XtremeDistilError, match="another teacher"):
        obtain_teacher(load_config(None, base + other), toy_corpus, tmp_path, SilentReporter())
    with pytest.raises(XtremeDistilError, match="another teacher"):
        obtain_teacher(load_config(None, [f"output_dir={tmp_path}"]), toy_corpus, tmp_path, SilentReporter())
