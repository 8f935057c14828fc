"""LoRA (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models"), written out.

A frozen linear layer ``W`` (out x in) learns an update of low rank instead of a full one:

    h = W x + (alpha / rank) * B A x        A: (rank x in), B: (out x rank)

A starts random (kaiming-uniform, as an ``nn.Linear``) and B at zero, so the adapted model starts
as exactly the base model. Only A and B train: ``rank * (in + out)`` numbers per layer instead of
``in * out``. After training, ``merge_lora`` folds ``scaling * B @ A`` into ``W``: the merged model
is a plain model again and costs nothing extra at inference. Same convention as ``peft``'s LoRA
(``LoraConfig(r=rank, lora_alpha=alpha, target_modules=[...])``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..atomic import atomic_write
from ..checks import check_int, check_number


def _check_dropout(owner: str, value) -> None:
    check_number(owner, "dropout", value, 0.0)
    if value >= 1:
        raise ValueError(f"{owner}.dropout={value!r}: must be a number >= 0.0 and < 1 (1 would drop every input).")


def _check_targets(owner: str, target_modules) -> tuple[str, ...]:
    if isinstance(target_modules, str) or not target_modules or not all(isinstance(t, str) and t for t in target_modules):
        raise ValueError(f"{owner}.target_modules={target_modules!r}: give a list of layer names, e.g. ['q', 'v'] for T5.")
    return tuple(target_modules)


@dataclass
class LoRAConfig:
    """The LoRA settings of a run; ``add_lora(model, **dataclasses.asdict(config))`` applies them."""

    rank: int = 8  # r: the rank of the update B @ A
    alpha: float = 16.0  # the update is scaled by alpha / rank (so a larger rank does not mean a larger step)
    target_modules: tuple[str, ...] = ("q", "v")  # last name component of the adapted nn.Linear layers (T5: q, k, v, o, wi_0, ...)
    dropout: float = 0.0  # dropout on the adapter's input (the base path never sees it)

    def __post_init__(self):
        check_int("LoRAConfig", "rank", self.rank, 1)
        check_number("LoRAConfig", "alpha", self.alpha, 0.0, low_open=True)
        _check_dropout("LoRAConfig", self.dropout)
        self.target_modules = _check_targets("LoRAConfig", self.target_modules)


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update: base(x) + scaling * B(A(dropout(x)))."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}.")
        check_int("LoRALinear", "rank", rank, 1)
        check_number("LoRALinear", "alpha", alpha, 0.0, low_open=True)
        _check_dropout("LoRALinear", dropout)
        self.base = base
        self.base.requires_grad_(False)
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, **kw)  # (rank, in)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, **kw)  # (out, rank)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # as nn.Linear (and peft) do
        nn.init.zeros_(self.lora_B.weight)  # B = 0: the adapted model starts as the base model
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        self.enabled = True

    def forward(self, x):  # (..., in) -> (..., out)
        out = self.base(x)
        if not self.enabled:
            return out
        return out + self.scaling * self.lora_B(self.lora_A(self.dropout(x)))

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """The base layer with the update folded in: W + scaling * B @ A (the base layer is changed in place)."""
        delta = self.lora_B.weight.float() @ self.lora_A.weight.float()  # (out, rank) @ (rank, in) -> (out, in)
        self.base.weight += (self.scaling * delta).to(self.base.weight.dtype)
        return self.base

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}, scaling={self.scaling:g}, enabled={self.enabled}"


def _lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def add_lora(model: nn.Module, rank: int, alpha: float, target_modules, dropout: float = 0.0) -> nn.Module:
    """Wrap every ``nn.Linear`` whose last name component is in ``target_modules`` (as peft matches a list of
    names) in a LoRALinear, and freeze every other parameter. Changes ``model`` in place and returns it."""
    targets = set(_check_targets("add_lora", target_modules))
    matches = [name for name, m in model.named_modules()
               if isinstance(m, nn.Linear) and name.rpartition(".")[2] in targets]
    if not matches and _lora_layers(model):
        raise ValueError(f"add_lora: the model already has LoRA layers and no plain nn.Linear named {sorted(targets)} "
                         "is left; call add_lora on a fresh copy of the base model (or merge_lora first).")
    if not matches:
        linears = sorted({name.rpartition(".")[2] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"add_lora: no nn.Linear named {sorted(targets)} in the model; its linear layers are "
                         f"called {linears[:20]}.")
    model.requires_grad_(False)
    for name in matches:
        _replace(model, name, LoRALinear(model.get_submodule(name), rank, alpha, dropout))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain ``nn.Linear`` back (in place)."""
    for name, layer in _lora_layers(model):
        _replace(model, name, layer.merged())
    return model


def set_lora_enabled(model: nn.Module, enabled: bool) -> None:
    """Switch every adapter on or off; off, the model computes exactly what the base model does."""
    layers = _lora_layers(model)
    if not layers:
        raise ValueError("set_lora_enabled: the model has no LoRA layers (call add_lora first).")
    for _, layer in layers:
        layer.enabled = bool(enabled)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters alone: ``{'<layer path>.lora_A.weight': A, '<layer path>.lora_B.weight': B, ...}`` (copies)."""
    state = {}
    for name, layer in _lora_layers(model):
        state[f"{name}.lora_A.weight"] = layer.lora_A.weight.detach().clone()
        state[f"{name}.lora_B.weight"] = layer.lora_B.weight.detach().clone()
    return state


@torch.no_grad()
def load_lora(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Copy adapters saved by ``lora_state_dict`` into a model prepared with the same ``add_lora`` call (strict)."""
    own = {}
    for name, layer in _lora_layers(model):
        own[f"{name}.lora_A.weight"], own[f"{name}.lora_B.weight"] = layer.lora_A.weight, layer.lora_B.weight
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"load_lora: the adapters do not fit this model: missing keys {missing[:10]}, "
                         f"unexpected keys {unexpected[:10]} (was add_lora called with the same target_modules?).")
    for key, param in own.items():
        if tuple(state[key].shape) != tuple(param.shape):
            raise ValueError(f"load_lora: {key} has shape {tuple(state[key].shape)}, the model's is "
                             f"{tuple(param.shape)} (a different rank?).")
        param.copy_(state[key])
    return model


def save_lora(model: nn.Module, path: str | os.PathLike):
    """Write the adapters (only A and B: a few MB at most) to ``path`` atomically; returns the path."""
    state = lora_state_dict(model)
    if not state:
        raise ValueError("save_lora: the model has no LoRA layers to save.")
    return atomic_write(path, lambda fh: torch.save(state, fh), binary=True)


def read_lora(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Adapters written by ``save_lora`` (on the CPU; ``load_lora`` copies them to the model's device)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters, each shared tensor counted once (``parameters()`` yields it once)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def lora_parameter_count(layer_shapes: list[tuple[int, int]], rank: int) -> int:
    """Trainable numbers of LoRA on layers of shape (in, out): rank * (in + out) each, summed."""
    check_int("lora_parameter_count", "rank", rank, 1)
    return sum(rank * (int(n_in) + int(n_out)) for n_in, n_out in layer_shapes)
