from __future__ import annotations

import pytest

from xtremedistil.cli import main

COMMANDS = [
    ["distil"],
    ["experiment"],
    ["plan"],
    ["cache"],
    ["predict"],
    ["report"],
    ["evaluate"],
    ["teacher", "train"],
    ["teacher", "list"],
    ["teacher", "convert"],
    ["data", "stats"],
    ["config", "default"],
    ["config", "show"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_its_own_help(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"Usage: xtremedistil {' '.join(command)} " in out


def test_an_unknown_command_is_a_usage_error(capsys):
    assert main(["distill"]) == 2
    err = capsys.readouterr().err
    assert "No such command 'distill'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "--bogus"], "No such option: --bogus"),
        (["evaluate", "somewhere"], "Missing option '--data'"),
        (["predict"], "Missing argument"),
        (["experiment", "--max-params", "many"], "Invalid value for '--max-params'"),
    ],
)
def test_usage_errors_print_usage_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and f"Usage: xtremedistil {argv[0]}" in err and "Traceback" not in err


def test_debug_and_quiet_work_after_the_command(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("Paris\tX-LOC\n", encoding="utf-8")
    with pytest.raises(Exception, match="X-LOC"):  # --debug after the command: the traceback is shown
        main(["data", "stats", str(bad), "--debug"])
    assert main(["plan", "--quiet"]) == 0
    assert "representation" in capsys.readouterr().out


def test_an_interrupt_exits_130_with_a_message(monkeypatch, capsys):
    import xtremedistil.student.schedule as schedule

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(schedule, "plan", interrupted)
    assert main(["plan"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_ctrl_c_on_a_running_command_exits_130():
    """A real SIGINT delivered while a command runs (a command stand-in that says when it is running)."""
    import signal
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "import xtremedistil.student.schedule as schedule\n"
        "def busy(*args, **kwargs):\n"
        "    print('running', file=sys.stderr, flush=True)\n"
        "    time.sleep(120)\n"
        "schedule.plan = busy\n"
        "from xtremedistil.cli import main\n"
        "sys.exit(main(['plan']))\n"
    )
    # a shell without job control starts background jobs with SIGINT ignored, and Python then keeps it
    # ignored: the child starts with the default disposition, as from a terminal
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    for line in process.stderr:  # wait until the command runs (ends early if the process dies)
        if "running" in line:
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in err and "Traceback" not in err


def test_bad_data_file_is_one_line_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("Paris\tB-LOC\nis\tO\nnice\tX-LOC\n", encoding="utf-8")
    assert main(["data", "stats", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3" in err and "Traceback" not in err
    with pytest.raises(Exception, match="X-LOC"):
        main(["--debug", "data", "stats", str(bad)])


def test_unknown_config_key_exits_2(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('[[data.labeled]]\nsource = "embedded:pku-zh"\n[student]\npreset = "huge"\n')
    assert main(["plan", str(config)]) == 2
    assert "student.preset" in capsys.readouterr().err


def test_config_default_and_show(capsys):
    assert main(["config", "default"]) == 0
    assert "[distil]" in capsys.readouterr().out
    assert main(["config", "show", "--set", "distil.strategy=D1"]) == 0
    assert 'strategy = "D1"' in capsys.readouterr().out


def test_predict_missing_model_is_an_error(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "hello"]) == 2
    assert "not a saved student folder" in capsys.readouterr().err


def test_find_teacher_folder_follows_a_reused_teacher(tmp_path):
    from xtremedistil.pipeline import find_teacher_folder
    from xtremedistil.teacher.model import META_FILE

    first = tmp_path / "first"
    (first / "teacher").mkdir(parents=True)
    (first / "teacher" / META_FILE).write_text("{}")
    second, third = tmp_path / "second", tmp_path / "third"
    for run, reused in ((second, first), (third, second)):
        run.mkdir()
        (run / "config.toml").write_text(f'[teacher]\nrun = "{reused}"\n')
    assert find_teacher_folder(first) == first / "teacher"
    assert find_teacher_folder(third) == first / "teacher"  # a chain of reuse ends at the trained one
    assert find_teacher_folder(first / "teacher") == first / "teacher"
    assert (
        find_teacher_folder(tmp_path / "elsewhere") == tmp_path / "elsewhere"
    )  # left for the loader to refuse
