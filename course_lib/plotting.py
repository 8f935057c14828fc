"""The figures the labs show. Each function draws on a matplotlib Axes and returns it."""

from __future__ import annotations

import matplotlib.pyplot as plt

from .scaling.laws import (
    KAPLAN,
    chinchilla_loss,
    chinchilla_optimal,
    fit_power_law,
    get_fit,
    kaplan_loss_compute,
    kaplan_loss_params,
    kaplan_loss_tokens,
)


def _axes(ax=None, figsize=(6, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


# --- Lab 00: orientation -------------------------------------------------------

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


# --- Lab 01: tokenization and embeddings ------------------------------------------


def plot_fertility_by_domain(table, ax=None):
    """Grouped bars of tokens per word: one group per domain, one bar per tokenizer (table: tokenizer, domain, fertility)."""
    ax = _axes(ax, figsize=(8, 4))
    domains = list(dict.fromkeys(table["domain"]))
    names = list(dict.fromkeys(table["tokenizer"]))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        rows = table[table["tokenizer"] == name].set_index("domain").loc[domains]
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(domains))]
        ax.bar(xs, rows["fertility"], width, label=name)
    ax.set_xticks(range(len(domains)), domains)
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


# --- Lab 03: pretraining (course_lib.training histories) -------------------------


def _smooth(values, window: int):
    import numpy as np

    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)  # short running mean at the start
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def plot_loss_curves(histories, ax=None, smooth: int = 1, eval_only: bool = False, title: str = "Loss curves"):
    """Training loss (thin, optionally smoothed) and evaluation loss (markers) per step.

    ``histories`` is one course_lib.training.History or a dict {label: History}.
    """
    ax = _axes(ax, figsize=(7, 4))
    if hasattr(histories, "loss"):
        histories = {"train": histories}
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i}"
        if not eval_only and h.loss:
            ax.plot(h.step, _smooth(h.loss, smooth), color=color, lw=1.2, alpha=0.9, label=f"{label} (train)")
        if h.eval_loss:
            ax.plot(h.eval_step, h.eval_loss, "o--", color=color, ms=4, lw=1, label=f"{label} (eval)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats / token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


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


# --- Lab 05: quantization and memory ----------------------------------------------

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
    import numpy as np

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
    import numpy as np

    ax = _axes(ax, figsize=(8, 4))
    xs, hues = list(dict.fromkeys(table[x])), list(dict.fromkeys(table[hue]))
    width = 0.8 / len(hues)
    for j, h in enumerate(hues):
        sub = table[table[hue] == h].set_index(x).reindex(xs)
        ax.bar(np.arange(len(xs)) + (j - (len(hues) - 1) / 2) * width, sub[y], width, label=str(h))
    ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs])
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel or y)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3, which="both")
    return ax


def plot_quantized_values(values, versions: dict, ax=None, bins: int = 60):
    """Histogram of ``values`` and of each dequantized version {name: values} on the same bins."""
    import numpy as np

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


def plot_context_masks(masks: dict, axes=None):
    """One panel per {title: (T_q, T_k) bool mask}: dark = the query row may attend to that key column."""
    import matplotlib.colors as mcolors

    if axes is None:
        _, axes = plt.subplots(1, len(masks), figsize=(3.2 * len(masks), 3.4))
    cmap = mcolors.ListedColormap(["#f2f2f2", "#2b6cb0"])
    for ax, (title, mask) in zip(axes, masks.items()):
        m = mask.detach().cpu().int().numpy() if hasattr(mask, "detach") else mask
        ax.imshow(m, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key (attended to)")
        ax.set_ylabel("query (attending)")
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


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


# --- Lab 02: self-attention and the Transformer -----------------------------------


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
        ax.imshow(mask.cpu().numpy(), cmap="Greys", vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("key (attended to)")
        ax.set_ylabel("query (attending)")
        if tokens is not None:
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
            ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
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


# --- Lab 04: prompting and generation settings ----------------------------------------


def plot_rouge_by_strategy(table, metrics=("rouge1", "rouge2", "rougeL"), ax=None, title: str = "ROUGE by prompting strategy"):
    """Grouped bars: one group per prompting strategy, one bar per ROUGE metric, with ±1 standard error
    where the table has ``<metric>_se`` columns."""
    import numpy as np

    ax = _axes(ax, figsize=(8, 4))
    strategies = list(table["strategy"])
    width = 0.8 / len(metrics)
    for j, m in enumerate(metrics):
        x = np.arange(len(strategies)) + (j - (len(metrics) - 1) / 2) * width
        err = table[f"{m}_se"] if f"{m}_se" in table else None
        ax.bar(x, table[m], width, yerr=err, capsize=3, label=m)
    ax.set_xticks(np.arange(len(strategies)), strategies)
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
    import numpy as np

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


# --- Lab 06: compute budgets and scaling laws ------------------------------------

_FAMILY_COLORS = {"T5": "tab:green", "BERT": "tab:orange", "RoBERTa": "tab:red", "GPT-3": "tab:blue"}


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
    import numpy as np


    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
    panels = [
        (np.logspace(-8, 2, 50), kaplan_loss_compute, "compute C_min (PF-days)", f"alpha_C = {KAPLAN['alpha_C_min']}"),
        (np.logspace(7, 11, 50), kaplan_loss_tokens, "dataset size D (tokens)", f"alpha_D = {KAPLAN['alpha_D']}"),
        (np.logspace(4, 10, 50), kaplan_loss_params, "non-embedding parameters N", f"alpha_N = {KAPLAN['alpha_N']}"),
    ]
    from matplotlib.ticker import FormatStrFormatter

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
    import numpy as np


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


def plot_isoflop_curves(runs, optima, axes=None, reference_exponent: float = 0.5):
    """Left: held-out loss against N, one curve per budget, with each budget's fitted minimum.
    Right: those optimal N against compute, with a power-law fit and a line of slope ``reference_exponent``."""
    import numpy as np


    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.cm.plasma(np.linspace(0.1, 0.8, len(optima)))
    for color, (_, opt) in zip(colors, optima.sort_values("budget").iterrows()):
        group = runs[runs.budget == opt.budget].sort_values("n_params")
        axes[0].plot(group.n_params, group.loss, "o:", color=color, lw=0.8, label=f"C = {opt.budget:.1e} FLOPs")
        if opt.method == "parabola":
            x = np.log(group.n_params)
            coef = np.polyfit(x, group.loss, 2)
            xs = np.linspace(x.min(), x.max(), 50)
            axes[0].plot(np.exp(xs), np.polyval(coef, xs), color=color, lw=1)
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
        ref = np.exp(np.log(n_opt).mean()) * (cs / mid) ** reference_exponent
        axes[1].loglog(cs, ref, color="gray", ls="--", label=f"slope {reference_exponent} (Chinchilla)")
    axes[1].set_xlabel("compute C (FLOPs)")
    axes[1].set_ylabel("compute-optimal N")
    axes[1].legend(fontsize=8)
    axes[1].grid(alpha=0.3, which="both")
    return axes
