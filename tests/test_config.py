from __future__ import annotations

from pathlib import Path

import pytest

from xtremedistil.config import config_to_toml, load_config, parse_override
from xtremedistil.errors import ConfigError


def test_default_config_is_valid_and_round_trips(tmp_path):
    config = load_config(None)
    assert config.teacher.name == "multilingual-e5-small"
    assert {s.source for s in config.data.labeled} == {
        "embedded:pku-zh",
        "embedded:wnut16-en",
        "embedded:hironsan-ja",
    }
    path = tmp_path / "resolved.toml"
    path.write_text(config_to_toml(config))
    assert load_config(path) == config


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[data.labeled]]\nsource = "x"\n[teacher]\nepochz = 3\n')
    with pytest.raises(ConfigError, match=r"unknown key 'teacher.epochz'"):
        load_config(path)


def test_bad_value_is_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[data.labeled]]\nsource = "x"\n[teacher]\nlr = -1\n')
    with pytest.raises(ConfigError, match=r"teacher.lr: Input should be greater than 0"):
        load_config(path)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    path = tmp_path / "broken.toml"
    path.write_text("[teacher\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_overrides():
    config = load_config(None, ["teacher.epochs=7", "output_dir=runs/x", "teacher.bucketing=false"])
    assert config.teacher.epochs == 7 and config.output_dir == "runs/x" and config.teacher.bucketing is False
    assert parse_override("a.b = 'q'") == ("a.b", "q")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("teacher.epochs")
    with pytest.raises(ConfigError, match="teacher.epochs"):
        load_config(None, ["teacher.epochs=zero"])


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml")), ids=lambda p: p.name
)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    assert config.task in ("ner", "classification") and config.data.labeled


@pytest.mark.parametrize("task", ["ner", "classification"])
def test_default_config_of_each_task(task):
    config = load_config(None, task=task)
    assert config.task == task and config.data.labeled


def test_ready_teacher_keys_are_checked_together():
    config = load_config(
        None, ["teacher.name=some/model", "teacher.fine_tune=false", "teacher.label_map={A='B'}"]
    )
    assert config.teacher.label_map == {"A": "B"} and config.distil.layer is None  # None: the middle layer
    with pytest.raises(ConfigError, match="exclude each other"):
        load_config(None, ["teacher.run=runs/x", "teacher.fine_tune=false"])
    with pytest.raises(ConfigError, match="are for a ready model") as caught:
        load_config(None, ["teacher.label_map={PERSON='PER'}"])
    assert "got {" not in str(caught.value)  # the section's own message, not a dump of the section


def test_a_run_folder_of_an_older_version_keeps_its_teacher(tmp_path):
    """Keys a newer version adds (with defaults) do not make an older run folder look like another teacher."""
    import tomllib

    import tomli_w

    from xtremedistil.pipeline import prepare_run_dir

    config = load_config(None, [f"output_dir={tmp_path / 'run'}"])
    prepare_run_dir(config)
    saved = tmp_path / "run" / "config.toml"
    tree = tomllib.loads(saved.read_text())
    for key in ("fine_tune", "label_map", "reading"):
        tree["teacher"].pop(key, None)
    saved.write_text(tomli_w.dumps(tree))
    prepare_run_dir(config)  # not refused
    with pytest.raises(ConfigError, match="different teacher"):
        prepare_run_dir(load_config(None, [f"output_dir={tmp_path / 'run'}", "teacher.fine_tune=false"]))
