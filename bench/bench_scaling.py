"""Lab 06 figures: the IsoFLOP experiment at the lab's full configuration, and the fitter's speed.

    HF_HUB_OFFLINE=1 DIALOGSUM_DIR=../shared/data/dialogsum python bench/bench_scaling.py

Prints markdown tables for bench/RESULTS.md.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from course_lib import hub
from course_lib import scaling as sc
from course_lib.data import load_dialogsum
from course_lib.scaling import isoflop as sx


def markdown(df) -> str:
    """A pandas DataFrame as a markdown table (4 significant figures)."""
    fmt = [lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)]
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns)
    return head + "".join("\n| " + " | ".join(fmt[0](v) for v in row) + " |" for row in df.itertuples(index=False))


def isoflop() -> None:
    train = sx.dialogsum_bytes(load_dialogsum("train"), seed=42)
    held_out = sx.dialogsum_bytes(load_dialogsum("validation"), seed=42)
    print(f"data: {hub.served()[-1].kind}; {len(train):,} training bytes; torch threads {torch.get_num_threads()}")
    cfg = replace(sx.LAB_CONFIG, seed=42)  # the lab's SEED
    start = time.perf_counter()
    runs = sx.run_isoflop(cfg, train, held_out)
    total = time.perf_counter() - start
    cols = ["budget", "n_layer", "d_model", "n_params", "steps", "n_tokens", "loss", "seconds", "tokens_per_s"]
    print(markdown(runs[cols]))
    optima = sx.isoflop_optima(runs)
    print(markdown(optima))
    _, a = sc.fit_power_law(optima.budget, optima.n_opt)
    _, a_best = sc.fit_power_law(optima.budget, optima.best_run_n)
    print(f"\nexponent a: {a:.3f} (parabola minima), {a_best:.3f} (best runs); experiment wall time {total:.0f} s")


def fitter() -> None:
    true = sc.ChinchillaFit(E=1.8, A=500.0, B=2000.0, alpha=0.35, beta=0.37)
    rng = np.random.default_rng(0)
    rows = [(n, c / (6 * n), sc.chinchilla_loss(n, c / (6 * n), true) * np.exp(rng.normal(0, 0.003)))
            for c in np.logspace(18, 22, 5) for n in np.logspace(7.5, 10.5, 9)]
    for n_starts in (10, 30):
        start = time.perf_counter()
        fit = sc.fit_scaling_law(rows, n_starts=n_starts)
        print(f"fit_scaling_law, 45 noisy points, n_starts={n_starts}: {time.perf_counter() - start:.1f} s; "
              f"alpha {fit.alpha:.3f} (true 0.35), beta {fit.beta:.3f} (true 0.37), E {fit.E:.3f} (true 1.8)")


if __name__ == "__main__":
    fitter()
    isoflop()
