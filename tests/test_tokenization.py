"""course_lib.tokenization and tokenizer_compare, checked against Hugging Face tokenizers and a naive reference."""

from __future__ import annotations

import json
import os
import random
import re
import tracemalloc
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib import tokenization as T
from course_lib import tokenizer_compare as C

EOT = "<|endoftext|>"

# Our own small corpus (written for these tests): varied punctuation, numbers, contractions, non-ASCII.
CORPUS = """\
The teacher teaches the student. The student doesn't always listen, but she'll learn.
A tokenizer turns text into numbers; a model turns numbers into vectors, then back into text.
In 2017 the Transformer used 512-dimensional embeddings and 8 attention heads.
We're testing byte pairs: low lower lowest newer newest wider widest!!! ???
Café, naïve, façade and Ærø are spelled with bytes beyond ASCII; so is 東京 and the emoji 🙂🚀.
    Indented lines,\ttabs\tand   runs   of   spaces keep their shape.

Numbers like 3.14159, 1,000,000 and 42 split by the GPT-2 rule.
"""
DOCS = [CORPUS, CORPUS.upper(), CORPUS.replace("the", "a"), "the the the there then them these those."]
TEXT_WITH_EOT = EOT.join(DOCS)

GPT2_PATTERN_REFERENCE = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def naive_train(text: str, vocab_size: int, specials=()) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Reference BPE: recount every pair after every merge; max by (count, pair of bytes)."""
    import regex

    pieces = [text]
    if specials:
        pieces = re.split("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)), text)
    words: Counter = Counter()
    for piece in pieces:
        for w in regex.findall(GPT2_PATTERN_REFERENCE, piece):
            words[tuple(bytes([b]) for b in w.encode("utf-8", "surrogatepass"))] += 1
    vocab = {i: bytes([i]) for i in range(256)}
    for s in specials:
        vocab[len(vocab)] = s.encode()
    merges = []
    while len(vocab) < vocab_size:
        counts: Counter = Counter()
        for w, f in words.items():
            for p in zip(w, w[1:]):
                counts[p] += f
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], p))
        merges.append(best)
        vocab[len(vocab)] = best[0] + best[1]
        new_words: Counter = Counter()
        for w, f in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] += f
        words = new_words
    return vocab, merges


@pytest.fixture(scope="module")
def tok():
    return T.train_bpe(TEXT_WITH_EOT, 400, special_tokens=[EOT])


@pytest.fixture(scope="module")
def stream_tok():
    """A tokenizer whose merges make pre-token boundaries visible in the ids ("'ll" is one token, and so on)."""
    text = (CORPUS + " we'll you've x've I'm it's he'd 123 4567  \n  \n\n  x  y   z\t\t!!\n" * 20).replace("\n\n", EOT)
    return T.train_bpe(text, 700, [EOT])


@pytest.fixture(scope="module")
def hf(tok):
    return tok.to_hf()


# --- training ----------------------------------------------------------------


@pytest.mark.parametrize("vocab_size", [257, 270, 400, 700])
def test_train_matches_naive_reference(vocab_size):
    vocab, merges = naive_train(TEXT_WITH_EOT, vocab_size, [EOT])
    tok = T.train_bpe(TEXT_WITH_EOT, vocab_size, [EOT])
    assert tok.merges == merges
    assert tok.vocab == vocab


def test_ties_go_to_the_lexicographically_greater_pair():
    # every pair occurs exactly once: the first merge must be the greatest pair of bytes
    tok = T.train_bpe("ab cd zy", 257)
    assert tok.merges == [(b"z", b"y")]
    assert tok.merges == naive_train("ab cd zy", 257)[1]
    # ' c' vs 'cd' tie at count 1 after nothing merged; b' ' (32) < b'c' so ('c','d') > (' ','c')
    assert T.train_bpe(" cd", 257).merges == [(b"c", b"d")]


def test_training_is_deterministic_and_order_free():
    docs = DOCS[:]
    a = T.train_bpe(EOT.join(docs), 500, [EOT])
    random.Random(0).shuffle(docs)
    b = T.train_bpe(EOT.join(docs), 500, [EOT])
    assert a.merges == b.merges and a.vocab == b.vocab


def _dialogsum_text(n_bytes: int) -> str | None:
    root = os.environ.get("DIALOGSUM_DIR")
    path = os.path.join(root, "dialogsum.train.jsonl") if root else ""
    if not os.path.exists(path):
        return None
    lines = []
    with open(path, encoding="utf-8") as fh:
        while sum(map(len, lines)) < n_bytes:
            lines.append(json.loads(fh.readline())["dialogue"])
    return "\n".join(lines)


@pytest.mark.parametrize("source", ["own corpus", "dialogsum"])
def test_training_agrees_with_hf_trainer_until_a_tie(source):
    """Hugging Face's BpeTrainer breaks ties differently; up to the first tie both must pick the same pairs."""
    text = "\n".join(DOCS) if source == "own corpus" else _dialogsum_text(30_000)
    if text is None:
        pytest.skip("DIALOGSUM_DIR is not set")
    ours, counts = T.train_bpe_from_counts(T.word_frequencies(text), 600)
    hf = C.train_hf_tokenizer([text], "bpe", 600)
    u2b = {c: b for b, c in T.bytes_to_unicode().items()}
    hf_merges = [(bytes(u2b[c] for c in a), bytes(u2b[c] for c in b)) for a, b in json.loads(hf.to_str())["model"]["merges"]]
    agree = 0
    while agree < min(len(hf_merges), len(ours.merges)) and hf_merges[agree] == ours.merges[agree]:
        agree += 1
    assert agree >= 3, "the first merges of a plain corpus should not be ties"
    if agree < len(ours.merges):
        # at the first disagreement, Hugging Face's pair must be tied with ours (a different tie rule, not a bug)
        words = {tuple(bytes([b]) for b in w.encode()): f for w, f in T.word_frequencies(text).items()}
        for m in ours.merges[:agree]:
            words = T.apply_merge(words, m, m[0] + m[1])
        pairs = T.pair_frequencies(words)
        assert pairs[hf_merges[agree]] == pairs[ours.merges[agree]] == counts[agree] == max(pairs.values())


def test_special_tokens_are_never_merged_across():
    # '<', '|' and '>' occur only inside the special token: no merge may contain them
    text = "hello<|endoftext|>world, hello<|endoftext|> world<|endoftext|>hello " * 40
    tok = T.train_bpe(text, 320, [EOT])
    assert tok.vocab[256] == EOT.encode() and len(tok.merges) >= 8  # training stops when every word is one token
    assert not any(set(a + b) & set(b"<|>") for a, b in tok.merges)
    assert tok.merges == naive_train(text, 320, [EOT])[1]
    ids = tok.encode(text)
    assert ids.count(256) == 120 and tok.decode(ids) == text


def test_bad_vocab_size_is_a_clear_error():
    with pytest.raises(ValueError, match="= 257"):
        T.train_bpe("abc", 256, [EOT])


def test_pair_frequencies_and_apply_merge_on_a_textbook_example():
    # Sennrich et al. (2016), Figure 1: low, lower, newest, widest; 'es' then 'est' are the first merges
    words = {tuple("low"): 5, tuple("lower"): 2, tuple("newest"): 6, tuple("widest"): 3}
    pairs = T.pair_frequencies(words)
    assert pairs[("e", "s")] == 9 and pairs[("s", "t")] == 9 and pairs[("l", "o")] == 7
    merged = T.apply_merge(words, ("e", "s"), "es")
    assert merged[("n", "e", "w", "es", "t")] == 6
    assert T.pair_frequencies(merged)[("es", "t")] == 9
    assert T.apply_merge({("a", "a", "a"): 1}, ("a", "a"), "aa") == {("aa", "a"): 1}


# --- encoding and decoding ----------------------------------------------------


def test_pretokenizer_matches_hf_byte_level():
    from tokenizers import pre_tokenizers

    u2b = {c: b for b, c in T.bytes_to_unicode().items()}
    hf_pre = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    for text in DOCS + ["I'll  go\n\n  now's", "x  \ny", "   "]:
        hf_pieces = [bytes(u2b[c] for c in p) for p, _ in hf_pre.pre_tokenize_str(text)]
        assert [p.encode() for p in T.pretokenize(text)] == hf_pieces


def test_encode_matches_hf_on_corpus(tok, hf):
    for text in DOCS + [TEXT_WITH_EOT, "unseen wordz: Zyxwv 🦜 ąčęėįšųūž"]:
        ids = tok.encode(text)
        assert ids == hf(text, add_special_tokens=False)["input_ids"]
        assert hf.decode(ids) == text == tok.decode(ids)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_encode_matches_hf_property(tok, hf, text):
    assert tok.encode(text) == hf(text, add_special_tokens=False)["input_ids"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(blacklist_categories=()), max_size=80))
def test_round_trip_property(tok, text):
    # any Python str, lone surrogates included
    assert tok.decode(tok.encode(text)) == text


def test_round_trip_emoji_and_surrogates(tok):
    for text in ["🙂🚀👩‍👩‍👧", "\ud800", "a\udfffb", "\ud83d\ude00", "e\u0301", "\x00\x7f", EOT + EOT]:
        assert tok.decode(tok.encode(text)) == text


def test_special_tokens_preserved(tok):
    ids = tok.encode(f"hi{EOT}there{EOT}")
    assert ids.count(256) == 2 and ids[-1] == 256
    assert tok.decode(ids) == f"hi{EOT}there{EOT}"
    # a text without the special token never produces its id
    assert 256 not in tok.encode("<|endoftext| > <|endof")


def test_overlapping_special_tokens_longest_wins():
    tok = T.train_bpe("a<x>b<x><y>c", 300, ["<x>", "<x><y>"])
    ids = tok.encode("<x><y><x>")
    assert ids == [tok.special_ids["<x><y>"], tok.special_ids["<x>"]]
    hf = tok.to_hf()
    assert hf("<x><y><x>", add_special_tokens=False)["input_ids"] == ids


def test_decode_replaces_invalid_utf8(tok):
    assert tok.decode([0xFF]) == "\ufffd"
    emoji = "🙂".encode()
    assert tok.decode(list(emoji[:2])) == "\ufffd"
    assert tok.decode(list(emoji[:2]) + [ord("a")]) == "\ufffda"
    assert tok.decode(list(emoji)) == "🙂"


def test_errors_are_clear(tok):
    with pytest.raises(ValueError, match="not in this tokenizer's vocab"):
        tok.decode([10**6])
    with pytest.raises(TypeError, match="expects a str"):
        tok.encode(b"bytes")
    swapped = dict(tok.vocab)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ValueError, match="id b is byte b"):
        T.BPETokenizer(swapped, tok.merges, tok.special_tokens)
    with pytest.raises(TypeError, match="one str"):
        T.train_bpe(["a", "list"], 300)


# --- streaming ----------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.sampled_from([" ", "  ", "\n", "'", "'l", "l", "ve", "x", EOT, "<|", "endoftext", "|>", "|", ">", "9", "!"]),
            st.text(max_size=6),
        ),
        max_size=30,
    )
)
def test_encode_iterable_equals_encode_property(stream_tok, chunks):
    assert list(stream_tok.encode_iterable(chunks)) == stream_tok.encode("".join(chunks))


def test_encode_iterable_waits_for_text_that_can_change_a_pretoken(stream_tok):
    # the same text, cut where a pre-token is still open: a contraction, a run of spaces, a special token
    for chunks in (
        ["we'l", "l go"],
        ["x'", "ve"],
        ["a  \n", "  b"],
        ["end<|endof", "text|>next"],
        ["a<|endoftext|", ">b"],
        ["1", "23 ", " 4"],
    ):
        assert list(stream_tok.encode_iterable(chunks)) == stream_tok.encode("".join(chunks)), chunks


def test_encode_iterable_memory_stays_flat(tok):
    line = "The student doesn't always listen, but she'll learn 42 things.\n"

    def peak(n_lines):
        tracemalloc.start()
        n = sum(1 for _ in tok.encode_iterable(line for _ in range(n_lines)))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return n, peak

    n_small, small = peak(1_000)
    n_big, big = peak(16_000)  # ~1 MB of text
    assert n_big == 16 * n_small
    assert big < 2 * small + 64_000, f"peak memory grew with the input: {small} -> {big} bytes"


# --- persistence and Hugging Face ----------------------------------------------


def test_save_load_round_trip(tok, tmp_path):
    path = tok.save(tmp_path / "sub" / "bpe.json")
    loaded = T.BPETokenizer.load(path)
    assert loaded.vocab == tok.vocab and loaded.merges == tok.merges and loaded.special_tokens == tok.special_tokens
    assert loaded.encode(TEXT_WITH_EOT) == tok.encode(TEXT_WITH_EOT)
    assert [p.name for p in path.parent.iterdir()] == ["bpe.json"]  # no temp file left behind
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a course_lib BPE file"):
        T.BPETokenizer.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="train a tokenizer"):
        T.BPETokenizer.load(tmp_path / "missing.json")


def test_bytes_to_unicode_matches_hf_alphabet():
    from tokenizers import pre_tokenizers

    assert sorted(T.bytes_to_unicode().values()) == sorted(pre_tokenizers.ByteLevel.alphabet())


# --- comparisons ------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_trio():
    text = "\n".join(DOCS)
    return {kind: C.train_hf_tokenizer([text], kind, 300) for kind in C.HF_KINDS}


def test_fertility_counts_tokens_per_word(tok, hf_trio):
    sentence = "the teacher teaches"
    assert C.fertility(tok, sentence) == len(tok.encode(sentence)) / 3
    wp = hf_trio["wordpiece"]
    assert C.fertility(wp, [sentence, "the"]) == (len(wp.encode(sentence).ids) + len(wp.encode("the").ids)) / 4
    with pytest.raises(ValueError, match="at least one word"):
        C.fertility(tok, "   ")


def test_compare_tokenizers_table(tok, hf_trio):
    texts = ["Unseen symbols ⚗ and 🧪 in a sentence.", "plain words only"]
    table = C.compare_tokenizers({"ours": tok, **hf_trio}, texts).set_index("tokenizer")
    assert table.loc["ours", "round_trip"] == 1.0 and table.loc["ours", "unk_tokens"] == 0
    assert table.loc["bpe", "round_trip"] == 1.0 and table.loc["bpe", "unk_tokens"] == 0
    # WordPiece never saw the emoji: they become [UNK], and the text does not come back
    wp = hf_trio["wordpiece"]
    assert table.loc["wordpiece", "unk_tokens"] == wp.encode(texts[0]).ids.count(wp.token_to_id("[UNK]")) >= 2
    assert table.loc["wordpiece", "round_trip"] < 1.0
    assert table.loc["ours", "vocab_size"] == 400


def test_view_of_a_transformers_tokenizer(hf, tok):
    v = C.view(hf, "hf")
    assert v.encode("the teacher") == tok.encode("the teacher")
    assert v.unk_id is None
    assert "".join(v.tokens("the teacher")) == "theĠteacher"
    with pytest.raises(TypeError, match="cannot compare"):
        C.view(42)


def test_vocab_size_sweep_shortens_sequences():
    table = C.vocab_size_sweep("\n".join(DOCS), CORPUS, [256, 300, 400])
    assert list(table["vocab_size"]) == [256, 300, 400]
    assert table.loc[0, "tokens"] == len(CORPUS.encode())  # bytes only: one token per byte
    assert table["tokens"].is_monotonic_decreasing
