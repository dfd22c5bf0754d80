"""Tiny token-classification models of three tokenizer families, fine-tuned in-process the way a user
fine-tunes a model outside xtremedistil (plain transformers, word-level labels on first sub-words) and saved
as plain HF folders: the "ready teachers" of the tests. Nothing is downloaded.

- ``bert``: WordPiece (``##`` continuations, CJK split per character), IOB2 labels named PERSON/LOCATION/
  ORGANIZATION in the model's own order;
- ``xlmr``: sentencepiece Unigram (``▁`` word starts, a bare ``▁`` before CJK), BIOES labels (S-/E- tags);
- ``roberta``: byte-level BPE (``Ġ`` word starts, needs ``add_prefix_space`` for words read one by one),
  lower-case labels plus a MISC type the data does not have.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForTokenClassification,
    BertTokenizerFast,
    RobertaConfig,
    RobertaForTokenClassification,
    RobertaTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForTokenClassification,
    XLMRobertaTokenizerFast,
)

from tests.conftest import TOY

TEXT = [t for t, _ in TOY] + ["alice lives in 北京 .", "bob works at acme corp in 東京 , london"]
FAMILIES = ("bert", "xlmr", "roberta")

# the model's own label names and order; ``to_model`` maps a data tag (IOB2) of a word to the model's tag
LABELS = {
    "bert": ["O", "B-PERSON", "I-PERSON", "B-ORGANIZATION", "I-ORGANIZATION", "B-LOCATION", "I-LOCATION"],
    "xlmr": [
        "O",
        *(f"{p}-{t}" for t in ("PER", "ORG", "LOC") for p in ("S", "B", "I", "E")),
    ],
    "roberta": ["o", "b-misc", "i-misc", "b-loc", "i-loc", "b-org", "i-org", "b-per", "i-per"],
}
LABEL_MAP = {
    "bert": {"PERSON": "PER", "LOCATION": "LOC", "ORGANIZATION": "ORG"},
    "xlmr": {},
    "roberta": {"MISC": "O"},
}
RENAME = {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORGANIZATION"}


def model_tags(family: str, tags: list[str]) -> list[str]:
    """A sentence's IOB2 data tags as the family's model names them."""
    if family == "bert":
        return [t if t == "O" else f"{t[:2]}{RENAME[t[2:]]}" for t in tags]
    if family == "roberta":
        return [t.lower() for t in tags]
    out = []  # BIOES
    for i, tag in enumerate(tags):
        if tag == "O":
            out.append(tag)
            continue
        ends = i + 1 == len(tags) or tags[i + 1] != f"I-{tag[2:]}"
        prefix = {("B", True): "S", ("B", False): "B", ("I", True): "E", ("I", False): "I"}[(tag[0], ends)]
        out.append(f"{prefix}-{tag[2:]}")
    return out


def build_tokenizer(family: str):
    specials = (
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        if family == "bert"
        else ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    corpus = TEXT * 5
    if family == "bert":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials))
        return BertTokenizerFast(tokenizer_object=tok, model_max_length=32)
    if family == "xlmr":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        tok.train_from_iterator(
            corpus, trainers.UnigramTrainer(vocab_size=90, special_tokens=specials, unk_token="<unk>")
        )
        return XLMRobertaTokenizerFast(tokenizer_object=tok, model_max_length=32)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    return RobertaTokenizerFast(tokenizer_object=tok)  # states no length limit: the position table decides


def build_model(family: str, vocab_size: int, pad_id: int):
    labels = LABELS[family]
    common = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "pad_token_id": pad_id,
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }
    if family == "bert":
        return BertForTokenClassification(BertConfig(max_position_embeddings=32, **common))
    cls = XLMRobertaForTokenClassification if family == "xlmr" else RobertaForTokenClassification
    config_cls = XLMRobertaConfig if family == "xlmr" else RobertaConfig
    return cls(config_cls(max_position_embeddings=34, **common))  # 32 positions + RoBERTa's 2 reserved rows


def fine_tune_ready_model(family: str, folder: Path, steps: int = 60) -> Path:
    """Fit a tiny model of ``family`` on the toy sentences (labels on first sub-words) and save it."""
    tokenizer = build_tokenizer(family)
    torch.manual_seed(0)
    model = build_model(family, len(tokenizer), tokenizer.pad_token_id)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    user_tokenizer = AutoTokenizer.from_pretrained(folder, add_prefix_space=True)  # as HF's run_ner does
    words = [text.split() for text, _ in TOY]
    label_id = {label: i for i, label in enumerate(LABELS[family])}
    batch = user_tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
    targets = torch.full(batch["input_ids"].shape, -100)
    for row, (_, tags) in enumerate(TOY):
        seen = set()
        for position, word in enumerate(batch.word_ids(row)):
            if word is not None and word not in seen:
                seen.add(word)
                targets[row, position] = label_id[model_tags(family, tags.split())[word]]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=targets).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().save_pretrained(folder)
    return folder
