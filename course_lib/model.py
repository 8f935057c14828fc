"""The Transformer (Vaswani et al., 2017) as readable modules, in three families:

- EncoderOnlyMLM   bidirectional encoder + masked-LM head          (BERT, RoBERTa)
- DecoderOnlyLM    causal decoder + next-token head                (GPT, BLOOM, LLaMA)
- EncoderDecoder   encoder + decoder with cross-attention          (the 2017 paper, T5, BART)

Every model: ``forward(..., labels=None) -> (logits, loss)`` (loss ignores label -100),
``num_parameters()`` (equal to ``count_parameters(config, family)``), and for the two
generative families ``generate()`` with a KV cache. Read top to bottom: components,
then the config, then the models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import KVCache, MultiHeadAttention, padding_mask, positional_encoding
from .checks import check_int, check_number
from .generation import GenerationSettings, decode

# ----------------------------------------------------------------------------- components

ACTIVATIONS = {
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),  # GPT-2's "gelu_new"
    "relu": nn.ReLU,  # the 2017 paper
}


class FeedForward(nn.Module):
    """Position-wise MLP: d_model -> d_ff -> d_model, applied to every token on its own."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.fc_in = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.act = ACTIVATIONS[config.activation]()
        self.fc_out = nn.Linear(config.d_ff, config.d_model, bias=config.bias)

    def forward(self, x):  # (B, T, d_model) -> (B, T, d_model)
        return self.fc_out(self.act(self.fc_in(x)))


class _Sublayers(nn.Module):
    """Residual wiring shared by both layer types: pre-LN  x + f(LN(x))  or post-LN  LN(x + f(x))."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.norm_first = config.norm_first
        self.drop = nn.Dropout(config.dropout)

    def residual(self, x, norm, sublayer):
        if self.norm_first:
            y, w = sublayer(norm(x))
            return x + self.drop(y), w
        y, w = sublayer(x)
        return norm(x + self.drop(y)), w


class EncoderLayer(_Sublayers):
    """Self-attention in which every token sees every (non-padding) token, then the MLP."""

    def __init__(self, config: TransformerConfig):
        super().__init__(config)
        self.self_attn = MultiHeadAttention(config.d_model, config.n_head, config.bias, config.dropout)
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
        self.ffn = FeedForward(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)

    def forward(self, x, mask=None, need_weights=False):
        x, weights = self.residual(x, self.norm1, lambda h: self.self_attn(h, mask=mask, need_weights=need_weights))
        x, _ = self.residual(x, self.norm2, lambda h: (self.ffn(h), None))
        return x, weights


class DecoderLayer(_Sublayers):
    """Causal self-attention, then (encoder-decoder only) cross-attention to the encoder, then the MLP."""

    def __init__(self, config: TransformerConfig, cross_attention: bool):
        super().__init__(config)
        self.self_attn = MultiHeadAttention(config.d_model, config.n_head, config.bias, config.dropout)
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
        self.cross_attn = None
        if cross_attention:
            self.cross_attn = MultiHeadAttention(config.d_model, config.n_head, config.bias, config.dropout)
            self.norm_cross = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
        self.ffn = FeedForward(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)

    def forward(self, x, mask=None, memory=None, memory_mask=None, cache=None, need_weights=False):
        """-> (x, (self-attention weights, cross-attention weights)); weights are None unless asked for."""
        self_cache, cross_cache = cache if cache is not None else (None, None)
        x, self_w = self.residual(x, self.norm1, lambda h: self.self_attn(
            h, mask=mask, is_causal=True, cache=self_cache, need_weights=need_weights))
        cross_w = None
        if self.cross_attn is not None:
            x, cross_w = self.residual(x, self.norm_cross, lambda h: self.cross_attn(
                h, context=memory, mask=memory_mask, cache=cross_cache, need_weights=need_weights))
        x, _ = self.residual(x, self.norm2, lambda h: (self.ffn(h), None))
        return x, (self_w, cross_w)


class Embeddings(nn.Module):
    """Token vectors (optionally scaled by sqrt(d_model), as the 2017 paper does) plus positions."""

    def __init__(self, config: TransformerConfig, token_embedding: nn.Embedding):
        super().__init__()
        self.tok = token_embedding  # shared between encoder, decoder and LM head where tied
        self.pos = positional_encoding(config.positional, config.max_seq_len, config.d_model)
        self.scale = math.sqrt(config.d_model) if config.embed_scale else 1.0
        self.max_seq_len = config.max_seq_len
        self.drop = nn.Dropout(config.dropout)

    def forward(self, input_ids, positions=None, past_length=0):  # (B, T) -> (B, T, d_model)
        T = input_ids.shape[1]
        if positions is None:
            if past_length + T > self.max_seq_len:
                raise ValueError(f"sequence of {past_length + T} tokens exceeds max_seq_len={self.max_seq_len}; "
                                 "truncate the input or build the model with a larger max_seq_len.")
            positions = torch.arange(past_length, past_length + T, device=input_ids.device)[None, :]
        return self.drop(self.tok(input_ids) * self.scale + self.pos(positions))


class Encoder(nn.Module):
    """Embeddings + a stack of EncoderLayers (+ a final LayerNorm in pre-LN models)."""

    def __init__(self, config: TransformerConfig, n_layer: int, token_embedding: nn.Embedding):
        super().__init__()
        self.embed = Embeddings(config, token_embedding)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(n_layer))
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias) if config.norm_first else None

    def forward(self, input_ids, attention_mask=None, need_weights=False):
        """-> (hidden (B, T, d_model), per-layer weights (B, n_head, T, T) if asked)."""
        mask = padding_mask(attention_mask) if attention_mask is not None else None  # (B, 1, 1, T)
        x, maps = self.embed(input_ids), []
        for layer in self.layers:
            x, w = layer(x, mask=mask, need_weights=need_weights)
            maps.append(w)
        return (self.norm(x) if self.norm is not None else x), maps


class Decoder(nn.Module):
    """Embeddings + a stack of DecoderLayers (+ a final LayerNorm in pre-LN models)."""

    def __init__(self, config: TransformerConfig, n_layer: int, token_embedding: nn.Embedding, cross_attention: bool):
        super().__init__()
        self.embed = Embeddings(config, token_embedding)
        self.layers = nn.ModuleList(DecoderLayer(config, cross_attention) for _ in range(n_layer))
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias) if config.norm_first else None

    def forward(self, input_ids, attention_mask=None, memory=None, memory_mask=None, cache=None, positions=None):
        """attention_mask covers past + new tokens (B, T_past + T); memory_mask (B, T_src)."""
        past = cache.length if cache is not None else 0
        mask = padding_mask(attention_mask) if attention_mask is not None else None
        mem_mask = padding_mask(memory_mask) if memory_mask is not None else None
        x = self.embed(input_ids, positions=positions, past_length=past)
        for i, layer in enumerate(self.layers):
            x, _ = layer(x, mask=mask, memory=memory, memory_mask=mem_mask, cache=cache.layer(i) if cache is not None else None)
        return self.norm(x) if self.norm is not None else x


# ----------------------------------------------------------------------------- config


@dataclass
class TransformerConfig:
    vocab_size: int = 1000  # token ids the embedding table and the output head cover
    d_model: int = 128  # width of every token vector (512 in the 2017 paper, 768 in GPT-2 small)
    n_head: int = 4  # attention heads per layer; each head works in d_model / n_head dimensions
    n_layer: int = 2  # layers of an encoder-only or decoder-only model
    n_encoder_layer: int | None = None  # encoder layers of an EncoderDecoder (None: n_layer)
    n_decoder_layer: int | None = None  # decoder layers of an EncoderDecoder (None: n_layer)
    d_ff: int | None = None  # hidden width of the feed-forward MLP (None: 4 * d_model)
    max_seq_len: int = 256  # longest sequence the positions cover
    dropout: float = 0.0  # on embeddings, attention weights and sublayer outputs (training only)
    bias: bool = True  # biases in Linear and LayerNorm layers (GPT-2: True; many newer models: False)
    activation: str = "gelu"  # MLP non-linearity: "gelu", "gelu_tanh" (GPT-2) or "relu" (2017 paper)
    norm_first: bool = True  # pre-LN x + f(LN(x)) (GPT-2, trains stably) or post-LN LN(x + f(x)) (2017 paper)
    layer_norm_eps: float = 1e-5  # added to the variance inside LayerNorm
    positional: str = "learned"  # "learned" (GPT-2, BERT) or "sinusoidal" (2017 paper, no parameters)
    embed_scale: bool = False  # multiply token vectors by sqrt(d_model), as the 2017 paper does
    tie_embeddings: bool = True  # output head reuses the token embedding matrix (saves vocab_size * d_model)
    pad_token_id: int = 0  # padding id; generate() fills finished sequences with it
    bos_token_id: int = 1  # start token the EncoderDecoder's decoder begins from
    eos_token_id: int | None = 2  # end token: generation stops once every sequence has emitted it
    init_std: float = 0.02  # std of the normal initialisation of weights (GPT-2's value)

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "n_head", "n_layer", "max_seq_len"):
            check_int("TransformerConfig", name, getattr(self, name), 1)
        for name in ("n_encoder_layer", "n_decoder_layer", "d_ff"):
            if getattr(self, name) is not None:
                check_int("TransformerConfig", name, getattr(self, name), 1)
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.vocab_size):
                raise ValueError(f"TransformerConfig.{name}={value!r}: must be a token id in [0, vocab_size={self.vocab_size}).")
        for name in ("layer_norm_eps", "init_std"):
            check_number("TransformerConfig", name, getattr(self, name), 0.0, low_open=True)
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        if self.n_encoder_layer is None:
            self.n_encoder_layer = self.n_layer
        if self.n_decoder_layer is None:
            self.n_decoder_layer = self.n_layer
        if self.d_model % self.n_head != 0:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}: expected one of {sorted(ACTIVATIONS)}.")
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"positional={self.positional!r}: expected 'learned' or 'sinusoidal'.")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TransformerConfig.dropout={self.dropout!r}: must be in [0, 1).")


FAMILIES = ("encoder-only", "decoder-only", "encoder-decoder")


def count_parameters(config: TransformerConfig, family: str) -> int:
    """Parameters of a family's model, from the formula (no model is built)."""
    d, V, f, b = config.d_model, config.vocab_size, config.d_ff, int(config.bias)
    norm = (2 if b else 1) * d  # LayerNorm gain (+ shift)
    attention = 4 * d * d + b * 4 * d  # W_q, W_k, W_v, W_o
    mlp = 2 * d * f + b * (f + d)
    encoder_layer = attention + mlp + 2 * norm
    decoder_layer_cross = 2 * attention + mlp + 3 * norm  # + cross-attention and its norm
    positions = config.max_seq_len * d if config.positional == "learned" else 0
    final_norm = norm if config.norm_first else 0
    untied_head = 0 if config.tie_embeddings else V * d
    tokens = V * d
    if family == "decoder-only":  # a decoder layer without cross-attention has the encoder layer's shape
        return tokens + positions + config.n_layer * encoder_layer + final_norm + untied_head
    if family == "encoder-only":
        mlm_head = d * d + b * d + norm + V + untied_head  # transform, LayerNorm, vocabulary bias
        return tokens + positions + config.n_layer * encoder_layer + final_norm + mlm_head
    if family == "encoder-decoder":
        return (tokens + 2 * positions + config.n_encoder_layer * encoder_layer + config.n_decoder_layer * decoder_layer_cross
                + 2 * final_norm + untied_head)
    raise ValueError(f"family={family!r}: expected one of {FAMILIES}.")


# ----------------------------------------------------------------------------- models


class _Model(nn.Module):
    family = ""

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Distinct trainable tensors' elements (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())

    @staticmethod
    def _loss(logits, labels):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


class EncoderOnlyMLM(_Model):
    """Bidirectional encoder with a masked-language-model head (predicts the tokens at masked positions)."""

    family = "encoder-only"

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = Encoder(config, config.n_layer, self.tok_emb)
        self.head_transform = nn.Linear(config.d_model, config.d_model, bias=config.bias)  # BERT's MLM head
        self.head_act = ACTIVATIONS[config.activation]()
        self.head_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.apply(self._init_weights)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def forward(self, input_ids, attention_mask=None, labels=None):
        """labels (B, T): the original token at masked positions, -100 elsewhere."""
        h, _ = self.encoder(input_ids, attention_mask)
        logits = self.lm_head(self.head_norm(self.head_act(self.head_transform(h)))) + self.lm_bias  # (B, T, V)
        return logits, (self._loss(logits, labels) if labels is not None else None)

    @torch.no_grad()
    def attention_maps(self, input_ids, attention_mask=None) -> list[torch.Tensor]:
        """Per layer, the attention weights (B, n_head, T, T)."""
        return self.encoder(input_ids, attention_mask, need_weights=True)[1]


class DecoderOnlyLM(_Model):
    """Causal decoder: each token sees only the tokens before it; predicts the next token."""

    family = "decoder-only"

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.decoder = Decoder(config, config.n_layer, self.tok_emb, cross_attention=False)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def forward(self, input_ids, attention_mask=None, labels=None, cache: KVCache | None = None, position_ids=None):
        """labels are aligned with input_ids (usually a copy, pads set to -100); the shift happens here."""
        h = self.decoder(input_ids, attention_mask=attention_mask, cache=cache, positions=position_ids)
        logits = self.lm_head(h)  # (B, T, V)
        loss = None
        if labels is not None:  # position t predicts token t + 1
            loss = self._loss(logits[:, :-1], labels[:, 1:])
        return logits, loss

    @torch.no_grad()
    def generate(self, input_ids, max_new_tokens: int, attention_mask=None, use_cache: bool = True, **sampling):
        """Prompt (B, T) -> prompt + up to max_new_tokens new ids. Left-pad batched prompts.

        sampling: do_sample, temperature, top_k, top_p (``course_lib.generation``), eos_token_id, generator.
        """
        _check_generate_args(input_ids, max_new_tokens, self.config)
        if input_ids.shape[1] + max_new_tokens > self.config.max_seq_len:
            raise ValueError(f"prompt ({input_ids.shape[1]}) + max_new_tokens ({max_new_tokens}) exceeds "
                             f"max_seq_len={self.config.max_seq_len}.")
        return torch.cat([input_ids, _decode(self, input_ids, max_new_tokens, attention_mask, use_cache, sampling)], dim=1)

    def new_cache(self) -> KVCache:
        """An empty key/value cache for ``course_lib.generation.decode``."""
        return KVCache(self.config.n_layer)


class EncoderDecoder(_Model):
    """Encoder reads the source; decoder writes the target one token at a time, attending to the encoder."""

    family = "encoder-decoder"

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)  # shared source/target vocabulary
        self.encoder = Encoder(config, config.n_encoder_layer, self.tok_emb)
        self.decoder = Decoder(config, config.n_decoder_layer, self.tok_emb, cross_attention=True)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def shift_right(self, labels):
        """Decoder input = [bos] + labels[:-1], with -100 replaced by padding (teacher forcing)."""
        start = torch.full_like(labels[:, :1], self.config.bos_token_id)
        shifted = torch.cat([start, labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def forward(self, input_ids, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                labels=None, encoder_output=None, cache: KVCache | None = None):
        """labels (B, T_tgt) are the target tokens (-100 = ignore); decoder_input_ids default to them shifted right."""
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("EncoderDecoder.forward needs decoder_input_ids or labels (to shift right).")
            decoder_input_ids = self.shift_right(labels)
        if encoder_output is None:
            encoder_output, _ = self.encoder(input_ids, attention_mask)  # (B, T_src, d_model)
        h = self.decoder(decoder_input_ids, attention_mask=decoder_attention_mask, memory=encoder_output,
                         memory_mask=attention_mask, cache=cache)
        logits = self.lm_head(h)  # (B, T_tgt, V)
        return logits, (self._loss(logits, labels) if labels is not None else None)

    @torch.no_grad()
    def generate(self, input_ids, max_new_tokens: int, attention_mask=None, use_cache: bool = True, **sampling):
        """Source (B, T_src) -> decoder ids (B, <= 1 + max_new_tokens), starting with bos_token_id."""
        _check_generate_args(input_ids, max_new_tokens, self.config)
        if 1 + max_new_tokens > self.config.max_seq_len:
            raise ValueError(f"max_new_tokens={max_new_tokens} exceeds the decoder's max_seq_len={self.config.max_seq_len} - 1.")
        start = torch.full((input_ids.shape[0], 1), self.config.bos_token_id, device=input_ids.device)
        return torch.cat([start, _decode(self, input_ids, max_new_tokens, attention_mask, use_cache, sampling)], dim=1)

    def new_cache(self) -> KVCache:
        """An empty key/value cache (self- and cross-attention) for ``course_lib.generation.decode``."""
        return KVCache(self.config.n_decoder_layer, cross_attention=True)

    @torch.no_grad()
    def cross_attention_maps(self, input_ids, decoder_input_ids, attention_mask=None) -> list[torch.Tensor]:
        """Per decoder layer, how each target position attends over the source: (B, n_head, T_tgt, T_src)."""
        memory, _ = self.encoder(input_ids, attention_mask)
        mem_mask = padding_mask(attention_mask) if attention_mask is not None else None
        x, maps = self.decoder.embed(decoder_input_ids), []
        for layer in self.decoder.layers:
            x, (_, cross) = layer(x, memory=memory, memory_mask=mem_mask, need_weights=True)
            maps.append(cross)
        return maps


# ----------------------------------------------------------------------------- decoding


def _decode(model, input_ids, max_new_tokens: int, attention_mask, use_cache: bool, sampling: dict) -> torch.Tensor:
    """``generate``'s keyword arguments -> ``course_lib.generation.decode`` (the one decoding loop): new ids (B, N)."""
    allowed = {"do_sample", "temperature", "top_k", "top_p", "generator", "eos_token_id"}
    unknown = set(sampling) - allowed
    if unknown:
        raise TypeError(f"generate() got unknown arguments {sorted(unknown)}; allowed: {sorted(allowed)}.")
    eos = sampling.pop("eos_token_id", model.config.eos_token_id)
    generator = sampling.pop("generator", None)
    settings = GenerationSettings(max_new_tokens=max_new_tokens, stop_at_eos=eos is not None, **sampling)
    was_training = model.training
    model.eval()
    try:
        return decode(model, input_ids, attention_mask, settings, generator, eos_token_id=eos,
                      pad_token_id=model.config.pad_token_id, use_cache=use_cache)
    finally:
        model.train(was_training)


def _check_generate_args(input_ids, max_new_tokens, config):
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, seq_len), got shape {tuple(input_ids.shape)}.")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
