"""Where the student's ONNX time goes, and what was tried to cut it. Writes a section of docs/RESULTS.md.

    python benchmarks/onnx_profile.py RUN_DIR [RUN_DIR ...]

For each run's exported student (``xtremedistil export --quantize int8`` first), on the dev set's real
windows in length-bucketed batches of 32 (as ``xtremedistil benchmark``), in one process:
- onnxruntime's own profile of the fp32 and int8 graphs: the share of kernel time per operator type;
- session settings: 2 intra-op threads (the default here), 1 thread, and two parallel inter-op threads
  (the forward and backward LSTMs are independent nodes);
- the alternative graph: one bidirectional LSTM node over packed sequences (``pack_padded_sequence``)
  instead of two one-directional LSTMs with the backward input reversed within lengths; its parity with
  PyTorch and its speed, fp32 and int8.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from results import provenance, write_section
from serve_load import dev_texts
from xtremedistil.batching import iterate_batches
from xtremedistil.student.export import MANIFEST, onnx_export, quantize_int8
from xtremedistil.student.model import PAD
from xtremedistil.student.saved import load_student, student_folder
from xtremedistil.training import setup_torch

REPEATS = 5


class PackedBiLSTMGraph(nn.Module):
    """The student's logits with its two LSTMs as one bidirectional LSTM over packed sequences."""

    def __init__(self, student) -> None:
        super().__init__()
        self.student = student
        forward, backward = student.bilstm.forward_lstm, student.bilstm.backward_lstm
        self.lstm = nn.LSTM(forward.input_size, forward.hidden_size, batch_first=True, bidirectional=True)
        with torch.no_grad():
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(self.lstm, name).copy_(getattr(forward, name))
                getattr(self.lstm, name + "_reverse").copy_(getattr(backward, name))

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        s = self.student
        positions = torch.ones_like(input_ids).cumsum(1) - 1
        ids = s.student_ids(input_ids).masked_fill(positions >= lengths.unsqueeze(1), PAD)
        packed = nn.utils.rnn.pack_padded_sequence(
            s.embedding(ids), lengths, batch_first=True, enforce_sorted=False
        )
        states, _ = nn.utils.rnn.pad_packed_sequence(
            self.lstm(packed)[0], batch_first=True, total_length=input_ids.shape[1]
        )
        return s.head(F.gelu(s.projection(states)))


def dev_batches(run: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], int, object]:
    predictor = load_student(student_folder(run), "torch")
    records = predictor.units(dev_texts(run))
    encoded, _ = predictor.task.encode(records, predictor.tokenizer, predictor.max_length)
    batches = [
        (b.input_ids.numpy(), b.attention_mask.sum(1).numpy())
        for b in iterate_batches(encoded, 32, predictor.special, shuffle=False)
    ]
    return batches, len(encoded), predictor.student


def make_session(path: Path, intra: int, inter: int = 1, profile: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra
    options.inter_op_num_threads = inter
    options.execution_mode = ort.ExecutionMode.ORT_PARALLEL if inter > 1 else ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_profiling = profile
    if profile:
        options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "xtremedistil-ort")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def throughputs(sessions: dict[str, ort.InferenceSession], batches, windows: int) -> dict[str, float]:
    """Windows/s of each session, the sessions interleaved round by round; median of REPEATS rounds."""
    seen: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(REPEATS):
        for name, s in sessions.items():
            for ids, lengths in batches[:3]:
                s.run(None, {"input_ids": ids, "lengths": lengths})
            start = time.perf_counter()
            for ids, lengths in batches:
                s.run(None, {"input_ids": ids, "lengths": lengths})
            seen[name].append(windows / (time.perf_counter() - start))
    return {name: float(np.median(v)) for name, v in seen.items()}


def op_shares(path: Path, batches) -> dict[str, float]:
    s = make_session(path, 2, profile=True)
    for _ in range(3):
        for ids, lengths in batches:
            s.run(None, {"input_ids": ids, "lengths": lengths})
    trace = Path(s.end_profiling())
    totals: collections.Counter = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    trace.unlink()
    everything = sum(totals.values())
    return {op: 100 * t / everything for op, t in totals.most_common()}


def packed_export(student, folder: Path) -> tuple[Path, Path, float]:
    graph = PackedBiLSTMGraph(student).eval()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, student.config.teacher_vocab_size, (5, 17), generator=generator)
    lengths = torch.tensor([17, 9, 3, 12, 2])
    fp32 = onnx_export(graph, (ids, lengths), folder / "packed.onnx", {"input_ids": 2, "lengths": 1})
    with torch.no_grad():
        reference = student.logits(ids, lengths).numpy()
    out = make_session(fp32, 2).run(None, {"input_ids": ids.numpy(), "lengths": lengths.numpy()})[0]
    real = np.arange(17)[None] < lengths.numpy()[:, None]
    return fp32, quantize_int8(fp32, folder / "packed.int8.onnx"), float(np.abs(out - reference)[real].max())


def matmul_only_int8(fp32: Path, folder: Path) -> Path:
    """int8 for the matrix products outside the LSTMs only; the LSTM nodes stay fp32."""
    return quantize_int8(fp32, folder / f"{fp32.stem}.matmul-int8.onnx", op_types=["MatMul", "Gather"])


def profile_run(run: Path) -> dict:
    folder = student_folder(run)
    files = json.loads((folder / MANIFEST).read_text())["files"]
    fp32, int8 = folder / files["fp32"]["file"], folder / files["int8"]["file"]
    batches, windows, student = dev_batches(run)
    with tempfile.TemporaryDirectory() as tmp:
        packed32, packed8, difference = packed_export(student, Path(tmp))
        matmul8 = matmul_only_int8(fp32, Path(tmp))
        packed_matmul8 = matmul_only_int8(packed32, Path(tmp))
        sessions = {
            "fp32, 2 threads": make_session(fp32, 2),
            "fp32, 1 thread": make_session(fp32, 1),
            "fp32, 2 parallel inter-op threads": make_session(fp32, 1, 2),
            "fp32, one packed bidirectional LSTM": make_session(packed32, 2),
            "int8, 2 threads": make_session(int8, 2),
            "int8, 1 thread": make_session(int8, 1),
            "int8, 2 parallel inter-op threads": make_session(int8, 1, 2),
            "int8, one packed bidirectional LSTM": make_session(packed8, 2),
            "int8, LSTMs left in fp32": make_session(matmul8, 2),
            "int8, LSTMs left in fp32, one packed bidirectional LSTM": make_session(packed_matmul8, 2),
        }
        speeds = throughputs(sessions, batches, windows)
    return {
        "windows": windows,
        "batches": len(batches),
        "speeds": speeds,
        "ops": {"fp32": op_shares(fp32, batches), "int8": op_shares(int8, batches)},
        "packed_max_abs_difference": difference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="finished distil runs with an exported student")
    args = parser.parse_args()
    setup_torch(0, 0)
    start = time.perf_counter()
    parts = []
    for run in args.runs:
        result = profile_run(run)
        (run / "onnx-profile.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        base = {p: result["speeds"][f"{p}, 2 threads"] for p in ("fp32", "int8")}
        rows = [
            f"| {name} | {speed:,.0f} | {speed / base[name.split(',')[0]]:.2f}× |"
            for name, speed in result["speeds"].items()
        ]
        ops = sorted(
            set(result["ops"]["fp32"]) | set(result["ops"]["int8"]),
            key=lambda op: -max(result["ops"]["fp32"].get(op, 0), result["ops"]["int8"].get(op, 0)),
        )
        op_rows = [
            f"| {op} | {result['ops']['fp32'].get(op, 0):.0f}% | {result['ops']['int8'].get(op, 0):.0f}% |"
            for op in ops[:8]
        ]
        parts += [
            f"### `{run}`\n",
            f"{result['windows']:,} dev windows in {result['batches']} length-bucketed batches of 32; median of "
            f"{REPEATS} interleaved rounds. The packed graph's logits differ from PyTorch's by at most "
            f"{result['packed_max_abs_difference']:.1e}.\n",
            "| graph and session | windows/s | × the shipped graph, 2 threads |",
            "|---|---:|---:|",
            *rows,
            "",
            "| operator (onnxruntime profile, shipped graphs, 2 threads) | fp32 share | int8 share |",
            "|---|---:|---:|",
            *op_rows,
            "",
        ]
    body = [
        "## Where the student's ONNX time goes\n",
        provenance(time.perf_counter() - start),
        "What limits the student's throughput on onnxruntime, and the alternatives measured (`xtremedistil "
        "export` ships two one-directional LSTM nodes, 2 intra-op threads).\n",
        *parts,
    ]
    write_section("onnx-profile", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
