"""Measure what int8 costs a real model: memory, output change, perplexity, time.

Variants compared: the float model, course_lib's weight-only int8 (``Int8Linear``), and
torch's ``quantize_dynamic`` (int8 weights and activations). For perplexity we need a
language model that runs offline: ``train_byte_decoder`` trains a small Pythia-shaped
(GPT-NeoX) decoder on bytes of text for a few hundred steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from ..checks import check_int, check_number
from ..device import set_seed
from ..tokenization import utf8_stream
from ..training import TrainConfig, train
from .int8 import quantize_linear_weights, serialized_bytes, torch_dynamic_int8


def int8_variants(model: nn.Module) -> dict[str, nn.Module]:
    """The float model and four int8 versions of its nn.Linear layers, on CPU.

    Weight-only (course_lib) and dynamic (torch: int8 weights and activations), each with one
    weight scale per tensor or per output channel.
    """
    model = model.float().cpu().eval()
    return {"fp32": model,
            "weight-only, per channel (course_lib)": quantize_linear_weights(model, per_channel=True),
            "weight-only, per tensor (course_lib)": quantize_linear_weights(model, per_channel=False),
            "dynamic, per channel (torch)": torch_dynamic_int8(model, per_channel=True),
            "dynamic, per tensor (torch)": torch_dynamic_int8(model, per_channel=False)}


@torch.no_grad()
def compare_outputs(variants: dict[str, nn.Module], run) -> list[dict]:
    """``run(model) -> float tensor (..., D)`` for each variant, compared with the first (the reference).

    Reports state_dict bytes, seconds for ``run``, the cosine similarity of each output
    vector with the reference's (mean and min) and the relative error of the whole output.
    """
    rows, reference = [], None
    for name, model in variants.items():
        start = time.perf_counter()
        out = run(model).float()
        seconds = time.perf_counter() - start
        if reference is None:
            reference = out
        cos = nn.functional.cosine_similarity(out.reshape(-1, out.shape[-1]), reference.reshape(-1, out.shape[-1]), dim=-1)
        rows.append({"variant": name, "state_dict_MB": serialized_bytes(model) / 1e6, "seconds": seconds,
                     "cosine_mean": cos.mean().item(), "cosine_min": cos.min().item(),
                     "relative_error": ((out - reference).norm() / reference.norm()).item()})
    return rows


# --- a small byte-level decoder, for perplexity ------------------------------------


@dataclass
class ByteLMConfig:
    """A tiny GPT-NeoX (Pythia's architecture) over the 256 byte values."""

    n_layers: int = 2  # Transformer blocks
    d_model: int = 128  # hidden size
    n_heads: int = 4  # attention heads
    seq_len: int = 128  # bytes per training window
    batch_size: int = 16  # windows per step
    steps: int = 300  # optimizer steps
    lr: float = 3e-3  # AdamW peak learning rate (cosine decay to 10%)
    seed: int = 0  # weights and batch order

    def __post_init__(self):
        for name in ("n_layers", "d_model", "n_heads", "seq_len", "batch_size", "steps"):
            check_int("ByteLMConfig", name, getattr(self, name), 1)
        check_int("ByteLMConfig", "seed", self.seed, 0)
        check_number("ByteLMConfig", "lr", self.lr, 0.0, low_open=True)
        if self.d_model % self.n_heads:
            raise ValueError(f"ByteLMConfig: d_model={self.d_model} must be divisible by n_heads={self.n_heads}.")


def text_to_bytes(texts: list[str]) -> torch.Tensor:
    """All texts as one stream of UTF-8 byte ids (0..255), separated by newlines."""
    return utf8_stream(texts, "\n")


def make_byte_decoder(cfg: ByteLMConfig) -> nn.Module:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    set_seed(cfg.seed)
    hf_cfg = GPTNeoXConfig(vocab_size=256, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
                           num_attention_heads=cfg.n_heads, intermediate_size=4 * cfg.d_model,
                           max_position_embeddings=cfg.seq_len, tie_word_embeddings=False,
                           bos_token_id=0, eos_token_id=0)
    return GPTNeoXForCausalLM(hf_cfg)


def byte_windows(train_bytes: torch.Tensor, cfg: ByteLMConfig):
    """index -> batch of ``cfg.batch_size`` random windows of ``train_bytes``, the same for the same index."""
    if train_bytes.numel() <= cfg.seq_len + 1:
        raise ValueError(f"Need more than seq_len + 1 = {cfg.seq_len + 1} bytes of training text, got {train_bytes.numel()}.")

    def batch(index: int) -> dict:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + index)
        starts = torch.randint(0, train_bytes.numel() - cfg.seq_len - 1, (cfg.batch_size,), generator=g)
        ids = torch.stack([train_bytes[s : s + cfg.seq_len] for s in starts.tolist()])  # (B, T)
        return {"input_ids": ids, "labels": ids}

    return batch


def train_byte_decoder(cfg: ByteLMConfig, train_bytes: torch.Tensor, device: torch.device | str = "cpu",
                       progress: bool = True, model: nn.Module | None = None, steps: int | None = None,
                       lr: float | None = None):
    """Train on random windows of ``train_bytes`` with ``training.train`` (AdamW, cosine to 10%, clipping).

    A new decoder unless ``model`` is given (e.g. to keep training one with fake-quantized weights).
    Returns (model on CPU, history as a list of {'step', 'loss'}).
    """
    batches = byte_windows(train_bytes, cfg)
    model = make_byte_decoder(cfg) if model is None else model
    tcfg = TrainConfig(max_steps=steps or cfg.steps, lr=lr or cfg.lr, warmup_steps=0, weight_decay=0.01,
                       betas=(0.9, 0.999), clip_norm=1.0, eval_every=0, device=str(device), seed=cfg.seed,
                       progress=progress, precision="fp32")
    history = train(model, batches, tcfg)
    return model.cpu().eval(), [{"step": s, "loss": x} for s, x in zip(history.step, history.loss)]


# --- quantization-aware training ------------------------------------------------------


def fake_quantize(w: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Quantize then dequantize a weight matrix (one absmax scale per output row, symmetric, ``bits`` bits).

    The forward value is exactly what int storage would give back; the gradient passes straight through
    (the straight-through estimator of Bengio et al., 2013), since rounding has zero gradient almost everywhere.
    """
    if not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"bits={bits!r}: expected an integer from 2 to 16.")
    if w.dim() != 2:
        raise ValueError(f"fake_quantize expects a (out, in) weight matrix, got shape {tuple(w.shape)}.")
    qmax = 2 ** (bits - 1) - 1
    scale = w.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / qmax  # (out, 1)
    quantized = torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
    return w + (quantized - w).detach()


class FakeQuantWeight(nn.Module):
    """A parametrization: the Linear layer computes with its weight as ``bits``-bit storage would give it back."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return fake_quantize(w, self.bits)


def add_fake_quant(model: nn.Module, bits: int) -> nn.Module:
    """Quantization-aware training: every nn.Linear weight is seen through ``fake_quantize`` (in place)."""
    from torch.nn.utils import parametrize

    for module in model.modules():
        if isinstance(module, nn.Linear):
            parametrize.register_parametrization(module, "weight", FakeQuantWeight(bits))
    return model


def remove_fake_quant(model: nn.Module) -> nn.Module:
    """After QAT: store each fake-quantized weight as the plain (already rounded) weight it computes with (in place)."""
    from torch.nn.utils import parametrize

    for module in model.modules():
        if isinstance(module, nn.Linear) and parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


@torch.no_grad()
def post_training_quantize(model: nn.Module, bits: int) -> nn.Module:
    """Post-training quantization: round every nn.Linear weight of a trained model to ``bits`` bits (in place)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.weight.copy_(fake_quantize(module.weight, bits))
    return model


@torch.no_grad()
def linear_input_outliers(model: nn.Module, run) -> list[dict]:
    """For each nn.Linear: the largest |input| and the median over features of each feature's max |input|.

    A ratio far above 1 means a few feature dimensions dwarf the rest (Dettmers et al.'s outlier
    features): one int8 scale per activation tensor then wastes most levels on them.
    """
    rows, hooks = [], []

    def hook(name):
        def record(module, inputs, output):
            x = inputs[0].detach().float().abs()
            per_feature = x.reshape(-1, x.shape[-1]).amax(0)  # (in_features,)
            rows.append({"layer": name, "max_abs": per_feature.max().item(), "median_feature_max": per_feature.median().item(),
                         "ratio": (per_feature.max() / per_feature.median().clamp_min(1e-12)).item()})
        return record

    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(hook(name)))
    try:
        run(model)
    finally:
        for h in hooks:
            h.remove()
    return rows
