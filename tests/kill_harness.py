"""Kill a `distil` run with SIGKILL at seeded random moments, resume it each time, and compare the end with an
uninterrupted run: the same student weights and the same F1, whatever was killed where.

Used by tests/test_kill_resume.py (a few kills, in `make test`) and benchmarks/kill_resume.py (many kills,
its result in docs/RESULTS.md)."""

from __future__ import annotations

import json
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


def distil(config: Path, output: Path, log: Path, timeout: float | None = None) -> tuple[int | None, float]:
    """Run `xtremedistil distil` in a child process; SIGKILL it after ``timeout`` seconds. Returns (exit code,
    or None when killed; seconds)."""
    start = time.monotonic()
    with open(log, "a", encoding="utf-8") as handle:
        child = subprocess.Popen(
            [sys.executable, "-m", "xtremedistil.cli", "distil", str(config), "--output", str(output)],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
            code = None
    return code, time.monotonic() - start


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
    """The uninterrupted run, then ``kills`` SIGKILLs at seeded moments over its duration, each followed by
    a resume, then the run to its end; returns what happened and whether the ends are equal."""
    reference, killed = work / "reference", work / "killed"
    code, full = distil(config, reference, work / "reference.log")
    if code != 0:
        raise RuntimeError(f"the uninterrupted run failed; see {work / 'reference.log'}")
    rng = random.Random(seed)
    points = []
    for _ in range(kills):
        moment = rng.uniform(0.5, full)
        code, seconds = distil(config, killed, work / "killed.log", timeout=moment)
        points.append({"after_seconds": round(seconds, 2), "killed": code is None, "phase": phase(killed)})
        if code not in (None, 0):
            raise RuntimeError(f"a resumed run failed with exit code {code}; see {work / 'killed.log'}")
    code, _ = distil(config, killed, work / "killed.log")
    if code != 0:
        raise RuntimeError(f"the final resume failed with exit code {code}; see {work / 'killed.log'}")
    expected, got = outcome(reference), outcome(killed)
    return {
        "uninterrupted_seconds": round(full, 2),
        "points": points,
        "phases": sorted({p["phase"] for p in points if p["killed"]}),
        "identical": same(expected, got),
        "f1": got["f1"],
        "expected_f1": expected["f1"],
    }
