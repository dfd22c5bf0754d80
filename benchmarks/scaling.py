"""Several processes, measured (docs/SCALING.md): the same distillation run in one process and under
torchrun in two, at equal total threads, and the full-scale config's cache estimate.

    python benchmarks/scaling.py --part processes [--config configs/wikiann-small.toml]
    python benchmarks/scaling.py --part estimate  [--config configs/wikiann-full.toml]

``processes``: `xtremedistil distil CONFIG` with 1 process x 2 threads, then `torchrun --nproc-per-node 2`
with 2 processes x 1 thread (fresh run folders: each fine-tunes its teacher, caches and trains), and an
all-reduce of the student's and the teacher's gradient sizes over gloo (benchmarks/allreduce.py): F1,
the time of every phase, cache and training throughput, communication per step.
``estimate``: `xtremedistil cache CONFIG --dry-run --devices N` for N = 1 and 8 on this machine.
Both write their section of docs/SCALING.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from safetensors import safe_open

from results import provenance, write_section

REPO = Path(__file__).resolve().parents[1]
SCALING = REPO / "docs" / "SCALING.md"
PHASES = ("labeled data", "teacher", "transfer set", "teacher cache", "teacher evaluation", "student stages")


def run(command: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        code = subprocess.call(
            command, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {code}; see {log}")
    return time.perf_counter() - start


def torchrun(processes: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(processes),
        "--master-port",
        "29533",
        *args,
    ]


def distil(config: Path, folder: Path, processes: int) -> None:
    """`xtremedistil distil CONFIG` into a fresh ``folder`` with 1 process, or under torchrun."""
    shutil.rmtree(folder, ignore_errors=True)
    cli = ["distil", str(config), "--output", str(folder), "--set", f"threads={2 // processes}"]
    command = (
        [sys.executable, "-m", "xtremedistil", *cli]
        if processes == 1
        else torchrun(processes, "-m", "xtremedistil", *cli)
    )
    run(command, folder.with_suffix(".log"), {"GLOO_SOCKET_IFNAME": "lo"})


def stage_rate(metrics: dict[str, Any]) -> float:
    """Optimiser steps (global batches) per second over all stages, evaluations included."""
    stages = metrics["stages"]
    return sum(s["steps"] for s in stages) / sum(s["seconds"] for s in stages)


def allreduce(student_numel: int, teacher_numel: int, out: Path) -> dict[str, Any]:
    sizes = f"student={student_numel},teacher={teacher_numel}"
    command = torchrun(2, str(REPO / "benchmarks" / "allreduce.py"), "--out", str(out), "--sizes", sizes)
    run(command, out.with_suffix(".log"), {"GLOO_SOCKET_IFNAME": "lo"})
    return json.loads(out.read_text(encoding="utf-8"))


def processes_section(config: Path, runs: Path, from_runs: bool = False) -> str:
    start = time.perf_counter()
    folders = runs / "scaling-1proc", runs / "scaling-2proc"
    if not from_runs:
        distil(config, folders[0], 1)
        distil(config, folders[1], 2)
    one, two = (json.loads((f / "metrics.json").read_text(encoding="utf-8")) for f in folders)
    size = one["size"]
    comm_file = runs / "scaling-allreduce.json"
    if not from_runs:
        # the teacher trains its encoder and the embedding rows of the sub-words it sees (at most the
        # student's vocabulary, which adds the transfer set's: an upper bound)
        with safe_open(str(folders[0] / "student" / "model.safetensors"), "pt") as handle:
            rows, _ = handle.get_slice("embedding.weight").get_shape()
        teacher_trainable = size["teacher"]["non_embedding"] + rows * one["cache"]["hidden_size"]
        allreduce(size["student"]["total"], teacher_trainable, comm_file)
    comm = json.loads(comm_file.read_text(encoding="utf-8"))

    def f1(m: dict[str, Any], who: str, raw: bool = False) -> str:
        test = m[who]["test"]
        return f"{(test['end_to_end'] if raw else test)['mean_f1']:.2f}"

    rows = [
        "| | 1 process × 2 threads | 2 processes × 1 thread (torchrun, gloo) | 2 / 1 |",
        "|---|---:|---:|---:|",
        f"| teacher test mean F1, gold words | {f1(one, 'teacher')} | {f1(two, 'teacher')} | |",
        f"| teacher test mean F1, raw text | {f1(one, 'teacher', True)} | {f1(two, 'teacher', True)} | |",
        f"| student test mean F1, gold words | {f1(one, 'student')} | {f1(two, 'student')} | |",
        f"| student test mean F1, raw text | {f1(one, 'student', True)} | {f1(two, 'student', True)} | |",
    ]
    for phase in PHASES:
        a, b = one["phase_seconds"].get(phase, 0.0), two["phase_seconds"].get(phase, 0.0)
        rows.append(
            f"| {phase} (s) | {a:.0f} | {b:.0f} | {b / a:.2f} |"
            if a >= 1
            else f"| {phase} (s) | {a:.1f} | {b:.1f} | |"
        )
    one_job, two_job = one["distil_job_seconds"], two["distil_job_seconds"]
    rows.append(f"| the distil job (s) | {one_job:.0f} | {two_job:.0f} | {two_job / one_job:.2f} |")
    ca, cb = (m["cache"]["windows"] / m["cache"]["seconds"] for m in (one, two))
    rows.append(f"| teacher cache (windows/s) | {ca:.0f} | {cb:.0f} | {cb / ca:.2f} |")
    sa, sb = stage_rate(one), stage_rate(two)
    rows.append(
        f"| student stages (optimiser steps/s, dev evaluations included) | {sa:.2f} | {sb:.2f} | {sb / sa:.2f} |"
    )
    step_ms = 1000 / sb
    student_ms = comm["ms"]["student"]
    rows.append(
        f"| all-reduce of the student's gradients ({comm['numel']['student']:,} values), ms | | {student_ms:.1f} | "
        f"{100 * student_ms / step_ms:.0f}% of a 2-process step |"
    )
    rows.append(
        f"| all-reduce of the teacher's trainable gradients (~{comm['numel']['teacher']:,} values), ms | | "
        f"{comm['ms']['teacher']:.0f} | |"
    )
    return (
        "## One process against two, at equal total threads\n\n"
        + provenance(time.perf_counter() - start)
        + f"\nConfig `{config}` (a stated slice of `configs/wikiann.toml`), each run in a fresh folder: it fine-tunes "
        "its teacher, caches, trains every stage, evaluates. Both use the machine's 2 cores: 1 process with 2 "
        "threads, or 2 processes with 1 thread each (each global batch split over the two). F1 at the corpus's "
        "gold word boundaries and on raw text (`predict` on the sentences written out, exact character spans)."
        + (
            f" Read from the run folders `{folders[0]}` and `{folders[1]}` and `{comm_file}`, made by this "
            "script without `--from-runs` on the same machine."
            if from_runs
            else ""
        )
        + "\n\n"
        + "\n".join(rows)
        + "\n"
    )


def full_scale_table(config: Path, runs: Path) -> str:
    """Every phase of ``config`` on 1 and 8 devices like this machine, from the rates of the measured
    1-process and 2-process runs (``--part processes``) scaled by the amount of work."""
    from xtremedistil.config import load_config
    from xtremedistil.data.sources import load_corpus

    one = json.loads((runs / "scaling-1proc" / "metrics.json").read_text(encoding="utf-8"))
    comm = json.loads((runs / "scaling-allreduce.json").read_text(encoding="utf-8"))
    two = json.loads((runs / "scaling-2proc" / "metrics.json").read_text(encoding="utf-8"))
    full = load_config(config)
    corpus = load_corpus(full)
    train = len(corpus.split("train"))
    small_train = one["teacher_training"]["train_sentences"]
    small_windows = one["cache"]["windows"]
    full_windows = train  # the transfer set is the train text itself (transfer_includes_train)
    teacher_s = (
        one["teacher_training"]["train_seconds"]
        * (train / small_train)
        * full.teacher.epochs
        / one["teacher_training"]["epochs"]
    )
    cache_s = one["cache"]["seconds"] * full_windows / small_windows
    # stage by stage: the seconds of each measured stage scaled by the windows its pool holds at full scale
    pool_full = {"labeled": train, "transfer": full_windows, "labeled+transfer": full_windows}
    stages_s = sum(s["seconds"] * pool_full[s["data"]] / s["windows"] for s in one["stages"])
    efficiency = {  # what 2 processes gave over 1 at equal total threads, per phase (measured here)
        "teacher": one["phase_seconds"]["teacher"] / two["phase_seconds"]["teacher"],
        "cache": one["cache"]["seconds"] / two["cache"]["seconds"],
        "stages": one["phase_seconds"]["student stages"] / two["phase_seconds"]["student stages"],
    }
    rows = [
        "| phase | work at full scale | 1 device | 8 devices, linear | 2 processes on this machine's 2 cores, measured |",
        "|---|---|---:|---:|---:|",
        f"| teacher fine-tuning | {train:,} sentences × {full.teacher.epochs} epochs | {_duration(teacher_s)} | "
        f"{_duration(teacher_s / 8)} | {efficiency['teacher']:.2f}× the speed of 1 |",
        f"| teacher cache | {full_windows:,} windows | {_duration(cache_s)} | {_duration(cache_s / 8)} | "
        f"{efficiency['cache']:.2f}× |",
        f"| student stages | the measured stages' epochs over {full_windows:,} windows | {_duration(stages_s)} | "
        f"{_duration(stages_s / 8)} | {efficiency['stages']:.2f}× |",
    ]
    return (
        "\n".join(rows)
        + "\n\nAssumptions: the per-sentence rates of the 1-process run of `--part processes` hold at full scale "
        "(the same sentence lengths; every stage runs its epochs in full, no early stop; dev evaluation, which "
        'grows with the dev set, is not counted). "Linear" divides by 8: an upper bound, since every '
        "DistributedDataParallel step adds the all-reduce of its gradients (measured above over loopback: "
        f"{comm['ms']['teacher']:.0f} ms for the teacher's, {comm['ms']['student']:.1f} ms for the student's), "
        "which a GPU step does not hide. The last column is what 2 "
        "processes gave here, sharing the same 2 cores: the cache, which needs no communication, gained a "
        "little; fine-tuning and the stages lost, since each process computed half a batch with half the threads "
        "and then waited for the all-reduce. Separate devices add compute, which this machine cannot show. A "
        "device here is 2 CPU threads; for GPUs the same arithmetic holds with a GPU's rates, which `xtremedistil "
        "cache CONFIG --dry-run` measures for the cache on the machine it runs on.\n"
    )


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def estimate_section(config: Path, runs: Path) -> str:
    start = time.perf_counter()
    lines = []
    for devices in (1, 8):
        log = runs / f"scaling-estimate-{devices}.log"
        command = [
            sys.executable,
            "-m",
            "xtremedistil",
            "-q",
            "cache",
            str(config),
            "--dry-run",
            "--devices",
            str(devices),
        ]
        run(command, log)
        lines.append(f"`--devices {devices}`:\n\n```\n{log.read_text(encoding='utf-8').strip()}\n```\n")
    return (
        "## The full-scale config, estimated\n\n"
        + provenance(time.perf_counter() - start)
        + f"\n`xtremedistil cache {config} --dry-run --devices N` on this machine (the teacher's speed measured on "
        "a seeded sample of windows here, after an untimed warm-up batch; N devices like it). On a GPU machine the same command measures that GPU.\n\n"
        + "\n".join(lines)
        + "\n### Every phase, from the measured runs\n\n"
        + full_scale_table(config, runs)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("processes", "estimate"), required=True)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument(
        "--from-runs", action="store_true", help="processes: read the finished run folders instead of running"
    )
    args = parser.parse_args()
    if args.part == "processes":
        body = processes_section(args.config or Path("configs/wikiann-small.toml"), args.runs, args.from_runs)
    else:
        body = estimate_section(args.config or Path("configs/wikiann-full.toml"), args.runs)
    write_section(f"scaling-{args.part}", body, path=SCALING)


if __name__ == "__main__":
    main()
