"""Memory to store, run and train a Transformer, and how DDP and ZeRO/FSDP split it.

Sources (figures in ../shared/REFERENCE_NUMBERS.md):
- ZeRO, Rajbhandari et al. 2020 (arXiv 1910.02054): mixed-precision Adam keeps 2 + 2 + 12
  = 16 bytes per parameter, and stages 1/2/3 shard optimizer states, gradients, parameters.
- Hugging Face "Anatomy of Model's Memory": the same recipe counted as 6 + 4 + 8 = 18.
- Korthikanti et al. 2022 (arXiv 2205.05198): activation bytes per layer sbh(34 + 5as/h).
- DeepSpeed's ``estimate_zero2/3_model_states_mem_needs`` (deepspeed 0.19.6).

Measurement on a live model is in ``course_lib.memory.measure``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BYTES_PER_DTYPE = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
_DTYPE_ALIASES = {"float32": "fp32", "float": "fp32", "32": "fp32", "float16": "fp16", "half": "fp16",
                  "16": "fp16", "bfloat16": "bf16", "8": "int8", "4": "int4"}


def _count(name: str, value, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}.")
    return value


def bytes_per_param(dtype: str | int) -> float:
    """Bytes one value takes in ``dtype`` ('fp32', 'fp16', 'bf16', 'fp8', 'int8', 'int4', or 32/16/8/4 bits)."""
    key = str(dtype).lower().removeprefix("torch.")
    key = _DTYPE_ALIASES.get(key, key)
    if key not in BYTES_PER_DTYPE:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of {sorted(BYTES_PER_DTYPE)} (or 32, 16, 8, 4 bits).")
    return BYTES_PER_DTYPE[key]


def weights_bytes(n_params: float, dtype: str | int = "fp32") -> float:
    """Bytes to store the weights alone."""
    return _count("n_params", n_params) * bytes_per_param(dtype)


def kv_cache_bytes(n_layers: int, n_kv_heads: int, d_head: int, seq_len: int, batch: int, dtype: str = "fp16") -> float:
    """Keys and values kept while generating: 2 * layers * kv_heads * d_head * tokens * batch * bytes."""
    for name, v in (("n_layers", n_layers), ("n_kv_heads", n_kv_heads), ("d_head", d_head), ("seq_len", seq_len), ("batch", batch)):
        _count(name, v)
    return 2 * n_layers * n_kv_heads * d_head * seq_len * batch * bytes_per_param(dtype)


# --- training: bytes per parameter under each convention --------------------------

# weights / gradients / optimizer states, in bytes per parameter, for AdamW
TRAINING_CONVENTIONS = {
    "fp32": {"weights": 4, "gradients": 4, "optimizer": 8},  # everything fp32; Adam's m and v
    "mixed-zero": {"weights": 2, "gradients": 2, "optimizer": 12},  # ZeRO §3.1: fp16 w+g; fp32 master, m, v
    "mixed-hf": {"weights": 6, "gradients": 4, "optimizer": 8},  # HF docs: fp32+fp16 weights, fp32 grads, m, v
    "mixed-hf-8bit-adam": {"weights": 6, "gradients": 4, "optimizer": 2},  # HF docs with bitsandbytes 8-bit AdamW
}


def training_bytes_per_param(convention: str = "mixed-zero") -> dict:
    """{'weights', 'gradients', 'optimizer', 'total'} bytes per parameter for a convention."""
    if convention not in TRAINING_CONVENTIONS:
        raise ValueError(f"Unknown convention {convention!r}; use one of {sorted(TRAINING_CONVENTIONS)}.")
    parts = dict(TRAINING_CONVENTIONS[convention])
    return parts | {"total": sum(parts.values())}


def model_state_bytes(n_params: float, convention: str = "mixed-zero") -> dict:
    """Bytes of weights, gradients and optimizer states (no activations) for ``n_params``."""
    _count("n_params", n_params)
    return {k: v * n_params for k, v in training_bytes_per_param(convention).items()}


# --- a decoder's shape: parameters, inference memory, activations (Korthikanti et al. 2022) ---


@dataclass(frozen=True)
class TransformerShape:
    """The sizes of a GPT-style decoder that memory depends on."""

    n_layers: int  # L, Transformer blocks
    d_model: int  # h, hidden size
    n_heads: int  # a, attention heads
    vocab_size: int  # V, rows of the token embedding
    max_seq_len: int = 2048  # context the model was built for (learned positions use it)
    d_ff: int | None = None  # MLP hidden size; None means 4 * d_model
    tied_embeddings: bool = True  # output layer shares the token embedding (GPT-2) or not (Pythia)
    learned_positions: bool = True  # a (max_seq_len, h) position table (GPT-2) or rotary (none)

    def __post_init__(self):
        for name in ("n_layers", "d_model", "n_heads", "vocab_size", "max_seq_len"):
            _count(name, getattr(self, name), allow_zero=False)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}.")

    @property
    def ffn(self) -> int:
        return self.d_ff or 4 * self.d_model


def param_count(shape: TransformerShape) -> int:
    """Parameters of a GPT-2 / GPT-NeoX style decoder (biases and LayerNorms included)."""
    h, f, V = shape.d_model, shape.ffn, shape.vocab_size
    attention = 4 * h * h + 4 * h  # q, k, v, out projections with biases
    mlp = 2 * h * f + f + h
    layer = attention + mlp + 2 * 2 * h  # two LayerNorms (gain + bias)
    embeddings = V * h * (1 if shape.tied_embeddings else 2) + (shape.max_seq_len * h if shape.learned_positions else 0)
    return shape.n_layers * layer + 2 * h + embeddings  # + the final LayerNorm


def inference_memory(shape: TransformerShape, batch: int, context: int, dtype: str = "fp16") -> dict:
    """Bytes to run a decoder: its weights plus the KV cache for ``batch`` sequences of ``context`` tokens."""
    weights = weights_bytes(param_count(shape), dtype)
    kv = kv_cache_bytes(shape.n_layers, shape.n_heads, shape.d_model // shape.n_heads, context, batch, dtype)
    return {"weights": weights, "kv_cache": kv, "total": weights + kv}


def activation_bytes(shape: TransformerShape, batch: int, seq_len: int, bytes_per_value: float = 2,
                     mask_bytes: float = 1, recompute: str = "none") -> float:
    """Activations kept for backward by all layers (Korthikanti et al. 2022, no model parallelism).

    Per layer the paper counts 16 sbh stored values + 2 sbh one-byte dropout masks, and in
    attention 2 as^2 b values + as^2 b mask bytes: with 2-byte values sbh(34 + 5as/h).
    ``bytes_per_value=4`` gives fp32 training. ``mask_bytes`` is 1 for the paper's byte masks
    (CUDA), 4 for the float masks torch's CPU dropout keeps, 0 without dropout (most modern
    LLMs). ``recompute`` is 'none', 'selective' (recompute attention's s^2 part) or 'full'
    (keep only each layer's input). Embedding and logits activations are not included.
    """
    b, s = _count("batch", batch), _count("seq_len", seq_len)
    B = _count("bytes_per_value", bytes_per_value, allow_zero=False)
    h, a = shape.d_model, shape.n_heads
    mask = _count("mask_bytes", mask_bytes)
    per_token_values = 8 + 2 * shape.ffn / h  # attention 5, MLP 1 + 2 f/h, LayerNorms 2 (in units of h)
    linear_part = s * b * h * (per_token_values * B + 2 * mask)
    attention_part = a * s * s * b * (2 * B + mask)
    if recompute == "none":
        per_layer = linear_part + attention_part
    elif recompute == "selective":
        per_layer = linear_part
    elif recompute == "full":
        per_layer = s * b * h * B
    else:
        raise ValueError(f"recompute must be 'none', 'selective' or 'full', got {recompute!r}.")
    return shape.n_layers * per_layer


def logits_bytes(shape: TransformerShape, batch: int, seq_len: int, bytes_per_value: float = 4) -> float:
    """The (batch, seq, vocab) logits the loss keeps: often the largest single activation."""
    return _count("batch", batch) * _count("seq_len", seq_len) * shape.vocab_size * bytes_per_value


def training_memory(shape: TransformerShape, batch: int, seq_len: int, convention: str = "fp32",
                    recompute: str = "none", mask_bytes: float = 1) -> dict:
    """Model states + activations (+ logits) in bytes for one training step."""
    n = param_count(shape)
    states = model_state_bytes(n, convention)
    act_bytes = 4 if convention == "fp32" else 2
    acts = activation_bytes(shape, batch, seq_len, act_bytes, mask_bytes, recompute)
    logits = logits_bytes(shape, batch, seq_len, 4)
    out = {"params": n, **{k: states[k] for k in ("weights", "gradients", "optimizer")},
           "activations": acts, "logits": logits}
    out["total"] = out["weights"] + out["gradients"] + out["optimizer"] + acts + logits
    return out


# --- data parallelism: DDP and ZeRO / FSDP ---------------------------------------------

FSDP_TO_ZERO_STAGE = {"NO_SHARD": 0, "SHARD_GRAD_OP": 2, "FULL_SHARD": 3}


def _zero_split(stage, param_bytes, grad_bytes, optimizer_bytes_per_param) -> tuple[float, float]:
    """(replicated, sharded) bytes per parameter for a stage."""
    stage = FSDP_TO_ZERO_STAGE.get(stage, stage) if isinstance(stage, str) else stage
    if isinstance(stage, bool) or stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0 (DDP), 1, 2, 3 or one of {sorted(FSDP_TO_ZERO_STAGE)}, got {stage!r}.")
    P, G, K = (_count(n, v) for n, v in (("param_bytes", param_bytes), ("grad_bytes", grad_bytes),
                                         ("optimizer_bytes_per_param", optimizer_bytes_per_param)))
    return {0: (P + G + K, 0), 1: (P + G, K), 2: (P, G + K), 3: (0, P + G + K)}[stage]


def zero_memory_per_device(n_params: float, n_devices: int, stage: int | str, optimizer_bytes_per_param: float = 12,
                           param_bytes: float = 2, grad_bytes: float = 2) -> float:
    """Model-state bytes per device: stage 0 = DDP, 1/2/3 = ZeRO (or an FSDP strategy name).

    Mixed-precision Adam by default (ZeRO's 2 + 2 + K with K = 12); pass param_bytes=4,
    grad_bytes=4, optimizer_bytes_per_param=8 for plain fp32 training.
    """
    _count("n_params", n_params)
    if isinstance(n_devices, bool) or not isinstance(n_devices, int) or n_devices < 1:
        raise ValueError(f"n_devices must be an integer >= 1, got {n_devices!r}.")
    replicated, sharded = _zero_split(stage, param_bytes, grad_bytes, optimizer_bytes_per_param)
    return n_params * (replicated + sharded / n_devices)


def fsdp_memory_per_device(n_params: float, sharding_factor: int, largest_unit_params: float = 0,
                           state_bytes_per_param: float = 16, low_precision_bytes: float = 2,
                           cpu_offload: bool = False) -> dict:
    """Per-GPU model-state bytes of FSDP with sharding factor F (Zhao et al. 2023, §3.2).

    Each GPU keeps 1/F of the full-precision states, ``state_bytes_per_param`` x Psi / F (ZeRO's 16 bytes
    for mixed-precision Adam), plus the one FSDP unit it has gathered to compute with, in low precision:
    ``low_precision_bytes`` x max psi_i. F = 1 is full replication (DDP), F = all GPUs is full sharding
    (ZeRO-3), F = GPUs per node is hybrid sharding (shard within a node, replicate across nodes). With
    ``cpu_offload`` the sharded states live in CPU memory and the GPU holds only the gathered unit.
    """
    _count("n_params", n_params)
    if isinstance(sharding_factor, bool) or not isinstance(sharding_factor, int) or sharding_factor < 1:
        raise ValueError(f"sharding_factor must be an integer >= 1 (1 = replicate, N = shard over N GPUs), got {sharding_factor!r}.")
    sharded = _count("state_bytes_per_param", state_bytes_per_param) * n_params / sharding_factor
    unit = _count("low_precision_bytes", low_precision_bytes) * _count("largest_unit_params", largest_unit_params)
    return {"sharded_states": sharded, "gathered_unit": unit, "gpu": unit + (0 if cpu_offload else sharded),
            "cpu": sharded if cpu_offload else 0.0}


def gpus_needed(n_params: float, stage: int | str, gpu_bytes: float = 80e9, extra_bytes_per_device: float = 0,
                optimizer_bytes_per_param: float = 12, param_bytes: float = 2, grad_bytes: float = 2) -> int | None:
    """Fewest devices whose per-device model states (+ extra, e.g. activations) fit ``gpu_bytes``.

    None when no number of devices is enough: DDP, ZeRO-1 and ZeRO-2 keep a full copy of
    something on every device, so past that floor only model (tensor/pipeline) parallelism helps.
    """
    _count("n_params", n_params)
    budget = _count("gpu_bytes", gpu_bytes, allow_zero=False) - _count("extra_bytes_per_device", extra_bytes_per_device)
    replicated, sharded = _zero_split(stage, param_bytes, grad_bytes, optimizer_bytes_per_param)
    replicated, sharded = replicated * n_params, sharded * n_params
    if replicated + sharded <= budget:
        return 1
    if replicated >= budget:
        return None
    n = max(1, math.ceil(sharded / (budget - replicated)))
    while replicated + sharded / n > budget:  # guard against float rounding
        n += 1
    return n


def deepspeed_zero2_estimate(total_params: float, num_gpus_per_node: int = 1, num_nodes: int = 1,
                             cpu_offload: bool = True, additional_buffer_factor: float = 1.5,
                             legacy: bool = False) -> tuple[int, int]:
    """(cpu_bytes, gpu_bytes) as DeepSpeed's ``estimate_zero2_model_states_mem_needs`` computes them.

    The current code counts 2P + 18P/G on each GPU without offload (2 fp16 grads + 4 fp32 grads
    + 4 fp32 params + 8 Adam). ``legacy=True`` gives the formula before DeepSpeed PR #5099
    (2024), 4P + 16P/G, which the documentation page still prints.
    """
    _count("total_params", total_params)
    G = _count("num_gpus_per_node", num_gpus_per_node, False) * _count("num_nodes", num_nodes, False)
    if cpu_offload:
        gpu = 2 * total_params
        cpu = total_params * max(4 * G, 16) * additional_buffer_factor
    else:
        gpu = 4 * total_params + int(16 * total_params / G) if legacy else 2 * total_params + int(18 * total_params / G)
        cpu = total_params * 4 * num_gpus_per_node * additional_buffer_factor
    return int(cpu), int(gpu)


def deepspeed_zero3_estimate(total_params: float, largest_layer_params: float, num_gpus_per_node: int = 1,
                             num_nodes: int = 1, offload_params: bool = True, offload_optimizer: bool = True,
                             zero_init: bool = True, additional_buffer_factor: float = 1.5) -> tuple[int, int]:
    """(cpu_bytes, gpu_bytes) as DeepSpeed's ``estimate_zero3_model_states_mem_needs`` computes them."""
    P, L = _count("total_params", total_params), _count("largest_layer_params", largest_layer_params)
    g, n = _count("num_gpus_per_node", num_gpus_per_node, False), _count("num_nodes", num_nodes, False)
    if offload_params and not offload_optimizer:
        raise ValueError("DeepSpeed offloads parameters only together with the optimizer; set offload_optimizer=True.")
    G, buf, gpus_factor, largest_layer_memory = g * n, additional_buffer_factor, 1 / n, 4 * L
    if offload_params:
        gpu = largest_layer_memory
        cpu = P * 18 * gpus_factor * buf if zero_init else P * max(4 * g, 18 * gpus_factor) * buf
    elif offload_optimizer:
        gpu = largest_layer_memory + int(2 * P / G)
        cpu = P * 16 * gpus_factor * buf if zero_init else P * max(4 * g, 16 * gpus_factor) * buf
    else:
        gpu = largest_layer_memory + int(18 * P / G)
        cpu = L * 4 * g * buf if zero_init else P * 4 * g * buf
    return int(cpu), int(gpu)
