"""Two processes on one run folder: the second stops with a clear message; a killed holder frees it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from xtremedistil import pipeline
from xtremedistil.errors import XtremeDistilError

ROOT = Path(__file__).resolve().parents[1]
HOLD = "import sys, time; from xtremedistil.pipeline import lock_run_dir; lock_run_dir(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def test_a_second_process_is_refused_until_the_first_one_dies(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src")},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(XtremeDistilError, match=f"in use by pid {holder.pid}") as info:
            pipeline.lock_run_dir(folder)
        assert str(folder) in str(info.value)
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs, the OS drops the lock
        holder.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            pipeline.lock_run_dir(folder)
            break
        except XtremeDistilError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    pipeline.lock_run_dir(folder)  # the same process again: fine
    pipeline._LOCKS.pop(folder.resolve()).close()
