"""Lab 03 figures (loss curves also in labs 02 and 07): losses, context masks, in-context help."""

from __future__ import annotations

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np

from ._common import _axes, _mask_panel


def _smooth(values, window: int):
    """Running mean over ``window`` values, with a shorter mean over the first ones (same length out)."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)  # short running mean at the start
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def plot_loss_curves(histories, ax=None, smooth: int = 1, title: str = "Loss curves"):
    """Training loss (thin, optionally smoothed) and evaluation loss (markers) per step.

    ``histories`` is one course_lib.training.History or a dict {label: History}.
    """
    ax = _axes(ax, figsize=(7, 4))
    if hasattr(histories, "loss"):
        histories = {"train": histories}
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i}"
        if h.loss:
            ax.plot(h.step, _smooth(h.loss, smooth), color=color, lw=1.2, alpha=0.9, label=f"{label} (train)")
        if h.eval_loss:
            ax.plot(h.eval_step, h.eval_loss, "o--", color=color, ms=4, lw=1, label=f"{label} (eval)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats / token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_position_loss(curves: dict, ax=None, start: int = 0, title: str = "Loss of predicting the token at each position"):
    """{label: per-position losses from position ``start``}: how hard each position is to predict with a given view of the context."""
    ax = _axes(ax, figsize=(7, 3.8))
    for label, values in curves.items():
        ax.plot(range(start, start + len(values)), values, marker=".", lw=1.2, label=label)
    ax.set_xlabel("position of the predicted token in the row")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


_CONTEXT_MASK_CMAP = mcolors.ListedColormap(["#f2f2f2", "#2b6cb0"])


def plot_context_masks(masks: dict, axes=None):
    """One panel per {title: (T_q, T_k) bool mask}: dark = the query row may attend to that key column."""
    if axes is None:
        _, axes = plt.subplots(1, len(masks), figsize=(3.2 * len(masks), 3.4), squeeze=False)
        axes = axes[0]
    for ax, (title, mask) in zip(axes, masks.items()):
        _mask_panel(ax, mask, title, cmap=_CONTEXT_MASK_CMAP)
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def plot_in_context_help(table, chance: float | None = None, ax=None):
    """Accuracy against parameters, one line per prompt setting (``course_lib.in_context`` results)."""
    ax = _axes(ax, figsize=(6.5, 4))
    for setting, rows in table.groupby("setting", sort=False):
        ax.plot(rows["parameters"], rows["accuracy"], marker="o", label=setting)
    if chance is not None:
        ax.axhline(chance, color="gray", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set(xlabel="parameters (log scale)", ylabel="accuracy on the query",
           title="Facts from the weights or from the prompt")
    ax.legend(fontsize=8)
    return ax
