"""Helpers the figure modules share: a fresh Axes, grouped bars, one boolean-mask panel."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def _axes(ax=None, figsize=(6, 4)):
    """``ax``, or a new figure's Axes of ``figsize``."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _grouped_bars(ax, groups, bars: dict, errors: dict | None = None):
    """One group of bars per entry of ``groups``, one bar per {label: heights} in ``bars`` (optional {label: yerr})."""
    width = 0.8 / len(bars)
    for j, (label, heights) in enumerate(bars.items()):
        x = np.arange(len(groups)) + (j - (len(bars) - 1) / 2) * width
        err = (errors or {}).get(label)
        ax.bar(x, heights, width, label=label, **({} if err is None else {"yerr": err, "capsize": 3}))
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups])
    return ax


def _mask_panel(ax, mask, title: str, cmap="Greys", tokens=None):
    """A (T_q, T_k) boolean mask (tensor or array) as an image: dark = the query row may attend to that key column."""
    m = mask.detach().cpu().int().numpy() if hasattr(mask, "detach") else np.asarray(mask, dtype=int)
    ax.imshow(m, cmap=cmap, vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if tokens is not None:
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
    return ax
