"""Lab 00 figures: the project lifecycle and model sizes."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ._common import _axes

LIFECYCLE_STAGES = [
    ("Scope", "one task or many?"),
    ("Select", "existing foundation\nmodel or pretrain"),
    ("Adapt & align", "prompting, fine-tuning,\nhuman feedback"),
    ("Evaluate", "metrics and\nbenchmarks"),
    ("Optimize &\ndeploy", "smaller, faster\ninference"),
    ("Augment", "tools, retrieval,\nguard-rails"),
]


def plot_lifecycle(ax=None):
    """The generative-AI project lifecycle as a row of boxes; adapt/align/evaluate loop back."""
    ax = _axes(ax, figsize=(12, 2.6))
    for i, (title, detail) in enumerate(LIFECYCLE_STAGES):
        ax.add_patch(plt.Rectangle((i * 2.0, 0), 1.6, 1.2, facecolor=plt.cm.Blues(0.25 + 0.1 * i), edgecolor="k"))
        ax.text(i * 2.0 + 0.8, 0.88, title, ha="center", va="center", fontweight="bold", fontsize=9)
        ax.text(i * 2.0 + 0.8, 0.36, detail, ha="center", va="center", fontsize=7.5)
        if i:
            ax.annotate("", xy=(i * 2.0, 0.6), xytext=(i * 2.0 - 0.4, 0.6), arrowprops=dict(arrowstyle="->"))
    ax.annotate("iterate", xy=(4.8, 1.25), xytext=(7.0, 1.25), ha="center", fontsize=8,
                arrowprops=dict(arrowstyle="->", connectionstyle="arc3,rad=0.35"))
    ax.set_xlim(-0.2, 12)
    ax.set_ylim(-0.2, 1.9)
    ax.axis("off")
    return ax


def plot_param_counts(counts: dict[str, float], ax=None):
    """Horizontal bars of parameter counts on a log axis."""
    ax = _axes(ax, figsize=(7, 0.5 + 0.45 * len(counts)))
    names = list(counts)
    ax.barh(names, [counts[n] for n in names], color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    for i, n in enumerate(names):
        ax.text(counts[n], i, f" {counts[n] / 1e6:,.1f}M" if counts[n] < 1e9 else f" {counts[n] / 1e9:,.1f}B", va="center", fontsize=8)
    ax.invert_yaxis()
    return ax
