"""Lab 04 figures: ROUGE by prompting strategy, decoding settings, the prompt's token budget."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ._common import _axes, _grouped_bars


def plot_rouge_by_strategy(table, metrics=("rouge1", "rouge2", "rougeL"), ax=None, title: str = "ROUGE by prompting strategy"):
    """Grouped bars: one group per prompting strategy, one bar per ROUGE metric, with ±1 standard error
    where the table has ``<metric>_se`` columns."""
    ax = _axes(ax, figsize=(8, 4))
    _grouped_bars(ax, list(table["strategy"]), {m: table[m] for m in metrics},
                  errors={m: table[f"{m}_se"] for m in metrics if f"{m}_se" in table})
    ax.set_ylabel("F-measure (mean over dialogues)")
    ax.set_ylim(0, max(0.05, float(np.nanmax(table[list(metrics)].to_numpy(dtype=float))) * 1.3))
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_next_token_panels(tokens, before, after: dict, ncols: int = 4, title: str = ""):
    """One panel per decoding setting: probability of each shown token before (grey outline) and after (bars).

    tokens: the token strings shown (most likely first); before: their probabilities under plain softmax;
    after: setting name -> their probabilities once the setting is applied (0 for removed tokens).
    """
    n = len(after)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 0.28 * len(tokens) * nrows + 1.2), squeeze=False, sharey=True)
    y = np.arange(len(tokens))
    for ax, (name, probs) in zip(axes.flat, after.items()):
        probs = np.asarray(probs, dtype=float)
        ax.barh(y, before, color="none", edgecolor="grey", label="softmax(logits)")
        ax.barh(y, probs, color=["tab:blue" if p > 0 else "none" for p in probs], alpha=0.8, label="after the setting")
        for yi, p in zip(y, probs):
            if p == 0:
                ax.text(0.002, yi, "removed", va="center", fontsize=7, color="tab:red")
        ax.set_title(name, fontsize=9)
        ax.set_xlim(0, min(1.0, 1.15 * max(float(np.max(before)), float(probs.max()))))  # per panel: small shares stay visible
        ax.grid(axis="x", alpha=0.3)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for row in axes:
        row[0].set_yticks(y, tokens, fontsize=8)
    axes[0, 0].invert_yaxis()
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_prompt_budget(n_shots, n_tokens, limit: int, ax=None, title: str = "Few-shot prompts against the context window"):
    """Prompt length in tokens against the number of solved examples, with the model's window as a line."""
    ax = _axes(ax, figsize=(6, 3.5))
    colors = ["tab:blue" if n <= limit else "tab:red" for n in n_tokens]
    ax.bar([str(k) for k in n_shots], n_tokens, color=colors)
    ax.axhline(limit, color="black", linestyle="--", label=f"context window ({limit} tokens)")
    ax.set_xlabel("solved examples in the prompt (shots)")
    ax.set_ylabel("prompt tokens")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax
