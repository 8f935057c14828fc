"""A toy translation task for the encoder-decoder walk-through: number words -> digits.

"three thousand forty two" -> "3 0 4 2". Source and target share one small word-level
vocabulary, so the whole task fits a model that trains in about a minute on a CPU.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .checks import check_int
from .objectives import seq2seq_collate

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
SPECIALS = ["<pad>", "<s>", "</s>"]  # ids 0, 1, 2: padding, decoder start, end of sequence


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1,000,000, without "and": 1042 -> 'one thousand forty two'."""
    if not isinstance(n, int) or not 0 <= n < 1_000_000:
        raise ValueError(f"number_to_words covers integers 0..999999, got {n!r}.")
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_to_words(n % 100))
    return number_to_words(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + number_to_words(n % 1000))


class WordVocab:
    """Word <-> id for the task: the specials, then every number word, then the digits."""

    def __init__(self):
        words = ONES + TENS[2:] + ["hundred", "thousand"] + [str(d) for d in range(10)]
        self.itos = SPECIALS + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, add_eos: bool = True) -> list[int]:
        unknown = [w for w in text.split() if w not in self.stoi]
        if unknown:
            raise ValueError(f"words {unknown} are not in the number vocabulary; use number words or digits.")
        return [self.stoi[w] for w in text.split()] + ([self.eos_id] if add_eos else [])

    def decode(self, ids, skip_special: bool = True) -> str:
        words = [self.itos[int(i)] for i in ids]
        return " ".join(w for w in words if not (skip_special and w in SPECIALS))


@dataclass
class NumberTaskConfig:
    max_number: int = 9999  # numbers are drawn from 0..max_number
    n_train: int = 4000  # distinct training numbers
    n_test: int = 200  # distinct held-out numbers (never seen in training)
    batch_size: int = 64  # pairs per batch
    seed: int = 0  # which numbers go where

    def __post_init__(self):
        for name in ("max_number", "n_train", "n_test", "batch_size"):
            check_int("NumberTaskConfig", name, getattr(self, name), 1)
        check_int("NumberTaskConfig", "seed", self.seed, 0)
        if self.n_train + self.n_test > self.max_number + 1:
            raise ValueError(f"NumberTaskConfig: n_train + n_test = {self.n_train + self.n_test} distinct numbers do not "
                             f"fit in 0..max_number={self.max_number}; lower them or raise max_number.")


def number_pairs(cfg: NumberTaskConfig) -> dict:
    """{'train': [(words, digits)], 'test': [...]} with disjoint numbers."""
    if cfg.n_train + cfg.n_test > cfg.max_number + 1:
        raise ValueError(f"n_train + n_test = {cfg.n_train + cfg.n_test} distinct numbers do not fit in 0..{cfg.max_number}.")
    numbers = random.Random(cfg.seed).sample(range(cfg.max_number + 1), cfg.n_train + cfg.n_test)
    pairs = [(number_to_words(n), " ".join(str(n))) for n in numbers]
    return {"train": pairs[:cfg.n_train], "test": pairs[cfg.n_train:]}


def collate(pairs, vocab: WordVocab) -> dict:
    """Pairs -> the keyword arguments of ``EncoderDecoder.forward``: right-padded, pads in labels set to -100."""
    return seq2seq_collate([(vocab.encode(s), vocab.encode(t)) for s, t in pairs], vocab.pad_id)


def batches(pairs, vocab: WordVocab, batch_size: int, seed: int = 0) -> list[dict]:
    """One shuffled epoch of collated batches (the training loop cycles through the list)."""
    order = list(pairs)
    random.Random(seed).shuffle(order)
    return [collate(order[i:i + batch_size], vocab) for i in range(0, len(order), batch_size)]
