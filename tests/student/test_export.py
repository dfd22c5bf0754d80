"""ONNX export of a saved student: parity with PyTorch, dynamic axes, int8, the onnx backend, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.student.test_model import LABELS, _batch, tiny_student
from xtremedistil.cli import main
from xtremedistil.errors import XtremeDistilError
from xtremedistil.student.export import MANIFEST, PARITY_TOLERANCE, OnnxForward, export_student
from xtremedistil.student.saved import load_student, save_student

TEXTS = ["alice lives in paris", "bob works at acme corp in london , the city", "alice"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from tests.conftest import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    folder = tmp_path_factory.mktemp("export") / "student"
    student = tiny_student(tokenizer).eval()
    student.set_backoff(5 + np.arange(len(tokenizer)) % 25)  # a backoff map (to kept ids 5..29) rides along
    save_student(student, tokenizer, LABELS, folder, {"max_length": 16})
    manifest = export_student(folder, quantize=True)
    return folder, manifest, tokenizer


def test_fp32_matches_pytorch_on_real_padded_batches_and_batch_one(exported):
    folder, manifest, tokenizer = exported
    assert manifest["files"]["fp32"]["max_abs_difference_to_torch"] <= PARITY_TOLERANCE
    torch_model = load_student(folder)
    onnx = OnnxForward(folder)
    for texts in (TEXTS, TEXTS[:1]):  # ragged lengths with padding, then batch 1
        batch = _batch(tokenizer, texts)
        with torch.no_grad():
            reference = torch_model.student(batch).logits
        out = onnx(batch)
        real = batch.attention_mask.bool()
        assert out.shape == reference.shape
        assert (out - reference)[real].abs().max() <= PARITY_TOLERANCE


def test_int8_is_written_and_runs(exported):
    folder, manifest, tokenizer = exported
    assert (folder / manifest["files"]["int8"]["file"]).is_file()
    assert json.loads((folder / MANIFEST).read_text())["files"].keys() == {"fp32", "int8"}
    logits = OnnxForward(folder, "int8")(_batch(tokenizer, TEXTS))
    assert logits.shape[-1] == len(LABELS) and torch.isfinite(logits).all()


def test_the_onnx_backend_predicts_what_pytorch_predicts(exported):
    folder, _, _ = exported
    text = ["alice works at acme corp in paris", "bob"]
    assert load_student(folder, backend="onnx").predict(text) == load_student(
        folder, backend="torch"
    ).predict(text)
    assert isinstance(load_student(folder).forward, OnnxForward)  # auto: the export, once there is one


def test_missing_export_and_unknown_backend_are_clear(tmp_path, tiny_tokenizer):
    folder = save_student(tiny_student(tiny_tokenizer), tiny_tokenizer, LABELS, tmp_path / "s", {})
    with pytest.raises(XtremeDistilError, match="xtremedistil export"):
        load_student(folder, backend="onnx")
    with pytest.raises(XtremeDistilError, match="unknown backend"):
        load_student(folder, backend="tensorrt")


def test_export_and_predict_from_the_command_line(tmp_path, tiny_tokenizer, capsys):
    folder = save_student(tiny_student(tiny_tokenizer), tiny_tokenizer, LABELS, tmp_path / "s", {})
    assert not isinstance(load_student(folder).forward, OnnxForward)  # auto: PyTorch before any export
    assert main(["export", str(folder)]) == 0
    assert "fp32:" in capsys.readouterr().out and not (folder / "model.int8.onnx").exists()
    assert main(["predict", str(folder), "alice lives in paris", "--backend", "onnx"]) == 0
    onnx_line = json.loads(capsys.readouterr().out)
    assert main(["predict", str(folder), "alice lives in paris", "--backend", "torch"]) == 0
    assert json.loads(capsys.readouterr().out) == onnx_line
    assert main(["export", str(tmp_path)]) != 0  # not a student folder: one line, no traceback
    assert "not a saved student folder" in capsys.readouterr().err
