"""The student contract: build -> forward shapes -> freeze/unfreeze -> save -> load -> predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import make_sentence
from xtremedistil.batching import SpecialIds, collate
from xtremedistil.evaluate import eval_set
from xtremedistil.segment import char_entities, segmenter, split_words
from xtremedistil.student.model import (
    LAYER_GROUPS,
    PAD,
    UNK,
    BiLSTMStudent,
    StudentConfig,
    build_vocabulary,
    init_embedding_svd,
    nearest_kept,
    piece_shapes,
    svd_embedding,
)
from xtremedistil.student.saved import entities_from_tags, load_student, save_student
from xtremedistil.tasks.ner import NerTask

LABELS = NerTask(["PER", "LOC", "ORG"]).labels


def tiny_student(tokenizer, kept=None, **overrides) -> BiLSTMStudent:
    kept = np.asarray(kept if kept is not None else range(5, 30), dtype=np.int64)
    config = StudentConfig(
        teacher_vocab_size=len(tokenizer),
        vocab_size=len(kept) + 2,
        embedding_dim=8,
        hidden_size=6,
        projection_dim=12,
        num_labels=len(LABELS),
        **overrides,
    )
    torch.manual_seed(0)
    return BiLSTMStudent(config, kept)


def _batch(tokenizer, texts):
    task = NerTask(["PER", "LOC", "ORG"])
    windows, _ = task.encode([make_sentence(t, None) for t in texts], tokenizer, 32)
    return collate(windows, list(range(len(windows))), SpecialIds.from_tokenizer(tokenizer))


@pytest.mark.parametrize("family", ["bilstm", "transformer"])
def test_forward_shapes_and_padding_does_not_change_outputs(tiny_tokenizer, family):
    """Every student family: shapes, padding never read ("bob" scores the same alone and beside a longer
    sentence), and the tensor graph ONNX exports gives the forward's logits."""
    from tests.student.test_transformer import tiny_transformer

    student = (tiny_student if family == "bilstm" else tiny_transformer)(tiny_tokenizer).eval()
    batch = _batch(tiny_tokenizer, ["alice lives in paris", "bob"])
    out = student(batch)
    assert out.logits.shape == (2, batch.input_ids.shape[1], len(LABELS))
    assert out.hidden.shape == (2, batch.input_ids.shape[1], 12)
    alone = student(_batch(tiny_tokenizer, ["bob"]))
    assert torch.allclose(alone.logits[0], out.logits[1, :3], atol=1e-5)
    lengths = batch.attention_mask.sum(1)
    assert torch.allclose(student.logits(batch.input_ids, lengths), out.logits, atol=1e-5)


def test_unknown_teacher_ids_map_to_unk(tiny_tokenizer):
    student = tiny_student(tiny_tokenizer, kept=[7, 9])
    ids = student.student_ids(torch.tensor([7, 9, 8, 3]))
    assert ids.tolist() == [2, 3, UNK, UNK]


def test_nearest_kept_backs_off_to_the_most_similar_kept_row():
    rng = np.random.default_rng(0)
    table = torch.from_numpy(rng.normal(size=(40, 16)).astype(np.float32))
    kept = np.array([3, 5, 9, 20, 31])
    # 12 is a scaled, slightly noisy copy of 20; 13 of 31 (cosine ignores the scale)
    table[12] = 3 * table[20] + 0.01 * torch.from_numpy(rng.normal(size=16).astype(np.float32))
    table[13] = 0.5 * table[31]
    table[14] = table[3]  # 3 is a special: never a target
    nearest = nearest_kept(table, kept, exclude=[3], dim=16)
    assert nearest.shape == (40,)
    assert nearest[12] == 20 and nearest[13] == 31
    assert nearest[14] != 3 and set(nearest) <= {5, 9, 20, 31} | {3}
    assert nearest[kept].tolist() == kept.tolist()  # kept ids map to themselves (3 included)


def test_nearest_kept_within_groups_prefers_the_same_piece_shape():
    tokens = ["<s>", "▁Paris", "▁paris", "ris", "Ris", "▁42", "▁Rome", "x"]
    assert piece_shapes(tokens).tolist() == [2, 3, 4, 1, 0, 5, 3, 1]
    rng = np.random.default_rng(1)
    table = torch.from_numpy(rng.normal(size=(8, 8)).astype(np.float32))
    table[1] = table[2] + 0.01  # ▁Paris is almost ▁paris, but ▁Rome is the only kept capitalised word start
    table[4] = table[3]  # Ris: no kept piece of its shape, so it falls back to the most similar of any shape
    kept = np.array([2, 3, 6])
    plain = nearest_kept(table, kept, dim=8)
    grouped = nearest_kept(table, kept, dim=8, groups=piece_shapes(tokens))
    assert plain[1] == 2 and grouped[1] == 6
    assert plain[4] == grouped[4] == 3
    assert grouped[kept].tolist() == kept.tolist()


def test_backoff_maps_unkept_ids_and_survives_save_and_load(tiny_tokenizer, tmp_path):
    student = tiny_student(tiny_tokenizer, kept=[7, 9]).eval()
    nearest = np.full(len(tiny_tokenizer), 9)
    nearest[7], nearest[8] = 7, 7
    student.set_backoff(nearest)
    ids = student.student_ids(torch.tensor([7, 9, 8, 3]))
    assert ids.tolist() == [2, 3, 2, 3]
    assert student.has_backoff()
    with pytest.raises(ValueError, match="kept teacher ids"):
        student.set_backoff(np.full(len(tiny_tokenizer), 8))
    student.clear_backoff()
    assert student.student_ids(torch.tensor([7, 9, 8, 3])).tolist() == [2, 3, UNK, UNK]
    student.set_backoff(nearest)
    folder = save_student(student, tiny_tokenizer, LABELS, tmp_path / "student", {"max_length": 16})
    loaded = load_student(folder).student
    assert torch.equal(loaded.id_map, student.id_map)
    assert loaded.kept_ids.tolist() == [7, 9]
    # without a backoff the map is rebuilt from vocab.json and unkept ids read UNK again
    plain = tiny_student(tiny_tokenizer, kept=[7, 9]).eval()
    again = load_student(save_student(plain, tiny_tokenizer, LABELS, tmp_path / "plain", {})).student
    assert again.student_ids(torch.tensor([8])).tolist() == [UNK] and not again.has_backoff()


def test_word_dropout_reads_words_as_unk_in_training_only(tiny_tokenizer):
    student = tiny_student(tiny_tokenizer, kept=list(range(5, 60)), dropout=0.0, word_dropout=0.999)
    a, b = _batch(tiny_tokenizer, ["alice lives"]), _batch(tiny_tokenizer, ["paris bob"])
    assert a.input_ids.shape == b.input_ids.shape and not torch.equal(a.input_ids, b.input_ids)
    student.train()
    torch.manual_seed(0)
    # every real sub-word is read as UNK: two different sentences of one length look the same
    assert torch.allclose(student(a).logits, student(b).logits)
    student.eval()
    assert not torch.allclose(student(a).logits, student(b).logits)


def test_layer_groups_freeze_and_unfreeze(tiny_tokenizer):
    student = tiny_student(tiny_tokenizer)
    assert list(student.layer_groups()) == list(LAYER_GROUPS)
    student.set_trainable(["head", "projection"])
    assert student.trainable_groups() == ["head", "projection"]
    student.unfreeze(["bilstm"])
    assert student.trainable_groups() == ["head", "projection", "bilstm"]
    student.freeze(["head"])
    assert student.trainable_groups() == ["projection", "bilstm"]
    with pytest.raises(ValueError, match="unknown layer groups"):
        student.set_trainable(["lstm"])


def test_representation_point(tiny_tokenizer):
    batch = _batch(tiny_tokenizer, ["alice lives in paris"])
    pre = tiny_student(tiny_tokenizer).eval()(batch).hidden
    post = tiny_student(tiny_tokenizer, representation="post-activation").eval()(batch).hidden
    assert pre.min() < -0.2  # the pre-activation can reach values GELU cannot output
    assert post.min() >= -0.17
    assert torch.allclose(torch.nn.functional.gelu(pre), post, atol=1e-6)


def test_vocabulary_is_trimmed_to_seen_ids_plus_specials():
    kept = build_vocabulary([np.array([40, 7, 7]), np.array([3])], always=[0, 2])
    assert kept.tolist() == [0, 2, 3, 7, 40]


def test_a_capped_vocabulary_keeps_the_most_frequent_ids_and_every_special():
    windows = [np.array([40, 7, 7, 9]), np.array([7, 9, 3, 50]), np.array([60])]
    assert build_vocabulary(windows, always=[0, 2]).tolist() == [0, 2, 3, 7, 9, 40, 50, 60]
    # room for 3 ordinary ids besides the 2 specials: 7 (3 times), 9 (twice), then the lowest id of the ties
    assert build_vocabulary(windows, always=[0, 2], max_size=5).tolist() == [0, 2, 3, 7, 9]
    assert build_vocabulary(windows, always=[0, 2], max_size=100).tolist() == [0, 2, 3, 7, 9, 40, 50, 60]


def test_svd_initialisation_spans_the_top_subspace():
    rng = np.random.default_rng(0)
    # rows with a dominant 3-dimensional subspace plus small noise
    basis = np.linalg.qr(rng.normal(size=(16, 3)))[0]
    rows = rng.normal(size=(200, 3)) * [10, 5, 3] @ basis.T + rng.normal(scale=0.01, size=(200, 16))
    coords, v = svd_embedding(rows, 3)
    assert coords.shape == (200, 3)
    # the learned basis spans the planted subspace, and coordinates reconstruct the rows
    assert np.allclose(np.abs(np.linalg.svd(v.T @ basis)[1]), 1.0, atol=1e-3)
    assert np.abs(coords @ v.T - rows).max() < 0.1
    wider, _ = svd_embedding(rows, 20)
    assert wider.shape == (200, 20) and np.allclose(wider[:, :16] @ _[:, :16].T, rows, atol=1e-4)


def test_student_embedding_is_initialised_from_teacher_rows(tiny_tokenizer):
    student = tiny_student(tiny_tokenizer, kept=list(range(5, 25)))
    table = torch.randn(len(tiny_tokenizer), 12)
    init_embedding_svd(student, table, tiny_tokenizer.unk_token_id)
    weight = student.embedding.weight.detach().numpy()
    rows = table[5:25].numpy()
    # the student rows are the teacher rows projected on their top-8 right singular vectors
    _, _, vt = np.linalg.svd(rows.astype(np.float64), full_matrices=False)
    assert np.allclose(np.abs(weight[2:]), np.abs(rows @ vt[:8].T), atol=1e-4)
    assert np.all(weight[PAD] == 0)


def test_save_load_predict_round_trip(tiny_tokenizer, tmp_path):
    kept = tiny_tokenizer(["alice lives in paris bob"], add_special_tokens=False)["input_ids"][0]
    student = tiny_student(tiny_tokenizer, kept=sorted(set(kept)) + [len(tiny_tokenizer) - 1]).eval()
    folder = save_student(student, tiny_tokenizer, LABELS, tmp_path / "student", {"max_length": 16})
    assert {p.name for p in folder.iterdir()} >= {
        "student.json",
        "model.safetensors",
        "vocab.json",
        "tokenizer.json",
    }
    predictor = load_student(folder)
    batch = _batch(tiny_tokenizer, ["alice lives in paris"])
    assert torch.allclose(predictor.student(batch).logits, student(batch).logits)
    # a long text (more sub-words than max_length) is windowed, every word gets a tag
    long_text = " ".join(["alice lives in paris"] * 10)
    tags = predictor.tag_words([long_text.split()])[0]
    assert len(tags) == 40
    (entities,) = predictor.predict([long_text])
    # entities are the runs of the word tags: whole words, in order, never overlapping
    starts, ends = {a for a, _ in split_words(long_text)}, {b for _, b in split_words(long_text)}
    expected = [(t, a, b) for t, a, b in char_entities(split_words(long_text), tags)]
    assert [(e.type, e.start, e.end) for e in entities] == expected
    assert all(e.start in starts and e.end in ends for e in entities)


def test_entities_from_tags_and_word_splitting(tiny_tokenizer):
    text = "Alice Smith lives in New York."
    spans = split_words(text, tiny_tokenizer)
    assert [text[a:b] for a, b in spans] == ["Alice", "Smith", "lives", "in", "New", "York", "."]
    tags = ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]
    entities = entities_from_tags(text, spans, tags)
    assert [(e.type, e.text, e.start, e.end) for e in entities] == [
        ("PER", "Alice Smith", 0, 11),
        ("LOC", "New York", 21, 29),
    ]
    # a dangling I- starts an entity; a type change ends one
    entities = entities_from_tags(text, spans, ["I-PER", "B-ORG", "O", "O", "O", "O", "O"])
    assert [(e.type, e.text) for e in entities] == [("PER", "Alice"), ("ORG", "Smith")]


def test_run_stage_updates_only_the_stage_groups(tiny_tokenizer):
    from xtremedistil.student.distil import DevSet, Pool, StageSettings, run_stage
    from xtremedistil.student.schedule import Stage

    task = NerTask(["PER", "LOC", "ORG"])
    sentences = [make_sentence("alice lives in paris", "B-PER O O B-LOC"), make_sentence("bob", "B-PER")] * 4
    data = eval_set(task, sentences, tiny_tokenizer, 32, segmenter(tiny_tokenizer))
    windows = data.encoded
    student = tiny_student(tiny_tokenizer, kept=list(range(5, len(tiny_tokenizer))))
    before = {k: v.clone() for k, v in student.state_dict().items()}
    pool = Pool(windows, None, np.arange(len(windows)))
    dev = DevSet(data, pool, task, SpecialIds.from_tokenizer(tiny_tokenizer))
    stage = Stage("labels head+projection", (("labels", 1.0),), "labeled", ("head", "projection"), 2, 0.05, 5)
    summary = run_stage(student, stage, {"labeled": pool}, dev, StageSettings(batch_size=4))
    assert summary["steps"] == 4
    changed = {k.split(".")[0] for k, v in student.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"head", "projection"}
