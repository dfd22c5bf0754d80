from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import make_sentence
from xtremedistil.batching import SpecialIds, collate
from xtremedistil.tasks.base import IGNORE_INDEX
from xtremedistil.tasks.ner import NerTask, expand_to_subwords, span_scores, window_bounds


def test_labels_are_canonical_iob2():
    task = NerTask(["PER", "LOC", "ORG"])
    assert task.labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert NerTask.from_labels(task.labels).labels == task.labels
    with pytest.raises(ValueError):
        NerTask.from_labels(["O", "B-PER", "B-LOC", "I-LOC", "I-PER"])


def test_first_subword_carries_the_label(tiny_tokenizer):
    task = NerTask(["PER", "LOC", "ORG"])
    # "xyz" is not in the vocabulary: three sub-words x ##y ##z, only the first labeled
    sentence = make_sentence("alice lives in xyz", "B-PER O O B-LOC")
    (window,), stats = task.encode([sentence], tiny_tokenizer, max_length=32)
    assert len(window) == 6
    assert window.word_start.tolist() == [True, True, True, True, False, False]
    expected = [task.label_to_id["B-PER"], 0, 0, task.label_to_id["B-LOC"], IGNORE_INDEX, IGNORE_INDEX]
    assert window.targets.tolist() == expected
    assert stats.split_sentences == 0 and stats.truncated_words == 0


def test_long_sentences_are_split_without_losing_words(tiny_tokenizer):
    task = NerTask(["PER", "LOC", "ORG"])
    words = "alice lives in paris and bob works at acme corp in london".split()
    tags = "B-PER O O B-LOC O B-PER O O B-ORG I-ORG O B-LOC".split()
    sentence = make_sentence(" ".join(words), " ".join(tags))
    windows, stats = task.encode([sentence], tiny_tokenizer, max_length=7)  # 5 sub-words per window
    assert stats.split_sentences == 1 and len(windows) > 1
    covered = [w.first_word + k for w in windows for k in range(int(w.word_start.sum()))]
    assert covered == list(range(len(words)))
    # no window starts inside the entity "acme corp"
    assert all(tags[w.first_word] != "I-ORG" for w in windows)
    # decoding gold-like logits gives back the gold tags for the whole sentence
    logits = []
    for w in windows:
        onehot = np.zeros((len(w), len(task.labels)), dtype=np.float32)
        onehot[np.arange(len(w)), np.maximum(w.targets, 0)] = 1
        logits.append(onehot)
    assert task.decode([sentence], windows, logits) == [tags]


def test_over_long_word_keeps_its_first_subwords(tiny_tokenizer):
    task = NerTask(["LOC"])
    sentence = make_sentence("in qqqqqqqqqqqq", "O B-LOC")
    windows, stats = task.encode([sentence], tiny_tokenizer, max_length=6)
    assert stats.truncated_words == 1
    assert [int(w.word_start.sum()) for w in windows] == [1, 1]
    assert windows[1].targets[0] == task.label_to_id["B-LOC"]


def test_unlabeled_text_is_cut_anywhere_with_no_targets(tiny_tokenizer):
    task = NerTask(["LOC"])
    windows, _ = task.encode([make_sentence("qqqqqqqqqqqq paris", None)], tiny_tokenizer, max_length=6)
    assert sum(len(w) for w in windows) == 13  # 12 character pieces + paris: nothing dropped
    assert all((w.targets == IGNORE_INDEX).all() for w in windows)


def test_window_bounds_prefer_safe_word_starts():
    word_start = np.array([1, 0, 1, 1, 1, 1], dtype=bool)
    safe = np.array([1, 0, 1, 0, 0, 1], dtype=bool)  # positions 3 and 4 continue an entity
    assert window_bounds(word_start, safe, budget=4) == [(0, 2), (2, 6)]


def test_loss_ignores_padding_and_non_first_subwords(tiny_tokenizer):
    task = NerTask(["PER", "LOC", "ORG"])
    sentences = [make_sentence("alice lives in xyz", "B-PER O O B-LOC"), make_sentence("bob", "B-PER")]
    windows, _ = task.encode(sentences, tiny_tokenizer, max_length=32)
    batch = collate(windows, [0, 1], SpecialIds.from_tokenizer(tiny_tokenizer))
    logits = torch.randn(*batch.input_ids.shape, len(task.labels))
    base = task.loss(logits, batch)
    ignored = batch.targets == IGNORE_INDEX
    noisy = logits.clone()
    noisy[ignored] = torch.randn(int(ignored.sum()), len(task.labels)) * 100
    assert torch.allclose(task.loss(noisy, batch), base)
    # the mean is over the 5 labeled first sub-words
    manual = torch.nn.functional.cross_entropy(logits[~ignored], batch.targets[~ignored])
    assert torch.allclose(base, manual)


def test_span_scores_strict_and_lenient():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["I-ORG", "O"]]
    strict = span_scores(gold, pred, strict=True)
    # strict: PER correct; LOC missed; predicted ORG at position 3 wrong; I-ORG without B- is no entity
    assert strict["precision"] == pytest.approx(1 / 2)
    assert strict["recall"] == pytest.approx(1 / 3)
    assert strict["f1"] == pytest.approx(0.4)
    lenient = span_scores(gold, pred, strict=False)  # conlleval reads the lone I-ORG as an entity
    assert lenient["precision"] == pytest.approx(2 / 3)
    assert lenient["recall"] == pytest.approx(2 / 3)


def test_expand_to_subwords_continues_the_entity():
    assert expand_to_subwords(["B-PER", "O", "B-LOC"], [2, 2, 1]) == ["B-PER", "I-PER", "O", "O", "B-LOC"]


def test_raw_text_is_tokenized_as_text_and_pieces_go_to_their_units(xlmr_tokenizer):
    from xtremedistil.data.records import Sentence
    from xtremedistil.segment import segmenter, to_units
    from xtremedistil.tasks.ner import word_pieces

    def pieces(text, cjk="char"):
        units, _ = to_units(Sentence.from_text(text), segmenter(xlmr_tokenizer, cjk))
        (per_unit,) = word_pieces([units], xlmr_tokenizer)
        return [xlmr_tokenizer.convert_ids_to_tokens(p) for p in per_unit]

    # Latin text keeps the tokenizer's own pieces: no word-start mark forced onto "'", "s", "-" or "mail"
    assert pieces("Obama's e-mail") == [["▁Obama"], ["'"], ["s"], ["▁e"], ["-"], ["mail"]]
    text = "Sioux Falls, South Dakota"
    flat = [p for unit in pieces(text) for p in unit]
    assert flat == xlmr_tokenizer.tokenize(text)
    # a piece that spans several one-character units ("北京") is cut: each character tokenized on its own
    assert pieces("我在北京") == [["▁我"], ["▁在"], ["北"], ["京"]]
    assert pieces("我在北京", cjk="piece") == [["▁我"], ["在北京"]]
    # words given without their text are tokenized word by word, as before
    (split,) = word_pieces([Sentence(("Obama", "'", "s"))], xlmr_tokenizer)
    assert [xlmr_tokenizer.convert_ids_to_tokens(p) for p in split] == [["▁Obama"], ["▁'"], ["▁s"]]


def _valid_iob2(tags: list[str]) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def test_viterbi_is_the_best_valid_sequence_found_by_brute_force():
    import itertools

    from xtremedistil.tasks.ner import iob2_constraints, viterbi

    task = NerTask(["PER", "LOC"])
    start, follows = iob2_constraints(task.labels)
    gen = torch.Generator().manual_seed(0)
    for n in range(1, 5):
        for _ in range(20):
            scores = torch.log_softmax(torch.randn(n, len(task.labels), generator=gen) * 3, -1).numpy()
            best, best_path = -np.inf, None
            for path in itertools.product(range(len(task.labels)), repeat=n):
                if not _valid_iob2([task.labels[i] for i in path]):
                    continue
                total = scores[np.arange(n), path].sum()
                if total > best:
                    best, best_path = total, path
            found = viterbi(scores, start, follows)
            assert scores[np.arange(n), found].sum() == pytest.approx(best)
            assert tuple(found) == best_path


def test_viterbi_over_a_padded_batch_equals_each_sentence_alone():
    from xtremedistil.tasks.ner import iob2_constraints, viterbi, viterbi_batch

    task = NerTask(["PER", "LOC", "ORG"])
    start, follows = iob2_constraints(task.labels)
    gen = torch.Generator().manual_seed(1)
    lengths = np.array([5, 1, 12, 0, 7])
    padded = torch.log_softmax(torch.randn(len(lengths), 12, len(task.labels), generator=gen) * 3, -1).numpy()
    alone = [viterbi(padded[i, :n], start, follows) for i, n in enumerate(lengths)]
    together = viterbi_batch(padded, lengths, start, follows)
    assert [p.tolist() for p in together] == [p.tolist() for p in alone]
    assert [len(p) for p in together] == lengths.tolist()
    # the padding past each row's end is ignored, whatever it holds
    noisy = padded.copy()
    for i, n in enumerate(lengths):
        noisy[i, n:] = np.random.default_rng(i).normal(size=noisy[i, n:].shape) * 10
    assert [p.tolist() for p in viterbi_batch(noisy, lengths, start, follows)] == [p.tolist() for p in alone]


def _window_logits(task, windows, probs_per_word):
    """Logits whose softmax on each word's first sub-word is the given row of probabilities."""
    rows = iter(np.log(np.asarray(probs_per_word, dtype=np.float64)))
    out = []
    for w in windows:
        z = np.zeros((len(w), len(task.labels)), dtype=np.float32)
        for i in np.flatnonzero(w.word_start):
            z[i] = next(rows)
        out.append(z)
    return out


def test_constrained_decoding_gives_an_entity_one_type(tiny_tokenizer):
    # two words: alone, the first leans LOC (0.5 vs 0.4) and the second PER (0.6 vs 0.3); argmax reads
    # B-LOC I-PER (two broken entities); the best valid sequence is B-PER I-PER (0.4*0.6 > 0.5*0.3)
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    probs = [[0.05, 0.5, 0.0, 0.4, 0.05], [0.05, 0.0, 0.3, 0.05, 0.6]]
    probs = [[max(p, 1e-6) for p in row] for row in probs]
    sentence = make_sentence("alice bob", "B-PER I-PER")
    task = NerTask(["PER", "LOC"])
    assert task.labels == labels and task.decoding == "iob2-viterbi"
    windows, _ = task.encode([sentence], tiny_tokenizer, max_length=32)
    logits = _window_logits(task, windows, probs)
    assert task.decode([sentence], windows, logits) == [["B-PER", "I-PER"]]
    argmax = NerTask(["PER", "LOC"], decoding="argmax")
    assert argmax.decode([sentence], windows, logits) == [["B-LOC", "I-PER"]]
    with pytest.raises(ValueError, match="decoding"):
        NerTask(["PER"], decoding="crf")


def test_constrained_decoding_runs_across_windows(tiny_tokenizer):
    # a sentence cut into windows is decoded as one sequence: an I- in the second window may continue
    # an entity begun in the first only if the types agree
    task = NerTask(["PER", "LOC"])
    words = "alice lives in paris and bob works in london".split()
    sentence = make_sentence(" ".join(words), None)
    windows, _ = task.encode([sentence], tiny_tokenizer, max_length=5)
    assert len(windows) > 2
    argmax_task = NerTask(["PER", "LOC"], decoding="argmax")
    rng = np.random.default_rng(1)
    outcomes = set()
    for draw in range(40):
        probs = rng.dirichlet(np.full(5, 0.3), size=len(words)) + 1e-6
        probs[:, 0] += 2.0 * (draw % 2)  # every other draw leans to O, where argmax is often valid
        logits = _window_logits(task, windows, probs / probs.sum(-1, keepdims=True))
        tags = task.decode([sentence], windows, logits)[0]
        argmax_tags = argmax_task.decode([sentence], windows, logits)[0]
        assert len(tags) == len(words) and _valid_iob2(tags)
        outcomes.add(_valid_iob2(argmax_tags))
        if _valid_iob2(argmax_tags):  # the per-word best is already valid: it is the answer
            assert tags == argmax_tags
    assert outcomes == {True, False}  # both cases were exercised


def test_read_by_words_a_unit_inside_a_word_continues_its_first_unit():
    """The HF recipe trained only a word's first piece: `#Obama` is tagged by `#`; trailing punctuation
    (`Paris,`) and a split-off clitic (`Obama's` = `Obama` `'s`) keep their own tags."""
    import numpy as np

    from xtremedistil.data.records import Sentence
    from xtremedistil.segment import split_words
    from xtremedistil.tasks.ner import _word_heads

    text = "#Obama met o.d.b. in Paris, at Obama's"
    spans = split_words(text)
    words = tuple(text[a:b] for a, b in spans)
    sentence = Sentence(words, None, "en", text, tuple(spans))
    heads = _word_heads(sentence)
    named = {words[k]: words[int(h)] for k, h in enumerate(heads) if h != k}
    assert named == {"Obama": "#", ".": "o", "d": "o", "b": "o", "s": "'"}  # the clitic 's has its own head
    assert sum(1 for k, h in enumerate(heads) if h != k) == 6  # Obama, ., d, ., b, s (the final dot trails)

    task = NerTask(["LOC", "PER"], reading="words")
    logits = np.full((len(words), len(task.labels)), -5.0, dtype=np.float32)
    for k, word in enumerate(words):  # every unit votes B-LOC, except '#' which says B-PER
        logits[
            k, task.label_to_id["B-PER" if word == "#" else "B-LOC" if word in ("Obama", "Paris") else "O"]
        ] = 5.0
    from xtremedistil.tasks.base import Encoded

    window = Encoded(
        np.arange(len(words)),
        np.zeros(len(words), dtype=np.int64),
        np.ones(len(words), dtype=bool),
        0,
        0,
        "en",
    )
    (tags,) = task.decode([sentence], [window], [logits])
    assert tags[:2] == ["B-PER", "I-PER"]  # `Obama` inside `#Obama` follows `#`, not its own B-LOC
    assert tags[words.index("Paris")] == "B-LOC" and tags[words.index(",")] == "O"
    assert tags[-3:] == ["B-LOC", "O", "O"]  # Obama ' s: the clitic is a word of its own
