"""`distil` killed with SIGKILL at seeded random moments and resumed each time ends exactly as an
uninterrupted run: the same student weights, the same F1. A few kills here; XTREMEDISTIL_KILL_POINTS=24
(or benchmarks/kill_resume.py, which records the result) spreads many over every phase."""

from __future__ import annotations

import os
import random

from tests.conftest import WORDS
from tests.kill_harness import harness
from tests.test_distil_e2e import write_toy_config

KILL_POINTS = int(os.environ.get("XTREMEDISTIL_KILL_POINTS", "3"))


def kill_config(tmp_path, tiny_bert_dir, long: bool = False):
    """The toy run with checkpoints every 2 steps; ``long`` stretches every phase (more teacher epochs, a
    bigger transfer set, longer stages) so that kills spread over all of them, not over start-up."""
    teacher = f'''name = "{tiny_bert_dir}"
max_length = 16
epochs = {30 if long else 6}
patience = 100
batch_size = 4
lr = 5e-3
checkpoint_every = 2'''
    distil = """layer = 1
checkpoint_every = 2"""
    rng = random.Random(0)
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(3, 9))) for _ in range(400 if long else 3)]
    path = write_toy_config(
        tmp_path, teacher, labeled="max_test = 4", distil=distil, unlabeled="\n".join(lines) + "\n"
    )
    text = path.read_text().replace("_epochs = 1\n", "_epochs = 3\n")  # stages long enough to be hit
    path.write_text(text)
    return path


def test_killed_anywhere_and_resumed_the_run_ends_as_an_uninterrupted_one(tmp_path, tiny_bert_dir):
    config = kill_config(tmp_path, tiny_bert_dir)
    result = harness(config, tmp_path, KILL_POINTS, seed=1)
    assert any(p["killed"] for p in result["points"]), result["points"]
    assert result["identical"], result
    assert result["f1"] == result["expected_f1"]
