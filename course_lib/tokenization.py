"""Byte-level BPE, from scratch (Sennrich et al., 2016; the byte-level variant of GPT-2, Radford et al., 2019).

Training starts from the 256 single bytes, reserves ids for special tokens, then
repeatedly merges the most frequent adjacent pair of tokens inside pre-tokens
(the GPT-2 regex chunks: words with their leading space, numbers, punctuation,
whitespace). Pairs never cross a pre-token or a special token. Ties go to the
lexicographically greater pair of byte strings, so training is deterministic.

The pair counts are updated incrementally: after a merge only the words that
contain the merged pair are re-counted, which is what makes vocab 500 on
~130 KB of text take well under a second in pure Python.
"""

from __future__ import annotations

import codecs
import heapq
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import regex
import torch

from .atomic import atomic_write

# GPT-2's pre-tokenizer: contractions, letters, numbers, other symbols, then whitespace.
# `\s+(?!\S)` leaves the last space of a run to be the prefix of the next word.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PRETOKEN_RE = regex.compile(GPT2_PATTERN)


def _surrogate_or_replace(exc: UnicodeDecodeError):
    """Decode error handler: keep a lone surrogate that was encoded on purpose, replace anything else with U+FFFD."""
    chunk = exc.object[exc.start : exc.start + 3]
    try:
        return chunk.decode("utf-8", errors="surrogatepass"), exc.start + 3
    except UnicodeDecodeError:
        return "\ufffd", exc.end


codecs.register_error("course_bpe_replace", _surrogate_or_replace)


def to_bytes(text: str) -> bytes:
    """UTF-8 bytes of ``text``; lone surrogates (legal in a Python str) are kept, not rejected."""
    return text.encode("utf-8", errors="surrogatepass")


def utf8_stream(texts, separator: str = "\n") -> torch.Tensor:
    """Texts joined by ``separator`` as one stream of UTF-8 byte ids (a long tensor of values 0..255)."""
    texts = list(texts)
    if not texts:
        raise ValueError("No text given; pass a non-empty list of strings.")
    return torch.frombuffer(bytearray(separator.join(texts).encode("utf-8")), dtype=torch.uint8).long()


def from_bytes(data: bytes) -> str:
    """The inverse of ``to_bytes``; bytes that are not valid UTF-8 become U+FFFD, never an exception."""
    return data.decode("utf-8", errors="course_bpe_replace")


def _special_splitter(special_tokens: Iterable[str]):
    """A compiled regex that captures special tokens (longest first, so '<a><b>' wins over '<a>'), or None."""
    specials = sorted(set(special_tokens), key=len, reverse=True)
    if not specials:
        return None
    return regex.compile("(" + "|".join(regex.escape(s) for s in specials) + ")")


def split_on_specials(text: str, special_tokens: Iterable[str]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, is_special) pieces; special tokens come out whole."""
    splitter = _special_splitter(special_tokens)
    if splitter is None:
        return [(text, False)] if text else []
    pieces = splitter.split(text)
    # re.split with one capture group alternates: text, special, text, special, ...
    return [(piece, i % 2 == 1) for i, piece in enumerate(pieces) if piece]


def pretokenize(text: str) -> list[str]:
    """GPT-2 pre-tokens of ``text`` (which must contain no special tokens)."""
    return _PRETOKEN_RE.findall(text)


def merge_symbols(symbols, pair, new_symbol) -> list:
    """``symbols`` with every non-overlapping ``pair``, left to right, replaced by ``new_symbol``: the one merge
    step that BPE training, encoding and ``apply_merge`` share."""
    first, second = pair
    merged, i, n = [], 0, len(symbols)
    while i < n:
        if i + 1 < n and symbols[i] == first and symbols[i + 1] == second:
            merged.append(new_symbol)
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged


def _reverse_key(pair_bytes: tuple[bytes, bytes]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A key whose ascending order is the descending lexicographic order of the byte pair.

    Each byte x becomes 255 - x and a terminator 256 follows, so a longer string
    sorts before its own prefix, the reverse of bytes' usual order.
    """
    return tuple(tuple(255 - b for b in part) + (256,) for part in pair_bytes)


class BPETokenizer:
    """A byte-level BPE tokenizer: ids 0-255 are bytes, then special tokens, then one id per merge."""

    def __init__(self, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]], special_tokens: Iterable[str] = ()):
        self.vocab = dict(vocab)
        self.merges = [tuple(m) for m in merges]
        self.special_tokens = list(special_tokens)
        self.token_to_id = {tok: i for i, tok in self.vocab.items()}
        if len(self.token_to_id) != len(self.vocab):
            raise ValueError("vocab maps two ids to the same bytes; every token must be unique.")
        if any(self.vocab.get(b) != bytes([b]) for b in range(256)):
            raise ValueError("ids 0-255 must be the 256 single bytes in order (id b is byte b), as train_bpe makes them.")
        for i, special in enumerate(self.special_tokens):
            if to_bytes(special) not in self.token_to_id:
                raise ValueError(f"special token {special!r} (number {i}) is not in the vocab; add it before the merges.")
        self.special_ids = {s: self.token_to_id[to_bytes(s)] for s in self.special_tokens}
        # rank of each merge as a pair of ids: lower rank = learned earlier = applied first
        self.merge_ranks: dict[tuple[int, int], int] = {}
        for rank, (left, right) in enumerate(self.merges):
            try:
                ids = (self.token_to_id[left], self.token_to_id[right], self.token_to_id[left + right])
            except KeyError:
                raise ValueError(f"merge {rank} {left!r} + {right!r} uses a token missing from the vocab.") from None
            self.merge_ranks[ids[:2]] = rank
        self.merge_result = {(self.token_to_id[a], self.token_to_id[b]): self.token_to_id[a + b] for a, b in self.merges}
        self._splitter = _special_splitter(self.special_tokens)
        self._cache: dict[str, tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={len(self.vocab)}, merges={len(self.merges)}, special_tokens={self.special_tokens})"

    # --- encoding ------------------------------------------------------------

    def _encode_pretoken(self, pretoken: str) -> tuple[int, ...]:
        """Apply the merges to one pre-token, lowest rank first, as GPT-2 does."""
        cached = self._cache.get(pretoken)
        if cached is not None:
            return cached
        ids = list(to_bytes(pretoken))  # byte b has id b
        ranks = self.merge_ranks
        while len(ids) > 1:
            best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 60))
            if best not in ranks:
                break
            ids = merge_symbols(ids, best, self.merge_result[best])
        result = tuple(ids)
        if len(self._cache) < 200_000:  # bound the memory a long, varied stream can take
            self._cache[pretoken] = result
        return result

    def _encode_plain(self, text: str, out: list[int]) -> None:
        for pretoken in _PRETOKEN_RE.findall(text):
            out.extend(self._encode_pretoken(pretoken))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special tokens map to their own id, never split."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}; decode bytes to str first.")
        out: list[int] = []
        for piece, is_special in split_on_specials(text, self.special_tokens):
            if is_special:
                out.append(self.special_ids[piece])
            else:
                self._encode_plain(piece, out)
        return out

    def encode_iterable(self, chunks: Iterable[str]) -> Iterator[int]:
        """Yield the ids of the concatenated ``chunks`` (e.g. an open file's lines) with bounded memory.

        Gives the same ids as ``encode("".join(chunks))``. The last two pre-tokens
        read so far, and any tail that could start a special token, wait for the
        next chunk, because more text can still change them (a contraction
        "'l" + "l", a run of spaces before a word).
        """
        buffer = ""
        for chunk in chunks:
            if not isinstance(chunk, str):
                raise TypeError(f"encode_iterable expects str chunks, got {type(chunk).__name__}.")
            buffer += chunk
            ids, consumed = self._encode_settled(buffer)
            yield from ids
            buffer = buffer[consumed:]
        if buffer:
            yield from self.encode(buffer)

    def _encode_settled(self, buffer: str) -> tuple[list[int], int]:
        """Ids of the part of ``buffer`` that more text cannot change, and that part's length."""
        hold = len(buffer)  # a suffix that is a proper prefix of a special token must wait
        for special in self.special_tokens:
            for k in range(min(len(special) - 1, len(buffer)), 0, -1):
                if buffer.endswith(special[:k]):
                    hold = min(hold, len(buffer) - k)
                    break
        out: list[int] = []
        pos = 0
        if self._splitter is not None:
            for match in self._splitter.finditer(buffer, 0, hold):
                self._encode_plain(buffer[pos : match.start()], out)
                out.append(self.special_ids[match.group()])
                pos = match.end()
        # Take the pre-tokens from this one regex pass: running the regex again on a
        # cut prefix could split it differently ("  \n" + "x" is "  ", "\n", "x").
        matches = list(_PRETOKEN_RE.finditer(buffer, pos, hold))
        for match in matches[:-2]:
            out.extend(self._encode_pretoken(match.group()))
        return out, (matches[-2].start() if len(matches) >= 2 else pos)

    # --- decoding ------------------------------------------------------------

    def id_to_bytes(self, token_id: int) -> bytes:
        try:
            return self.vocab[token_id]
        except (KeyError, TypeError):
            raise ValueError(f"token id {token_id!r} is not in this tokenizer's vocab (0..{len(self.vocab) - 1}).") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; byte sequences that are not valid UTF-8 become U+FFFD (never an exception)."""
        return from_bytes(b"".join(self.id_to_bytes(i) for i in ids))

    def tokens(self, text: str) -> list[str]:
        """The token strings of ``text`` (each token's bytes decoded on its own, so a split character shows as U+FFFD)."""
        return [from_bytes(self.vocab[i]) for i in self.encode(text)]

    # --- persistence ---------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "format": "course_lib.bpe/1",
            "special_tokens": self.special_tokens,
            "vocab": {str(i): tok.hex() for i, tok in sorted(self.vocab.items())},
            "merges": [[a.hex(), b.hex()] for a, b in self.merges],
        }

    @classmethod
    def from_dict(cls, data: dict) -> BPETokenizer:
        if data.get("format") != "course_lib.bpe/1":
            raise ValueError(f"not a course_lib BPE file (format={data.get('format')!r}); save one with BPETokenizer.save.")
        vocab = {int(i): bytes.fromhex(h) for i, h in data["vocab"].items()}
        merges = [(bytes.fromhex(a), bytes.fromhex(b)) for a, b in data["merges"]]
        return cls(vocab, merges, data.get("special_tokens", []))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as JSON (bytes in hex), atomically."""
        return atomic_write(path, lambda fh: json.dump(self.to_dict(), fh))

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; train a tokenizer and call .save(path) first.")
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))

    # --- Hugging Face --------------------------------------------------------

    def to_hf(self):
        """A transformers ``PreTrainedTokenizerFast`` with the same vocab, merges and ids.

        Byte-level BPE in ``tokenizers`` spells each byte as a printable character
        (GPT-2's byte-to-unicode table), so tokens are renamed, not changed.
        """
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        byte_char = bytes_to_unicode()

        def spell(token: bytes) -> str:
            return "".join(byte_char[b] for b in token)

        specials = set(self.special_ids.values())
        vocab = {spell(tok): i for i, tok in self.vocab.items() if i not in specials}
        vocab.update({s: i for s, i in self.special_ids.items()})
        merges = [(spell(a), spell(b)) for a, b in self.merges]
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in self.special_tokens])
        return PreTrainedTokenizerFast(tokenizer_object=tok)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table that spells every byte as a visible character (printable bytes stay themselves)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


# --- training -----------------------------------------------------------------


def word_frequencies(text: str, special_tokens: Iterable[str] = ()) -> Counter:
    """How often each pre-token occurs in ``text`` (special tokens removed: nothing merges across them)."""
    counts: Counter = Counter()
    for piece, is_special in split_on_specials(text, special_tokens):
        if not is_special:
            counts.update(_PRETOKEN_RE.findall(piece))
    return counts


def train_bpe(text: str, vocab_size: int, special_tokens: Iterable[str] = ()) -> BPETokenizer:
    """Learn a byte-level BPE with ``vocab_size`` tokens (256 bytes + specials + merges) from ``text``."""
    if not isinstance(text, str):
        raise TypeError(f"train_bpe expects the training text as one str, got {type(text).__name__}; join your documents first.")
    return train_bpe_from_counts(word_frequencies(text, special_tokens), vocab_size, special_tokens)[0]


def train_bpe_from_counts(
    word_counts: dict[str, int], vocab_size: int, special_tokens: Iterable[str] = ()
) -> tuple[BPETokenizer, list[int]]:
    """``train_bpe`` from a pre-token frequency table; also returns how often each merged pair occurred."""
    special_tokens = list(dict.fromkeys(special_tokens))
    if not isinstance(vocab_size, int) or vocab_size < 256 + len(special_tokens):
        raise ValueError(
            f"vocab_size={vocab_size!r} is too small: it must be an int of at least 256 (the bytes) "
            f"+ {len(special_tokens)} special tokens = {256 + len(special_tokens)}."
        )
    vocab = {i: bytes([i]) for i in range(256)}
    for s in special_tokens:
        vocab[len(vocab)] = to_bytes(s)

    known = {tok: i for i, tok in vocab.items()}  # bytes -> id
    words = [list(to_bytes(w)) for w in word_counts]  # each pre-token as a list of token ids
    freqs = list(word_counts.values())
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> words that (may) contain it
    for w, (ids, f) in enumerate(zip(words, freqs)):
        for pair in zip(ids, ids[1:]):
            pair_counts[pair] += f
            where[pair].add(w)

    # max-heap by (count, byte pair), with stale entries skipped when popped
    heap = [(-c, _reverse_key((vocab[a], vocab[b])), (a, b)) for (a, b), c in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    merge_counts: list[int] = []
    while len(vocab) < vocab_size and heap:
        neg, _, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg or neg == 0:
            continue  # stale: this pair's count changed since the entry was pushed
        a, b = pair
        merged_bytes = vocab[a] + vocab[b]
        # Two merge paths can spell the same bytes ('a'+'bc', 'ab'+'c'); keep one id per byte string.
        new_id = known.setdefault(merged_bytes, len(vocab))
        vocab[new_id] = merged_bytes
        merges.append((vocab[a], vocab[b]))
        merge_counts.append(-neg)
        touched: set[tuple[int, int]] = set()
        for w in where.pop(pair):
            ids, f = words[w], freqs[w]
            if len(ids) < 2:
                continue
            merged = merge_symbols(ids, pair, new_id)
            if len(merged) == len(ids):
                continue
            for p in zip(ids, ids[1:]):
                pair_counts[p] -= f
                touched.add(p)
            for p in zip(merged, merged[1:]):
                pair_counts[p] += f
                where[p].add(w)
                touched.add(p)
            words[w] = merged
        pair_counts.pop(pair, None)
        touched.discard(pair)
        for p in touched:
            c = pair_counts[p]
            if c > 0:
                heapq.heappush(heap, (-c, _reverse_key((vocab[p[0]], vocab[p[1]])), p))
            else:
                del pair_counts[p]
    return BPETokenizer(vocab, merges, special_tokens), merge_counts


def pair_frequencies(words: dict[tuple, int]) -> Counter:
    """Counts of adjacent symbol pairs over a {word as a tuple of symbols: frequency} table."""
    counts: Counter = Counter()
    for symbols, freq in words.items():
        for pair in zip(symbols, symbols[1:]):
            counts[pair] += freq
    return counts


def apply_merge(words: dict[tuple, int], pair: tuple, new_symbol) -> dict[tuple, int]:
    """The word table after replacing every non-overlapping ``pair`` (left to right) by ``new_symbol``."""
    out: dict[tuple, int] = {}
    for symbols, freq in words.items():
        key = tuple(merge_symbols(symbols, pair, new_symbol))
        out[key] = out.get(key, 0) + freq
    return out
