"""Lab 02 figures: attention weights, positional encoding, scaling, masks, and what context costs."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ._common import _axes, _mask_panel


def plot_attention_map(weights, tokens, ax=None, title: str | None = None, query_tokens=None):
    """Heat map of one head's weights (T_q, T_k): row = the token attending, column = the token attended to."""
    ax = _axes(ax, figsize=(4.5, 4))
    w = weights.detach().cpu().numpy() if hasattr(weights, "detach") else weights
    ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(float(w.max()), 1e-9))
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
    rows = tokens if query_tokens is None else query_tokens
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_attention_heads(att, tokens, ncols: int = 4, title: str = "", labels=None):
    """A grid of heat maps, one per head: att (n_head, T, T). Returns the figure."""
    n = att.shape[0]
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.2 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        plot_attention_map(att[i], tokens, ax=ax, title=labels[i] if labels else f"head {i}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_positional_encoding(pe, ax=None, n_dims: int | None = None):
    """Sinusoidal positional encodings as an image: position down, dimension across."""
    ax = _axes(ax, figsize=(7, 3.5))
    pe = pe if n_dims is None else pe[:, :n_dims]
    image = ax.imshow(pe.cpu().numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    plt.colorbar(image, ax=ax, fraction=0.03)
    ax.set_xlabel("dimension")
    ax.set_ylabel("position")
    ax.set_title("Sinusoidal positional encoding")
    return ax


def plot_softmax_saturation(table, ax=None):
    """Largest attention weight (mean over random queries) vs d_k, with and without dividing by sqrt(d_k)."""
    ax = _axes(ax, figsize=(5.5, 3.5))
    for column, label in (("max_weight_unscaled", "q.k (no scaling)"), ("max_weight_scaled", "q.k / sqrt(d_k)")):
        ax.plot(table["d_k"], table[column], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("d_k")
    ax.set_ylabel("mean largest softmax weight")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_masks(masks: dict, tokens=None):
    """Boolean masks side by side (True = may attend, drawn dark). Returns the figure."""
    fig, axes = plt.subplots(1, len(masks), figsize=(3.3 * len(masks), 3.3), squeeze=False)
    for ax, (name, mask) in zip(axes.flat, masks.items()):
        _mask_panel(ax, mask, name, tokens=tokens)
    fig.tight_layout()
    return fig


def plot_context_cost(table, axes=None):
    """Three panels against context length: FLOPs, sequential steps, values kept about the past (log-log).

    table: columns 'kind', 'seq_len', 'flops', 'sequential_steps', 'values_kept' (attention.context_cost rows).
    """
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [("flops", "FLOPs for one layer"), ("sequential_steps", "steps that must run one after another"),
              ("values_kept", "numbers kept about the past")]
    for ax, (col, label) in zip(axes, panels):
        for kind, group in table.groupby("kind"):
            ax.plot(group["seq_len"], group[col], marker="o", ms=3, label=kind)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length (tokens)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    return axes


def plot_influence_by_distance(distances, influence, ax=None, title: str = ""):
    """How strongly one early word still moves a recurrent state, against how many words came in between."""
    ax = _axes(ax, figsize=(6, 3.5))
    ax.semilogy(distances, influence, marker="o", ms=3)
    ax.set_xlabel("words between 'milk' and 'tastes'")
    ax.set_ylabel("|d h_tastes / d x_milk| (log)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    return ax
