"""Train Hugging Face tokenizers (BPE, WordPiece, Unigram) and compare any tokenizers on the same text.

One view (``TokenizerView``) over three kinds of object: the course's
``BPETokenizer``, a ``tokenizers.Tokenizer``, and a transformers tokenizer, so a
table can put them side by side: vocabulary size, tokens per word
("fertility"), whether decode(encode(text)) gives the text back, and how many
unknown tokens came out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .tokenization import BPETokenizer, train_bpe

HF_KINDS = ("bpe", "wordpiece", "unigram")


def train_hf_tokenizer(texts: Iterable[str] | str, kind: str, vocab_size: int, special_tokens: Iterable[str] = ()):
    """A ``tokenizers.Tokenizer`` of ``kind`` in {'bpe', 'wordpiece', 'unigram'} trained on ``texts``.

    - 'bpe': byte-level, like GPT-2 (every byte is in the vocab, so no unknown token);
    - 'wordpiece': BERT's pre-tokenizer and '##' continuations, with '[UNK]';
    - 'unigram': SentencePiece-style ('▁' marks a space), with '<unk>'.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    specials = list(special_tokens)
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        )
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[UNK]", *specials], show_progress=False)
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, unk_token="<unk>", special_tokens=["<unk>", *specials], show_progress=False
        )
    else:
        raise ValueError(f"kind={kind!r} is not one of {HF_KINDS}.")
    if not any(t.strip() for t in texts):
        raise ValueError("texts are empty: a tokenizer needs some text to learn from.")
    tok.train_from_iterator(texts, trainer)
    return tok


@dataclass
class TokenizerView:
    """The handful of operations the comparisons need, whatever the tokenizer's library."""

    name: str  # label in tables and plots
    encode: Callable[[str], list[int]]  # text -> ids, no special tokens added ([CLS], </s>, ...)
    decode: Callable[[list[int]], str]  # ids -> text
    tokens: Callable[[str], list[str]]  # text -> token strings as the library spells them
    vocab_size: int
    unk_id: int | None  # id of the unknown token, None when the tokenizer has none (byte-level)


def view(tokenizer: Any, name: str | None = None) -> TokenizerView:
    """Wrap a ``BPETokenizer``, a ``tokenizers.Tokenizer`` or a transformers tokenizer."""
    if isinstance(tokenizer, TokenizerView):
        return tokenizer
    if isinstance(tokenizer, BPETokenizer):
        return TokenizerView(name or "course BPE", tokenizer.encode, tokenizer.decode, tokenizer.tokens, len(tokenizer), None)
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover - tokenizers is a requirement
        Tokenizer = ()
    if isinstance(tokenizer, Tokenizer):
        unk = _unk_id(tokenizer.get_vocab(), getattr(tokenizer.model, "unk_token", None))
        return TokenizerView(
            name or f"HF {type(tokenizer.model).__name__}",
            lambda text: tokenizer.encode(text, add_special_tokens=False).ids,
            lambda ids: tokenizer.decode(ids, skip_special_tokens=False),
            lambda text: tokenizer.encode(text, add_special_tokens=False).tokens,
            tokenizer.get_vocab_size(),
            unk,
        )
    if hasattr(tokenizer, "convert_ids_to_tokens") and hasattr(tokenizer, "encode"):
        return TokenizerView(
            name or getattr(tokenizer, "name_or_path", type(tokenizer).__name__),
            lambda text: tokenizer.encode(text, add_special_tokens=False),
            lambda ids: tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False),
            lambda text: tokenizer.convert_ids_to_tokens(tokenizer.encode(text, add_special_tokens=False)),
            len(tokenizer),
            tokenizer.unk_token_id,
        )
    raise TypeError(
        f"cannot compare a {type(tokenizer).__name__}: pass a course_lib BPETokenizer, a tokenizers.Tokenizer or a transformers tokenizer."
    )


def _unk_id(vocab: dict[str, int], unk_token: str | None) -> int | None:
    for candidate in (unk_token, "[UNK]", "<unk>"):
        if candidate and candidate in vocab:
            return vocab[candidate]
    return None


def count_words(text: str) -> int:
    """Words as a reader counts them: runs of non-space characters."""
    return len(text.split())


def fertility(tokenizer: Any, texts: Iterable[str] | str) -> float:
    """Tokens per word over ``texts`` (1.0 means one token per word; higher costs more)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    tok = view(tokenizer)
    words = sum(count_words(t) for t in texts)
    if words == 0:
        raise ValueError("fertility needs at least one word of text.")
    return sum(len(tok.encode(t)) for t in texts) / words


def compare_tokenizers(tokenizers: dict[str, Any], texts: Iterable[str] | str) -> pd.DataFrame:
    """One row per tokenizer: vocab size, tokens, fertility, exact round trips, unknown tokens."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    words = sum(count_words(t) for t in texts)
    rows = []
    for name, tokenizer in tokenizers.items():
        tok = view(tokenizer, name)
        ids = [tok.encode(t) for t in texts]
        n_tokens = sum(map(len, ids))
        rows.append(
            {
                "tokenizer": name,
                "vocab_size": tok.vocab_size,
                "tokens": n_tokens,
                "fertility": n_tokens / max(words, 1),
                "round_trip": sum(tok.decode(i) == t for i, t in zip(ids, texts)) / len(texts),
                "unk_tokens": 0 if tok.unk_id is None else sum(i.count(tok.unk_id) for i in ids),
            }
        )
    return pd.DataFrame(rows)


def domain_fertility(tokenizers: dict[str, Any], domains: dict[str, list[str]]) -> pd.DataFrame:
    """Fertility of each tokenizer on each domain's sentences (long format: tokenizer, domain, fertility)."""
    rows = []
    for name, tokenizer in tokenizers.items():
        for domain, sentences in domains.items():
            rows.append({"tokenizer": name, "domain": domain, "fertility": fertility(tokenizer, sentences)})
    return pd.DataFrame(rows)


def token_table(tokenizer: Any, text: str) -> pd.DataFrame:
    """Token string and id for each token of ``text``: the first step of the text -> vectors pipeline."""
    tok = view(tokenizer)
    ids = tok.encode(text)
    return pd.DataFrame({"token": tok.tokens(text), "id": ids})


def vocab_size_sweep(train_text: str, eval_text: str, vocab_sizes: Iterable[int], progress: bool = False) -> pd.DataFrame:
    """Train ``train_bpe`` at each vocab size; tokens, bytes per token and training time on ``eval_text``."""
    sizes = list(vocab_sizes)
    n_bytes = len(eval_text.encode("utf-8"))
    if progress:
        from tqdm.auto import tqdm

        sizes = tqdm(sizes, desc="vocab sizes")
    rows = []
    for size in sizes:
        start = time.perf_counter()
        tok = train_bpe(train_text, size)
        seconds = time.perf_counter() - start
        n_tokens = len(tok.encode(eval_text))
        rows.append(
            {
                "vocab_size": size,
                "tokens": n_tokens,
                "bytes_per_token": n_bytes / n_tokens,
                "fertility": n_tokens / max(count_words(eval_text), 1),
                "train_seconds": seconds,
            }
        )
    return pd.DataFrame(rows)
