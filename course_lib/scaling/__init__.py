"""Compute budgets and scaling laws (lab 06).

- ``laws``: FLOPs and PF-days, GPU time and cost, Kaplan's and Chinchilla's laws, IsoFLOP minima;
- ``fit``: fitting Chinchilla's law to (N, D, loss) runs (Huber loss, L-BFGS from a grid of starts);
- ``tables``: published figures with their sources (GPT-3 Table D.1, GPU peaks, large models);
- ``isoflop``: our own IsoFLOP experiment with tiny byte-level decoders.

The names of ``laws`` and ``fit`` are available here directly (``course_lib.scaling.training_flops``).
"""

from . import fit, isoflop, laws, tables
from .fit import fit_scaling_law, huber_objective
from .laws import *  # noqa: F403  (the public names of laws, listed in its __all__)
from .laws import __all__ as _laws_all

__all__ = [*_laws_all, "fit_scaling_law", "huber_objective", "fit", "isoflop", "laws", "tables"]
