"""Reading attention maps of a pretrained encoder: extract them, rank heads, name their patterns.

Attention weights show where a head looks, not why the model decides what it does
(Jain & Wallace, 2019, "Attention is not Explanation"); the labs describe heads only
by the numbers these functions compute.
"""

from __future__ import annotations

import pandas as pd
import torch


@torch.no_grad()
def hf_attentions(model, tokenizer, text: str) -> tuple[list[str], torch.Tensor]:
    """Tokens and attention weights (n_layer, n_head, T, T) of a Hugging Face encoder for one text.

    Fused attention kernels do not return weights, so the model is switched to the
    explicit ("eager") implementation first.
    """
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        model.set_attn_implementation("eager")
    enc = tokenizer(text, return_tensors="pt").to(next(model.parameters()).device)
    out = model(**enc, output_attentions=True)
    if not out.attentions:
        raise RuntimeError(f"{type(model).__name__} returned no attentions; it may not support output_attentions=True.")
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    return tokens, torch.stack([a[0] for a in out.attentions]).float().cpu()  # (L, H, T, T)


def _index(tokens: list[str], word: str) -> int:
    if word not in tokens:
        raise ValueError(f"{word!r} is not one of the tokens {tokens}; pick a word the tokenizer keeps whole.")
    return tokens.index(word)


def link_strength(att: torch.Tensor, tokens: list[str], source: str, targets: list[str]) -> pd.DataFrame:
    """Weight from ``source`` to each target, per (layer, head), strongest first.

    att: (n_layer, n_head, T, T); rows are the attending token (query), columns the attended one.
    """
    s = _index(tokens, source)
    rows = []
    for layer in range(att.shape[0]):
        for head in range(att.shape[1]):
            row = {"layer": layer, "head": head}
            row.update({f"{source}->{t}": att[layer, head, s, _index(tokens, t)].item() for t in targets})
            rows.append(row)
    table = pd.DataFrame(rows)
    table["total"] = table[[f"{source}->{t}" for t in targets]].sum(axis=1)
    return table.sort_values("total", ascending=False, ignore_index=True)


PATTERNS = ("previous token", "same token", "next token", "first token", "last token")


def head_patterns(att: torch.Tensor) -> pd.DataFrame:
    """Per (layer, head): mean weight each query puts on the previous / same / next / first / last token,
    the mean entropy of its rows (in nats; high = spread out), and the pattern with the most weight."""
    L, H, T, _ = att.shape
    idx = torch.arange(T)
    rows = []
    for layer in range(L):
        for head in range(H):
            a = att[layer, head]  # (T, T)
            scores = {
                "previous token": a[idx[1:], idx[1:] - 1].mean().item(),
                "same token": a[idx, idx].mean().item(),
                "next token": a[idx[:-1], idx[:-1] + 1].mean().item(),
                "first token": a[:, 0].mean().item(),
                "last token": a[:, -1].mean().item(),
            }
            entropy = -(a.clamp_min(1e-12).log() * a).sum(-1).mean().item()
            rows.append({"layer": layer, "head": head, **scores, "entropy": entropy,
                         "pattern": max(scores, key=scores.get)})
    return pd.DataFrame(rows)
