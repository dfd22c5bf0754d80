"""The command line: each command parses options and calls one plain library function."""

from __future__ import annotations

import errno
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

from xtremedistil.errors import XtremeDistilError

app = typer.Typer(
    name="xtremedistil",
    help="Distil massive multilingual transformers into tiny, fast students (XtremeDistil, ACL 2020).\n\n"
    "Runs offline on an embedded default: the multilingual-e5-small teacher and gold NER data in zh, en, ja; "
    "`--task classification` for text classification (sentiment in en, zh).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
teacher_app = typer.Typer(help="Fine-tune, list and convert teachers.", no_args_is_help=True)
data_app = typer.Typer(help="Inspect labeled and unlabeled data.", no_args_is_help=True)
config_app = typer.Typer(help="Show default and resolved configs.", no_args_is_help=True)
app.add_typer(teacher_app, name="teacher")
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

ConfigArg = Annotated[
    Path | None,
    typer.Argument(help="TOML config; omit for the embedded default (see `xtremedistil config default`)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key, e.g. --set teacher.epochs=2 (repeatable)."),
]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Run folder (overrides output_dir).")]
TaskOpt = Annotated[
    str,
    typer.Option(
        "--task",
        help="Without a CONFIG: the embedded default of this task, ner or classification (with a CONFIG, "
        "its `task` key decides).",
    ),
]

DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="auto, cpu, cuda or cuda:N (overrides the config's `device`; auto: the GPU when torch sees one). "
        "Several processes: torchrun --nproc-per-node N -m xtremedistil distil CONFIG (README, Scaling).",
    ),
]


@app.callback()
def _global(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
) -> None:
    # Before transformers is imported: no weight-loading bars or load reports on the user's screen.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "debug" if debug else "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    for noisy in ("transformers", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _load(
    config: Path | None,
    overrides: list[str] | None,
    output: Path | None,
    task: str = "ner",
    device: str | None = None,
):
    from xtremedistil.config import load_config

    overrides = list(overrides or [])
    if output is not None:
        overrides.append(f'output_dir="{output}"')
    if device is not None:
        overrides.append(f'device="{device}"')
    return load_config(config, overrides, task=task)


def _reporter():
    """Progress bars and logs on the terminal; under torchrun, rank 0's only."""
    from xtremedistil.distributed import current
    from xtremedistil.progress import RichReporter, SilentReporter

    if current().is_main:
        return RichReporter(err_console)
    logging.getLogger("xtremedistil").setLevel(logging.WARNING)  # the other ranks: warnings and errors only
    return SilentReporter()


def _launched(cfg):
    """The command's processes: a world of one, or torchrun's ranks joined in a process group for its
    length."""
    from xtremedistil.distributed import launched

    return launched(cfg.device)


def _is_main() -> bool:
    """Whether this process prints results: always, but under torchrun rank 0 only."""
    from xtremedistil.distributed import current

    return current().is_main


@teacher_app.command("train")
def teacher_train(
    config: ConfigArg = None,
    set_: SetOpt = None,
    output: OutputOpt = None,
    task: TaskOpt = "ner",
    device: DeviceOpt = None,
) -> None:
    """Fine-tune the teacher on the labeled data (joint over languages), select on dev F1, evaluate per
    language on dev and test, and write the run folder (config, teacher, metrics.json, teacher.md).
    With teacher.fine_tune = false, only score the ready model named in teacher.name.

    Rerunning the same command on the same folder reuses a finished teacher."""
    from xtremedistil.pipeline import model_report, run_teacher

    cfg = _load(config, set_, output, task, device)
    with _launched(cfg):
        metrics = run_teacher(cfg, _reporter())
        if _is_main():
            console.print(model_report(metrics["teacher"]), markup=False, highlight=False)
            console.print(f"run folder: {cfg.output_dir}")


@app.command("distil")
def distil(
    config: ConfigArg = None,
    set_: SetOpt = None,
    output: OutputOpt = None,
    task: TaskOpt = "ner",
    device: DeviceOpt = None,
) -> None:
    """The whole method: fine-tune the teacher (or reuse teacher.run, or take a model you fine-tuned as it
    is: teacher.fine_tune = false), cache its layer states and logits over
    the transfer set once, train the student stage by stage with gradual unfreezing, evaluate both per
    language, measure size and speed, save the student and write report.md/.json/.png.

    Interrupted? Rerun the same command: finished steps (teacher, cache shards, stages) are reused."""
    from xtremedistil.distillation import run_distil
    from xtremedistil.report import render_markdown

    cfg = _load(config, set_, output, task, device)
    with _launched(cfg):
        metrics = run_distil(cfg, _reporter())
        if _is_main():
            console.print(render_markdown(metrics), markup=False, highlight=False)
            console.print(f"run folder: {cfg.output_dir}  (student: {cfg.output_dir}/student)")


@app.command("experiment")
def experiment(
    config: ConfigArg = None,
    set_: SetOpt = None,
    task: TaskOpt = "ner",
    output: OutputOpt = None,
    max_params: Annotated[
        int | None, typer.Option(help="Budget: at most this many student parameters.")
    ] = None,
    max_latency_ms: Annotated[float | None, typer.Option(help="Budget: batch-1 latency in ms.")] = None,
    min_retention: Annotated[
        float | None, typer.Option(help="Budget: dev F1 at least this fraction of the teacher's (e.g. 0.95).")
    ] = None,
    device: DeviceOpt = None,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="Train nothing: measure the finished cells' saved students again (speed, paired with the "
            "teacher; NER raw-text F1 where a row lacks it) and rewrite the report.",
        ),
    ] = False,
) -> None:
    """Run the [experiment] grid (strategies x transfer sizes x labeled sizes x layers x students x seeds) on
    shared teachers and caches; one row per cell in results.csv/.json/.md plus results.png. Finished cells
    are never recomputed: rerun to resume, add a cell to run only it. With a budget option, pick the best
    student within it (by dev F1) and save it to OUTPUT/selected-student."""
    from xtremedistil.experiment import run_experiment, save_selection, select
    from xtremedistil.experiment_report import render

    cfg = _load(config, set_, output, task, device)
    with _launched(cfg):
        results = run_experiment(cfg, _reporter(), refresh=refresh)
        main_process = _is_main()
    if not main_process:  # under torchrun, rank 0 reports and selects
        return
    console.print(render(results), markup=False, highlight=False)
    if max_params is not None or max_latency_ms is not None or min_retention is not None:
        best, why = select(
            results, max_params=max_params, max_latency_ms=max_latency_ms, min_retention=min_retention
        )
        console.print(f"selected: {why}", markup=False, highlight=False)
        if best is None:
            raise XtremeDistilError(why)
        console.print(f"saved to {save_selection(Path(cfg.output_dir), best, why)}")


@app.command("plan")
def plan_cmd(config: ConfigArg = None, set_: SetOpt = None, task: TaskOpt = "ner") -> None:
    """Print the stage schedule a config produces (strategy, losses, data, trainable layer groups)."""
    from xtremedistil.distillation import schedule_settings
    from xtremedistil.student.schedule import format_plan, plan

    cfg = _load(config, set_, None, task)
    console.print(format_plan(plan(schedule_settings(cfg))), markup=False, highlight=False)


@app.command("cache")
def cache_cmd(
    config: ConfigArg = None,
    set_: SetOpt = None,
    task: TaskOpt = "ner",
    output: OutputOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only print the estimated disk size and time.")
    ] = False,
    devices: Annotated[
        int,
        typer.Option(
            "--devices",
            min=1,
            help="With --dry-run: the time on this many processes like this one (torchrun).",
        ),
    ] = 1,
    device: DeviceOpt = None,
) -> None:
    """Run the fine-tuned teacher once over the transfer set and cache its layer states and logits (fp16,
    sharded, memory-mapped). Resumes from the last complete shard; --dry-run estimates size and time."""
    from xtremedistil.distillation import cache_job

    cfg = _load(config, set_, output, task, device)
    with _launched(cfg):
        message = cache_job(cfg, _reporter(), dry_run=dry_run, devices=devices)
        if _is_main():
            console.print(message, markup=False, highlight=False)


@app.command("predict")
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A saved student folder (or a run folder holding one).")],
    text: Annotated[str | None, typer.Argument(help="Text to tag; omit to read --file or stdin.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="One text per line.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl (entities with offsets) or conll.")] = "jsonl",
    batch_size: Annotated[int, typer.Option(help="Texts per batch.")] = 64,
    backend: Annotated[
        str,
        typer.Option(
            help="auto (the fp32 ONNX export if the folder has one, else torch), torch, onnx (fp32) or "
            "onnx-int8 (`xtremedistil export` writes the ONNX files)."
        ),
    ] = "auto",
) -> None:
    """Tag entities with a saved student. Long inputs are split into windows, so nothing is dropped."""
    from xtremedistil.student.saved import format_predictions, open_predictor

    predictor = open_predictor(model_dir, backend)
    if text is not None:
        texts = [text]
    elif file is not None:
        texts = read_lines(file)
    else:
        texts = [line.rstrip("\n") for line in sys.stdin]
    for line in format_predictions(predictor, texts, fmt, batch_size):
        sys.stdout.write(line + "\n")


@app.command("export")
def export_cmd(
    model_dir: Annotated[Path, typer.Argument(help="A saved student folder (or a run folder holding one).")],
    quantize: Annotated[
        str | None, typer.Option(help="int8: also write a dynamically quantised copy (onnxruntime).")
    ] = None,
) -> None:
    """Export a saved student to ONNX (model.onnx, dynamic batch and length; with --quantize int8 also
    model.int8.onnx) and check it against PyTorch; `predict --backend onnx` and `load_student(path,
    backend="onnx")` then run it on onnxruntime."""
    from xtremedistil.student.export import export_student
    from xtremedistil.student.saved import student_folder

    if quantize not in (None, "int8"):
        raise typer.BadParameter("only int8 is supported", param_hint="--quantize")
    folder = student_folder(model_dir)
    if folder is None:
        raise XtremeDistilError("not a saved student folder, nor a run folder holding one", path=model_dir)
    manifest = export_student(folder, quantize=quantize == "int8")
    for precision, entry in manifest["files"].items():
        size = (folder / entry["file"]).stat().st_size / 1e6
        console.print(
            f"{precision}: {folder / entry['file']} ({size:.1f} MB; max |ONNX - PyTorch| logit difference "
            f"{entry['max_abs_difference_to_torch']:.1e} on random padded batches)",
            highlight=False,
        )


@app.command("benchmark")
def benchmark_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished `distil` run folder.")],
) -> None:
    """Teacher and student side by side in one process on the dev set's real windows: teacher PyTorch fp32
    and ONNX Runtime int8, student PyTorch fp32 and ONNX Runtime fp32/int8 (exported first if missing);
    throughput at the config's speed.batch_size, batch-1 latency (median, p95) and each variant's dev F1.
    Writes benchmark.json/.md/.png into the run folder."""
    from xtremedistil.deploy import benchmark_markdown, run_benchmark

    result = run_benchmark(run_dir, _reporter())
    console.print(benchmark_markdown(result), markup=False, highlight=False)


@app.command("serve")
def serve_cmd(
    model_dir: Annotated[Path, typer.Argument(help="A saved student folder (or a run folder holding one).")],
    host: Annotated[
        str, typer.Option(help="Address to bind; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    backend: Annotated[
        str, typer.Option(help="auto (fp32 ONNX if exported, else torch), torch, onnx or onnx-int8.")
    ] = "auto",
    batching: Annotated[
        bool, typer.Option(help="Micro-batch concurrent requests into one forward pass.")
    ] = True,
    max_batch_size: Annotated[int, typer.Option(help="Most texts in one forward pass.")] = 64,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a forward pass waits for more requests once it has one.")
    ] = 2.0,
    max_texts: Annotated[int, typer.Option(help="Most texts per request (more: 413).")] = 64,
    max_chars: Annotated[int, typer.Option(help="Most characters per text (more: 413).")] = 2000,
    max_body_kb: Annotated[int, typer.Option(help="Largest request body in KB (more: 413).")] = 1000,
    drain_seconds: Annotated[
        float, typer.Option(help="On SIGTERM/Ctrl-C, how long in-flight requests may take to finish.")
    ] = 30.0,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve a student over HTTP: POST /v1/predict {"texts": [...]} gives entities with character offsets;
    GET / is a web demo, /docs the OpenAPI docs, /health the model and limits, /metrics Prometheus metrics.
    Binds 127.0.0.1 unless --host says otherwise."""
    try:
        from xtremedistil.serve import ServeSettings, serve
    except ImportError as exc:
        raise XtremeDistilError(
            f"serving needs the serve extra ({exc.name} is missing): pip install 'xtremedistil[serve]'"
        ) from exc
    for name, value in (
        ("--max-batch-size", max_batch_size),
        ("--max-texts", max_texts),
        ("--max-chars", max_chars),
    ):
        if value < 1:
            raise typer.BadParameter("must be at least 1", param_hint=name)
    if max_wait_ms < 0:
        raise typer.BadParameter("must be >= 0", param_hint="--max-wait-ms")
    settings = ServeSettings(
        batching=batching,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_texts=max_texts,
        max_chars=max_chars,
        max_body_bytes=max_body_kb * 1000,
    )
    serve(model_dir, host, port, backend, settings, access_log, drain_seconds)


def read_lines(path: Path) -> list[str]:
    from xtremedistil.errors import DataError

    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError("not valid UTF-8", path=path, line=line) from None


@app.command("report")
def report_cmd(run_dir: Annotated[Path, typer.Argument(help="A finished `distil` run folder.")]) -> None:
    """Rebuild report.md, report.json and report.png from a run folder's metrics and print the report."""
    from xtremedistil.report import write_report

    if not (run_dir / "metrics.json").is_file():
        raise XtremeDistilError("no metrics.json: not a finished distil run folder", path=run_dir)
    console.print(write_report(run_dir), markup=False, highlight=False)


@teacher_app.command("list")
def teacher_list() -> None:
    """List the named teachers (any local HF folder works too)."""
    from xtremedistil.teacher.registry import DEFAULT_TEACHER, TEACHERS

    for name, spec in TEACHERS.items():
        mark = " (default)" if name == DEFAULT_TEACHER else ""
        console.print(f"{name}{mark}: {spec.description}", highlight=False)
    console.print(
        "\nAny local HF folder (or hub name, online) is a base to fine-tune; a token-classification model you "
        "already fine-tuned is distilled as it is with teacher.name = FOLDER and teacher.fine_tune = false "
        '(README, "Distil your own model").',
        highlight=False,
    )


@teacher_app.command("convert")
def teacher_convert(
    name: Annotated[str, typer.Argument(help="Teacher name from `teacher list`.")] = "multilingual-e5-small",
) -> None:
    """Convert (once per machine) and print the local HF folder of a named teacher."""
    from xtremedistil.teacher.registry import resolve_teacher

    console.print(str(resolve_teacher(name)))


@app.command("evaluate")
def evaluate(
    model_dir: Annotated[
        Path,
        typer.Argument(
            help="A run folder (its student; --teacher for its teacher), a saved student folder, "
            "or a fine-tuned teacher folder."
        ),
    ],
    data: Annotated[str, typer.Option(help="embedded:<name>, a corpus folder, or a file.")],
    split: Annotated[str, typer.Option(help="Split to score: train, dev or test.")] = "test",
    languages: Annotated[str | None, typer.Option(help="Comma-separated languages to keep.")] = None,
    lang: Annotated[str | None, typer.Option(help="Language of a single data file.")] = None,
    scheme: Annotated[
        str | None,
        typer.Option(
            help="strict-word (seqeval strict IOB2) or conlleval-subword (the paper's); default: the run's, "
            "else strict-word."
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write the metrics JSON here.")] = None,
    teacher: Annotated[bool, typer.Option("--teacher", help="Score a run folder's teacher.")] = False,
    every_sentence: Annotated[
        bool,
        typer.Option("--every-sentence", help="Score the whole split, not the run's sample of it."),
    ] = False,
) -> None:
    """Score a saved student or a fine-tuned teacher per language (P, R, F1 per type; mean ± std), at gold
    word boundaries and end to end on the raw text. A model of a run that read the same data is scored on
    the run's sample of it (its max_dev/max_test and seed), reproducing the run's report."""
    from xtremedistil.pipeline import evaluate_model_dir

    result = evaluate_model_dir(
        model_dir,
        data,
        split=split,
        languages=languages,
        lang=lang,
        scheme=scheme,
        output=output,
        teacher=teacher,
        every_sentence=every_sentence,
        reporter=_reporter(),
    )
    console.print(result, markup=False, highlight=False)


@data_app.command("stats")
def data_stats(
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="embedded:<name>, corpus folders or files; default: every embedded corpus."),
    ] = None,
) -> None:
    """Sentences, words and entities per language, split and type."""
    from xtremedistil.data.sources import stats_table

    console.print(stats_table(sources), markup=False, highlight=False)


@data_app.command("check")
def data_check(config: ConfigArg = None, set_: SetOpt = None, task: TaskOpt = "ner") -> None:
    """What a config's labeled data reads as: per file, the format, the tag scheme (detected or named),
    sentences and lines read leniently; then sentences, words and entities per language, split and type
    (classification: texts per language, split and label). A file that cannot be read stops with its file
    and line."""
    from xtremedistil.data.sources import check_table, check_texts_table

    cfg = _load(config, set_, None, task)
    check = check_texts_table if cfg.task == "classification" else check_table
    console.print(check(cfg.data.labeled, cfg.seed), markup=False, highlight=False)


@config_app.command("default")
def config_default(task: Annotated[str, typer.Option(help="Task name.")] = "ner") -> None:
    """Print the commented default config of a task (a good starting point for your own)."""
    from xtremedistil.config import default_config_text

    console.print(default_config_text(task), markup=False, highlight=False)


@config_app.command("show")
def config_show(
    config: ConfigArg = None, set_: SetOpt = None, output: OutputOpt = None, task: TaskOpt = "ner"
) -> None:
    """Validate a config and print it resolved, with every default filled in."""
    from xtremedistil.config import config_to_toml

    console.print(config_to_toml(_load(config, set_, output, task)), markup=False, highlight=False)


INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
GLOBAL_FLAGS = ("--debug", "--quiet")
"""Global options that may also be written after the command (``xtremedistil plan --debug``)."""

# Typer 0.29 bundles its own copy of click: its usage errors derive from ``typer.TyperException``, not from
# the installed click's ``ClickException``; both are caught (typer's version is bounded in pyproject.toml).
USAGE_ERRORS: tuple[type[Exception], ...] = (
    click.ClickException,
    getattr(typer, "TyperException", click.ClickException),
)
ABORTS: tuple[type[BaseException], ...] = (
    KeyboardInterrupt,
    click.exceptions.Abort,
    getattr(typer, "Abort", KeyboardInterrupt),
)


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """Move ``--debug``/``--quiet`` in front of the command, wherever they were written (before ``--``)."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if a in GLOBAL_FLAGS]
    return flags + [a for a in argv[:end] if a not in GLOBAL_FLAGS] + argv[end:]


OS_HINTS = {
    errno.ENOSPC: " (the disk is full: files being written were not put in place, finished ones are intact; "
    "free space and rerun to resume)",
    errno.EACCES: " (no permission: choose another output folder with --output)",
    errno.EROFS: " (a read-only file system: choose another output folder with --output)",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one line and exit 2, usage errors print the usage and exit 2, an
    interrupt prints "interrupted" and exits 130; tracebacks only with --debug."""
    argv = _hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in argv
    try:
        code = app(args=argv, standalone_mode=False, prog_name="xtremedistil")
    except XtremeDistilError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except USAGE_ERRORS as exc:
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    except ABORTS:
        code = INTERRUPTED
    except OSError as exc:
        if debug:
            raise
        hint = OS_HINTS.get(exc.errno or 0, "")
        err_console.print(f"[bold red]error:[/] {exc}{hint}", highlight=False, soft_wrap=True)
        return 2
    if code == INTERRUPTED:  # typer turns Ctrl-C into a silent exit code 130
        err_console.print("interrupted: finished steps are saved; rerun the same command to resume")
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
