"""Memory to store, run and train a Transformer, predicted and measured (lab 05).

- ``estimate``: bytes per parameter and dtype, the KV cache, activations, training states under each
  convention, and how DDP, ZeRO stages and FSDP split them across devices (DeepSpeed's estimators too);
- ``measure``: the bytes a live model really holds (parameters, gradients, AdamW's states, saved
  activations) and torch's ZeroRedundancyOptimizer run in 2 processes.

The names of ``estimate`` are available here directly (``course_lib.memory.zero_memory_per_device``).
"""

from . import estimate, measure
from .estimate import (
    BYTES_PER_DTYPE,
    FSDP_TO_ZERO_STAGE,
    TRAINING_CONVENTIONS,
    TransformerShape,
    activation_bytes,
    bytes_per_param,
    deepspeed_zero2_estimate,
    deepspeed_zero3_estimate,
    fsdp_memory_per_device,
    gpus_needed,
    inference_memory,
    kv_cache_bytes,
    logits_bytes,
    model_state_bytes,
    param_count,
    training_bytes_per_param,
    training_memory,
    weights_bytes,
    zero_memory_per_device,
)

__all__ = [
    "BYTES_PER_DTYPE", "FSDP_TO_ZERO_STAGE", "TRAINING_CONVENTIONS", "TransformerShape", "activation_bytes",
    "bytes_per_param", "deepspeed_zero2_estimate", "deepspeed_zero3_estimate", "fsdp_memory_per_device", "gpus_needed",
    "inference_memory", "kv_cache_bytes", "logits_bytes", "model_state_bytes", "param_count",
    "training_bytes_per_param", "training_memory", "weights_bytes", "zero_memory_per_device",
    "estimate", "measure",
]
