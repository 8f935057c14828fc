"""Prompts for dialogue summarization: zero-, one- and few-shot, and the context window.

In-context learning (Brown et al., 2020, "Language Models are Few-Shot Learners")
puts the task into the prompt instead of the weights. Every solved example costs
context: an encoder-decoder like FLAN-T5 was trained on inputs of at most 512
tokens, so a few-shot prompt can silently lose its end (the dialogue we actually
want summarized) when it is truncated. ``check_budget`` and ``fit_shots`` count
tokens with the model's own tokenizer before that happens.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

INSTRUCTION = "Summarize the following conversation."
FLAN_QUESTION = "What was going on?"
SHOT_SEPARATOR = "\n\n\n"  # after each solved example's summary: tells the model where one example ends
DEFAULT_CONTEXT = 512  # FLAN-T5's training input length (Chung et al., 2022)

STRATEGIES = ("bare", "instruction", "flan", "one_shot", "few_shot")


def _check_text(name: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}.")
    return value.strip()


def bare_prompt(dialogue: str) -> str:
    """No prompt engineering: the dialogue alone."""
    return _check_text("dialogue", dialogue)


def instruction_prompt(dialogue: str) -> str:
    """Zero-shot with an explicit instruction before and a cue after the dialogue."""
    return f"{INSTRUCTION}\n\n{_check_text('dialogue', dialogue)}\n\nSummary:"


def flan_prompt(dialogue: str) -> str:
    """Zero-shot with one of FLAN's own dialogue templates ("Dialogue:" ... "What was going on?")."""
    return f"Dialogue:\n\n{_check_text('dialogue', dialogue)}\n\n{FLAN_QUESTION}"


def solved_example(dialogue: str, summary: str) -> str:
    """One shot: the FLAN template followed by its answer and the separator."""
    return f"{flan_prompt(dialogue)}\n{_check_text('summary', summary)}{SHOT_SEPARATOR}"


def few_shot_prompt(shots: Sequence[tuple[str, str]], dialogue: str) -> str:
    """Solved (dialogue, summary) examples, then the dialogue to summarize in the same template.

    Zero shots gives ``flan_prompt(dialogue)``; one shot is one-shot inference.
    """
    for i, shot in enumerate(shots):
        if not (isinstance(shot, (tuple, list)) and len(shot) == 2):
            raise ValueError(f"shot {i} must be a (dialogue, summary) pair, got {type(shot).__name__}.")
    return "".join(solved_example(d, s) for d, s in shots) + flan_prompt(dialogue)


def build_prompt(strategy: str, dialogue: str, shots: Sequence[tuple[str, str]] = ()) -> str:
    """Prompt for one of ``STRATEGIES``; 'one_shot' uses the first shot, 'few_shot' all of them."""
    if strategy == "bare":
        return bare_prompt(dialogue)
    if strategy == "instruction":
        return instruction_prompt(dialogue)
    if strategy == "flan":
        return flan_prompt(dialogue)
    if strategy in ("one_shot", "few_shot"):
        if not shots:
            raise ValueError(f"strategy={strategy!r} needs at least one (dialogue, summary) shot.")
        return few_shot_prompt(list(shots)[:1] if strategy == "one_shot" else shots, dialogue)
    raise ValueError(f"strategy={strategy!r}: expected one of {STRATEGIES}.")


def shots_from(dataset, indices: Sequence[int]) -> list[tuple[str, str]]:
    """(dialogue, summary) pairs for rows ``indices`` of a DialogSum split."""
    n = len(dataset)
    bad = [i for i in indices if not 0 <= int(i) < n]
    if bad:
        raise IndexError(f"example indices {bad} are outside the split's {n} rows.")
    return [(dataset[int(i)]["dialogue"], dataset[int(i)]["summary"]) for i in indices]


# --- the context window -------------------------------------------------------


class ContextWindowWarning(UserWarning):
    """A prompt is longer than the model's context window and would be truncated."""


@dataclass(frozen=True)
class Budget:
    """How a prompt sits in the context window."""

    n_tokens: int  # tokens in the prompt, end-of-sequence token included
    limit: int  # the window (512 for FLAN-T5)

    @property
    def fits(self) -> bool:
        return self.n_tokens <= self.limit

    @property
    def overflow(self) -> int:
        """Tokens that truncation would drop (0 when it fits)."""
        return max(0, self.n_tokens - self.limit)


def context_limit(tokenizer, default: int = DEFAULT_CONTEXT) -> int:
    """The tokenizer's ``model_max_length``, or ``default`` when it is unset (a huge sentinel)."""
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else default


def count_tokens(prompt: str, tokenizer) -> int:
    """Tokens the model would read for ``prompt``, special tokens included, without truncation."""
    return len(tokenizer(prompt, truncation=False)["input_ids"])


def check_budget(prompt: str, tokenizer, limit: int | None = None, warn: bool = True) -> Budget:
    """Count ``prompt`` against the window; warn when truncation would cut its end off."""
    limit = context_limit(tokenizer) if limit is None else int(limit)
    if limit < 1:
        raise ValueError(f"limit={limit}: the context window must be at least one token.")
    budget = Budget(count_tokens(prompt, tokenizer), limit)
    if warn and not budget.fits:
        warnings.warn(
            f"The prompt has {budget.n_tokens} tokens but the window holds {limit}: truncation would drop the last "
            f"{budget.overflow} tokens, which is where the dialogue to summarize sits. Use fewer or shorter shots "
            "(fit_shots finds how many fit).",
            ContextWindowWarning,
            stacklevel=2,
        )
    return budget


def max_shots(shots: Sequence[tuple[str, str]], dialogue: str, tokenizer, limit: int | None = None) -> int:
    """The largest n such that the first n shots plus ``dialogue`` fit in the window (0 if none do)."""
    limit = context_limit(tokenizer) if limit is None else int(limit)
    best = 0
    for n in range(1, len(shots) + 1):
        if count_tokens(few_shot_prompt(shots[:n], dialogue), tokenizer) > limit:
            break
        best = n
    return best


def fit_shots(shots: Sequence[tuple[str, str]], dialogue: str, tokenizer, limit: int | None = None) -> tuple[str, int]:
    """A few-shot prompt with as many of ``shots`` (in order) as fit; warns when shots are dropped.

    Returns ``(prompt, n_shots_used)``. If even the zero-shot prompt overflows, it is returned
    as is after a ContextWindowWarning.
    """
    n = max_shots(shots, dialogue, tokenizer, limit)
    if n < len(shots):
        warnings.warn(
            f"Only {n} of {len(shots)} shots fit in the context window; dropped the last {len(shots) - n}.",
            ContextWindowWarning,
            stacklevel=2,
        )
    prompt = few_shot_prompt(shots[:n], dialogue)
    if n == 0:
        check_budget(prompt, tokenizer, limit)
    return prompt, n
