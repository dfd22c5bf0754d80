"""Named-entity recognition as token classification: the first sub-word of each word carries the word's label."""

from __future__ import annotations

import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from xtremedistil.data.records import Sentence
from xtremedistil.errors import DataError
from xtremedistil.segment import written_without_spaces
from xtremedistil.tasks.base import IGNORE_INDEX, Batch, Encoded, EncodingStats


def iob2_labels(entity_types: Sequence[str]) -> list[str]:
    """``O`` then ``B-X``/``I-X`` for each type, in a stable order."""
    labels = ["O"]
    for etype in sorted(entity_types):
        labels += [f"B-{etype}", f"I-{etype}"]
    return labels


DECODINGS = ("iob2-viterbi", "argmax")
DEFAULT_DECODING = DECODINGS[0]


def valid_iob2(tags: Sequence[str]) -> bool:
    """True if every ``I-X`` continues an ``X`` entity (what constrained decoding guarantees)."""
    return all(
        not tag.startswith("I-") or (prev != "O" and prev[2:] == tag[2:])
        for prev, tag in zip(["O", *tags], tags, strict=False)
    )


def iob2_constraints(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which tags may open a sentence and which may follow which under IOB2: ``I-X`` only after ``B-X`` or
    ``I-X``; everything else anywhere. Returns (start [k], transition [k_prev, k_next]) as booleans."""
    inside = [label[2:] if label.startswith("I-") else None for label in labels]
    start = np.array([etype is None for etype in inside])
    follows = np.ones((len(labels), len(labels)), dtype=bool)
    for j, etype in enumerate(inside):
        if etype is not None:
            follows[:, j] = [prev != "O" and prev[2:] == etype for prev in labels]
    return start, follows


def viterbi(log_probs: np.ndarray, start: np.ndarray, follows: np.ndarray) -> np.ndarray:
    """The most probable tag sequence (sum of per-word log-probabilities) among those ``start`` and
    ``follows`` allow. ``log_probs``: [words, k]."""
    return viterbi_batch(log_probs[None], np.array([len(log_probs)]), start, follows)[0]


def viterbi_batch(
    log_probs: np.ndarray, lengths: np.ndarray, start: np.ndarray, follows: np.ndarray
) -> list[np.ndarray]:
    """``viterbi`` for many sentences at once (one numpy step per word position, not per sentence and word):
    ``log_probs`` [sentences, max words, k], each row's first ``lengths[i]`` words real."""
    s, n, k = log_probs.shape
    if n == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(s)]
    barrier = np.where(follows, 0.0, -np.inf)
    best = np.where(start, log_probs[:, 0], -np.inf)  # [sentences, k]
    back = np.broadcast_to(np.arange(k), (s, n, k)).copy()  # past a row's end: each tag points to itself
    for t in range(1, n):
        candidates = best[:, :, None] + barrier  # [sentences, prev, next]
        arg = candidates.argmax(1)
        step = np.take_along_axis(candidates, arg[:, None, :], 1)[:, 0] + log_probs[:, t]
        active = (t < lengths)[:, None]
        best = np.where(active, step, best)
        back[:, t] = np.where(active, arg, back[:, t])
    path = np.empty((s, n), dtype=np.int64)
    path[:, -1] = best.argmax(-1)
    rows = np.arange(s)
    for t in range(n - 1, 0, -1):
        path[:, t - 1] = back[rows, t, path[:, t]]
    return [path[i, : lengths[i]] for i in range(s)]


def window_bounds(word_start: np.ndarray, safe: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Cut ``len(word_start)`` sub-words into windows of at most ``budget`` so no word is lost.

    A window ends before a word start, preferably a ``safe`` one (a word that does not continue an entity);
    it cuts inside a word only when a single word is longer than the budget (unlabeled text).
    """
    n = len(word_start)
    bounds, start = [], 0
    while n - start > budget:
        end = start + budget
        candidates = np.flatnonzero(word_start[start + 1 : end + 1]) + start + 1
        safe_candidates = candidates[safe[candidates]]
        if len(safe_candidates):
            end = int(safe_candidates[-1])
        elif len(candidates):
            end = int(candidates[-1])
        bounds.append((start, end))
        start = end
    bounds.append((start, n))
    return bounds


class BlankPieces:
    """Which sub-word ids are a bare word-boundary marker: pieces that decode to whitespace only, such as
    sentencepiece's "▁" (XLM-R, e5) or byte-level BPE's "Ġ" (RoBERTa), which tokenizers put before a word
    their vocabulary has no space-prefixed piece for. WordPiece vocabularies have none. Asked once per id and
    tokenizer (the answers outlive this object: a server builds one per request)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        try:
            self.known: dict[int, bool] = _BLANK_IDS.setdefault(tokenizer, {})
        except TypeError:  # not weakly referenceable
            self.known = {}

    def __call__(self, token_id: int) -> bool:
        blank = self.known.get(token_id)
        if blank is None:
            blank = self.known[token_id] = not self.tokenizer.decode([token_id]).strip()
        return blank


VITERBI_CHUNK = 256  # sentences decoded together
_BLANK_IDS: weakref.WeakKeyDictionary[Any, dict[int, bool]] = weakref.WeakKeyDictionary()
READINGS = ("text", "words")


def word_pieces(
    sentences: Sequence[Sentence], tokenizer: Any, reading: str = "text"
) -> list[list[list[int]]]:
    """The sub-word ids of each word of each sentence.

    ``reading = "text"`` (how xtremedistil fine-tunes its teachers): a sentence cut from raw text (``text``
    and ``spans`` set) is tokenized as that text, the way the teacher was pre-trained, and each piece goes
    to the word its first character lies in; words that a piece straddles (a Chinese piece of several
    one-character units, say) and words left without a piece are tokenized on their own. Other sentences
    are tokenized word by word (``is_split_into_words``). A bare word-boundary piece (sentencepiece's "▁" or
    byte-level BPE's "Ġ", the same before every Chinese word) never carries a word's label: it is dropped
    when the word has other pieces.

    ``reading = "words"`` (Hugging Face's token-classification recipe, how most ready models were
    fine-tuned on gold words): each space-separated word of the text is tokenized on its own, units that
    touch (``O'Neil`` is ``O``, ``'``, ``Neil``) as one word, as the recipe saw the corpus word, and its
    pieces go to the units by character offset; bare boundary pieces are kept, on the unit they precede, so
    a word's label sits on its first piece whatever it is. Chinese/Japanese units stay words of their own
    (corpora of those scripts tag one character or one word per token)."""
    if reading not in READINGS:
        raise ValueError(f"unknown reading {reading!r}; expected one of {', '.join(READINGS)}")
    boundary = BlankPieces(tokenizer)
    out: list[list[list[int]] | None] = [None] * len(sentences)
    by_text = reading == "text"
    raw = [i for i, s in enumerate(sentences) if s.text is not None and s.spans is not None]
    alone: list[tuple[int, int]] = []  # (sentence, word) to tokenize on their own
    if raw and by_text:
        tokens = tokenizer(
            [sentences[i].text for i in raw], add_special_tokens=False, return_offsets_mapping=True
        )
        for row, i in enumerate(raw):
            pieces, redo = _assign_pieces(
                sentences[i], tokens["input_ids"][row], tokens["offset_mapping"][row], boundary
            )
            out[i] = pieces
            alone += [(i, k) for k in redo]
    elif raw:
        chunked = [_touching_units(sentences[i]) for i in raw]
        tokens = tokenizer(
            [[sentences[i].text[a:b] for a, b, _ in chunks] for i, chunks in zip(raw, chunked, strict=True)],  # type: ignore[index]
            is_split_into_words=True,
            add_special_tokens=False,
            return_offsets_mapping=True,
        )
        for row, (i, chunks) in enumerate(zip(raw, chunked, strict=True)):
            pieces = _chunk_pieces(sentences[i], chunks, tokens, row, boundary)
            out[i] = pieces
            alone += [(i, k) for k, p in enumerate(pieces) if not p]
    rest = [i for i, pieces in enumerate(out) if pieces is None]
    words = [list(sentences[i].words) for i in rest] + [[sentences[i].words[k]] for i, k in alone]
    if words:
        tokens = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
        for row, _ in enumerate(words):
            per_word: list[list[int]] = [[] for _ in words[row]]
            for token_id, word in zip(tokens["input_ids"][row], tokens.word_ids(row), strict=True):
                if word is not None:
                    per_word[word].append(token_id)
            for pieces in per_word:
                if by_text and len(pieces) > 1 and boundary(pieces[0]):
                    del pieces[0]
            if row < len(rest):
                out[rest[row]] = per_word
            else:
                i, k = alone[row - len(rest)]
                out[i][k] = per_word[0]  # type: ignore[index]
    return out  # type: ignore[return-value]


def _continue(tag: str) -> str:
    return tag if tag == "O" else f"I-{tag[2:]}"


def _word_heads(sentence: Sentence) -> np.ndarray | None:
    """For each unit, the unit whose tag it takes: itself, or the first unit of its space-separated word
    when it lies inside that word (after the first unit, up to the word's last letter or digit)."""
    if sentence.text is None or sentence.spans is None:
        return None
    words = sentence.words
    heads = np.arange(len(sentence.spans))
    for _, _, units in _touching_units(sentence):
        inner = [k for k in units if any(c.isalnum() for c in words[k])]
        last, head = (inner[-1] if inner else units[0]), units[0]
        for k in units[1:]:
            if words[k] in _APOSTROPHES and k + 1 in units and words[k + 1].lower() in _CLITICS:
                head = k  # "Obama's": corpora split the clitic off ("Obama" "'s"), so it is a word of its own
            elif k <= last:
                heads[k] = head
    return heads


_APOSTROPHES = frozenset("'’")
_CLITICS = frozenset({"s", "re", "ve", "ll", "d", "m"})


def _touching_units(sentence: Sentence) -> list[tuple[int, int, list[int]]]:
    """(start, end, unit indices) of the runs of units with nothing between them; a Chinese/Japanese unit
    is a run of its own."""
    text, spans = sentence.text or "", sentence.spans or ()
    chunks: list[tuple[int, int, list[int]]] = []
    for k, (a, b) in enumerate(spans):
        alone = written_without_spaces(text[a])
        if (
            chunks
            and chunks[-1][1] == a
            and not alone
            and not written_without_spaces(text[chunks[-1][1] - 1])
        ):
            chunks[-1] = (chunks[-1][0], b, [*chunks[-1][2], k])
        else:
            chunks.append((a, b, [k]))
    return chunks


def _chunk_pieces(
    sentence: Sentence,
    chunks: list[tuple[int, int, list[int]]],
    tokens: Any,
    row: int,
    boundary: BlankPieces,
) -> list[list[int]]:
    """The pieces of word-by-word tokenized ``chunks`` handed to their units by character offset (offsets
    are relative to each chunk); a blank piece goes to the unit of the piece after it."""
    spans = sentence.spans or ()
    pieces: list[list[int]] = [[] for _ in spans]
    pending: list[int] = []
    ids, offsets = tokens["input_ids"][row], tokens["offset_mapping"][row]
    for token_id, word, (s, e) in zip(ids, tokens.word_ids(row), offsets, strict=True):
        if word is None:
            continue
        start, _, units = chunks[word]
        if boundary(token_id) or s >= e:
            pending.append(token_id)
            continue
        k = next((k for k in units if spans[k][0] <= start + s < spans[k][1]), units[0])
        if pending and not pieces[k]:
            pieces[k] += pending
        pending = []
        pieces[k].append(token_id)
    return pieces


def _assign_pieces(
    sentence: Sentence, ids: Sequence[int], offsets: Sequence[tuple[int, int]], boundary: BlankPieces
) -> tuple[list[list[int]], list[int]]:
    """Pieces of ``sentence.text`` to its words by character offset; returns them and the words to redo."""
    spans = sentence.spans or ()
    text = sentence.text or ""
    starts = [a for a, _ in spans]
    pieces: list[list[int]] = [[] for _ in spans]
    redo: set[int] = set()
    for token_id, (s, e) in zip(ids, offsets, strict=True):
        while s < e and text[s].isspace():  # a space marker may claim the space before a piece
            s += 1
        if s >= e or boundary(token_id):
            continue
        k = bisect_right(starts, s) - 1
        if k < 0 or s >= spans[k][1]:  # starts on a character no word holds (an invisible control)
            k += 1
            if k >= len(spans) or spans[k][0] >= e:
                continue
        if e > spans[k][1]:  # straddles words: each of them is tokenized on its own
            redo.update(range(k, bisect_left(starts, e)))
        else:
            pieces[k].append(token_id)
    redo.update(k for k, p in enumerate(pieces) if not p)
    for k in redo:
        pieces[k] = []
    return pieces, sorted(redo)


class NerTask:
    """Token classification over IOB2 tags; metric: entity-level span F1 (seqeval, strict IOB2)."""

    name = "ner"
    level = "token"
    metric = "f1"

    def __init__(
        self, entity_types: Sequence[str], decoding: str = DEFAULT_DECODING, reading: str = "text"
    ) -> None:
        """``decoding``: how word tags are read from logits: ``iob2-viterbi`` (default), the most probable
        sequence in which every ``I-X`` continues an ``X`` entity, or ``argmax``, each word on its own (the
        paper's, which can leave an entity's words with different types). ``reading``: how words become
        sub-words (``word_pieces``): ``text`` or ``words``, as the model was fine-tuned."""
        if decoding not in DECODINGS:
            raise ValueError(f"unknown decoding {decoding!r}; expected one of {', '.join(DECODINGS)}")
        if reading not in READINGS:
            raise ValueError(f"unknown reading {reading!r}; expected one of {', '.join(READINGS)}")
        self.reading = reading
        self.entity_types = sorted(entity_types)
        self.labels = iob2_labels(self.entity_types)
        self.label_to_id = {label: i for i, label in enumerate(self.labels)}
        self.decoding = decoding
        self._start, self._follows = iob2_constraints(self.labels)

    @classmethod
    def from_labels(
        cls, labels: Sequence[str], decoding: str = DEFAULT_DECODING, reading: str = "text"
    ) -> NerTask:
        """The task of a trained model, from its IOB2 label list (which must be in the canonical order)."""
        task = cls({label[2:] for label in labels if label != "O"}, decoding, reading)
        if task.labels != list(labels):
            raise ValueError(f"labels {list(labels)} are not in the canonical IOB2 order {task.labels}")
        return task

    @classmethod
    def label_set(cls, entity_types: Sequence[str]) -> list[str]:
        """The model's IOB2 labels from a corpus's entity types."""
        return iob2_labels(entity_types)

    def inputs(self, sentences: Sequence[Sentence], segment: Any) -> list[Sentence]:
        """What the model reads of gold sentences: their text cut into units as ``predict`` cuts raw text."""
        from xtremedistil.segment import units_of

        return units_of(sentences, segment)[0]

    def eval_set(self, sentences: Sequence[Sentence], tokenizer: Any, max_length: int, segment: Any) -> Any:
        from xtremedistil.evaluate import eval_set

        return eval_set(self, sentences, tokenizer, max_length, segment)

    def score_eval_set(
        self, data: Any, logits: Sequence[np.ndarray], *, scheme: str = "strict-word"
    ) -> tuple[dict[str, Any], Any]:
        from xtremedistil.evaluate import score_eval_set

        return score_eval_set(self, data, logits, scheme=scheme)

    def _label_ids(self, sentence: Sentence) -> list[int]:
        try:
            return [self.label_to_id[tag] for tag in sentence.tags or ()]
        except KeyError as exc:
            raise DataError(
                f"tag {exc.args[0]!r} of a {sentence.lang} sentence is not in the label set {self.labels}"
            ) from None

    def encode(
        self, sentences: Sequence[Sentence], tokenizer: Any, max_length: int
    ) -> tuple[list[Encoded], EncodingStats]:
        """Tokenize words into sub-words, align labels to first sub-words, cut long sentences into windows."""
        budget = max_length - 2  # room for the tokenizer's [CLS] and [SEP]
        encoded: list[Encoded] = []
        split_sentences = truncated_words = subwords = 0
        batch_size = 2048
        for offset in range(0, len(sentences), batch_size):
            chunk = sentences[offset : offset + batch_size]
            for j, (sentence, pieces) in enumerate(
                zip(chunk, word_pieces(chunk, tokenizer, self.reading), strict=True)
            ):
                for word in pieces:
                    if not word:  # e.g. a lone control character: keep the word, as <unk>
                        word.append(tokenizer.unk_token_id)
                    elif sentence.is_labeled and len(word) > budget:
                        del word[budget:]
                        truncated_words += 1
                windows = self._windows(sentence, pieces, budget, offset + j)
                split_sentences += len(windows) > 1
                subwords += sum(len(w) for w in windows)
                encoded += windows
        stats = EncodingStats(len(sentences), len(encoded), split_sentences, truncated_words, subwords)
        return encoded, stats

    def _windows(self, sentence: Sentence, pieces: list[list[int]], budget: int, index: int) -> list[Encoded]:
        lengths = np.array([len(p) for p in pieces])
        ids = np.fromiter((t for p in pieces for t in p), dtype=np.int32, count=int(lengths.sum()))
        starts_at = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        word_start = np.zeros(len(ids), dtype=bool)
        word_start[starts_at] = True
        targets = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
        if sentence.is_labeled:
            targets[starts_at] = self._label_ids(sentence)
            continues_entity = np.array([t.startswith("I-") for t in sentence.tags or ()], dtype=bool)
            cut_points, safe = word_start, word_start.copy()
            safe[starts_at[continues_entity]] = False
        else:  # unlabeled: cut between words when possible, else inside an over-long word
            cut_points, safe = np.ones(len(ids), dtype=bool), word_start
        bounds = window_bounds(cut_points, safe, budget)
        word_index = np.cumsum(word_start) - 1
        return [
            Encoded(
                input_ids=ids[a:b],
                targets=targets[a:b],
                word_start=word_start[a:b],
                sentence=index,
                first_word=int(word_index[a]) + (0 if word_start[a] else 1),
                lang=sentence.lang,
            )
            for a, b in bounds
        ]

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Cross-entropy on first sub-words; every other position is ignored."""
        return F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE_INDEX)

    def decode(
        self, sentences: Sequence[Sentence], encoded: Sequence[Encoded], logits: Sequence[np.ndarray]
    ) -> list[list[str]]:
        """Word-level tags per sentence from per-window sub-word logits (without specials): each word's first
        sub-word, then ``self.decoding`` over the whole sentence (its windows joined).

        Read by words (``reading = "words"``), a unit inside a space-separated word (``Obama`` in ``#Obama``,
        ``d`` in ``o.d.b.``) starts no word of the corpus the model was fine-tuned on, so its logits were
        never trained: it continues the tag of the word's first unit instead (trailing punctuation, as in
        ``Obama,``, keeps its own). See docs/METHOD.md, "Ready teachers"."""
        scores = [np.zeros((len(s.words), len(self.labels)), dtype=np.float32) for s in sentences]
        for window, window_logits in zip(encoded, logits, strict=True):
            first = np.asarray(window_logits[window.word_start], dtype=np.float32)
            scores[window.sentence][window.first_word : window.first_word + len(first)] = first
        heads = [_word_heads(s) if self.reading == "words" else None for s in sentences]
        keeps = [
            np.flatnonzero(h == np.arange(len(row))) if h is not None else np.arange(len(row))
            for h, row in zip(heads, scores, strict=True)
        ]
        paths = self._paths([row[keep] for row, keep in zip(scores, keeps, strict=True)])
        out = []
        for row, head, keep, path in zip(scores, heads, keeps, paths, strict=True):
            tags = [self.labels[i] for i in path]
            if head is not None:
                own = dict(zip(keep.tolist(), tags, strict=True))
                tags = [own[k] if k in own else _continue(own[int(head[k])]) for k in range(len(row))]
            out.append(tags)
        return out

    def _paths(self, rows: list[np.ndarray]) -> list[np.ndarray]:
        """Each sentence's tag ids from its word logits [words, k], by ``self.decoding``; the sentences are
        decoded together, padded to the longest."""
        if self.decoding == "argmax":
            return [row.argmax(-1) for row in rows]
        out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for start in range(
            0, len(order), VITERBI_CHUNK
        ):  # similar lengths together: little padding, bounded memory
            chunk = order[start : start + VITERBI_CHUNK]
            lengths = np.array([len(rows[i]) for i in chunk], dtype=np.int64)
            padded = np.zeros((len(chunk), int(lengths.max(initial=0)), len(self.labels)), dtype=np.float32)
            for j, i in enumerate(chunk):
                padded[j, : len(rows[i])] = rows[i]
            shifted = padded - padded.max(-1, keepdims=True)  # log-softmax in numpy: no torch thread wake-up
            log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
            for i, path in zip(
                chunk, viterbi_batch(log_probs, lengths, self._start, self._follows), strict=True
            ):
                out[i] = path
        return out

    def score(
        self, sentences: Sequence[Sentence], predictions: Sequence[Sequence[str]], strict: bool = True
    ) -> dict[str, Any]:
        """Entity-level span P/R/F1 (micro over types) and per type, with seqeval."""
        gold = [list(s.tags or ()) for s in sentences]
        return span_scores(gold, [list(p) for p in predictions], strict=strict)


def span_scores(gold: list[list[str]], pred: list[list[str]], strict: bool = True) -> dict[str, Any]:
    """seqeval span scores; ``strict`` = IOB2 strict mode, else conlleval-compatible lenient chunking."""
    kwargs: dict[str, Any] = {"mode": "strict", "scheme": IOB2} if strict else {}
    report = classification_report(gold, pred, output_dict=True, zero_division=0, **kwargs)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    per_type = {
        name: {
            "precision": float(v["precision"]),
            "recall": float(v["recall"]),
            "f1": float(v["f1-score"]),
            "support": int(v["support"]),
        }
        for name, v in report.items()
        if not name.endswith(" avg")
    }
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "support": int(micro["support"]),
        "sentences": len(gold),
        "per_type": per_type,
    }


def expand_to_subwords(tags: Sequence[str], pieces_per_word: Sequence[int]) -> list[str]:
    """The paper's sub-word tagging: non-first sub-words are 'X', read as I- of the word's entity (or O)."""
    out: list[str] = []
    for tag, n in zip(tags, pieces_per_word, strict=True):
        out.append(tag)
        out += ["O" if tag == "O" else "I-" + tag[2:]] * (n - 1)
    return out
