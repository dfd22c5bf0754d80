"""`make quickstart` as a new user runs it: a fresh clone of this repository's last commit, the
environment created and installed from nothing, then the main job. Measures the whole command's wall
time and splits it into set-up (venv + install) and the job (`distil_job_seconds` from the run's own
metrics), and checks the run's report against the distillation issue's targets.

    python benchmarks/fresh_quickstart.py [--workdir /tmp/xtremedistil-fresh] [--keep]

Run it on a quiet machine: another busy process slows 2-thread timings by a factor of several.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import time
from pathlib import Path

from results import provenance, targets_table, write_section
from xtremedistil.report import summary

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/xtremedistil-fresh"))
    parser.add_argument("--keep", action="store_true", help="keep the clone afterwards")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    commit = subprocess.check_output(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], text=True
    ).strip()
    subprocess.check_call(["git", "clone", "--quiet", str(REPO), str(args.workdir)])
    log = args.workdir / "make-quickstart.log"
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        code = subprocess.call(
            ["make", "quickstart"], cwd=args.workdir, stdout=handle, stderr=subprocess.STDOUT
        )
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"make quickstart failed with exit code {code}; see {log}")
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    metrics = json.loads((args.workdir / "runs" / "quickstart" / "metrics.json").read_text())
    job = metrics["distil_job_seconds"]
    s = summary(metrics)
    targets = [
        ("`make quickstart`, whole command (min)", wall / 60, 15.0, False),
        ("of which the job, `distil_job_seconds` (min)", job / 60, 15.0, False),
        ("peak memory of any process (GB, resident)", peak_gb, 6.0, False),
        ("student mean F1 / teacher mean F1 (%)", 100 * s["retained"], 90.0, True),
    ]
    phases = " · ".join(f"{name} {sec:.0f} s" for name, sec in metrics["phase_seconds"].items())
    body = (
        "## Fresh clone: `make quickstart` from nothing\n\n"
        + provenance(wall)
        + f"\nA clone of commit `{commit}`; `make quickstart` creates `.venv`, installs the package and runs "
        "the main job. Set-up (venv and install) is the whole command minus the job: "
        f"{(wall - job) / 60:.2f} min.\n\n"
        + targets_table(targets)
        + f"\n\nThe job's phases (s): {phases}.\n"
    )
    write_section("fresh-quickstart", body)
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
