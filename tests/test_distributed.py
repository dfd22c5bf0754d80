"""Several processes on the CPU (gloo), as torchrun launches them: the sharded teacher cache equals the
one-process cache, a rank killed mid-cache resumes without recomputing a finished shard, and a 2-process
`distil` runs every stage and ends close to the 1-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from tests.distributed_workers import cache_rank, free_port, toy_cache_inputs
from tests.test_distil_e2e import toy_config, write_toy_config  # noqa: F401 (a fixture)
from xtremedistil.cache import MANIFEST, TeacherCache, build_cache
from xtremedistil.distributed import Context, resolve_device
from xtremedistil.errors import ConfigError

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="this torch has no gloo backend for multi-process tests",
)


def test_a_rank_gets_its_share_of_shards_and_rows():
    ranks = [Context(rank=r, world_size=3) for r in range(3)]
    assert [c.shard(list(range(7))) for c in ranks] == [[0, 3, 6], [1, 4], [2, 5]]
    parts = [c.rows_of(8) for c in ranks]
    assert [(p.start, p.stop) for p in parts] == [(0, 3), (3, 6), (6, 8)]  # every row once, sizes within one
    assert all(c.rows_of(2) is None for c in ranks)  # fewer rows than ranks: every rank skips the batch
    one = Context()
    assert one.rows_of(5) == slice(0, 5) and one.shard([1, 2]) == [1, 2] and one.broadcast("x") == "x"
    assert one.on_main(lambda: 7) == 7


def test_devices_resolve_or_fail_with_a_message():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (
        torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    )
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no GPU"):
            resolve_device("cuda:1")


def test_batches_and_outputs_stay_put_on_their_own_device():
    from xtremedistil.outputs import TokenOutput
    from xtremedistil.tasks.base import Batch

    ids = torch.ones(2, 3, dtype=torch.long)
    batch = Batch(ids, ids, ids, ids.bool(), torch.arange(2), torch.zeros(2, dtype=torch.long))
    assert batch.to(torch.device("cpu")) is batch  # the CPU path copies nothing
    out = TokenOutput(torch.zeros(2, 3))
    assert out.to("cpu") is out
    moved = batch.to(torch.device("meta"))  # another device: every tensor goes, the row index stays
    assert moved.input_ids.device.type == "meta" and moved.labels.device.type == "meta"
    assert moved.index.device.type == "cpu"
    assert out.to("meta").logits.device.type == "meta" and out.to("meta").hidden is None


def _spawn(world: int, root: Path, bert_dir: Path, die_rank: int = -1) -> bool:
    """Run ``world`` cache ranks; False when one of them died."""
    try:
        mp.start_processes(
            cache_rank,
            args=(world, free_port(), str(bert_dir), str(root), die_rank),
            nprocs=world,
            join=True,
            start_method="spawn",
        )
    except mp.ProcessExitedException:
        return False
    return True


def _assert_same_cache(a: TeacherCache, b: TeacherCache) -> None:
    assert len(a) == len(b)
    for i in range(len(a)):
        (ha, la), (hb, lb) = a.window(i), b.window(i)
        np.testing.assert_allclose(ha.astype(np.float32), hb.astype(np.float32), atol=1e-3)
        np.testing.assert_allclose(la.astype(np.float32), lb.astype(np.float32), atol=1e-3)


def test_two_rank_cache_equals_the_one_rank_cache(tiny_bert_dir, tmp_path):
    teacher, windows, spec = toy_cache_inputs(tiny_bert_dir)
    single = build_cache(teacher, windows, tmp_path / "one", spec, shard_size=4, batch_size=3)
    assert _spawn(2, tmp_path / "two", tiny_bert_dir)
    manifest = json.loads((tmp_path / "two" / MANIFEST).read_text())
    assert manifest["complete"] and [s["index"] for s in manifest["shards"]] == list(range(9))
    assert not list((tmp_path / "two").glob("*.done.json"))  # the ranks' markers folded into the manifest
    _assert_same_cache(single, TeacherCache(tmp_path / "two"))


def test_a_rank_killed_mid_cache_resumes_without_recomputing_a_finished_shard(tiny_bert_dir, tmp_path):
    root = tmp_path / "two"
    assert not _spawn(2, root, tiny_bert_dir, die_rank=1)  # rank 1 dies at the start of its second shard
    manifest = json.loads((root / MANIFEST).read_text())
    assert not manifest["complete"]
    markers = sorted(p.name for p in root.glob("*.done.json"))
    # the files of the shards marked finished (a shard cut off mid-write has no marker: it is computed again)
    finished = {
        p.name: p.stat().st_mtime_ns for m in markers for p in root.glob(m.replace(".done.json", ".*.npy"))
    }
    assert len(finished) == 3 * len(markers)
    assert "shard-00001.done.json" in markers  # rank 1's first shard was finished before it died
    assert len(markers) < 9
    assert _spawn(2, root, tiny_bert_dir)  # relaunched
    for name, mtime in finished.items():  # nothing finished was written again
        assert (root / name).stat().st_mtime_ns == mtime, name
    teacher, windows, spec = toy_cache_inputs(tiny_bert_dir)
    single = build_cache(teacher, windows, tmp_path / "one", spec, shard_size=4, batch_size=3)
    _assert_same_cache(single, TeacherCache(root))


def _distil(config: Path, output: Path, processes: int, subcommand: str = "distil") -> dict:
    env = {**os.environ, "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    command = [sys.executable, "-m", "xtremedistil", subcommand, str(config), "--output", str(output)]
    if processes > 1:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",  # the multi-node launch (c10d rendezvous), on one node
            "1",
            "--nproc-per-node",
            str(processes),
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            f"127.0.0.1:{free_port()}",
            "--rdzv-id",
            "xtremedistil-test",
            "-m",
            "xtremedistil",
            *command[3:],
        ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((output / ("metrics.json" if subcommand == "distil" else "results.json")).read_text())


def test_two_process_distil_runs_every_stage_and_ends_near_the_one_process_run(tiny_bert_dir, tmp_path):
    teacher = f"""name = "{tiny_bert_dir}"
max_length = 16
epochs = 6
batch_size = 8
max_batch_tokens = 40
lr = 5e-3"""  # slices of a rank's rows: gradients accumulated under DDP's no_sync
    config = write_toy_config(tmp_path, teacher, labeled="max_test = 4", distil="layer = 1\nlr = 0.03")
    text = config.read_text().replace("output_dir", 'threads = 1\ndevice = "cpu"\noutput_dir', 1)
    text = text.replace("embedding_dim = 8\nhidden_size = 8", "embedding_dim = 16\nhidden_size = 16")
    for stage, epochs in (("representation", 4), ("logit", 3), ("label", 3)):
        text = text.replace(f"{stage}_epochs = 1", f"{stage}_epochs = {epochs}")
    config.write_text(text)
    one = _distil(config, tmp_path / "one", 1)
    two = _distil(config, tmp_path / "two", 2)
    assert [s["stage"] for s in two["stages"]] == [s["stage"] for s in one["stages"]]
    assert all(s["steps"] > 0 for s in two["stages"])
    # the same data, each global batch split over two ranks: the teacher's and the student's dev F1 stay
    # within this many points of the one-process run's (a stated tolerance: the toy dev set is 62 sentences)
    tolerance = 15.0
    assert one["student"]["dev"]["mean_f1"] > 50  # the student learned something worth comparing
    assert abs(two["teacher"]["dev"]["mean_f1"] - one["teacher"]["dev"]["mean_f1"]) <= tolerance
    assert abs(two["student"]["dev"]["mean_f1"] - one["student"]["dev"]["mean_f1"]) <= tolerance
    assert (tmp_path / "two" / "student" / "model.safetensors").is_file()
    assert (tmp_path / "two" / "report.md").is_file()


def test_two_process_experiment_shares_the_teacher_and_splits_the_cells(toy_config, tmp_path):  # noqa: F811
    text = toy_config.read_text().replace("output_dir", 'threads = 1\ndevice = "cpu"\noutput_dir', 1)
    text += '\n[experiment]\nstrategies = ["D0-S", "D4.1", "D1"]\nseeds = [13]\nlayers = [1]\n'
    toy_config.write_text(text)
    rows = _distil(toy_config, tmp_path / "exp", 2, subcommand="experiment")
    assert sorted(r["cell"]["strategy"] for r in rows) == ["D0-S", "D1", "D4.1"]
    assert all(r["test_mean"] >= 0 and r["params"] > 0 for r in rows)
    teachers = list((tmp_path / "exp" / "teachers").iterdir())
    assert len(teachers) == 1 and (teachers[0] / "teacher" / "model.safetensors").is_file()  # one, shared
    assert (tmp_path / "exp" / "results.md").is_file()


def test_a_bad_device_is_refused_by_name(toy_config, capsys):  # noqa: F811
    from xtremedistil.cli import main

    assert main(["cache", str(toy_config), "--dry-run", "--device", "gpu"]) == 2
    assert "device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["cache", str(toy_config), "--dry-run", "--device", "cuda:1"]) == 2
        assert "sees no GPU" in capsys.readouterr().err
