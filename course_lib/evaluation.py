"""Evaluating generated text: ROUGE and BLEU against references, and perplexity.

ROUGE (Lin, 2004) goes through Hugging Face ``evaluate`` with a metric module
that ships inside course_lib (``course_lib/metrics/rouge``), so it loads without
the hub. Scores are F-measures with Porter stemming, as ``rouge_score`` computes
them; a prediction with several references scores against its best match.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from . import generation, prompting

METRIC_DIR = Path(__file__).resolve().parent / "metrics" / "rouge"
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")

_METRIC = None


def rouge_metric():
    """The course's ROUGE ``evaluate`` module (loaded once per process, offline)."""
    global _METRIC
    if _METRIC is None:
        import evaluate

        _METRIC = evaluate.load(str(METRIC_DIR))
    return _METRIC


def _as_reference_lists(references) -> list[list[str]]:
    out = []
    for i, ref in enumerate(references):
        refs = [ref] if isinstance(ref, str) else list(ref) if isinstance(ref, (list, tuple)) else None
        if not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"reference {i} must be a string or a non-empty list of strings, got {ref!r}.")
        out.append(refs)
    return out


def _paired(predictions, references, metric: str, per: str) -> tuple[list, list]:
    """Both as lists of equal, non-zero length, predictions all strings; a clear error otherwise."""
    if isinstance(predictions, str) or isinstance(references, str):
        raise ValueError("predictions and references must be lists (one entry per example), not a single string.")
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references; pass {per} per prediction.")
    if not predictions:
        raise ValueError(f"{metric}() needs at least one prediction.")
    bad = [i for i, p in enumerate(predictions) if not isinstance(p, str)]
    if bad:
        raise ValueError(f"predictions {bad[:5]} are not strings; decode token ids to text first.")
    return predictions, references


def rouge(predictions: Sequence[str], references: Sequence, use_stemmer: bool = True, per_example: bool = False) -> dict:
    """ROUGE-1/2/L/Lsum F-measures, mean over examples (or per example with ``per_example=True``).

    Each reference is a string or a list of strings (best-matching reference wins).
    """
    predictions, references = _paired(predictions, references, "rouge", "one reference (or list)")
    references = _as_reference_lists(references)
    scores = rouge_metric().compute(predictions=predictions, references=references, use_stemmer=use_stemmer,
                                    use_aggregator=not per_example)
    return {k: scores[k] for k in ROUGE_KEYS}


# --- BLEU ------------------------------------------------------------------------

BLEU_MAX_ORDER = 4  # BLEU-4: n-grams of 1 to 4 words, weighted equally


def _ngrams(tokens: list[str], n: int) -> dict[tuple[str, ...], int]:
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(tokens) - n + 1):
        gram = tuple(tokens[i : i + n])
        counts[gram] = counts.get(gram, 0) + 1
    return counts


def bleu(predictions: Sequence[str], references: Sequence[str], smooth: str = "none") -> float:
    """Corpus BLEU-4 (Papineni et al., 2002) in 0-100, one reference per prediction, no smoothing.

    Over the whole corpus: clipped n-gram precisions p_1..p_4 (a predicted n-gram counts at most as often
    as the reference has it), their geometric mean, times the brevity penalty exp(1 - r/c) when the
    predictions (c words) are shorter than the references (r words). Words come from sacrebleu's '13a'
    tokenizer, so the score equals ``sacrebleu.corpus_bleu(predictions, [references]).score`` whenever
    every order has a match. When one has none (often, for a single short sentence), unsmoothed BLEU is 0
    (sacrebleu's ``smooth_method='none'``); ``smooth='exp'`` instead gives the k-th such order a precision of
    1 / (2^k * n-grams), as mteval-v13a and sacrebleu's default do.
    """
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    if smooth not in ("none", "exp"):
        raise ValueError(f"smooth={smooth!r}: expected 'none' or 'exp'.")
    predictions, references = _paired(predictions, references, "bleu", "one reference")
    bad = [i for i, t in enumerate(references) if not isinstance(t, str)]
    if bad:
        raise ValueError(f"references {bad[:5]} are not strings (bleu takes one reference string per prediction).")
    tokenize = Tokenizer13a()
    matches, totals = [0] * BLEU_MAX_ORDER, [0] * BLEU_MAX_ORDER
    pred_len = ref_len = 0
    for pred, ref in zip(predictions, references):
        p, r = tokenize(pred.rstrip()).split(), tokenize(ref.rstrip()).split()
        pred_len, ref_len = pred_len + len(p), ref_len + len(r)
        for n in range(1, BLEU_MAX_ORDER + 1):
            ref_counts = _ngrams(r, n)
            pred_counts = _ngrams(p, n)
            matches[n - 1] += sum(min(c, ref_counts.get(g, 0)) for g, c in pred_counts.items())
            totals[n - 1] += max(0, len(p) - n + 1)
    if not any(matches) or min(totals) == 0:  # nothing matches, or predictions too short for 4-grams: 0
        return 0.0
    precisions, halving = [], 1.0
    for m, t in zip(matches, totals):
        if m == 0 and smooth == "none":  # one precision of 0 makes the geometric mean 0
            return 0.0
        if m == 0:
            halving *= 2
        precisions.append(100.0 * m / t if m else 100.0 / (halving * t))
    log_precision = sum(math.log(p) for p in precisions) / BLEU_MAX_ORDER
    brevity = 1.0 if pred_len >= ref_len else math.exp(1 - ref_len / pred_len)
    return brevity * math.exp(log_precision)


# --- does a summarizer read its input? -----------------------------------------

CONSTANT_SUMMARY = "#Person1# and #Person2# talk about something."  # a model-free floor for DialogSum


def first_turn(dialogue: str) -> str:
    """The dialogue's first turn: the classic "lead" baseline of summarization."""
    return dialogue.strip().split("\n")[0]


def shuffled_references(references: Sequence, seed: int = 0) -> list:
    """The references re-dealt so that no example keeps its own (a seeded cyclic shift of a random order)."""
    n = len(references)
    if n < 2:
        raise ValueError("A shuffled-reference control needs at least 2 examples.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    out = [None] * n
    for pos, i in enumerate(order):
        out[i] = references[order[(pos + 1) % n]]  # each example takes the next one's references in the random order
    return out


def summary_controls(predictions: Sequence[str], dialogues: Sequence[str], references: Sequence, seed: int = 0) -> dict:
    """ROUGE of ``predictions`` next to the controls that tell whether a model read its input.

    * ``matched``: against each dialogue's own references;
    * ``shuffled``: the same outputs against another dialogue's references. A model that writes a
      fluent but generic summary scores about the same on both; ``reading_gain`` (ROUGE-1 matched minus
      shuffled) is what reading the dialogue is worth;
    * ``first_turn`` and ``constant``: two baselines that need no model;
    * ``distinct``: the share of different outputs.
    """
    predictions, refs = list(predictions), _as_reference_lists(references)
    if not (len(predictions) == len(refs) == len(dialogues)):
        raise ValueError(f"{len(predictions)} predictions, {len(dialogues)} dialogues and {len(refs)} references: "
                         "pass one of each per example.")
    other_refs = shuffled_references(refs, seed)
    matched, shuffled = rouge(predictions, refs), rouge(predictions, other_refs)
    per_matched = rouge(predictions, refs, per_example=True)["rouge1"]
    per_shuffled = rouge(predictions, other_refs, per_example=True)["rouge1"]
    diff = torch.tensor(per_matched, dtype=torch.float64) - torch.tensor(per_shuffled, dtype=torch.float64)
    return {"examples": len(predictions),
            "matched": matched, "shuffled": shuffled,
            "reading_gain": matched["rouge1"] - shuffled["rouge1"],
            "reading_gain_se": float(diff.std() / len(diff) ** 0.5) if len(diff) > 1 else float("nan"),
            "first_turn": rouge([first_turn(d) for d in dialogues], refs),
            "constant": rouge([CONSTANT_SUMMARY] * len(refs), refs),
            "distinct": len(set(predictions)) / len(predictions)}


def repeated_ngrams(text: str, n: int = 3) -> dict:
    """How much of ``text`` repeats itself: word n-grams that occur more than once.

    Greedy decoding tends to loop ("... the meeting. #Person1# and #Person2# talk about the meeting. ...");
    ``share`` is the fraction of the text's n-grams that are repeats of an earlier one.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}: must be an integer >= 1.")
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    seen, repeats = set(), 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    most = max(((grams.count(g), " ".join(g)) for g in seen), default=(0, ""))
    return {"ngrams": len(grams), "repeats": repeats, "share": repeats / len(grams) if grams else 0.0,
            "most_repeated": most[1], "most_repeated_count": most[0]}


# --- perplexity -----------------------------------------------------------------


@torch.no_grad()
def token_nll(model, tokenizer, texts: Sequence[str], sources: Sequence[str] | None = None, batch_size: int = 8,
              max_length: int = 512) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of ``texts`` under ``model`` and the number of tokens scored.

    Encoder-decoder models score ``texts`` as targets given ``sources``; causal models score every
    token of ``texts`` after the first.
    """
    if sources is not None and len(sources) != len(texts):
        raise ValueError(f"{len(sources)} sources for {len(texts)} texts; give one source per text.")
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    if seq2seq and sources is None:
        raise ValueError("An encoder-decoder model scores a text given a source: pass sources=[...].")
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=max_length).to(device)
        if seq2seq:
            src = tokenizer(list(sources[start : start + batch_size]), return_tensors="pt", padding=True, truncation=True,
                            max_length=max_length).to(device)
            labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)  # (B, T)
            logits = model(**src, labels=labels).logits  # (B, T, V)
            targets = labels
            nll = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100,
                                                    reduction="sum")
            batch_total, batch_count = float(nll), int((targets != -100).sum())
        else:
            batch_total, batch_count = causal_nll(model, enc["input_ids"], enc["attention_mask"])
        total += batch_total
        count += batch_count
    return total, count


def causal_nll(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[float, int]:
    """Summed next-token negative log-likelihood (nats) of a causal LM over (B, T) ids, and the tokens scored
    (every token after the first that is not padding)."""
    logits = generation.logits_of(model(input_ids=input_ids, attention_mask=attention_mask))[:, :-1]  # (B, T-1, V): t predicts t+1
    targets = input_ids[:, 1:] if attention_mask is None else input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)
    nll = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")
    return float(nll), int((targets != -100).sum())


def perplexity(model, tokenizer, texts: Sequence[str], sources: Sequence[str] | None = None, **kwargs) -> float:
    """exp(mean token negative log-likelihood): the number of equally likely tokens the model is choosing among."""
    if not texts:
        raise ValueError("perplexity() needs at least one text.")
    total, count = token_nll(model, tokenizer, texts, sources, **kwargs)
    if count == 0:
        raise ValueError("No tokens to score: the texts are empty after tokenization.")
    return math.exp(total / count)


@torch.no_grad()
def stream_perplexity(model, stream: torch.Tensor, seq_len: int = 128, max_windows: int | None = None,
                      batch_size: int = 32) -> float:
    """Perplexity of a causal LM over one long id stream (e.g. UTF-8 bytes), cut into non-overlapping windows of
    ``seq_len`` ids (at most ``max_windows``); each window's first id is context only."""
    n_windows = (stream.numel() - 1) // seq_len
    if n_windows < 1:
        raise ValueError(f"The evaluation stream needs more than {seq_len} ids, got {stream.numel()}.")
    if max_windows:
        n_windows = min(n_windows, max_windows)
    device = next(model.parameters()).device
    windows = stream[: n_windows * seq_len].reshape(n_windows, seq_len)  # (N, T)
    total, count = 0.0, 0
    for batch in windows.split(batch_size):
        batch_total, batch_count = causal_nll(model, batch.to(device))
        total, count = total + batch_total, count + batch_count
    return math.exp(total / count)


# --- comparing prompting strategies -------------------------------------------------


def compare_strategies(model, tokenizer, rows: Sequence[dict], strategies: Sequence[str], shots: Sequence[tuple[str, str]] = (),
                       settings=None, batch_size: int = 8, progress: bool = True):
    """ROUGE of each prompting strategy over ``rows`` (dicts with 'dialogue' and 'references' or 'summary').

    Few-shot prompts keep as many of ``shots`` as fit the context window (``prompting.fit_shots``).
    Returns ``(table, predictions)``: a DataFrame with one row per strategy (mean F-measures, their
    standard errors, mean prompt tokens, prompts that overflowed the window) and strategy -> outputs.
    """
    import warnings

    import pandas as pd


    if not rows:
        raise ValueError("compare_strategies needs at least one dialogue.")
    settings = settings or generation.GenerationSettings(max_new_tokens=50)
    limit = prompting.context_limit(tokenizer)
    references = [r.get("references") or r["summary"] for r in rows]
    table, predictions = [], {}
    for strategy in strategies:
        prompts, n_shots = [], []
        for r in rows:
            if strategy == "few_shot":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", prompting.ContextWindowWarning)
                    prompt, n = prompting.fit_shots(shots, r["dialogue"], tokenizer, limit)
            else:
                prompt = prompting.build_prompt(strategy, r["dialogue"], shots)
                n = 1 if strategy == "one_shot" else 0
            prompts.append(prompt)
            n_shots.append(n)
        lengths = [prompting.count_tokens(p, tokenizer) for p in prompts]
        outputs = generation.summarize(model, tokenizer, prompts, settings, batch_size=batch_size, progress=progress)
        scores = rouge(outputs, references, per_example=True)
        row = {"strategy": strategy}
        for k in ROUGE_KEYS:
            values = torch.tensor(scores[k], dtype=torch.float64)
            row[k] = float(values.mean())
            row[f"{k}_se"] = float(values.std() / math.sqrt(len(values))) if len(values) > 1 else 0.0
        row.update(mean_prompt_tokens=sum(lengths) / len(lengths), overflowed=sum(n > limit for n in lengths),
                   mean_shots=sum(n_shots) / len(n_shots), n=len(rows))
        table.append(row)
        predictions[strategy] = outputs
    return pd.DataFrame(table), predictions
