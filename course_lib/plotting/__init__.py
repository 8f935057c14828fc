"""The figures the labs show. Each function draws on a matplotlib Axes and returns it (grids return the figure).

One module per concept; every name below is importable as ``course_lib.plotting.<name>``:

- ``orientation``: lab 00, the project lifecycle and parameter counts;
- ``tokens``: lab 01, tokenizer fertility, the vocabulary trade-off, word maps and similarities;
- ``attention``: lab 02, attention maps and heads, positional encoding, softmax saturation, masks, context cost;
- ``training``: lab 03 (loss curves also in 02 and 07), losses per step and position, context masks, in-context help;
- ``prompting``: lab 04, ROUGE by strategy, decoding settings, the prompt's token budget;
- ``memory``: lab 05, float bits, memory budgets, quantized values, sharding;
- ``scaling``: lab 06, training compute, Kaplan's laws, Chinchilla's landscape, IsoFLOP curves;
- ``_common``: what they share (a fresh Axes, grouped bars, one mask panel).

A new figure goes in the module of its concept, and its name in the imports and ``__all__`` here.
"""

from .attention import (
    plot_attention_heads,
    plot_attention_map,
    plot_context_cost,
    plot_influence_by_distance,
    plot_masks,
    plot_positional_encoding,
    plot_softmax_saturation,
)
from .memory import plot_float_bits, plot_grouped_bars, plot_quantized_values, plot_sharding_memory, plot_stacked_memory
from .orientation import LIFECYCLE_STAGES, plot_lifecycle, plot_param_counts
from .prompting import plot_next_token_panels, plot_prompt_budget, plot_rouge_by_strategy
from .scaling import plot_chinchilla_landscape, plot_compute_bars, plot_isoflop_curves, plot_kaplan_laws
from .tokens import plot_fertility_by_domain, plot_similarity_matrix, plot_vocab_tradeoff, plot_word_map
from .training import plot_context_masks, plot_in_context_help, plot_loss_curves, plot_position_loss

__all__ = [
    "LIFECYCLE_STAGES", "plot_lifecycle", "plot_param_counts",
    "plot_fertility_by_domain", "plot_vocab_tradeoff", "plot_word_map", "plot_similarity_matrix",
    "plot_attention_map", "plot_attention_heads", "plot_positional_encoding", "plot_softmax_saturation", "plot_masks",
    "plot_context_cost", "plot_influence_by_distance",
    "plot_loss_curves", "plot_position_loss", "plot_context_masks", "plot_in_context_help",
    "plot_rouge_by_strategy", "plot_next_token_panels", "plot_prompt_budget",
    "plot_float_bits", "plot_stacked_memory", "plot_grouped_bars", "plot_quantized_values", "plot_sharding_memory",
    "plot_compute_bars", "plot_kaplan_laws", "plot_chinchilla_landscape", "plot_isoflop_curves",
]
