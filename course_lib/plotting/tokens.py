"""Lab 01 figures: tokenizer fertility, the vocabulary trade-off, word vectors."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ._common import _axes, _grouped_bars


def plot_fertility_by_domain(table, ax=None):
    """Grouped bars of tokens per word: one group per domain, one bar per tokenizer (table: tokenizer, domain, fertility)."""
    ax = _axes(ax, figsize=(8, 4))
    domains = list(dict.fromkeys(table["domain"]))
    names = list(dict.fromkeys(table["tokenizer"]))
    _grouped_bars(ax, domains, {name: table[table["tokenizer"] == name].set_index("domain").loc[domains, "fertility"]
                                for name in names})
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_ylabel("tokens per word (fertility)")
    ax.legend(fontsize=8)
    return ax


def plot_vocab_tradeoff(table, d_model: int = 512, ax=None):
    """Sequence length falls as the vocabulary grows, while the embedding table (vocab x d_model) grows."""
    ax = _axes(ax, figsize=(7, 4))
    ax.plot(table["vocab_size"], table["tokens"], "o-", color="C0")
    ax.set_xscale("log")
    ax.set_xticks(list(table["vocab_size"]), [str(v) for v in table["vocab_size"]], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("vocabulary size (log scale)")
    ax.set_ylabel("tokens for the held-out text", color="C0")
    twin = ax.twinx()
    twin.plot(table["vocab_size"], table["vocab_size"] * d_model / 1e6, "s--", color="C3")
    twin.set_ylabel(f"embedding parameters, d_model={d_model} (millions)", color="C3")
    return ax


def plot_word_map(points, labels, groups, ax=None):
    """Words placed by a 2-D projection of their vectors, coloured by group."""
    ax = _axes(ax, figsize=(7, 5))
    for k, group in enumerate(dict.fromkeys(groups)):
        idx = [i for i, g in enumerate(groups) if g == group]
        ax.scatter(points[idx, 0], points[idx, 1], color=f"C{k}", label=group)
        for i in idx:
            ax.annotate(labels[i], (points[i, 0], points[i, 1]), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.legend(fontsize=8)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    return ax


def plot_similarity_matrix(sim, labels, ax=None):
    """A cosine-similarity matrix as a heatmap with the values written in."""
    ax = _axes(ax, figsize=(5, 4.5))
    image = ax.imshow(sim, vmin=min(0.0, float(sim.min())), vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w" if sim[i, j] < 0.6 else "k")
    plt.colorbar(image, ax=ax, fraction=0.046)
    return ax
