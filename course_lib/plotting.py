"""The figures the labs show. Each function draws on a matplotlib Axes and returns it."""

from __future__ import annotations

import matplotlib.pyplot as plt


def _axes(ax=None, figsize=(6, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax
