"""Lab 05 figures: float formats bit by bit, memory budgets, quantized weights, sharding."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ._common import _axes, _grouped_bars

_BIT_COLORS = {"sign": "#d62728", "exponent": "#1f77b4", "mantissa": "#2ca02c"}


def plot_float_bits(rows, ax=None):
    """Each row (label, sign, exponent, mantissa) drawn as coloured bit boxes, one field per colour."""
    ax = _axes(ax, figsize=(12, 0.55 * len(rows) + 0.8))
    for r, (label, sign, exponent, mantissa) in enumerate(rows):
        y = len(rows) - 1 - r
        ax.text(-0.6, y + 0.4, label, ha="right", va="center", fontsize=9)
        col = 0
        for field, bits in (("sign", sign), ("exponent", exponent), ("mantissa", mantissa)):
            for bit in bits:
                ax.add_patch(plt.Rectangle((col, y), 0.92, 0.8, facecolor=_BIT_COLORS[field], alpha=0.35 + 0.5 * (bit == "1")))
                ax.text(col + 0.46, y + 0.4, bit, ha="center", va="center", fontsize=8)
                col += 1
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=c, alpha=0.6) for c in _BIT_COLORS.values()]
    ax.legend(handles, list(_BIT_COLORS), loc="upper right", bbox_to_anchor=(1.0, 1.25), ncol=3, fontsize=8, frameon=False)
    ax.set_xlim(-9, 33)
    ax.set_ylim(-0.2, len(rows))
    ax.axis("off")
    return ax


def plot_stacked_memory(table, components, label="label", ax=None, lines=None, unit="GB"):
    """Stacked bars of memory components (columns of ``table``), with optional reference lines {name: value}."""
    ax = _axes(ax, figsize=(8, 4))
    bottom = np.zeros(len(table))
    for i, comp in enumerate(components):
        ax.bar(table[label].astype(str), table[comp], bottom=bottom, label=comp, color=f"C{i}")
        bottom += table[comp].to_numpy(dtype=float)
    for i, (name, value) in enumerate((lines or {}).items()):
        ax.axhline(value, ls="--", color="k", lw=1, alpha=0.5 + 0.2 * i)
        ax.text(len(table) - 0.5, value, f" {name}", va="bottom", ha="right", fontsize=8)
    ax.set_ylabel(unit)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_grouped_bars(table, x, hue, y, ax=None, log=True, ylabel=None):
    """One group of bars per value of ``x``, one bar per ``hue``; log scale by default."""
    ax = _axes(ax, figsize=(8, 4))
    xs, hues = list(dict.fromkeys(table[x])), list(dict.fromkeys(table[hue]))
    _grouped_bars(ax, xs, {str(h): table[table[hue] == h].set_index(x).reindex(xs)[y] for h in hues})
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel or y)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3, which="both")
    return ax


def plot_quantized_values(values, versions: dict, ax=None, bins: int = 60):
    """Histogram of ``values`` and of each dequantized version {name: values} on the same bins."""
    ax = _axes(ax, figsize=(8, 3.5))
    values = np.asarray(values, dtype=float).ravel()
    edges = np.linspace(values.min(), values.max(), bins + 1)
    ax.hist(values, bins=edges, color="0.75", label="original (float)")
    for i, (name, v) in enumerate(versions.items()):
        ax.hist(np.clip(np.asarray(v, dtype=float).ravel(), edges[0], edges[-1]), bins=edges, histtype="step",
                lw=1.8, color=f"C{i}", label=name)
    ax.set_xlabel("weight value")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    return ax


def plot_sharding_memory(table, gpu_gb: float = 80, ax=None, title: str = ""):
    """Per-GPU memory against the FSDP sharding factor (log-log), with and without CPU offload.

    table: columns 'sharding factor', 'cpu offload' (bool), 'GPU (GB)' (from memory.fsdp_memory_per_device).
    """
    ax = _axes(ax, figsize=(7, 4))
    for offload, group in table.groupby("cpu offload"):
        ax.plot(group["sharding factor"], group["GPU (GB)"], marker="o",
                label="states sharded on the GPUs" if not offload else "sharded states offloaded to CPU")
    ax.axhline(gpu_gb, color="k", ls="--", lw=1, label=f"one {gpu_gb:.0f} GB GPU")
    factors = sorted(table["sharding factor"].unique())
    for x, name in ((factors[0], "replicate\n(DDP)"), (8, "hybrid\n(shard in a node)"), (factors[-1], "full shard\n(ZeRO-3)")):
        if x in factors:
            ax.annotate(name, (x, gpu_gb), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sharding factor F (GPUs one copy of the states is spread over)")
    ax.set_ylabel("model states per GPU (GB)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return ax
