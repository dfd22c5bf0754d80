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
    assert config.task == "ner" and config.data.labeled
