"""`distil` killed with SIGKILL at many seeded random moments, resumed each time, against an uninterrupted
run: are the final student weights and F1 identical? Writes a section of docs/RESULTS.md.

    python benchmarks/kill_resume.py [--kills 24] [--seed 0]

The run is the tests' toy config on a tiny random BERT built here (teacher and stage checkpoints every 2
steps), stretched so that every phase lasts long enough to be hit: teacher fine-tuning, the cache, the
stages, evaluation and the report.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

from results import provenance, write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import build_tiny_bert  # noqa: E402
from tests.kill_harness import harness  # noqa: E402
from tests.test_kill_resume import kill_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = harness(
            kill_config(work, build_tiny_bert(work / "tiny-bert"), long=True), work, args.kills, args.seed
        )
    print(json.dumps(result, indent=2))
    killed = [p for p in result["points"] if p["killed"]]
    by_phase = collections.Counter(p["phase"] for p in killed)
    rows = [f"| {phase} | {n} |" for phase, n in sorted(by_phase.items())]
    verdict = "identical" if result["identical"] else "**NOT identical**"
    body = [
        "## Killed anywhere, resumed: the same student\n",
        provenance(time.perf_counter() - start),
        f"`distil` on the tests' toy config, stretched (tiny random BERT teacher, 30 epochs, 400 transfer "
        f"sentences, checkpoints every 2 steps), took "
        f"{result['uninterrupted_seconds']:.1f} s uninterrupted, in which its run folder changed "
        f"{result['folder_changes']} times (checkpoints, cache shards, finished stages, reports). Then "
        f"{args.kills} runs of it were each killed with SIGKILL once the folder had changed a seeded number "
        f"of times (about 1/{args.kills} of them, ×0.5–1.5; seed {args.seed}) and resumed by the next; "
        f"{len(killed)} were killed before finishing (a run that finished first is not counted). The "
        f"final student weights and the teacher's and student's dev/test mean F1 against the uninterrupted "
        f"run: **{verdict}** (F1 {json.dumps(result['f1'])}).\n",
        "| where the run was when killed (read from its folder) | kills |",
        "|---|---:|",
        *rows,
    ]
    write_section("kill-resume", "\n".join(body))
    if not result["identical"]:
        raise SystemExit("the resumed run differs from the uninterrupted one")


if __name__ == "__main__":
    main()
