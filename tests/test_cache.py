from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import make_sentence
from xtremedistil.batching import SpecialIds, collate
from xtremedistil.cache import MANIFEST, CacheSpec, TeacherCache, build_cache
from xtremedistil.errors import XtremeDistilError
from xtremedistil.tasks.ner import NerTask
from xtremedistil.teacher.model import new_teacher

LABELS = NerTask(["PER", "LOC", "ORG"]).labels


class Killed(Exception):
    pass


class CountingTeacher(torch.nn.Module):
    """Wraps a teacher; counts forward calls and can 'die' after a number of them."""

    def __init__(self, teacher, die_after: int | None = None) -> None:
        super().__init__()
        self.teacher, self.die_after, self.calls = teacher, die_after, 0
        self.tokenizer, self.labels, self.model = teacher.tokenizer, teacher.labels, teacher.model

    def forward(self, batch, layer=None, **kwargs):
        if self.die_after is not None and self.calls >= self.die_after:
            raise Killed
        self.calls += 1
        return self.teacher(batch, layer=layer, **kwargs)


@pytest.fixture
def setup(tiny_bert_dir, tiny_tokenizer):
    torch.manual_seed(0)
    teacher = new_teacher(tiny_bert_dir, LABELS, {"max_length": 16}).eval()
    texts = ["alice lives in paris", "bob works at acme corp", "the city", "london and paris and bob"] * 5
    task = NerTask(["PER", "LOC", "ORG"])
    windows, _ = task.encode([make_sentence(t, None) for t in texts], tiny_tokenizer, 16)
    spec = CacheSpec("tiny", "sha", 1, 16, "tok", 32, len(LABELS))
    return teacher, windows, spec


def test_cache_round_trip_matches_the_teacher_in_fp16(setup, tmp_path):
    teacher, windows, spec = setup
    cache = build_cache(teacher, windows, tmp_path / "c", spec, shard_size=6, batch_size=4)
    assert len(cache) == len(windows)
    manifest = json.loads((tmp_path / "c" / MANIFEST).read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 4 and manifest["dtype"] == "float16"
    assert manifest["subwords"] == sum(len(w) for w in windows)  # no padding stored
    special = SpecialIds.from_tokenizer(teacher.tokenizer)
    rows = [3, 0, 13]
    batch = collate([windows[i] for i in rows], rows, special)
    with torch.no_grad():
        direct = teacher(batch, layer=1)
    cached = cache.outputs(rows, batch.input_ids.shape[1])
    mask = batch.token_mask
    assert torch.allclose(cached.hidden[mask], direct.hidden[mask], atol=5e-3, rtol=2e-3)
    assert torch.allclose(cached.logits[mask], direct.logits[mask], atol=5e-3, rtol=2e-3)
    assert (cached.hidden[~mask] == 0).all()
    assert isinstance(cache.window(0)[0], np.memmap) or isinstance(cache.window(0)[0].base, np.memmap)


def test_batch_read_equals_the_stored_windows_across_shards(setup, tmp_path):
    teacher, windows, spec = setup
    cache = build_cache(teacher, windows, tmp_path / "c", spec, shard_size=6, batch_size=4)
    rows = np.random.default_rng(0).permutation(len(windows))[:11]  # several shards, any order
    width = max(len(windows[i]) for i in rows) + 5  # wider than needed: the tail stays zero
    out = cache.outputs(rows, width)
    for r, i in enumerate(rows):
        h, z = cache.window(int(i))
        assert torch.equal(out.hidden[r, 1 : len(h) + 1], torch.from_numpy(np.asarray(h, np.float32)))
        assert torch.equal(out.logits[r, 1 : len(z) + 1], torch.from_numpy(np.asarray(z, np.float32)))
        assert not out.hidden[r, 0].any() and not out.hidden[r, len(h) + 1 :].any()
    logits_only = cache.outputs(rows, width, hidden=False)
    assert logits_only.hidden is None and torch.equal(logits_only.logits, out.logits)


def test_cache_hands_back_each_windows_full_precision_logits(setup, tmp_path):
    teacher, windows, spec = setup
    seen: dict[int, np.ndarray] = {}
    cache = build_cache(
        teacher, windows, tmp_path / "c", spec, shard_size=6, batch_size=4, on_logits=seen.__setitem__
    )
    assert sorted(seen) == list(range(len(windows)))  # every window once, indexed across shards
    for i, logits in seen.items():
        assert logits.dtype == np.float32 and logits.shape == (len(windows[i]), len(LABELS))
        assert np.array_equal(logits.astype(np.float16), cache.window(i)[1])  # what the cache stored


def test_cache_resumes_after_interruption(setup, tmp_path):
    teacher, windows, spec = setup
    reference = build_cache(teacher, windows, tmp_path / "ref", spec, shard_size=6, batch_size=4)
    dying = CountingTeacher(teacher, die_after=3)  # shard 0 needs 2 batches; dies inside shard 1
    with pytest.raises(Killed):
        build_cache(dying, windows, tmp_path / "c", spec, shard_size=6, batch_size=4)
    manifest = json.loads((tmp_path / "c" / MANIFEST).read_text())
    assert [s["index"] for s in manifest["shards"]] == [0] and not manifest["complete"]
    with pytest.raises(XtremeDistilError, match="incomplete"):
        TeacherCache(tmp_path / "c")  # a partial cache is never read
    resumed = CountingTeacher(teacher)  # another shard_size setting: the folder keeps its own layout
    cache = build_cache(resumed, windows, tmp_path / "c", spec, shard_size=99, batch_size=4)
    assert resumed.calls == 5  # shards 1-3 only (2 + 2 + 1 batches of 4); shard 0 was not recomputed
    for i in range(len(windows)):
        assert np.array_equal(cache.window(i)[0], reference.window(i)[0])
    # a finished cache is reused without running the teacher
    again = CountingTeacher(teacher)
    build_cache(again, windows, tmp_path / "c", spec, shard_size=6, batch_size=4)
    assert again.calls == 0


def test_cache_of_another_teacher_is_refused(setup, tmp_path):
    teacher, windows, spec = setup
    build_cache(teacher, windows, tmp_path / "c", spec, shard_size=6, batch_size=4)
    other = CacheSpec("tiny", "other-sha", 1, 16, "tok", 32, len(LABELS))
    with pytest.raises(XtremeDistilError, match="different teacher"):
        build_cache(teacher, windows, tmp_path / "c", other, shard_size=6, batch_size=4)


def test_attention_states_cache_holds_the_blocks_queries_keys_values(setup, tmp_path):
    """states = "attention": the query/key/value projections inside block ``layer`` of the teacher, applied to
    the states that enter it (hidden_states[layer - 1]), per real sub-word; no logits; a key of its own."""
    import dataclasses

    from xtremedistil.cache import LayeredCache
    from xtremedistil.teacher.model import attention_block

    teacher, windows, spec = setup
    qkv = dataclasses.replace(spec, layer=2, states="attention", hidden_size=3 * 32, num_labels=0)
    assert qkv.key("d") != dataclasses.replace(spec, layer=2).key("d")
    head_calls = []
    hook = teacher.model.classifier.register_forward_hook(lambda *_: head_calls.append(1))
    cache = build_cache(teacher, windows, tmp_path / "a", qkv, shard_size=6, batch_size=4)
    hook.remove()
    assert head_calls == []  # the pass stops inside block 2: nothing above it runs
    rows = [5, 1]
    special = SpecialIds.from_tokenizer(teacher.tokenizer)
    batch = collate([windows[i] for i in rows], rows, special)
    with torch.no_grad():
        entering = teacher.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True
        ).hidden_states[1]
        block = attention_block(teacher.model, 1)
        expected = torch.cat([block.query(entering), block.key(entering), block.value(entering)], -1)
    mask = batch.token_mask
    cached = cache.outputs(rows, batch.input_ids.shape[1])
    assert cached.hidden.shape[-1] == 96 and cached.logits.shape[-1] == 0
    assert torch.allclose(cached.hidden[mask], expected[mask], atol=5e-3, rtol=2e-3)
    # beside the representation layer's cache: its states come out as the records' relations
    main = build_cache(teacher, windows, tmp_path / "c", spec, shard_size=6, batch_size=4)
    width = batch.input_ids.shape[1]
    both = LayeredCache(main, [], cache).outputs(rows, width)
    assert torch.equal(both.relations, cached.hidden) and torch.equal(
        both.hidden, main.outputs(rows, width).hidden
    )
    with pytest.raises(ValueError, match="BERT-like"):
        attention_block(torch.nn.Linear(2, 2), 0)
