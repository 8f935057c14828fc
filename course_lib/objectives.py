"""Pretraining objectives: what each model family is asked to predict from raw text.

- masked LM (BERT; Devlin et al., 2019): hide ~15% of the tokens, predict them from both sides;
- causal LM (GPT; Radford et al., 2018): predict every next token from the ones before it;
- span corruption (T5; Raffel et al., 2020): replace random spans by sentinels, the decoder
  writes each sentinel followed by the span it hides.

Every function takes token ids plus a ``Vocab`` (which ids are special, which is the mask,
which are the sentinels) built from a Hugging Face tokenizer or the course BPE tokenizer by
``vocab_for``. Labels use -100 for "no loss here", as torch's cross_entropy and HF expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

IGNORE = -100  # label of positions that carry no loss


@dataclass(frozen=True)
class Vocab:
    size: int  # ids the model's embedding must cover (appended sentinels included)
    pad_id: int | None  # padding id
    mask_id: int | None  # the [MASK] / <mask> id masked LM writes over selected tokens
    eos_id: int | None  # end of sequence; closes span-corruption inputs and targets
    special_ids: tuple[int, ...] = ()  # ids never selected for masking (pad, cls, sep, eos, sentinels, ...)
    sentinel_ids: tuple[int, ...] = ()  # sentinel k = sentinel_ids[k]; T5: <extra_id_0> is the top id, then down
    names: tuple[tuple[int, str], ...] = ()  # display names for ids the tokenizer cannot spell (appended sentinels)

    def ordinary_ids(self) -> torch.Tensor:
        """Ids a masked-LM 'random token' may be drawn from: everything but the special ids."""
        keep = torch.ones(self.size, dtype=torch.bool)
        keep[list(set(self.special_ids) | set(self.sentinel_ids))] = False
        return keep.nonzero().flatten()


def _first_id(table: dict, names: Sequence[str]) -> int | None:
    return next((table[n] for n in names if n in table), None)


def vocab_for(tokenizer, n_sentinels: int = 0) -> Vocab:
    """A Vocab for an HF tokenizer or a course_lib.tokenization.BPETokenizer.

    Sentinels: the tokenizer's own ``<extra_id_k>`` tokens when it has them (T5); otherwise
    ``n_sentinels`` new ids are appended above the tokenizer's vocabulary, numbered from the top
    down the way T5 numbers its own (sentinel 0 = the highest id).
    """
    if hasattr(tokenizer, "special_ids") and hasattr(tokenizer, "merges"):  # the course BPE tokenizer
        table, size = dict(tokenizer.special_ids), len(tokenizer)
        pad = _first_id(table, ["<pad>", "[PAD]", "<|pad|>"])
        mask = _first_id(table, ["<mask>", "[MASK]"])
        eos = _first_id(table, ["</s>", "<|endoftext|>", "<eos>", "[SEP]"])
        special = set(table.values())
    elif hasattr(tokenizer, "all_special_ids"):  # Hugging Face
        table = tokenizer.get_vocab()
        size = len(tokenizer)
        pad, mask = tokenizer.pad_token_id, tokenizer.mask_token_id
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        special = set(tokenizer.all_special_ids)
    else:
        raise TypeError(f"vocab_for expects a Hugging Face tokenizer or a course BPETokenizer, got {type(tokenizer).__name__}.")
    sentinels, k = [], 0
    while f"<extra_id_{k}>" in table:
        sentinels.append(table[f"<extra_id_{k}>"])
        k += 1
    names = ()
    if not sentinels and n_sentinels:
        top = size + n_sentinels - 1
        sentinels = [top - k for k in range(n_sentinels)]
        names = tuple((top - k, f"<extra_id_{k}>") for k in range(n_sentinels))
        size += n_sentinels
    elif n_sentinels < 0:
        raise ValueError(f"n_sentinels={n_sentinels}: must be >= 0.")
    return Vocab(size, pad, mask, eos, tuple(sorted(special | set(sentinels))), tuple(sentinels), names)


def token_strings(ids, tokenizer, vocab: Vocab) -> list[str]:
    """How each id reads: the tokenizer's spelling, appended sentinels by name, -100 as '·'."""
    names = dict(vocab.names)
    out = []
    for i in torch.as_tensor(ids).flatten().tolist():
        if i == IGNORE:
            out.append("·")
        elif i in names:
            out.append(names[i])
        elif hasattr(tokenizer, "id_to_bytes"):
            out.append(tokenizer.id_to_bytes(i).decode("utf-8", errors="replace"))
        else:
            out.append(tokenizer.convert_ids_to_tokens(i))
    return out


def _check_rate(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r}: a rate must be a number in [0, 1].")


# ----------------------------------------------------------------------------- masked LM


def mask_tokens(input_ids: torch.Tensor, vocab: Vocab, mlm_probability: float = 0.15, mask_rate: float = 0.8,
                random_rate: float = 0.1, attention_mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: (corrupted input_ids, labels).

    Each non-special, non-padding token is selected with probability ``mlm_probability``; a
    selected token becomes the mask token with probability ``mask_rate``, a random ordinary
    token with probability ``random_rate``, and stays as it is otherwise (BERT: 15%, 80/10/10).
    Labels hold the original token at selected positions and -100 elsewhere.
    """
    for name, value in (("mlm_probability", mlm_probability), ("mask_rate", mask_rate), ("random_rate", random_rate)):
        _check_rate(name, value)
    if mask_rate + random_rate > 1.0 + 1e-12:
        raise ValueError(f"mask_rate + random_rate = {mask_rate + random_rate}: must be <= 1 (the rest stays unchanged).")
    if mask_rate > 0 and vocab.mask_id is None:
        raise ValueError("The tokenizer has no mask token. Use one that has (e.g. train the course tokenizer with '<mask>'), "
                         "or set mask_rate=0.")
    ids = torch.as_tensor(input_ids)
    device, ids = ids.device, ids.cpu()
    never = torch.tensor(sorted({*vocab.special_ids, *vocab.sentinel_ids}), dtype=ids.dtype)
    maskable = ~torch.isin(ids, never)
    if attention_mask is not None:
        maskable &= torch.as_tensor(attention_mask).cpu().bool()
    selected = torch.bernoulli(maskable * float(mlm_probability), generator=generator).bool() & maskable
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE))
    action = torch.rand(ids.shape, generator=generator)
    to_mask = selected & (action < mask_rate)
    to_random = selected & (action >= mask_rate) & (action < mask_rate + random_rate)
    corrupted = ids.clone()
    corrupted[to_mask] = vocab.mask_id if vocab.mask_id is not None else 0
    pool = vocab.ordinary_ids()
    picks = torch.randint(len(pool), (int(to_random.sum()),), generator=generator)
    corrupted[to_random] = pool[picks].to(ids.dtype)
    return corrupted.to(device), labels.to(device)


# ----------------------------------------------------------------------------- causal LM


def causal_lm_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                     pad_id: int | None = None) -> torch.Tensor:
    """Labels aligned with input_ids (the model shifts them, as HF and course_lib models do): padding -> -100.

    Pass attention_mask when the pad id is also a real token (GPT-2 pads with its end-of-text token).
    """
    ids = torch.as_tensor(input_ids)
    labels = ids.clone()
    if attention_mask is not None:
        labels[torch.as_tensor(attention_mask, device=ids.device) == 0] = IGNORE
    elif pad_id is not None:
        labels[ids == pad_id] = IGNORE
    return labels


def next_token_targets(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                       pad_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The shift written out: inputs = ids[:, :-1], targets = ids[:, 1:] (position t predicts token t+1)."""
    ids = torch.as_tensor(input_ids)
    if ids.dim() != 2 or ids.shape[1] < 2:
        raise ValueError(f"input_ids must be (batch, seq_len) with seq_len >= 2 to have a next token; got {tuple(ids.shape)}.")
    labels = causal_lm_labels(ids, attention_mask, pad_id)
    return ids[:, :-1], labels[:, 1:]


# ----------------------------------------------------------------------------- span corruption (T5)


def _check_span_args(noise_density: float, mean_noise_span_length: float) -> None:
    if not isinstance(noise_density, (int, float)) or not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density={noise_density!r}: must be strictly between 0 and 1 (T5 uses 0.15).")
    if not isinstance(mean_noise_span_length, (int, float)) or mean_noise_span_length < 1.0:
        raise ValueError(f"mean_noise_span_length={mean_noise_span_length!r}: must be >= 1 (T5 uses 3).")


def _noise_counts(length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int]:
    """(noise tokens, noise spans) for a text of ``length`` tokens; Python's round, as T5 uses."""
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_spans = max(int(round(num_noise / mean_noise_span_length)), 1)
    return num_noise, num_spans


def _t5_lengths(inputs_length: int, noise_density: float, mean_noise_span_length: float) -> tuple[int, int] | None:
    """random_spans_helper's search; None when the result holds no complete noise span."""

    def lengths(raw: int) -> tuple[int, int, int, int]:
        noise = int(round(raw * noise_density))
        spans = int(round(noise / mean_noise_span_length))
        return raw - noise + spans + 1, noise + spans + 1, noise, spans

    raw = inputs_length - 1
    while lengths(raw + 1)[0] <= inputs_length:
        raw += 1
    inputs, targets, noise, spans = lengths(raw)
    if noise_density == 0.5 and targets > inputs:  # T5's own adjustment, kept for fidelity
        raw, targets = raw - 1, targets - 1
    if noise < 1 or spans < 1 or spans > raw - noise:
        return None
    return raw, targets


def span_corruption_lengths(inputs_length: int, noise_density: float = 0.15,
                            mean_noise_span_length: float = 3.0) -> tuple[int, int]:
    """(raw_length, targets_length): how many text tokens to corrupt so the encoder input has exactly
    ``inputs_length`` tokens (kept tokens + one sentinel per span + EOS), and the target's length
    (noise tokens + one sentinel per span + EOS). The arithmetic of T5's ``random_spans_helper``.
    """
    _check_span_args(noise_density, mean_noise_span_length)
    if not isinstance(inputs_length, int) or inputs_length < 1:
        raise ValueError(f"inputs_length={inputs_length!r}: must be a positive integer.")
    result = _t5_lengths(inputs_length, noise_density, mean_noise_span_length)
    if result is None:
        shortest = next(n for n in range(2, 1_000_000) if _t5_lengths(n, noise_density, mean_noise_span_length))
        raise ValueError(f"inputs_length={inputs_length} is too short for noise_density={noise_density} and "
                         f"mean_noise_span_length={mean_noise_span_length}: the text would hold no complete noise span. "
                         f"Use inputs_length >= {shortest}.")
    return result


def _random_segmentation(num_items: int, num_segments: int, generator) -> torch.Tensor:
    """``num_items`` split into ``num_segments`` positive lengths, every such split equally likely."""
    first = torch.zeros(num_items, dtype=torch.long)
    cuts = torch.randperm(num_items - 1, generator=generator)[: num_segments - 1] + 1
    first[cuts] = 1
    return torch.bincount(torch.cumsum(first, 0), minlength=num_segments)


def random_spans_noise_mask(length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """A (length,) bool mask, True = noise: kept and noise spans alternate, starting with kept tokens, as in T5."""
    _check_span_args(noise_density, mean_noise_span_length)
    if length < 2:
        raise ValueError(f"A sequence of {length} token(s) is too short for span corruption: it needs at least 2 tokens.")
    num_noise, num_spans = _noise_counts(length, noise_density, mean_noise_span_length)
    if num_spans > length - num_noise:
        raise ValueError(f"noise_density={noise_density} with mean_noise_span_length={mean_noise_span_length} asks for "
                         f"{num_spans} noise spans but only {length - num_noise} kept tokens can separate them; "
                         "lower noise_density or raise mean_noise_span_length.")
    noise_lengths = _random_segmentation(num_noise, num_spans, generator)
    kept_lengths = _random_segmentation(length - num_noise, num_spans, generator)
    spans = torch.stack([kept_lengths, noise_lengths], dim=1).flatten()  # kept, noise, kept, noise, ...
    starts = torch.zeros(length, dtype=torch.long)
    starts[torch.cumsum(spans, 0)[:-1]] = 1  # 1 where a new span begins
    return torch.cumsum(starts, 0) % 2 == 1  # odd-numbered spans are noise


def corrupt_spans(ids: Sequence[int], noise_mask: torch.Tensor, vocab: Vocab) -> tuple[list[int], list[int]]:
    """Apply a noise mask: (input, target) id lists.

    Input: the text with noise span k replaced by sentinel k, then EOS. Target: sentinel k and span
    k for every span, then - when the text ends with kept tokens, as in the T5 paper's Figure 2 -
    one more sentinel closing the last span, then EOS. (T5's masks end with a noise span, so its
    targets end with that span and EOS; random_spans_helper's lengths count exactly that.)
    """
    ids = [int(t) for t in ids]
    mask = [bool(m) for m in torch.as_tensor(noise_mask).tolist()]
    if len(mask) != len(ids):
        raise ValueError(f"noise_mask has {len(mask)} entries for {len(ids)} tokens.")
    if set(ids) & set(vocab.sentinel_ids):
        raise ValueError("The text already contains sentinel ids; span corruption needs plain text tokens.")
    if vocab.eos_id is None:
        raise ValueError("The tokenizer has no end-of-sequence token; span corruption closes inputs and targets with one.")
    inputs, targets, k = [], [], 0
    for i, (tok, noise) in enumerate(zip(ids, mask)):
        starts_span = noise and (i == 0 or not mask[i - 1])
        if starts_span:
            if k >= len(vocab.sentinel_ids):
                raise ValueError(f"The mask has more than {len(vocab.sentinel_ids)} noise spans, more than the vocab's sentinels; "
                                 "build the Vocab with more n_sentinels or corrupt shorter texts.")
            inputs.append(vocab.sentinel_ids[k])
            targets.append(vocab.sentinel_ids[k])
            k += 1
        (targets if noise else inputs).append(tok)
    if mask and not mask[-1] and k > 0:
        if k >= len(vocab.sentinel_ids):
            raise ValueError("No sentinel left to close the target; build the Vocab with more n_sentinels.")
        targets.append(vocab.sentinel_ids[k])
    return inputs + [vocab.eos_id], targets + [vocab.eos_id]


def span_corrupt(ids: Sequence[int], vocab: Vocab, noise_density: float = 0.15, mean_noise_span_length: float = 3.0,
                 generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """T5 span corruption of one text (plain tokens, no EOS): (encoder input, decoder target)."""
    mask = random_spans_noise_mask(len(ids), noise_density, mean_noise_span_length, generator)
    return corrupt_spans(ids, mask, vocab)


def fill_sentinels(inputs: Sequence[int], targets: Sequence[int], vocab: Vocab) -> list[int]:
    """Put each target span back where its sentinel sits in the input (EOS dropped): the text again."""
    sentinel_index = {s: k for k, s in enumerate(vocab.sentinel_ids)}
    spans, current = {}, None
    for tok in targets:
        if tok in sentinel_index:
            current = sentinel_index[tok]
            spans[current] = []
        elif tok == vocab.eos_id:
            break
        elif current is not None:
            spans[current].append(tok)
    text = []
    for tok in inputs:
        if tok in sentinel_index:
            text.extend(spans.get(sentinel_index[tok], []))
        elif tok == vocab.eos_id:
            break
        else:
            text.append(tok)
    return text


# ----------------------------------------------------------------------------- batches


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, label: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists into (ids, attention_mask); with label=True pads with -100 instead of pad_id."""
    if not sequences:
        raise ValueError("No sequences to pad.")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), IGNORE if label else pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        attention[row, : len(seq)] = 1
    return ids, attention


def mlm_batch(input_ids, vocab: Vocab, attention_mask=None, generator=None, **rates) -> dict:
    """{'input_ids', 'attention_mask', 'labels'} for an EncoderOnlyMLM / HF masked LM."""
    ids = torch.as_tensor(input_ids)
    attention = torch.ones_like(ids) if attention_mask is None else torch.as_tensor(attention_mask)
    corrupted, labels = mask_tokens(ids, vocab, attention_mask=attention, generator=generator, **rates)
    return {"input_ids": corrupted, "attention_mask": attention, "labels": labels}


def clm_batch(input_ids, attention_mask=None, pad_id: int | None = None) -> dict:
    """{'input_ids', 'attention_mask', 'labels'} for a DecoderOnlyLM / HF causal LM (the model shifts)."""
    ids = torch.as_tensor(input_ids)
    attention = torch.ones_like(ids) if attention_mask is None and pad_id is None else (
        torch.as_tensor(attention_mask) if attention_mask is not None else (ids != pad_id).long())
    return {"input_ids": ids, "attention_mask": attention, "labels": causal_lm_labels(ids, attention)}


def span_corruption_batch(texts: Sequence[Sequence[int]], vocab: Vocab, noise_density: float = 0.15,
                          mean_noise_span_length: float = 3.0, generator=None) -> dict:
    """{'input_ids', 'attention_mask', 'labels'} for an EncoderDecoder / HF T5 (labels padded with -100)."""
    if vocab.pad_id is None:
        raise ValueError("Span-corruption batches need a pad id; use a tokenizer with a pad token.")
    pairs = [span_corrupt(list(t), vocab, noise_density, mean_noise_span_length, generator) for t in texts]
    ids, attention = pad_batch([p[0] for p in pairs], vocab.pad_id)
    labels, _ = pad_batch([p[1] for p in pairs], vocab.pad_id, label=True)
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


def pack(token_ids: Sequence[int], length: int) -> torch.Tensor:
    """Cut one long stream of token ids into rows of ``length`` (the remainder is dropped)."""
    if length < 1:
        raise ValueError(f"length={length}: must be >= 1.")
    n = len(token_ids) // length
    if n == 0:
        raise ValueError(f"The stream has {len(token_ids)} tokens, fewer than one row of {length}; use more text.")
    return torch.as_tensor(list(token_ids[: n * length]), dtype=torch.long).view(n, length)


def seq2seq_collate(pairs: list[tuple[list[int], list[int]]], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad a list of (source, target) id lists into T5 inputs; padded label positions are -100 (ignored)."""
    input_ids, attention_mask = pad_batch([s for s, _ in pairs], pad_id)  # (B, S)
    labels, _ = pad_batch([t for _, t in pairs], pad_id, label=True)  # (B, T)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
