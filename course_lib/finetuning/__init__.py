"""Parameter-efficient and instruction fine-tuning: LoRA, prompt tuning, and instruction data from DialogSum."""

from .instructions import TEMPLATES, collate, instruction_batches, instruction_examples, tokenize_examples
from .lora import (
    LoRAConfig,
    LoRALinear,
    add_lora,
    count_trainable,
    load_lora,
    lora_parameter_count,
    lora_state_dict,
    merge_lora,
    read_lora,
    save_lora,
    set_lora_enabled,
)
from .soft_prompt import SoftPrompt, source_budget

__all__ = ["LoRAConfig", "LoRALinear", "add_lora", "merge_lora", "set_lora_enabled", "lora_state_dict", "load_lora",
           "save_lora", "read_lora", "count_trainable", "lora_parameter_count", "SoftPrompt", "source_budget",
           "TEMPLATES", "instruction_examples", "tokenize_examples", "collate", "instruction_batches"]
