"""Prompt tuning (Lester et al., 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning").

The model stays frozen; what trains is ``k`` "virtual tokens": vectors in the model's input-embedding
space put in front of every input. They are not words of the vocabulary (they can sit anywhere in the
space), and they are all that is stored per task: ``k * d_model`` numbers.

The virtual tokens take room in the context window. FLAN-T5 was trained on inputs of at most
``prompting.DEFAULT_CONTEXT`` = 512 tokens, so callers reserve ``k`` of them: truncate the real input
to ``source_budget(k)`` = 512 - k tokens (``tokenize_examples(..., max_source_tokens=source_budget(k))``).

peft's ``PromptTuningConfig(task_type="SEQ_2_SEQ_LM")`` allocates ``2 * k`` vectors by default (one set for
the encoder, one for the decoder) but reads only the encoder's ``k``; with ``num_transformer_submodules=1``
it holds exactly what ``SoftPrompt`` holds.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from ..checks import check_int
from ..prompting import DEFAULT_CONTEXT, ContextWindowWarning

RANDOM_INIT_RANGE = 0.5  # init_from_vocab=False: uniform in [-0.5, 0.5], Lester et al.'s random initialization


def source_budget(n_virtual_tokens: int, context: int = DEFAULT_CONTEXT) -> int:
    """Real input tokens left in a ``context``-token window once ``n_virtual_tokens`` are reserved."""
    check_int("source_budget", "n_virtual_tokens", n_virtual_tokens, 0)
    check_int("source_budget", "context", context, 1)
    if n_virtual_tokens >= context:
        raise ValueError(f"source_budget: {n_virtual_tokens} virtual tokens leave no room in a {context}-token window.")
    return context - n_virtual_tokens


class SoftPrompt(nn.Module):
    """A frozen Hugging Face encoder-decoder (T5) with ``n_virtual_tokens`` trainable vectors before its input.

    init_from_vocab: start from the embeddings of ``k`` distinct vocabulary entries drawn at random (what
    Lester et al. and peft's ``SAMPLE_VOCAB`` do; it starts the prompt where the encoder expects inputs);
    otherwise uniform in [-0.5, 0.5] (Lester et al.'s random start). ``seed`` fixes the draw.
    """

    def __init__(self, model, n_virtual_tokens: int, init_from_vocab: bool = True, seed: int = 0,
                 context: int = DEFAULT_CONTEXT):
        super().__init__()
        check_int("SoftPrompt", "n_virtual_tokens", n_virtual_tokens, 1)
        check_int("SoftPrompt", "seed", seed, 0)
        if not getattr(model.config, "is_encoder_decoder", False):
            raise ValueError("SoftPrompt expects an encoder-decoder model (T5 / FLAN-T5).")
        self.model = model
        self.model.requires_grad_(False)
        self.n_virtual_tokens = n_virtual_tokens
        source_budget(n_virtual_tokens, context)  # the virtual tokens must leave room for an input
        self.context = context
        table = model.get_input_embeddings().weight  # (V, d_model)
        gen = torch.Generator().manual_seed(seed)
        if init_from_vocab:
            if n_virtual_tokens > table.shape[0]:
                raise ValueError(f"SoftPrompt: {n_virtual_tokens} virtual tokens but only {table.shape[0]} vocabulary rows.")
            rows = torch.randperm(table.shape[0], generator=gen)[:n_virtual_tokens]
            init = table.detach()[rows.to(table.device)].float().clone()  # (k, d_model)
        else:
            init = (torch.rand(n_virtual_tokens, table.shape[1], generator=gen) * 2 - 1) * RANDOM_INIT_RANGE
        self.prompt = nn.Parameter(init.to(table.device))  # (k, d_model), kept in fp32 like peft

    def embed(self, input_ids, attention_mask=None):
        """(inputs_embeds (B, k+T, d_model), attention_mask (B, k+T)): the virtual tokens, then the input."""
        B, T = input_ids.shape
        if self.n_virtual_tokens + T > self.context:
            warnings.warn(f"{self.n_virtual_tokens} virtual tokens + {T} input tokens exceed the {self.context}-token "
                          f"window; truncate inputs to source_budget({self.n_virtual_tokens}) = "
                          f"{self.context - self.n_virtual_tokens} tokens.", ContextWindowWarning, stacklevel=2)
        tokens = self.model.get_input_embeddings()(input_ids)  # (B, T, d_model)
        prompt = self.prompt.to(tokens.dtype)[None].expand(B, -1, -1)  # (B, k, d_model)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        ones = torch.ones(B, self.n_virtual_tokens, dtype=attention_mask.dtype, device=attention_mask.device)
        return torch.cat([prompt, tokens], dim=1), torch.cat([ones, attention_mask], dim=1)

    def forward(self, input_ids, attention_mask=None, labels=None, **kw):
        """The model's output (``.loss`` when ``labels`` are given) with the virtual tokens in front of the input."""
        inputs_embeds, mask = self.embed(input_ids, attention_mask)
        return self.model(inputs_embeds=inputs_embeds, attention_mask=mask, labels=labels, **kw)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, **kw):
        """``model.generate`` on the prompted input; returns the decoder's token ids as the model's generate does."""
        inputs_embeds, mask = self.embed(input_ids, attention_mask)
        return self.model.generate(inputs_embeds=inputs_embeds, attention_mask=mask, **kw)

    @property
    def config(self):
        """The wrapped model's config, so that code written for HF models (``generation.summarize``) takes a SoftPrompt."""
        return self.model.config

    def trainable_parameters(self) -> int:
        """Numbers that train: k * d_model (the model itself is frozen)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def extra_repr(self) -> str:
        return f"n_virtual_tokens={self.n_virtual_tokens}, d_model={self.prompt.shape[1]}"
