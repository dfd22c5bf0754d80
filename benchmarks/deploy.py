"""`xtremedistil benchmark` on finished runs: teacher and student, PyTorch and ONNX Runtime (fp32, int8),
side by side in one process on each run's dev windows, checked against issue 12's targets. Writes a section
of docs/RESULTS.md.

    python benchmarks/deploy.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from results import provenance, run_cli, targets_table, write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", type=Path, nargs="+", help="finished distil run folders")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use each run's benchmark.json if it exists (only rewrite the section)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    body = ["## Deployment: the student out of PyTorch (ONNX Runtime fp32/int8) against the teacher\n"]
    tables = []
    for run in args.runs:
        if not (args.reuse and (run / "benchmark.json").is_file()):
            run_cli(["benchmark", str(run)], run / "benchmark.log")
        result = json.loads((run / "benchmark.json").read_text(encoding="utf-8"))
        rows = result["rows"]
        int8, fp32 = rows["student ONNX Runtime int8"], rows["student PyTorch fp32"]
        targets = [
            (
                "student int8 throughput × teacher PyTorch (batch 32)",
                int8["throughput_vs_teacher_torch"],
                100,
                True,
            ),
            ("student int8 latency × teacher PyTorch (batch 1)", int8["latency_vs_teacher_torch"], 50, True),
            (
                "student int8 throughput × teacher ONNX int8 (batch 32)",
                int8["throughput_vs_teacher_int8"],
                40,
                True,
            ),
            ("dev F1 lost to int8 (points)", fp32["dev_mean_f1"] - int8["dev_mean_f1"], 0.5, False),
            ("units tagged as PyTorch does, int8 (%)", 100 * int8["same_tags_as_pytorch"], 99, True),
        ]
        markdown = (run / "benchmark.md").read_text(encoding="utf-8").split("\n", 2)[2]  # without its title
        config = (run / "config.toml").read_text(encoding="utf-8")
        output_dir = next((line for line in config.splitlines() if line.startswith("output_dir")), "")
        tables += [f"### `{run}` ({output_dir})\n", markdown, targets_table(targets), ""]
    body += [
        provenance(time.perf_counter() - start),
        "Each run's dev windows (length-bucketed, the run's `[speed]` batch size, warm-up, medians), all five "
        "variants in one process with the same threads; dev F1 of each variant; ratios against the teacher's "
        "PyTorch fp32 and its own ONNX Runtime int8. Targets are issue 12's, set for the WikiAnn `xs` student "
        "of `configs/wikiann.toml`; a run's `output_dir` says which config made it. The ratios depend on the "
        "CPU: the teacher's PyTorch runs its large matrix products close to the CPU's peak, while the "
        "student's time goes to the LSTM recurrence, one small product per word and direction "
        '(`benchmarks/onnx_profile.py`, "Where the student\'s ONNX time goes", for the breakdown and the '
        "alternatives measured).\n",
        *tables,
    ]
    write_section("deploy", "\n".join(body))


if __name__ == "__main__":
    main()
