"""A saved student out of PyTorch: ONNX (fp32, and int8 by onnxruntime's dynamic quantisation), and an
onnxruntime forward that ``load_student(path, backend="onnx")`` uses.

The graph takes what the tokenizer gives: ``input_ids`` (batch x length, the teacher's sub-word ids with the
tokenizer's specials, right-padded) and ``lengths`` (batch, with the specials); the map from teacher ids to
the student's kept vocabulary, the padding and the BiLSTM's per-row lengths are inside it. Both axes are
dynamic. ``onnx.json`` in the student folder says which files exist, their inputs and outputs, and the
parity with PyTorch measured at export.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xtremedistil.errors import XtremeDistilError
from xtremedistil.io import atomic_path, read_json, write_json
from xtremedistil.student.model import StudentBase
from xtremedistil.tasks.base import Batch

ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
MANIFEST = "onnx.json"
OPSET = 17
PARITY_TOLERANCE = 1e-4


class LogitsGraph(nn.Module):
    """What an export traces: ``model.logits`` of two tensors (the student's ids and lengths, the teacher's
    ids and attention mask)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.model.logits(input_ids, second)


def _example(student: StudentBase, batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random teacher ids (kept and unkept) with ragged lengths; the first row is full length."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, student.config.teacher_vocab_size, (batch, length), generator=generator)
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0] = length
    return ids, lengths


def parity(
    student: StudentBase, session: Any, shapes: tuple[tuple[int, int], ...] = ((7, 23), (1, 9), (3, 1))
) -> float:
    """Largest |ONNX - PyTorch| over the real positions of random padded batches (and batch 1); for a
    pooled student, over its one row per text."""
    worst = 0.0
    for k, (batch, length) in enumerate(shapes):
        ids, lengths = _example(student, batch, length, seed=k)
        with torch.no_grad():
            reference = student.logits(ids, lengths).numpy()
        out = session.run(None, {"input_ids": ids.numpy(), "lengths": lengths.numpy()})[0]
        if reference.ndim == 2:  # a pooled (classification) student: one row per text
            worst = max(worst, float(np.abs(out - reference).max()))
            continue
        real = np.arange(length)[None, :] < lengths.numpy()[:, None]
        worst = max(worst, float(np.abs(out - reference)[real].max()))
    return worst


def session(path: Path, threads: int = 0) -> Any:
    """An onnxruntime CPU session (``threads`` intra-op threads; 0 = onnxruntime's choice)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_export(
    graph: nn.Module, example: tuple[torch.Tensor, ...], path: Path, inputs: dict[str, int]
) -> Path:
    """Export ``graph`` (outputs: ``logits`` [batch, length, labels]) to ``path`` atomically; ``inputs``:
    name -> rank (rank 2: batch and length axes dynamic; rank 1: batch)."""
    axes: dict[str, dict[int, str]] = {
        name: ({0: "batch", 1: "length"} if rank == 2 else {0: "batch"}) for name, rank in inputs.items()
    }
    axes["logits"] = {0: "batch", 1: "length"}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            graph.eval(),
            example,
            str(tmp),
            dynamo=False,  # the TorchScript exporter: the dynamo one is far slower and fixes the batch axis
            opset_version=OPSET,
            input_names=list(inputs),
            output_names=["logits"],
            dynamic_axes=axes,
        )
    return path


def quantize_int8(fp32: Path, path: Path, op_types: list[str] | None = None) -> Path:
    """onnxruntime's dynamic int8 quantisation (weights int8, activations quantised on the fly); ``op_types``
    limits it to those operators (default: every one onnxruntime can quantise)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice on static-quantisation pre-processing does not apply here
    try:
        with atomic_path(path) as tmp:
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=op_types)
    finally:
        root.setLevel(level)
    return path


def export_student(folder: str | Path, quantize: bool = False) -> dict[str, Any]:
    """Write ``model.onnx`` (and with ``quantize`` ``model.int8.onnx``) and ``onnx.json`` into a saved
    student folder; returns the manifest. fp32 must match PyTorch within ``PARITY_TOLERANCE``."""
    from xtremedistil.student.saved import load_student_model

    folder = Path(folder)
    student, meta = load_student_model(folder)
    graph = LogitsGraph(student).eval()
    ids, lengths = _example(student, 3, 11, seed=99)
    fp32 = folder / ONNX_FILES["fp32"]
    onnx_export(graph, (ids, lengths), fp32, {"input_ids": 2, "lengths": 1})
    difference = parity(student, session(fp32))
    if difference > PARITY_TOLERANCE:
        fp32.unlink()
        raise XtremeDistilError(
            f"the ONNX export differs from PyTorch by {difference:.2e} (> {PARITY_TOLERANCE:g}); not written",
            path=folder,
        )
    files = {"fp32": {"file": fp32.name, "max_abs_difference_to_torch": difference}}
    if quantize:
        int8 = quantize_int8(fp32, folder / ONNX_FILES["int8"])
        files["int8"] = {"file": int8.name, "max_abs_difference_to_torch": parity(student, session(int8))}
    else:
        (folder / ONNX_FILES["int8"]).unlink(missing_ok=True)  # never a stale int8 beside a new fp32
    import onnxruntime

    manifest = {
        "inputs": {
            "input_ids": "int64 [batch, length]: teacher sub-word ids with the tokenizer's specials, right-padded",
            "lengths": "int64 [batch]: real length of each row, specials included",
        },
        "outputs": {
            "logits": "float32 [batch, labels]: one row per text"
            if student.config.pooling != "none"
            else "float32 [batch, length, labels]"
        },
        "labels": meta["labels"],
        "opset": OPSET,
        "files": files,
        "exported": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }
    write_json(folder / MANIFEST, manifest)
    return manifest


class OnnxForward:
    """A model's ONNX export on onnxruntime, as its forward: a ``Batch`` in, torch logits out. The graph's
    input names say what it is fed: ``lengths`` (a student) or ``attention_mask`` (a teacher)."""

    def __init__(self, folder: str | Path, precision: str = "fp32", threads: int = 0) -> None:
        folder = Path(folder)
        manifest = read_json(folder / MANIFEST) if (folder / MANIFEST).is_file() else {}
        if precision not in manifest.get("files", {}):
            flag = " --quantize int8" if precision == "int8" else ""
            raise XtremeDistilError(
                f"no {precision} ONNX model in this folder: run `xtremedistil export {folder}{flag}`",
                path=folder,
            )
        threads = threads or len(os.sched_getaffinity(0))
        self.session = session(folder / manifest["files"][precision]["file"], threads)
        self.precision = precision

        self.by_lengths = "lengths" in {i.name for i in self.session.get_inputs()}

    def __call__(self, batch: Batch) -> torch.Tensor:
        mask = batch.attention_mask
        second = ("lengths", mask.sum(1)) if self.by_lengths else ("attention_mask", mask)
        out = self.session.run(None, {"input_ids": batch.input_ids.numpy(), second[0]: second[1].numpy()})[0]
        return torch.from_numpy(out)
