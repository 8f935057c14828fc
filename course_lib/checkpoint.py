"""Checkpoints for the training loop: written atomically, restored exactly.

A checkpoint holds everything that decides what the next step computes: the
weights, the optimizer's moments, the schedule's position, the fp16 gradient
scaler, the random number generators of python, numpy and torch, and how many
batches the run has consumed. Restoring all of them is what makes a resumed run
bitwise equal (on CPU) to one that never stopped.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write

CHECKPOINT_NAME = "last.pt"


def rng_state() -> dict:
    """The state of every random number generator a training step may draw from."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": np_kind, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put every generator back where ``rng_state`` found it."""
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(obj):
    # random.setstate wants tuples; a round trip through some loaders turns them into lists.
    if isinstance(obj, (list, tuple)):
        return tuple(_as_tuples(x) for x in obj)
    return obj


def save_atomic(obj: dict, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    return atomic_write(path, lambda fh: torch.save(obj, fh), binary=True)


def load(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by ``save_atomic`` (tensors and plain python only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. Train with checkpoint_dir set first, or point at an existing file.")
    return torch.load(path, map_location="cpu", weights_only=True)


def latest(checkpoint_dir: str | os.PathLike | None) -> Path | None:
    """The checkpoint a run in ``checkpoint_dir`` would resume from, or None."""
    if not checkpoint_dir:
        return None
    path = Path(checkpoint_dir) / CHECKPOINT_NAME
    return path if path.is_file() else None
