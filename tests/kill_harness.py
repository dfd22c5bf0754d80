"""Kill a `distil` run with SIGKILL at seeded points of its progress, resume it each time, and compare the end
with an uninterrupted run: the same student weights and the same F1, whatever was killed where.

Used by tests/test_kill_resume.py (a few kills, in `make test`) and benchmarks/kill_resume.py (many kills,
its result in docs/RESULTS.md)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def _state(run: Path) -> frozenset:
    """Every file of the run folder with its size and modification time: it changes when the run makes
    durable progress (a checkpoint, a cache shard, a finished stage, a report). Files and folders the run
    renames away while we look are skipped (os.walk ignores such errors)."""
    out = set()
    for folder, _, files in os.walk(run):
        for name in files:
            if name.startswith("."):
                continue
            try:
                st = os.stat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            out.add((os.path.join(folder, name), st.st_size, st.st_mtime_ns))
    return frozenset(out)


def distil(
    config: Path, output: Path, log: Path, kill_after: int | None = None
) -> tuple[int | None, float, int]:
    """Run `xtremedistil distil` in a child process, watching its run folder; with ``kill_after``, SIGKILL
    it once the folder has changed that many times (each change is durable progress: kills land on work,
    not on start-up). Returns (exit code, or None when killed; seconds; changes seen)."""
    start = time.monotonic()
    changes, last = 0, _state(output)
    with open(log, "a", encoding="utf-8") as handle:
        child = subprocess.Popen(
            [sys.executable, "-m", "xtremedistil.cli", "distil", str(config), "--output", str(output)],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        while child.poll() is None:
            now = _state(output)
            if now != last:
                changes, last = changes + 1, now
                if kill_after is not None and changes >= kill_after:
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    return None, time.monotonic() - start, changes
            time.sleep(0.005)
    return child.returncode, time.monotonic() - start, changes


def phase(run: Path) -> str:
    """Where a run folder stands, read from what it holds."""
    if (run / "report.md").is_file():
        return "finished"
    if (run / "student" / "student.json").is_file():
        return "evaluation and report"
    stages = run / "stages" / "stages.json"
    if stages.is_file():
        record = json.loads(stages.read_text())
        done, total = len(record["summaries"]), len(record["stages"])
        inside = (
            " (inside, from its checkpoint)" if (run / "stages" / "stage-checkpoint.pt").is_file() else ""
        )
        return f"stage {done + 1} of {total}{inside}" if done < total else "evaluation and report"
    if (run / "stages" / "stage-checkpoint.pt").is_file():
        return "stage 1 (inside, from its checkpoint)"
    if (run / "teacher" / "xtremedistil.json").is_file() or (run / "teacher" / "config.json").is_file():
        return "teacher cache / student set-up"
    if (run / "teacher-checkpoint.pt").is_file():
        return "teacher fine-tuning (from its checkpoint)"
    if (run / "config.toml").is_file():
        return "teacher fine-tuning (no checkpoint yet)"
    return "start-up"


def outcome(run: Path) -> dict[str, Any]:
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "weights": load_file(str(run / "student" / "model.safetensors")),
        "f1": {
            who: {split: metrics[who][split]["mean_f1"] for split in ("dev", "test") if split in metrics[who]}
            for who in ("teacher", "student")
            if who in metrics
        },
    }


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    weights = a["weights"].keys() == b["weights"].keys() and all(
        torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"]
    )
    return weights and a["f1"] == b["f1"]


def harness(config: Path, work: Path, kills: int, seed: int = 0) -> dict[str, Any]:
    """The uninterrupted run (counting how often its folder changes), then ``kills`` runs each SIGKILLed
    after a seeded number of folder changes (about an equal share of the whole each) and resumed by the
    next, so the kills move through every phase; then the run to its end. Returns what happened and
    whether the ends are equal."""
    reference, killed = work / "reference", work / "killed"
    code, full, total = distil(config, reference, work / "reference.log")
    if code != 0:
        raise RuntimeError(f"the uninterrupted run failed; see {work / 'reference.log'}")
    rng = random.Random(seed)
    points = []
    for _ in range(kills):
        after = max(1, round(total / kills * rng.uniform(0.5, 1.5)))
        code, seconds, _ = distil(config, killed, work / "killed.log", kill_after=after)
        points.append({"after_changes": after, "killed": code is None, "phase": phase(killed)})
        if code not in (None, 0):
            raise RuntimeError(f"a resumed run failed with exit code {code}; see {work / 'killed.log'}")
    code, _, _ = distil(config, killed, work / "killed.log")
    if code != 0:
        raise RuntimeError(f"the final resume failed with exit code {code}; see {work / 'killed.log'}")
    expected, got = outcome(reference), outcome(killed)
    return {
        "uninterrupted_seconds": round(full, 2),
        "folder_changes": total,
        "points": points,
        "phases": sorted({p["phase"] for p in points if p["killed"]}),
        "identical": same(expected, got),
        "f1": got["f1"],
        "expected_f1": expected["f1"],
    }
