"""Decoding: turning a model's next-token logits into text, one token at a time.

The logits processors follow Hugging Face's semantics exactly, so a student can
check them against ``TemperatureLogitsWarper``, ``TopKLogitsWarper`` and
``TopPLogitsWarper``: removed tokens get -inf, top-k keeps every token tied with
the k-th largest, and top-p (Holtzman et al., 2020, "The Curious Case of Neural
Text Degeneration") keeps the smallest set of most likely tokens whose
probability reaches p, never fewer than one. Order inside a step is the same as
``model.generate``'s: temperature, then top-k, then top-p.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .checks import check_int, check_number
from .device import configure_threads, set_seed
from .prompting import context_limit

NEG_INF = float("-inf")


# --- logits processors: (..., vocab) float tensor in, same shape out -------------


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        raise ValueError("logits must be a float tensor of shape (..., vocab).")


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by ``temperature``: < 1 sharpens the softmax, > 1 flattens it, 1 leaves it."""
    _check_logits(logits)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature={temperature!r} must be a number > 0 (for greedy decoding use do_sample=False).")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits (and any tied with the k-th); the rest become -inf."""
    _check_logits(logits)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} must be an integer >= 1 (k=1 is greedy).")
    k = min(k, logits.size(-1))  # more than the vocabulary keeps everything
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, NEG_INF)


TOP_P_RULES = ("reach", "within")


def top_p_filter(logits: torch.Tensor, p: float, rule: str = "reach") -> torch.Tensor:
    """Nucleus filtering: keep the most likely tokens; the rest become -inf. Never fewer than one token.

    rule="reach" (Hugging Face, Holtzman et al.): the smallest set whose probability *reaches* ``p``.
    rule="within" (the course's wording): the most likely tokens whose cumulative probability stays
    *within* ``p``. The two differ whenever ``p`` falls strictly inside a token's share: with
    probabilities 0.20, 0.10, ... and p = 0.25, "reach" keeps two tokens and "within" one.
    """
    _check_logits(logits)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(f"p={p!r} must be in (0, 1]; p=1 keeps every token.")
    if rule not in TOP_P_RULES:
        raise ValueError(f"rule={rule!r}: expected one of {TOP_P_RULES}.")
    if rule == "within":
        descending, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
        mass_so_far = descending.softmax(dim=-1).cumsum(dim=-1)  # (..., V)
        keep_sorted = mass_so_far <= p + 1e-6  # a little slack: 0.2 + 0.1 is 0.30000000000000004 in floats
        keep_sorted[..., 0] = True
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        return logits.masked_fill(~keep, NEG_INF)
    # Walk up from the least likely token: a token may go while the mass of it and everything
    # below it stays within 1 - p. The most likely token always stays.
    ascending, order = torch.sort(logits, dim=-1)  # (..., V)
    mass_at_or_below = ascending.softmax(dim=-1).cumsum(dim=-1)  # (..., V)
    drop_sorted = mass_at_or_below <= 1 - p
    drop_sorted[..., -1] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, NEG_INF)


def _check_finite_choice(logits: torch.Tensor) -> None:
    if torch.isnan(logits).any():
        raise ValueError("the logits hold NaN, so no token can be chosen (argmax would silently return id 0). "
                         "The model's forward pass overflowed or received bad input: check its precision (T5 overflows "
                         "in float16) and its inputs.")


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most probable token id(s): (..., V) -> (...)."""
    _check_logits(logits)
    _check_finite_choice(logits)
    return logits.argmax(dim=-1)


def sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw token ids in proportion to softmax(logits): (B, V) -> (B,). Unlikely tokens can still win."""
    _check_logits(logits)
    _check_finite_choice(logits)
    probs = logits.float().softmax(dim=-1)
    return torch.multinomial(probs.reshape(-1, probs.size(-1)), 1, generator=generator).reshape(probs.shape[:-1])


# --- settings --------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 50  # hard cap on decoding steps
    do_sample: bool = False  # False: greedy; True: weighted random sampling
    temperature: float = 1.0  # softmax temperature (sampling only)
    top_k: int | None = None  # keep the k most likely tokens (sampling only); None = off
    top_p: float | None = None  # keep the nucleus of probability p (sampling only); None = off
    stop_at_eos: bool = True  # end a sequence at the end-of-sequence token

    def __post_init__(self):
        self.validate()

    def validate(self) -> GenerationSettings:
        check_int("GenerationSettings", "max_new_tokens", self.max_new_tokens, 1)
        check_number("GenerationSettings", "temperature", self.temperature, 0.0, low_open=True)
        if self.top_k is not None:
            check_int("GenerationSettings", "top_k", self.top_k, 1)
        if self.top_p is not None:
            check_number("GenerationSettings", "top_p", self.top_p, 0.0, 1.0, low_open=True)
        return self

    def hf_kwargs(self) -> dict:
        """The same settings for ``model.generate`` (explicit, so its own defaults such as top_k=50 do not leak in).

        ``model.generate`` always stops at the end-of-sequence token, so ``stop_at_eos=False`` has no equivalent.
        """
        if not self.stop_at_eos:
            raise ValueError("model.generate always stops at the end-of-sequence token; use decode() for stop_at_eos=False.")
        kw = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample, "num_beams": 1}
        if self.do_sample:
            kw.update(temperature=float(self.temperature), top_k=self.top_k or 0, top_p=float(self.top_p or 1.0))
        return kw


def process_logits(logits: torch.Tensor, settings: GenerationSettings) -> torch.Tensor:
    """Apply the settings' processors in ``model.generate``'s order (sampling only; greedy ignores them)."""
    if not settings.do_sample:
        return logits
    if settings.temperature != 1.0:
        logits = apply_temperature(logits, settings.temperature)
    if settings.top_k is not None:
        logits = top_k_filter(logits, settings.top_k)
    if settings.top_p is not None and settings.top_p < 1.0:
        logits = top_p_filter(logits, settings.top_p)
    return logits


def next_token(logits: torch.Tensor, settings: GenerationSettings, generator: torch.Generator | None = None) -> torch.Tensor:
    """One decoding decision for a batch: (B, V) logits -> (B,) token ids."""
    logits = process_logits(logits.float(), settings)
    return sample(logits, generator) if settings.do_sample else greedy(logits)


# --- the decoding loop -------------------------------------------------------------


def logits_of(output) -> torch.Tensor:
    """Logits from an HF ModelOutput, a course_lib ``(logits, loss)`` tuple, or a bare tensor."""
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


def _special_ids(model, eos_token_id, pad_token_id):
    cfg = getattr(model, "config", None)
    eos = eos_token_id if eos_token_id is not None else getattr(cfg, "eos_token_id", None)
    pad = pad_token_id if pad_token_id is not None else getattr(cfg, "pad_token_id", None)
    return eos, (pad if pad is not None else (eos if eos is not None else 0))


@torch.no_grad()
def decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
           settings: GenerationSettings = GenerationSettings(), generator: torch.Generator | None = None,
           eos_token_id: int | None = None, pad_token_id: int | None = None, use_cache: bool = True) -> torch.Tensor:
    """Generate up to ``settings.max_new_tokens`` tokens for each row of ``input_ids`` (B, S) -> new ids (B, N).

    The one decoding loop of course_lib (the course models' ``generate`` calls it). Encoder-decoders, Hugging
    Face's and the course's, run the encoder once and the decoder with a key/value cache; a course decoder-only
    model uses its cache too while prompt + new tokens fit in ``max_seq_len`` (otherwise, and for any other
    model returning next-token logits, the growing sequence is re-run, the last ``max_seq_len`` tokens of it
    for a course model). ``use_cache=False`` re-runs every step (same tokens, slower: a check of the cache).
    Finished rows are padded, as in ``model.generate``; with the same seed, sampling draws the same tokens.
    """
    settings.validate()
    configure_threads()
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}.")
    eos, pad = _special_ids(model, eos_token_id, pad_token_id)
    device = next(model.parameters()).device
    input_ids = input_ids.to(device)
    attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)
    cfg = getattr(model, "config", None)
    hf_seq2seq = bool(getattr(cfg, "is_encoder_decoder", False))
    course_seq2seq = getattr(model, "family", None) == "encoder-decoder"
    course_cached = (getattr(model, "family", None) == "decoder-only" and use_cache
                     and input_ids.size(1) + settings.max_new_tokens <= cfg.max_seq_len)
    B = input_ids.size(0)

    if hf_seq2seq:
        # transformers 5 renamed the key/value cache argument from past_key_values to cache.
        cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
        seq = torch.full((B, 1), cfg.decoder_start_token_id, dtype=torch.long, device=device)  # (B, 1)
    elif course_seq2seq:
        memory, _ = model.encoder(input_ids, attention_mask)  # (B, S, d_model), read once
        cache = model.new_cache() if use_cache else None
        seq = torch.full((B, 1), cfg.bos_token_id, dtype=torch.long, device=device)
    else:
        seq = input_ids
        cache = model.new_cache() if course_cached else None
    prompt_len = 0 if (hf_seq2seq or course_seq2seq) else input_ids.size(1)
    start = seq.size(1)
    past = None
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    for _ in range(settings.max_new_tokens):
        if hf_seq2seq:
            out = model(encoder_outputs=encoder_outputs, attention_mask=attention_mask, **{cache_arg: past},
                        decoder_input_ids=seq[:, -1:] if past is not None else seq, use_cache=True)
            past = getattr(out, cache_arg)  # keys and values of every earlier decoder position
        elif course_seq2seq:
            out = model(None, attention_mask, decoder_input_ids=seq[:, -1:] if cache is not None else seq,
                        encoder_output=memory, cache=cache)
        else:  # a causal LM: the prompt and what it wrote so far
            mask = torch.cat([attention_mask, torch.ones_like(seq[:, prompt_len:])], dim=1)  # (B, T)
            max_len = getattr(cfg, "max_seq_len", None)
            if max_len is not None and not course_cached:  # re-run: a course_lib model sees at most max_seq_len tokens
                mask = mask[:, -max_len:]
            # Left padding: a row's first real token is at position 0, as it would be alone (model.generate does the same).
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
            seq_in = seq[:, -mask.size(1):]
            if course_cached and cache.length:  # earlier keys/values are in the cache: feed only the newest token
                seq_in, positions = seq_in[:, -1:], positions[:, -1:]
            out = model(seq_in, attention_mask=mask, position_ids=positions, **({"cache": cache} if course_cached else {}))
        logits = logits_of(out)[:, -1, :]  # (B, V)
        token = next_token(logits, settings, generator)  # (B,)
        token = torch.where(finished, torch.full_like(token, pad), token)
        seq = torch.cat([seq, token[:, None]], dim=1)
        if settings.stop_at_eos and eos is not None:
            finished |= token == eos
            if bool(finished.all()):
                break
    return seq[:, start:]


def summarize(model, tokenizer, prompts: Sequence[str], settings: GenerationSettings = GenerationSettings(),
              batch_size: int = 8, engine: str = "course", seed: int | None = None, max_input_tokens: int | None = None,
              progress: bool = False) -> list[str]:
    """Generate one text per prompt with ``decode`` (engine='course') or ``model.generate`` (engine='hf').

    Prompts longer than the context window are truncated from the right, as the model's tokenizer
    would; check them first with ``course_lib.prompting.check_budget``.
    """
    from tqdm.auto import tqdm


    if isinstance(prompts, str):
        raise ValueError("prompts must be a list of strings; wrap a single prompt in a list.")
    if engine not in ("course", "hf"):
        raise ValueError(f"engine={engine!r}: expected 'course' (this module's loop) or 'hf' (model.generate).")
    if seed is not None:
        set_seed(seed)
    limit = max_input_tokens or context_limit(tokenizer)
    device = next(model.parameters()).device
    texts = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="generate", disable=not progress):
        enc = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True, truncation=True,
                        max_length=limit).to(device)
        if engine == "course":
            new = decode(model, enc["input_ids"], enc["attention_mask"], settings)
        else:
            new = model.generate(**enc, **settings.hf_kwargs())
            if getattr(model.config, "is_encoder_decoder", False):
                new = new[:, 1:]  # drop the decoder start token
            else:
                new = new[:, enc["input_ids"].size(1):]
        texts.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    return [t.strip() for t in texts]


@torch.no_grad()
def next_token_logits(model, tokenizer, prompt: str, prefix_ids: Sequence[int] = ()) -> torch.Tensor:
    """An encoder-decoder's logits (V,) for the next output token, given the prompt and the output ids so far."""

    device = next(model.parameters()).device
    enc = tokenizer(prompt, return_tensors="pt", truncation=True, max_length=context_limit(tokenizer)).to(device)
    decoder_ids = torch.tensor([[model.config.decoder_start_token_id, *[int(i) for i in prefix_ids]]], device=device)
    return model(**enc, decoder_input_ids=decoder_ids).logits[0, -1].float()


def distribution_after(logits: torch.Tensor, settings: GenerationSettings) -> torch.Tensor:
    """Next-token probabilities (V,) once ``settings`` are applied (greedy puts all mass on the argmax)."""
    if not settings.do_sample:
        probs = torch.zeros_like(logits, dtype=torch.float32)
        probs[..., int(logits.argmax())] = 1.0
        return probs
    return process_logits(logits.float(), settings).softmax(dim=-1)
