from __future__ import annotations

import pytest

from xtremedistil.cli import main


def test_help_explains_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("distil", "plan", "cache", "predict", "report", "evaluate", "teacher", "data", "config"):
        assert command in out


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
