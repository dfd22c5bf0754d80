from __future__ import annotations

import torch

from xtremedistil.config import config_from_dict
from xtremedistil.pipeline import evaluate_model
from xtremedistil.progress import SilentReporter
from xtremedistil.teacher.model import RowSubsetEmbedding, load_teacher, new_teacher
from xtremedistil.teacher.train import fine_tune_teacher


def _config(tiny_bert_dir, tmp_path, **teacher):
    return config_from_dict(
        {
            "output_dir": str(tmp_path / "run"),
            "data": {"labeled": [{"source": "unused"}]},
            "teacher": {"name": str(tiny_bert_dir), "epochs": 3, "batch_size": 8, "lr": 5e-3, **teacher},
        }
    )


def test_fine_tuning_learns_the_toy_task_and_saves_a_loadable_folder(tiny_bert_dir, tmp_path, toy_corpus):
    torch.manual_seed(0)
    teacher, history = fine_tune_teacher(_config(tiny_bert_dir, tmp_path, epochs=8), toy_corpus)
    assert len(history["evaluations"]) >= 2
    assert history["best_dev_mean_f1"] > 50.0  # random init scores ~0 on entity spans
    folder = teacher.save(tmp_path / "teacher")
    loaded = load_teacher(folder)
    assert loaded.labels == teacher.labels
    results = evaluate_model(loaded, toy_corpus, SilentReporter(), splits=("dev",))
    assert abs(results["dev"]["mean_f1"] - history["best_dev_mean_f1"]) < 1e-6  # selected weights were saved


def test_only_seen_embedding_rows_change(tiny_bert_dir, tmp_path, toy_corpus, tiny_tokenizer):
    teacher = new_teacher(tiny_bert_dir, ["O", "B-PER", "I-PER"], {"task": "ner"})
    before = teacher.model.get_input_embeddings().weight.detach().clone()
    seen = torch.tensor(tiny_tokenizer.convert_tokens_to_ids(["alice", "paris"]))
    teacher.restrict_embedding_rows(seen)
    embedding = teacher.model.get_input_embeddings()
    assert isinstance(embedding, RowSubsetEmbedding)
    trainable = [n for n, p in teacher.named_parameters() if p.requires_grad and "embeddings.word" in n]
    assert len(trainable) == 1 and embedding.trainable.shape[0] == 2 + len(tiny_tokenizer.all_special_ids)
    with torch.no_grad():
        embedding.trainable.add_(1.0)
    teacher.merge_embedding_rows()
    after = teacher.model.get_input_embeddings().weight
    changed = (after != before).any(1).nonzero().flatten().tolist()
    assert set(changed) == set(seen.tolist()) | set(tiny_tokenizer.all_special_ids)


class _Infos(SilentReporter):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def info(self, message: str) -> None:
        self.messages.append(message)


class _Killed(Exception):
    pass


class _KillAt(SilentReporter):
    """Dies (raises) once fine-tuning has taken ``step`` steps: everything in memory is lost."""

    def __init__(self, step: int) -> None:
        self.step, self.done = step, 0

    def bar(self, description, total):
        import contextlib

        @contextlib.contextmanager
        def bar():
            def advance(n=1, **fields):
                self.done += n
                if self.done >= self.step:
                    raise _Killed

            yield advance

        return bar()


def test_a_killed_fine_tuning_resumes_from_its_checkpoint_to_the_same_teacher(
    tiny_bert_dir, tmp_path, toy_corpus
):
    import pytest

    config = _config(tiny_bert_dir, tmp_path, epochs=3, checkpoint_every=2)
    torch.manual_seed(0)
    reference, expected = fine_tune_teacher(config, toy_corpus)
    checkpoint = tmp_path / "teacher-checkpoint.pt"
    for kill in (3, 6):
        torch.manual_seed(0)
        with pytest.raises(_Killed):
            fine_tune_teacher(config, toy_corpus, _KillAt(kill), checkpoint)
        assert checkpoint.is_file()
    torch.manual_seed(0)
    log = _Infos()
    teacher, history = fine_tune_teacher(config, toy_corpus, log, checkpoint)
    resumed = [m for m in log.messages if "resumed from the checkpoint at step" in m]
    assert len(resumed) == 1 and int(resumed[0].split("step ")[1].split()[0]) >= 4  # it did not start over
    assert history["evaluations"] == expected["evaluations"]
    assert history["best_step"] == expected["best_step"] and history["steps"] == expected["steps"]
    state, reference_state = teacher.model.state_dict(), reference.model.state_dict()
    assert all(torch.equal(state[k], reference_state[k]) for k in reference_state)
