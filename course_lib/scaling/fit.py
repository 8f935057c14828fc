"""Fit L(N, D) = E + A / N^alpha + B / D^beta to (N, D, loss) points, the way Hoffmann et al. do.

Hoffmann et al. 2022 (App. D.2) write A = e^a, B = e^b, E = e^e and minimise

    sum_i Huber_delta( LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i )

with delta = 1e-3, by L-BFGS from every point of a grid of starts, keeping the
best. We sum the Huber terms (Besiroglu et al. 2024 found that averaging them
let the optimiser stop early) and give L-BFGS an exact gradient.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import minimize

from .laws import ChinchillaFit

# Hoffmann et al.'s grid of initialisations (App. D.2): 5 x 5 x 5 x 6 x 6 = 4,500 starts.
HOFFMANN_GRID = {
    "alpha": np.arange(0.0, 2.01, 0.5),
    "beta": np.arange(0.0, 2.01, 0.5),
    "e": np.arange(-1.0, 1.01, 0.5),
    "a": np.arange(0.0, 25.1, 5.0),
    "b": np.arange(0.0, 25.1, 5.0),
}
_ORDER = ("a", "b", "e", "alpha", "beta")  # layout of the parameter vector theta


def _points(points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log N, log D, log L) from a DataFrame with n_params/n_tokens/loss columns or (N, D, L) rows."""
    if hasattr(points, "columns"):
        missing = {"n_params", "n_tokens", "loss"} - set(points.columns)
        if missing:
            raise ValueError(f"points is missing column(s) {sorted(missing)}; it needs n_params, n_tokens, loss.")
        arr = points[["n_params", "n_tokens", "loss"]].to_numpy(dtype=float)
    else:
        arr = np.asarray([[r["n_params"], r["n_tokens"], r["loss"]] if isinstance(r, dict) else r for r in points],
                         dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"points must be rows of (n_params, n_tokens, loss); got an array of shape {arr.shape}.")
    if len(arr) < 5:
        raise ValueError(f"The law has 5 parameters; fitting it needs at least 5 points (got {len(arr)}).")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError("Every n_params, n_tokens and loss must be positive and finite.")
    return np.log(arr[:, 0]), np.log(arr[:, 1]), np.log(arr[:, 2])


def huber_objective(theta, log_n, log_d, log_l, delta: float = 1e-3):
    """Summed Huber loss of the log-space residuals and its gradient, for theta = (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=1)  # (n, 3)
    top = terms.max(axis=1, keepdims=True)
    weights = np.exp(terms - top)
    total = weights.sum(axis=1, keepdims=True)
    lse = (top + np.log(total))[:, 0]
    weights /= total  # softmax: d lse / d term
    r = lse - log_l
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)).sum()
    dr = np.clip(r, -delta, delta)  # Huber'(r)
    grad = np.array([
        (dr * weights[:, 0]).sum(),
        (dr * weights[:, 1]).sum(),
        (dr * weights[:, 2]).sum(),
        -(dr * weights[:, 0] * log_n).sum(),
        -(dr * weights[:, 1] * log_d).sum(),
    ])
    return value, grad


def _grid_values(grid, log_n, log_d, log_l, delta):
    """Objective at every grid start, vectorised; returns (starts (S, 5), values (S,))."""
    starts = np.array(list(itertools.product(*(grid[k] for k in _ORDER))), dtype=float)
    a, b, e, alpha, beta = (starts[:, i : i + 1] for i in range(5))
    lse = np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)  # (S, n)
    r = np.abs(lse - log_l)
    return starts, np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).sum(axis=1)


def fit_scaling_law(points, delta: float = 1e-3, grid: dict | None = None, n_starts: int | None = 30):
    """Fit E + A/N^alpha + B/D^beta to ``points`` (n_params, n_tokens, loss); returns a ChinchillaFit.

    L-BFGS runs from the ``n_starts`` grid points with the lowest objective
    (``None``: from all 4,500, as Hoffmann et al. did; that takes minutes on a laptop
    CPU, where the best 30 take about a second).
    """

    if not (isinstance(delta, (int, float)) and delta > 0):
        raise ValueError(f"delta must be a positive number (got {delta!r}); Hoffmann et al. use 1e-3.")
    if n_starts is not None and (not isinstance(n_starts, int) or n_starts < 1):
        raise ValueError(f"n_starts must be a positive int or None (got {n_starts!r}).")
    log_n, log_d, log_l = _points(points)
    starts, values = _grid_values(grid or HOFFMANN_GRID, log_n, log_d, log_l, delta)
    order = np.argsort(values)[: n_starts or len(values)]
    best = None
    for theta0 in starts[order]:
        res = minimize(huber_objective, theta0, args=(log_n, log_d, log_l, delta), jac=True, method="L-BFGS-B",
                       options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-9})
        if np.all(np.isfinite(res.x)) and (best is None or res.fun < best.fun):
            best = res
    a, b, e, alpha, beta = best.x
    return ChinchillaFit(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha),
                         beta=float(beta), source=f"fit_scaling_law: {len(log_n)} points, Huber delta={delta:g}, "
                                                  f"objective {best.fun:.3g}")
