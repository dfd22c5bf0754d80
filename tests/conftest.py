"""Shared fixtures: a tiny tokenizer and a tiny random BERT built in-process (never a download)."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from xtremedistil.data.records import Corpus, Sentence

REPO = Path(__file__).resolve().parents[1]
WIKIANN = Path(os.environ.get("XTREMEDISTIL_WIKIANN", REPO.parent / "shared" / "data" / "wikiann"))

WORDS = [
    "paris",
    "london",
    "alice",
    "bob",
    "acme",
    "corp",
    "lives",
    "in",
    "works",
    "at",
    "the",
    "and",
    "city",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """WordPiece over a ~70-piece vocabulary: known words are one piece, others split into characters."""
    letters = list(string.ascii_lowercase)
    vocab = SPECIALS + WORDS + letters + [f"##{c}" for c in letters] + [".", ","]
    wordpiece = models.WordPiece({piece: i for i, piece in enumerate(vocab)}, unk_token="[UNK]")
    tokenizer = Tokenizer(wordpiece)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, hidden-32 random BERT with the tiny tokenizer, saved as a local HF folder."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def build_tiny_bert(folder: Path) -> Path:
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_sentence(text: str, tags: str | None, lang: str = "en") -> Sentence:
    return Sentence(tuple(text.split()), tuple(tags.split()) if tags is not None else None, lang)


TOY = [
    ("alice lives in paris", "B-PER O O B-LOC"),
    ("bob works at acme corp", "B-PER O O B-ORG I-ORG"),
    ("the city and london", "O O O B-LOC"),
    ("alice and bob", "B-PER O B-PER"),
    ("acme corp lives in london", "B-ORG I-ORG O O B-LOC"),
    ("bob lives in the city", "B-PER O O O O"),
]


@pytest.fixture
def toy_corpus() -> Corpus:
    """Two 'languages' of toy sentences with PER/LOC/ORG, enough for a few training steps."""
    splits = {}
    for lang in ("en", "xx"):
        sentences = [make_sentence(t, g, lang) for t, g in TOY]
        splits[lang] = {"train": sentences * 4, "dev": sentences[:3], "test": sentences[3:]}
    return Corpus(splits, "toy")


@pytest.fixture(scope="session")
def xlmr_tokenizer() -> PreTrainedTokenizerFast:
    """The real XLM-R sentencepiece tokenizer of the embedded teacher (multilingual-e5-small), read from the
    package file that ships it: no model conversion, no download."""
    from xtremedistil.teacher.registry import TOKENIZER_FILE, TOKENIZER_PACKAGE, _package_file

    return PreTrainedTokenizerFast(
        tokenizer_file=str(_package_file(TOKENIZER_PACKAGE, TOKENIZER_FILE)),
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
    )
