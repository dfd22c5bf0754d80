"""The transformer student: the family contract (forward shapes, padding, layer groups, save -> load ->
predict, ONNX parity) and its initialisation from a teacher (an exact copy of chosen layers)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertForTokenClassification,
    XLMRobertaConfig,
    XLMRobertaForTokenClassification,
)

from tests.student.test_model import LABELS, _batch
from xtremedistil.config import StudentSection
from xtremedistil.student.export import PARITY_TOLERANCE, export_student
from xtremedistil.student.families import group_names, student_sizes
from xtremedistil.student.saved import load_student, load_student_model, save_student
from xtremedistil.student.schedule import ScheduleSettings, plan
from xtremedistil.student.transformer import (
    TransformerConfig,
    TransformerStudent,
    init_from_teacher,
    layer_group_names,
    transformer_sizes,
)


def tiny_transformer(tokenizer, kept=None, **overrides) -> TransformerStudent:
    kept = np.asarray(kept if kept is not None else range(5, 30), dtype=np.int64)
    fields = dict(
        teacher_vocab_size=len(tokenizer),
        vocab_size=len(kept) + 2,
        embedding_dim=8,
        hidden_size=16,
        layers=2,
        heads=2,
        intermediate_size=32,
        max_positions=32,
        projection_dim=12,
        num_labels=len(LABELS),
    )
    torch.manual_seed(0)
    return TransformerStudent(TransformerConfig(**{**fields, **overrides}), kept)


def test_pooled_student_gives_one_row_per_text(tiny_tokenizer):
    batch = _batch(tiny_tokenizer, ["alice lives in paris", "bob"])
    for pooling in ("last", "mean", "max"):
        out = tiny_transformer(tiny_tokenizer, pooling=pooling).eval()(batch)
        assert out.logits.shape == (2, len(LABELS)) and out.hidden.shape == (2, 12) and out.mask is None


def test_layer_groups_run_top_to_bottom_and_own_the_freezing(tiny_tokenizer):
    student = tiny_transformer(tiny_tokenizer, layers=3)
    assert list(student.layer_groups()) == ["head", "projection", "layer2", "layer1", "layer0", "embedding"]
    assert list(student.layer_groups()) == list(layer_group_names(3))
    student.set_trainable(["head", "projection", "layer2"])
    assert student.trainable_groups() == ["head", "projection", "layer2"]
    assert not any(p.requires_grad for p in student.encoder[0].parameters())
    with pytest.raises(ValueError, match="unknown layer groups"):
        student.set_trainable(["bilstm"])
    counts = student.parameter_counts()
    assert counts["total"] == sum(p.numel() for p in student.parameters())


def test_the_schedule_unfreezes_a_transformer_layer_by_layer():
    section = StudentSection(kind="transformer", preset="t3-64")
    stages = plan(ScheduleSettings(strategy="D4.2", layer_groups=group_names(section)))
    names = [s.name for s in stages]
    assert names[:7] == [
        "1 representation",
        "2.1 +head",
        "2.2 +projection",
        "2.3 +layer2",
        "2.4 +layer1",
        "2.5 +layer0",
        "2.6 +embedding",
    ]
    assert stages[0].trainable == ("projection", "layer2", "layer1", "layer0", "embedding")
    assert stages[-1].trainable == group_names(section) and len(stages) == 1 + 2 * 6


def test_sizes_from_names_presets_and_overrides():
    assert transformer_sizes("t4-128") == {
        "layers": 4,
        "hidden_size": 128,
        "heads": 4,
        "intermediate_size": 512,
        "embedding_dim": 50,
    }
    assert transformer_sizes("t2-384-e128")["embedding_dim"] == 128
    assert (
        transformer_sizes("t2-384")["heads"] == 12
    )  # the teacher's heads at its width: layers can be copied
    assert student_sizes(StudentSection(kind="transformer", preset="t2-256", heads=8))["heads"] == 8
    with pytest.raises(ValueError, match="transformer student is"):
        StudentSection(kind="transformer", preset="t4")
    with pytest.raises(ValueError, match='kind = "transformer"'):
        StudentSection(preset="t4-128")


def _teacher(family: str):
    common = dict(
        vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
        pad_token_id=1, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    if family == "bert":
        return BertForTokenClassification(BertConfig(max_position_embeddings=32, **common)).eval()
    return XLMRobertaForTokenClassification(XLMRobertaConfig(max_position_embeddings=34, **common)).eval()


@pytest.mark.parametrize("family", ["bert", "xlmr"])
def test_teacher_layers_copied_reproduce_the_teacher_states(family):
    """A student with the teacher's shapes, initialised from teacher layers 0 and 2, computes exactly what
    the teacher computes with only those two layers (positions offset as RoBERTa's, token type 0)."""
    teacher = _teacher(family)
    kept = np.arange(2, 100)
    config = TransformerConfig(
        teacher_vocab_size=100, vocab_size=len(kept) + 2, embedding_dim=32, hidden_size=32, layers=2,
        heads=2, intermediate_size=64, max_positions=30, projection_dim=32, num_labels=3,
    )  # fmt: skip
    student = TransformerStudent(config, kept).eval()
    assert init_from_teacher(student, teacher, unk_id=3, teacher_layers=[0, 2]) == [0, 2]
    ids = torch.randint(2, 100, (3, 10), generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([10, 6, 3])
    real = torch.arange(10)[None] < lengths[:, None]
    ids = ids.masked_fill(~real, 1)
    two_layers = copy.deepcopy(teacher)
    layers = two_layers.base_model.encoder.layer
    two_layers.base_model.encoder.layer = torch.nn.ModuleList([layers[0], layers[2]])
    with torch.no_grad():
        expected = two_layers(ids, attention_mask=real.long(), output_hidden_states=True).hidden_states[-1]
        got = student.states(student.padded_ids(ids, lengths), lengths)
    assert (expected - got)[real].abs().max() < 1e-5
    # a narrower student keeps the teacher's rank-E table (up-projected) and random layers
    narrow = TransformerStudent(
        TransformerConfig(**{**config.to_dict(), "embedding_dim": 8, "hidden_size": 16, "heads": 2}), kept
    )
    assert init_from_teacher(narrow, teacher, unk_id=3) == []
    with pytest.raises(ValueError, match="need 2 of 0..2"):
        init_from_teacher(TransformerStudent(config, kept), teacher, 3, teacher_layers=[0, 3])


def test_factorised_embedding_starts_as_the_teachers_rank_e_table():
    teacher = _teacher("bert")
    kept = np.arange(2, 100)
    config = TransformerConfig(
        teacher_vocab_size=100, vocab_size=len(kept) + 2, embedding_dim=32, hidden_size=32, layers=1,
        heads=2, intermediate_size=64, max_positions=30, projection_dim=32, num_labels=3,
    )  # fmt: skip
    full = TransformerStudent(config, kept)
    init_from_teacher(full, teacher, 3)
    low = TransformerStudent(TransformerConfig(**{**config.to_dict(), "embedding_dim": 31}), kept)
    init_from_teacher(low, teacher, 3)
    rows = teacher.get_input_embeddings().weight[kept].detach()
    with torch.no_grad():
        approx = low.embedding.up(low.embedding.words.weight[2:])
    exact = full.embedding.words.weight[2:].detach()
    assert torch.allclose(exact, rows)
    # rank 31 of 32: close to the rows, and exactly their best rank-31 approximation's error
    s = torch.linalg.svdvals(rows.double())
    assert abs(float(torch.linalg.norm(approx.double() - rows.double())) - float(s[-1])) < 1e-3


def test_save_load_predict_and_onnx_parity(tiny_tokenizer, tmp_path):
    kept = tiny_tokenizer(["alice lives in paris bob"], add_special_tokens=False)["input_ids"][0]
    student = tiny_transformer(tiny_tokenizer, kept=sorted(set(kept)) + [len(tiny_tokenizer) - 1]).eval()
    folder = save_student(student, tiny_tokenizer, LABELS, tmp_path / "student", {"max_length": 16})
    loaded, meta = load_student_model(folder)
    assert meta["architecture"] == "transformer" and isinstance(loaded, TransformerStudent)
    batch = _batch(tiny_tokenizer, ["alice lives in paris", "bob"])
    assert torch.allclose(loaded(batch).logits, student(batch).logits)
    predictor = load_student(folder)
    long_text = " ".join(["alice lives in paris"] * 10)  # longer than max_length: windowed
    assert len(predictor.tag_words([long_text.split()])[0]) == 40
    manifest = export_student(folder, quantize=False)
    assert manifest["files"]["fp32"]["max_abs_difference_to_torch"] <= PARITY_TOLERANCE
    onnx = load_student(folder, backend="onnx")
    assert onnx.predict([long_text]) == predictor.predict([long_text])


def test_layer_map_projects_chosen_layers_and_they_freeze_with_their_layer(tiny_tokenizer, tmp_path):
    from xtremedistil.outputs import TokenOutput
    from xtremedistil.student.losses import representation_loss

    student = tiny_transformer(tiny_tokenizer, layers=3, map_layers=(1, 2)).eval()
    batch = _batch(tiny_tokenizer, ["alice lives in paris", "bob"])
    out = student(batch, extras=True)
    assert student(batch).layers == ()  # evaluation and speed do not run the maps
    assert [tuple(x.shape) for x in out.layers] == [tuple(out.hidden.shape)] * 2
    every: list[torch.Tensor] = []
    with torch.no_grad():
        student.states(student.read_ids(batch), batch.attention_mask.sum(1), every)
    assert torch.allclose(out.layers[1], student.maps[1](every[1]), atol=1e-6)
    student.set_trainable(["layer0"])  # the first map reads layer 1's output (encoder[0]): it trains with it
    assert all(p.requires_grad for p in student.maps[0].parameters())
    assert not any(p.requires_grad for p in student.maps[1].parameters())
    # the loss is the mean over the top match and each pair
    teacher = TokenOutput(out.logits, torch.zeros_like(out.hidden), layers=(out.layers[0], out.layers[1] + 1))
    mask = batch.token_mask
    top = ((out.hidden**2)[mask]).mean()
    assert torch.allclose(representation_loss(out, teacher, mask), (top + 0 + 1) / 3, atol=1e-5)
    with pytest.raises(ValueError, match="further layers"):
        representation_loss(out, TokenOutput(out.logits, out.hidden), mask)
    with pytest.raises(ValueError, match="student layers are 1..3"):
        tiny_transformer(tiny_tokenizer, layers=3, map_layers=(4,))
    # the maps serve training only: the exported graph and the saved student still predict alike
    folder = save_student(student, tiny_tokenizer, LABELS, tmp_path / "student", {"max_length": 16})
    assert load_student_model(folder)[0].config.map_layers == [1, 2]
    manifest = export_student(folder, quantize=False)
    assert manifest["files"]["fp32"]["max_abs_difference_to_torch"] <= PARITY_TOLERANCE


def test_relations_are_the_top_layers_queries_keys_values_and_serve_training_only(tiny_tokenizer, tmp_path):
    student = tiny_transformer(tiny_tokenizer, layers=2, relations=True).eval()
    batch = _batch(tiny_tokenizer, ["alice lives in paris", "bob"])
    out = student(batch, extras=True)
    assert student(batch).relations is None  # only the stages that read them ask
    every: list[torch.Tensor] = []
    with torch.no_grad():
        student.states(student.read_ids(batch), batch.attention_mask.sum(1), every)
    top, entering = student.encoder[-1], every[0]  # the top layer reads the first layer's output
    expected = torch.cat([top.query(entering), top.key(entering), top.value(entering)], -1)
    assert torch.allclose(out.relations, expected, atol=1e-6)
    assert tiny_transformer(tiny_tokenizer).eval()(batch, extras=True).relations is None
    folder = save_student(student, tiny_tokenizer, LABELS, tmp_path / "student", {"max_length": 16})
    assert load_student_model(folder)[0].config.relations
    manifest = export_student(folder, quantize=False)
    assert manifest["files"]["fp32"]["max_abs_difference_to_torch"] <= PARITY_TOLERANCE
