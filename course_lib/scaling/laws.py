"""Compute budgets and scaling laws.

- Training compute: C ~ 6 N D (Kaplan et al. 2020, section 2.1), PF-days, and
  GPU time and cost for a given card, dtype and utilisation.
- Kaplan et al. 2020 (arXiv 2001.08361) power laws L(N), L(D), L(C_min).
- Chinchilla (Hoffmann et al. 2022, arXiv 2203.15556) parametric loss
  L(N, D) = E + A / N^alpha + B / D^beta, its compute-optimal N and D in closed
  form, and Epoch AI's refit (Besiroglu et al. 2024, arXiv 2404.10102).
- ``fit_scaling_law`` (course_lib.scaling_fit) fits that law to (N, D, loss) points.

All functions accept floats or numpy arrays and raise ``ValueError`` on
non-positive or non-finite input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .tables import (
    GPT3_TABLE_D1,
    GPT3_TABLE_D1_SOURCE,
    GPU_PEAK_TFLOPS,
    GPU_SOURCES,
    GPU_SPARSE_DTYPES,
    LARGE_MODELS,
)

PF_DAY_FLOPS = 1e15 * 24 * 3600  # one petaflop/s sustained for a day = 8.64e19 FLOPs
TOKENS_PER_PARAM = 20  # Chinchilla's rule of thumb (Hoffmann et al. Table 3: 1B -> 20.2B tokens)


def _positive(name: str, value, hint: str = ""):
    """``value`` as a float or float array, checked to be finite and > 0."""
    arr = np.asarray(value, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ValueError(f"{name} must be a positive, finite number (got {value!r}).{' ' + hint if hint else ''}")
    return float(arr) if arr.ndim == 0 else arr


# ---------------------------------------------------------------------------
# Compute
# ---------------------------------------------------------------------------
def training_flops(n_params, n_tokens, flops_per_param_token: float = 6.0):
    """Training compute C = k N D; k = 6 (2 forward + 4 backward), or 3 for T5 in GPT-3's table."""
    n_params = _positive("n_params", n_params, "Pass the parameter count, e.g. 175e9.")
    n_tokens = _positive("n_tokens", n_tokens, "Pass the number of training tokens, e.g. 300e9.")
    k = _positive("flops_per_param_token", flops_per_param_token)
    return k * n_params * n_tokens


def pf_days(flops):
    """FLOPs -> petaflop/s-days (1 PF-day = 8.64e19 FLOPs)."""
    return _positive("flops", flops, "Pass a FLOP count, e.g. 3.14e23.") / PF_DAY_FLOPS


def gpt3_compute_table():
    """Brown et al. 2020, Table D.1 as a DataFrame, with our 6ND / 3ND recomputation next to it."""
    import pandas as pd

    df = pd.DataFrame(GPT3_TABLE_D1, columns=["model", "family", "pf_days", "flops", "params_m", "tokens_b",
                                              "flops_per_param_token"])
    df["flops_6nd"] = training_flops(df.params_m * 1e6, df.tokens_b * 1e9, df.flops_per_param_token)
    df["pf_days_6nd"] = pf_days(df.flops_6nd)
    df.attrs["source"] = GPT3_TABLE_D1_SOURCE
    return df


def peak_flops(gpu: str, dtype: str = "bf16", sparse: bool = False) -> float:
    """Vendor peak FLOP/s for ``gpu`` in ``dtype``; dense unless ``sparse`` (2:4 sparsity doubles it)."""
    if gpu not in GPU_PEAK_TFLOPS:
        raise ValueError(f"Unknown gpu {gpu!r}; choose one of {sorted(GPU_PEAK_TFLOPS)}.")
    table = GPU_PEAK_TFLOPS[gpu]
    if dtype not in table:
        raise ValueError(f"{gpu} has no {dtype!r} peak in its datasheet; choose one of {sorted(table)}.")
    if sparse and dtype not in GPU_SPARSE_DTYPES[gpu]:
        raise ValueError(f"{gpu} has no structured-sparsity mode for {dtype}; use sparse=False.")
    return table[dtype] * 1e12 * (2 if sparse else 1)


def gpu_source(gpu: str) -> str:
    """Where ``peak_flops(gpu, ...)`` comes from."""
    if gpu not in GPU_SOURCES:
        raise ValueError(f"Unknown gpu {gpu!r}; choose one of {sorted(GPU_SOURCES)}.")
    return GPU_SOURCES[gpu]


def _utilization(utilization: float) -> float:
    if not (isinstance(utilization, (int, float)) and 0 < utilization <= 1):
        raise ValueError(f"utilization must be in (0, 1] (got {utilization!r}); real runs reach about 0.3-0.6.")
    return float(utilization)


def gpus_per_petaflop(gpu: str, dtype: str = "bf16", utilization: float = 1.0, sparse: bool = False) -> float:
    """How many ``gpu`` cards sustain 1 PFLOP/s (so run one PF-day per day) at ``utilization``."""
    return 1e15 / (peak_flops(gpu, dtype, sparse) * _utilization(utilization))


def gpu_hours(flops, gpu: str, dtype: str = "bf16", utilization: float = 0.4):
    """GPU-hours to do ``flops`` of work on ``gpu`` at ``utilization`` of the dense peak."""
    return _positive("flops", flops) / (peak_flops(gpu, dtype) * _utilization(utilization)) / 3600


def training_days(flops, gpu: str, n_gpus: int, dtype: str = "bf16", utilization: float = 0.4):
    """Wall-clock days for ``flops`` on ``n_gpus`` cards (assumes perfect scaling across cards)."""
    _positive("n_gpus", n_gpus, "Pass how many GPUs train together.")
    return gpu_hours(flops, gpu, dtype, utilization) / n_gpus / 24


def gpus_for_deadline(flops, days: float, gpu: str, dtype: str = "bf16", utilization: float = 0.4) -> int:
    """The fewest ``gpu`` cards that finish ``flops`` within ``days`` (rounded up)."""
    days = _positive("days", days, "Pass the deadline in days.")
    return math.ceil(gpu_hours(flops, gpu, dtype, utilization) / (days * 24) - 1e-9)


def training_cost(flops, gpu: str, usd_per_gpu_hour: float, dtype: str = "bf16", utilization: float = 0.4):
    """Dollars for ``flops`` at ``usd_per_gpu_hour`` (a price you look up; it changes often)."""
    price = _positive("usd_per_gpu_hour", usd_per_gpu_hour, "Pass the price of one GPU-hour in dollars.")
    return gpu_hours(flops, gpu, dtype, utilization) * price


# ---------------------------------------------------------------------------
# Kaplan et al. 2020, Appendix A, Tables 5 and 6 (loss in nats per token on
# WebText2; N = non-embedding parameters; C_min in PF-days)
# ---------------------------------------------------------------------------
KAPLAN = {
    "alpha_N": 0.076, "N_c": 8.8e13,
    "alpha_D": 0.095, "D_c": 5.4e13,
    "alpha_C_min": 0.050, "C_c_min": 3.1e8,
    "p_N": 0.73, "N_e": 1.3e9,  # N_opt = N_e * C_min^p_N
    "p_D": 0.27, "D_e": 2e10,  # D_opt = D_e * C_min^p_D
}


def kaplan_loss_params(n_params):
    """L(N) = (N_c / N)^alpha_N: converged loss of a model with N non-embedding parameters."""
    return (KAPLAN["N_c"] / _positive("n_params", n_params)) ** KAPLAN["alpha_N"]


def kaplan_loss_tokens(n_tokens):
    """L(D) = (D_c / D)^alpha_D: loss of a large model trained on D tokens with early stopping."""
    return (KAPLAN["D_c"] / _positive("n_tokens", n_tokens)) ** KAPLAN["alpha_D"]


def kaplan_loss_compute(compute_pf_days):
    """L(C_min) = (C_c_min / C_min)^alpha_C_min, with C_min in PF-days."""
    return (KAPLAN["C_c_min"] / _positive("compute_pf_days", compute_pf_days)) ** KAPLAN["alpha_C_min"]


def kaplan_optimal(compute_pf_days):
    """Kaplan's compute-efficient (N_opt, D_opt) for C_min in PF-days (Table 6)."""
    c = _positive("compute_pf_days", compute_pf_days)
    return KAPLAN["N_e"] * c ** KAPLAN["p_N"], KAPLAN["D_e"] * c ** KAPLAN["p_D"]


# ---------------------------------------------------------------------------
# Chinchilla: L(N, D) = E + A / N^alpha + B / D^beta
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ChinchillaFit:
    """One fit of the parametric loss L(N, D) = E + A / N^alpha + B / D^beta."""

    E: float  # irreducible loss (nats/token): the entropy of text itself
    A: float  # scale of the finite-model term
    B: float  # scale of the finite-data term
    alpha: float  # how fast the model term falls with N
    beta: float  # how fast the data term falls with D
    source: str = ""  # paper, or how the fit was made

    @property
    def a(self) -> float:
        """Exponent of N_opt ~ C^a."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt ~ C^b (a + b = 1)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """N_opt = G (C/6)^a and D_opt = (C/6)^b / G (Hoffmann et al. Eq. 4)."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))


FITS = {
    # Hoffmann et al. 2022, Appendix D.2 (Approach 3), rounded as printed.
    "hoffmann": ChinchillaFit(1.69, 406.4, 410.7, 0.34, 0.28, "Hoffmann et al. 2022, App. D.2, Approach 3"),
    # Besiroglu et al. 2024 refit to 240 points digitised from Hoffmann's Fig. 4.
    "epoch": ChinchillaFit(1.8172, 482.01, 2085.43, 0.3478, 0.3658, "Besiroglu et al. 2024 (Epoch AI), refit"),
}


def get_fit(fit: str | ChinchillaFit = "hoffmann") -> ChinchillaFit:
    """A ChinchillaFit by name ('hoffmann', 'epoch') or passed through."""
    if isinstance(fit, ChinchillaFit):
        return fit
    if fit not in FITS:
        raise ValueError(f"Unknown fit {fit!r}; use one of {sorted(FITS)} or a ChinchillaFit.")
    return FITS[fit]


def chinchilla_loss(n_params, n_tokens, fit: str | ChinchillaFit = "hoffmann"):
    """Predicted loss (nats/token, MassiveText) of N parameters trained on D tokens."""
    f = get_fit(fit)
    n = _positive("n_params", n_params, "Pass a parameter count, e.g. 70e9.")
    d = _positive("n_tokens", n_tokens, "Pass a token count, e.g. 1.4e12.")
    return f.E + f.A / n**f.alpha + f.B / d**f.beta


def chinchilla_optimal(compute_flops, fit: str | ChinchillaFit = "hoffmann"):
    """(N_opt, D_opt) minimising ``chinchilla_loss`` subject to 6 N D = compute_flops."""
    f = get_fit(fit)
    c6 = _positive("compute_flops", compute_flops, "Pass a training budget in FLOPs, e.g. 5.76e23.") / 6
    return f.G * c6**f.a, c6**f.b / f.G


def chinchilla_params_for_tokens(n_tokens, fit: str | ChinchillaFit = "hoffmann"):
    """The model size for which ``n_tokens`` is compute-optimal (inverts ``chinchilla_optimal``)."""
    f = get_fit(fit)
    d = _positive("n_tokens", n_tokens)
    c6 = (d * f.G) ** (1 / f.b)  # from D = (C/6)^b / G
    return c6 / d


def rule_of_thumb_tokens(n_params):
    """Compute-optimal tokens by the ~20 tokens per parameter rule."""
    return TOKENS_PER_PARAM * _positive("n_params", n_params)


def large_models_table(fit: str | ChinchillaFit = "epoch"):
    """Each large model's tokens next to the 20 N rule and ``fit``'s optimum at the same compute."""
    import pandas as pd

    df = pd.DataFrame(LARGE_MODELS)
    df["flops"] = training_flops(df.n_params, df.n_tokens)
    df["tokens_per_param"] = df.n_tokens / df.n_params
    df["rule_20n_tokens"] = rule_of_thumb_tokens(df.n_params)
    opt_n, opt_d = chinchilla_optimal(df.flops.to_numpy(), fit)
    df["optimal_params"], df["optimal_tokens"] = opt_n, opt_d
    df["loss"] = chinchilla_loss(df.n_params, df.n_tokens, fit)
    df["optimal_loss"] = chinchilla_loss(opt_n, opt_d, fit)
    return df


# ---------------------------------------------------------------------------
# IsoFLOP analysis (Hoffmann et al. Approach 2)
# ---------------------------------------------------------------------------
def isoflop_parabola(n_params, losses) -> tuple[float, float, float]:
    """Least-squares parabola loss = c2 (ln N)^2 + c1 ln N + c0 through one IsoFLOP profile: (c2, c1, c0)."""
    n = np.atleast_1d(_positive("n_params", n_params))
    y = np.asarray(losses, dtype=float)
    if n.shape != y.shape or n.size < 3:
        raise ValueError(f"Need at least 3 (n_params, loss) pairs of equal length (got {n.size} and {y.size}).")
    c2, c1, c0 = np.polyfit(np.log(n), y, 2)
    return float(c2), float(c1), float(c0)


def isoflop_minimum(n_params, losses) -> tuple[float, float]:
    """Fit loss = p(log N) with a parabola through one IsoFLOP profile; return (N at its vertex, loss there)."""
    c2, c1, c0 = isoflop_parabola(n_params, losses)
    if c2 <= 0:
        raise ValueError("This IsoFLOP profile is not U-shaped (the parabola opens downward); "
                         "add sizes on both sides of the best one.")
    x = -c1 / (2 * c2)
    return float(np.exp(x)), float(c0 + c1 * x + c2 * x * x)


def fit_power_law(x, y) -> tuple[float, float]:
    """Least squares in log-log space: y = k * x^p; returns (k, p)."""
    lx, ly = np.log(np.atleast_1d(_positive("x", x))), np.log(np.atleast_1d(_positive("y", y)))
    if lx.shape != ly.shape or lx.size < 2:
        raise ValueError(f"Need at least 2 (x, y) pairs of equal length (got {lx.size} and {ly.size}).")
    p, logk = np.polyfit(lx, ly, 1)
    return float(np.exp(logk)), float(p)

__all__ = [
    "PF_DAY_FLOPS", "TOKENS_PER_PARAM", "training_flops", "pf_days", "gpt3_compute_table", "peak_flops",
    "gpu_source", "gpus_per_petaflop", "gpu_hours", "training_days", "gpus_for_deadline", "training_cost",
    "KAPLAN", "kaplan_loss_params", "kaplan_loss_tokens", "kaplan_loss_compute", "kaplan_optimal",
    "ChinchillaFit", "FITS", "get_fit", "chinchilla_loss", "chinchilla_optimal", "chinchilla_params_for_tokens",
    "rule_of_thumb_tokens", "large_models_table", "isoflop_parabola", "isoflop_minimum", "fit_power_law",
]
