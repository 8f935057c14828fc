"""Lab 06 figures: training compute, Kaplan's laws, Chinchilla's loss landscape, our IsoFLOP experiment."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FormatStrFormatter

from ..scaling.laws import (
    KAPLAN,
    chinchilla_loss,
    chinchilla_optimal,
    fit_power_law,
    get_fit,
    isoflop_parabola,
    kaplan_loss_compute,
    kaplan_loss_params,
    kaplan_loss_tokens,
)
from ._common import _axes

_FAMILY_COLORS = {"T5": "tab:green", "BERT": "tab:orange", "RoBERTa": "tab:red", "GPT-3": "tab:blue"}
_CHINCHILLA_SLOPE = 0.5  # N_opt ~ C^0.5 (Hoffmann et al. 2022, Approaches 1 and 2): the reference slope


def plot_compute_bars(table, ax=None, value: str = "pf_days_6nd"):
    """Training compute per model on a log axis (table: model, family and ``value``, e.g. gpt3_compute_table())."""
    ax = _axes(ax, figsize=(7, 0.4 + 0.32 * len(table)))
    colors = [_FAMILY_COLORS.get(f, "tab:gray") for f in table["family"]]
    ax.barh(table["model"], table[value], color=colors)
    for i, v in enumerate(table[value]):
        ax.text(v, i, f" {v:,.0f}" if v >= 100 else f" {v:.3g}", va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(right=table[value].max() * 6)
    ax.set_xlabel("training compute (petaflop/s-days, log scale)")
    ax.invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _FAMILY_COLORS.values()]
    ax.legend(handles, list(_FAMILY_COLORS), fontsize=8, loc="upper right")
    ax.grid(axis="x", alpha=0.3, which="both")
    return ax


def plot_kaplan_laws(axes=None):
    """Kaplan et al. 2020's three power laws, L(C_min), L(D), L(N), side by side on log-log axes."""
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
    panels = [
        (np.logspace(-8, 2, 50), kaplan_loss_compute, "compute C_min (PF-days)", f"alpha_C = {KAPLAN['alpha_C_min']}"),
        (np.logspace(7, 11, 50), kaplan_loss_tokens, "dataset size D (tokens)", f"alpha_D = {KAPLAN['alpha_D']}"),
        (np.logspace(4, 10, 50), kaplan_loss_params, "non-embedding parameters N", f"alpha_N = {KAPLAN['alpha_N']}"),
    ]
    for ax, (x, law, xlabel, label) in zip(axes, panels):
        ax.loglog(x, law(x), label=label)
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.set_xlabel(xlabel)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("test loss (nats/token)")
    return axes


def plot_chinchilla_landscape(models=None, fit="hoffmann", budgets=(1e21, 1e22, 1e23, 1e24, 1e25), ax=None,
                              n_range=(1e9, 1e12), d_range=(1e10, 1e14)):
    """Loss L(N, D) as filled contours, with iso-FLOP lines, the compute-optimal frontier, the 20 tokens/param
    line, and the models of ``models`` (model, n_params, n_tokens) placed on it."""
    f = get_fit(fit)
    ax = _axes(ax, figsize=(7.5, 6))
    n = np.logspace(*np.log10(n_range), 200)
    d = np.logspace(*np.log10(d_range), 200)
    nn, dd = np.meshgrid(n, d)
    cs = ax.contourf(nn, dd, chinchilla_loss(nn, dd, f), levels=np.linspace(f.E, f.E + 1.2, 25), cmap="viridis",
                     extend="max")
    plt.colorbar(cs, ax=ax, label="predicted loss (nats/token)")
    for c in budgets:
        ax.plot(n, c / (6 * n), color="white", lw=0.8, ls="--")
        x = max(n_range[0], c / (6 * d_range[1])) * 1.5  # label where the line enters the plot
        if x < n_range[1] and d_range[0] < c / (6 * x) < d_range[1]:
            ax.text(x, c / (6 * x), f"C = {c:.0e}", color="white", fontsize=7, va="top")
    c = np.logspace(18, 28, 60)
    n_opt, d_opt = chinchilla_optimal(c, f)
    ax.plot(n_opt, d_opt, color="red", lw=2, label=f"compute-optimal frontier ({fit if isinstance(fit, str) else 'fit'})")
    ax.plot(n, 20 * n, color="orange", lw=1.5, ls=":", label="20 tokens per parameter")
    if models is not None:
        markers = "osD^vP*Xh<>"
        for i, (_, row) in enumerate(models.iterrows()):
            ax.scatter(row["n_params"], row["n_tokens"], marker=markers[i % len(markers)], s=60, zorder=3,
                       color=plt.cm.tab10(i % 10), edgecolor="white", label=row["model"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*n_range)
    ax.set_ylim(*d_range)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("training tokens D")
    ax.legend(fontsize=7, loc="lower right", framealpha=0.8)
    return ax


def _isoflop_curve(n_params, losses, num: int = 50):
    """Points on scaling's least-squares parabola of one IsoFLOP profile (the fit behind its starred minimum)."""
    c2, c1, c0 = isoflop_parabola(n_params, losses)
    xs = np.linspace(np.log(np.min(n_params)), np.log(np.max(n_params)), num)
    return np.exp(xs), c2 * xs**2 + c1 * xs + c0


def plot_isoflop_curves(runs, optima, axes=None):
    """Left: held-out loss against N, one curve per budget, with each budget's fitted minimum (``optima`` from
    ``scaling.isoflop.isoflop_optima``). Right: those optimal N against compute, with ``fit_power_law``'s line and
    Chinchilla's slope 0.5 for reference."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.cm.plasma(np.linspace(0.1, 0.8, len(optima)))
    for color, (_, opt) in zip(colors, optima.sort_values("budget").iterrows()):
        group = runs[runs.budget == opt.budget].sort_values("n_params")
        axes[0].plot(group.n_params, group.loss, "o:", color=color, lw=0.8, label=f"C = {opt.budget:.1e} FLOPs")
        if opt.method == "parabola":
            axes[0].plot(*_isoflop_curve(group.n_params, group.loss), color=color, lw=1)
        axes[0].plot(opt.n_opt, opt.loss_opt, "*", color=color, markersize=14, markeredgecolor="black")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("non-embedding parameters N")
    axes[0].set_ylabel("held-out loss (nats/byte)")
    axes[0].set_title("IsoFLOP curves (star: best size per budget)")
    axes[0].legend(fontsize=8)
    c, n_opt = optima.budget.to_numpy(), optima.n_opt.to_numpy()
    axes[1].loglog(c, n_opt, "*", markersize=14, color="black", label="our optima")
    if len(c) >= 2:
        k, p = fit_power_law(c, n_opt)
        cs = np.logspace(np.log10(c.min()) - 0.3, np.log10(c.max()) + 0.3, 20)
        axes[1].loglog(cs, k * cs**p, color="tab:blue", label=f"fit: N_opt ~ C^{p:.2f}")
        mid = np.exp(np.log(c).mean())
        ref = np.exp(np.log(n_opt).mean()) * (cs / mid) ** _CHINCHILLA_SLOPE
        axes[1].loglog(cs, ref, color="gray", ls="--", label=f"slope {_CHINCHILLA_SLOPE} (Chinchilla)")
    axes[1].set_xlabel("compute C (FLOPs)")
    axes[1].set_ylabel("compute-optimal N")
    axes[1].legend(fontsize=8)
    axes[1].grid(alpha=0.3, which="both")
    return axes
