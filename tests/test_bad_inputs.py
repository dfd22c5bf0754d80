"""Bad input through the command line: each case gets one clear line naming the file, line or config key, exit
code 2 and no traceback; or, for inputs that are odd but legal, a documented handled result."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from tests.serve.helpers import saved_tiny_student
from xtremedistil.cli import main

CONLL_OK = "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"


def fails(capsys, args: list[str], *fragments: str) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 0 or err.startswith("Usage") or "Usage:" in err, err  # one line (usage aside)
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def labeled_config(tmp_path, body: str, name: str = "data.conll", extra: str = "", raw: bytes | None = None):
    data = tmp_path / name
    if raw is not None:
        data.write_bytes(raw)
    else:
        data.write_text(body, encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text(f'[[data.labeled]]\ntrain = "{data}"\nlang = "en"\n{extra}', encoding="utf-8")
    return config, data


# ------------------------------------------------------------------------------------------- data files

DATA_CASES = {
    "latin-1 bytes read as UTF-8": (
        None,
        "Z\xfcrich B-LOC\n".encode("latin-1"),
        "",
        ["data.conll:1", "encoding="],
    ),
    "a line without a tag": ("Paris\n", None, "", ["data.conll:1", "at least 2"]),
    "a tag with an unknown prefix": ("Paris X-LOC\n", None, "", ["data.conll:1", "'X-LOC'"]),
    "a tag without a type": ("Paris B-\n", None, "", ["data.conll:1", "'B-'"]),
    "an empty file": ("", None, "", ["data.conll", "empty"]),
    "binary garbage": (None, bytes(range(256)) * 4, "", ["data.conll", "cannot decode"]),
    "a TSV line with three columns": (
        "Paris\tB-LOC\nis\tO\tX\n",
        None,
        "",
        ["data.conll:2", "tab-separated"],
    ),
    "an IOBES tag under scheme iob2": (
        "Paris S-LOC\n",
        None,
        'scheme = "iob2"\n',
        ["data.conll:1", "not IOB2"],
    ),
    "another column count, strict": (
        CONLL_OK + "Bonn NNPB-NP B-LOC\n",
        None,
        "strict_columns = true\n",
        ["data.conll:3", "inconsistent column count"],
    ),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_files(tmp_path, capsys, case):
    body, raw, extra, fragments = DATA_CASES[case]
    config, _ = labeled_config(tmp_path, body or "", extra=extra, raw=raw)
    fails(capsys, ["data", "check", str(config)], *fragments)


def test_corrupt_gzip(tmp_path, capsys):
    config, _ = labeled_config(tmp_path, "", name="data.conll.gz", raw=gzip.compress(CONLL_OK.encode())[:-12])
    fails(capsys, ["data", "check", str(config)], "data.conll.gz", "gzip")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{not json", "not a JSON object"),
        ('{"tokens": ["a"], "ner_tags": [7]}', "label_names"),
        ('{"tokens": ["a", "b"], "ner_tags": ["O"]}', "same length"),
        ('["a", "O"]', '"tokens"'),
    ],
)
def test_bad_jsonl(tmp_path, capsys, line, fragment):
    config, _ = labeled_config(tmp_path, line + "\n", name="data.jsonl")
    fails(capsys, ["data", "check", str(config)], "data.jsonl:1", fragment)


def test_a_missing_data_file(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(f'[[data.labeled]]\ntrain = "{tmp_path / "nope.conll"}"\n')
    fails(capsys, ["data", "check", str(config)], "nope.conll", "not found")


def test_a_huge_line_is_read(tmp_path, capsys):  # handled: a 1 MB token is a token
    config, _ = labeled_config(tmp_path, "x" * 1_000_000 + " O\nParis B-LOC\n")
    assert main(["data", "check", str(config)]) == 0
    assert "| en | train | 1 | 2 |" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ configs

CONFIG_CASES = {
    "an unknown key": ("[teacher]\nepoch = 3\n", ["teacher.epoch"]),
    "a wrong type": ('[teacher]\nepochs = "three"\n', ["teacher.epochs"]),
    "an out-of-range value": ("[teacher]\nlr = 5\n", ["teacher.lr"]),
    "a TOML syntax error": ("[teacher\nepochs = 3\n", ["c.toml", "line 1"]),
    "an unknown strategy": ('[distil]\nstrategy = "D9"\n', ["distil.strategy"]),
    "source and split files together": (
        '[[data.labeled]]\nsource = "embedded:wnut16-en"\ntrain = "x.conll"\n',
        ["data.labeled", "not both"],
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_configs(tmp_path, capsys, case):
    text, fragments = CONFIG_CASES[case]
    config = tmp_path / "c.toml"
    config.write_text(text, encoding="utf-8")
    fails(capsys, ["config", "show", str(config)], *fragments)


def test_a_missing_config(tmp_path, capsys):
    fails(capsys, ["config", "show", str(tmp_path / "none.toml")], "none.toml")


def test_a_bad_override(capsys):
    fails(capsys, ["config", "show", "--set", "teacher.epochs"], "teacher.epochs")


# -------------------------------------------------------------------------------------- saved students


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return saved_tiny_student(tmp_path_factory.mktemp("bad") / "student")


def _broken_copy(student, tmp_path, edit):
    folder = tmp_path / "student"
    shutil.copytree(student, folder)
    edit(folder)
    return folder


STUDENT_CASES = {
    "garbage weights": (
        lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 100),
        ["model.safetensors"],
    ),
    "missing weights": (lambda f: (f / "model.safetensors").unlink(), ["model.safetensors"]),
    "a vocabulary that does not match the weights": (
        lambda f: (f / "vocab.json").write_text(json.dumps(json.loads((f / "vocab.json").read_text())[:-3])),
        ["student"],
    ),
    "a student.json that is not JSON": (lambda f: (f / "student.json").write_text("{oops"), ["student.json"]),
    "a missing tokenizer": (lambda f: (f / "tokenizer.json").unlink(), ["tokenizer"]),
}


@pytest.mark.parametrize("case", list(STUDENT_CASES))
def test_broken_student_folders(tmp_path, capsys, student, case):
    edit, fragments = STUDENT_CASES[case]
    folder = _broken_copy(student, tmp_path, edit)
    fails(capsys, ["predict", str(folder), "alice"], *fragments)


def test_not_a_student_folder(tmp_path, capsys):
    fails(capsys, ["predict", str(tmp_path), "alice"], "not a saved student folder")


def test_predict_from_a_missing_file(tmp_path, capsys, student):
    fails(capsys, ["predict", str(student), "--file", str(tmp_path / "none.txt")], "none.txt")


def test_predict_with_an_unknown_backend(capsys, student):
    fails(capsys, ["predict", str(student), "alice", "--backend", "tpu"], "unknown backend")


# ------------------------------------------------------------------------- odd but legal predict inputs


@pytest.mark.parametrize(
    "text",
    [
        "",  # nothing to tag
        "alice \u0000\u0007 lives\u200b in\tparis\u2028",  # control and invisible characters
        "alice Владимир 江泽民 لندن महात्मा paris",  # mixed scripts
        "a" * 10_000,  # one very long word
        ("alice lives in paris . " * 45_000)[:1_000_000],  # 1 MB of text
    ],
    ids=["empty", "controls", "mixed-scripts", "long-word", "1MB"],
)
def test_odd_predict_inputs_are_handled(capsys, student, text):
    assert main(["predict", str(student), text]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["text"] == text
    for entity in line["entities"]:  # offsets always index the input
        assert text[entity["start"] : entity["end"]] == entity["text"]


# --------------------------------------------------------------------------- a full disk while writing


def test_a_full_disk_while_writing_leaves_no_half_file(tmp_path, capsys, student, monkeypatch):
    import errno
    import os

    folder = tmp_path / "student"
    shutil.copytree(student, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", full)  # every atomic write fails at its rename
    fails(capsys, ["export", str(folder)], "No space left on device", "the disk is full")
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert after == before  # nothing new, nothing half-written, nothing changed


# ------------------------------------------------------------------------- classification files

CLASSIFY_CASES = {
    "a missing label": ("sentence\tlabel\ngood\t1\nno label\t\n", None, "", ["data.tsv:3", "missing label"]),
    "an empty text": ("sentence\tlabel\ngood\t1\n\t0\n", None, "", ["data.tsv:3", "empty text"]),
    "a wrong column count": ("sentence\tlabel\ngood\t1\tx\n", None, "", ["data.tsv:2", "3 TSV columns"]),
    "an undecodable byte": (None, b"sentence\tlabel\ncaf\xe9\t1\n", "", ["data.tsv:2", "cannot decode"]),
    "an unknown label id": (
        "sentence\tlabel\ngood\t1\nbad\t7\n",
        None,
        'label_names = ["negative", "positive"]\n',
        ["data.tsv:3", "unknown label '7'"],
    ),
    "a label column that holds text": (
        "label\tsentence\n" + "".join(f"a fine film, number {i}\tpos\n" for i in range(3)),
        None,
        "",
        ["data.tsv:2", "label column holds text"],
    ),
}


@pytest.mark.parametrize("case", list(CLASSIFY_CASES))
def test_bad_classification_files(tmp_path, capsys, case):
    body, raw, extra, fragments = CLASSIFY_CASES[case]
    config, _ = labeled_config(tmp_path, body or "", name="data.tsv", extra=extra, raw=raw)
    config.write_text('task = "classification"\n' + config.read_text(encoding="utf-8"), encoding="utf-8")
    fails(capsys, ["data", "check", str(config)], *fragments)
    # the run stops before anything is written into its folder but its config (nothing half-written)
    run = tmp_path / "run"
    fails(capsys, ["distil", str(config), "--output", str(run)], *fragments)
    assert sorted(p.name for p in run.iterdir()) <= [".lock", "config.toml"]


def test_a_test_label_that_train_does_not_have(tmp_path, capsys):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\na\tx\nb\ty\n", encoding="utf-8")
    (tmp_path / "test.tsv").write_text("sentence\tlabel\nc\tz\n", encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text(
        f'task = "classification"\n[[data.labeled]]\ntrain = "{tmp_path / "train.tsv"}"\n'
        f'test = "{tmp_path / "test.tsv"}"\nlang = "en"\n',
        encoding="utf-8",
    )
    fails(capsys, ["data", "check", str(config)], "test split has label(s) 'z'")
