"""Process bodies for the multi-process tests (tests/test_distributed.py): each joins a gloo group of
``world`` CPU processes through ``xtremedistil.distributed.setup``, as a torchrun rank does."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch

from tests.conftest import build_tiny_tokenizer, make_sentence
from xtremedistil import distributed
from xtremedistil.cache import CacheSpec, build_cache
from xtremedistil.tasks.ner import NerTask
from xtremedistil.teacher.model import new_teacher

TYPES = ["PER", "LOC", "ORG"]
TEXTS = [
    "alice lives in paris",
    "bob works at acme corp",
    "the city",
    "london and paris and bob",
    "acme corp and the city of london",
    "bob",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def join(rank: int, world: int, port: int) -> distributed.Context:
    """What torchrun sets for a rank, then the library's own set-up."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"),
    )
    torch.set_num_threads(1)
    return distributed.setup("cpu")


def toy_cache_inputs(bert_dir: Path):
    """A tiny random teacher (the same weights in every process) and 36 windows."""
    torch.manual_seed(0)
    teacher = new_teacher(bert_dir, NerTask(TYPES).labels, {"max_length": 16}).eval()
    task = NerTask(TYPES)
    windows, _ = task.encode([make_sentence(t, None) for t in TEXTS * 6], build_tiny_tokenizer(), 16)
    spec = CacheSpec("tiny", "sha", 1, 16, "tok", 32, len(task.labels))
    return teacher, windows, spec


class DieAfterShards(torch.nn.Module):
    """A teacher whose process dies (as a SIGKILL would: no clean-up) when it starts its shard number
    ``die_at`` (counted from 0) of this process, after the earlier ones were written."""

    def __init__(self, teacher, windows_per_shard: int, die_at: int) -> None:
        super().__init__()
        self.teacher, self.tokenizer, self.labels, self.model = (
            teacher,
            teacher.tokenizer,
            teacher.labels,
            teacher.model,
        )
        self.limit, self.seen = windows_per_shard * die_at, 0

    def forward(self, batch, layer=None, **kwargs):
        if self.seen >= self.limit:
            os._exit(9)
        self.seen += len(batch)
        return self.teacher(batch, layer=layer, **kwargs)


def cache_rank(rank: int, world: int, port: int, bert_dir: str, root: str, die_rank: int = -1) -> None:
    """One rank of a sharded cache build (``die_rank`` dies after its first shard)."""
    join(rank, world, port)
    teacher, windows, spec = toy_cache_inputs(Path(bert_dir))
    if rank == die_rank:
        teacher = DieAfterShards(teacher, windows_per_shard=4, die_at=1)
    try:
        build_cache(teacher, windows, Path(root), spec, shard_size=4, batch_size=3)
    finally:
        distributed.teardown()
