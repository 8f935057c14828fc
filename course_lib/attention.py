"""Attention, written out: scaled dot-product attention, masks, multi-head attention,
positional encodings (Vaswani et al., 2017, "Attention Is All You Need").

Masks are boolean and share one convention everywhere in the course:
True means "this query may attend to this key". Shapes broadcast against the
scores, (B, n_head, T_q, T_k).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------- masks


def causal_mask(t_q: int, t_k: int | None = None, device=None) -> torch.Tensor:
    """(T_q, T_k) bool: query i may attend to key j when j <= i + (T_k - T_q).

    With a KV cache the T_q new queries sit at the end of the T_k keys, hence the offset.
    """
    t_k = t_q if t_k is None else t_k
    if t_k < t_q:
        raise ValueError(f"causal_mask needs at least as many keys as queries, got T_q={t_q}, T_k={t_k}.")
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) with 1 = real token, 0 = padding  ->  (B, 1, 1, T) bool key mask."""
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be (batch, seq_len) of 0/1, got shape {tuple(attention_mask.shape)}.")
    return attention_mask.bool()[:, None, None, :]


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Logical AND of the masks that are not None (None when all are None)."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    return out


# ----------------------------------------------------------------------------- attention


def scaled_dot_product_attention(q, k, v, mask=None, need_weights=False, dropout_p=0.0):
    """softmax(q k^T / sqrt(d_k)) v, step by step.

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v); mask: bool, broadcastable
    to (..., T_q, T_k), True = may attend. Returns (out (..., T_q, d_v), weights or None).
    A query that may attend to nothing gets zero weights and a zero output (as torch's SDPA).
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"shapes do not fit: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}; "
                         "need q[-1] == k[-1] and k[-2] == v[-2].")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be bool (True = may attend), got {mask.dtype}.")
        # finfo.min rather than -inf: a fully masked row stays finite (no NaN in forward or backward)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask  # zeroes the rows that had nothing to attend to
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v
    return out, (weights if need_weights else None)


class AttentionCache:
    """Keys and values one attention module has already computed (for generation).

    Self-attention appends the new tokens' keys/values at every step; cross-attention
    computes them once from the encoder output and reuses them.
    """

    def __init__(self):
        self.k = None  # (B, n_head, T_past, d_head)
        self.v = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]


class KVCache:
    """One AttentionCache per attention module of a decoder: keys/values of the tokens so far."""

    def __init__(self, n_layer: int, cross_attention: bool = False):
        self.self_attn = [AttentionCache() for _ in range(n_layer)]
        self.cross_attn = [AttentionCache() for _ in range(n_layer)] if cross_attention else [None] * n_layer

    def layer(self, i: int):
        return self.self_attn[i], self.cross_attn[i]

    @property
    def length(self) -> int:
        return len(self.self_attn[0]) if self.self_attn else 0


class MultiHeadAttention(nn.Module):
    """Multi-head attention with nn.Linear projections (weight (out, in), so y = x W^T + b).

    Self-attention when ``context`` is None, cross-attention (queries from x, keys and
    values from ``context``) otherwise. Uses torch's fused SDPA kernel unless the
    attention weights are requested, in which case it computes them explicitly.
    """

    def __init__(self, d_model: int, n_head: int, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        if d_model % n_head != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_head={n_head}.")
        self.d_model, self.n_head, self.d_head = d_model, n_head, d_model // n_head
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout

    def _split_heads(self, x):  # (B, T, d_model) -> (B, n_head, T, d_head)
        B, T, _ = x.shape
        return x.view(B, T, self.n_head, self.d_head).transpose(1, 2)

    def forward(self, x, context=None, mask=None, is_causal=False, cache: AttentionCache | None = None,
                need_weights=False):
        """x: (B, T, d_model) -> (out (B, T, d_model), weights (B, n_head, T, T_k) or None).

        ``is_causal`` adds the causal mask (offset by the cached length); ``mask`` is an
        extra bool mask (e.g. padding) broadcastable to (B, n_head, T, T_k).
        """
        B, T, _ = x.shape
        q = self._split_heads(self.q_proj(x))  # (B, n_head, T, d_head)
        if context is None:  # self-attention: keys/values from x, appended to the cache
            k, v = self._split_heads(self.k_proj(x)), self._split_heads(self.v_proj(x))
            if cache is not None:
                if cache.k is not None:
                    k, v = torch.cat([cache.k, k], dim=2), torch.cat([cache.v, v], dim=2)
                cache.k, cache.v = k, v
        elif cache is not None and cache.k is not None:  # cross-attention, later steps
            k, v = cache.k, cache.v
        else:  # cross-attention: keys/values from the encoder output
            k, v = self._split_heads(self.k_proj(context)), self._split_heads(self.v_proj(context))
            if cache is not None:
                cache.k, cache.v = k, v
        t_k = k.shape[2]
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            causal = causal_mask(T, t_k, device=x.device) if is_causal else None
            y, weights = scaled_dot_product_attention(q, k, v, combine_masks(causal, mask), True, dropout_p)
        else:
            if is_causal and T == t_k and mask is None:
                # the fused kernel builds the causal pattern itself and never materialises (T, T) scores
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
            else:
                # a single new query (T == 1) may see every cached key: no causal mask needed
                causal = causal_mask(T, t_k, device=x.device) if is_causal and T > 1 else None
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=combine_masks(causal, mask), dropout_p=dropout_p)
            weights = None
        y = y.transpose(1, 2).reshape(B, T, self.d_model)  # (B, T, n_head * d_head)
        return self.out_proj(y), weights


# ----------------------------------------------------------------------------- positions


def sinusoidal_positions(max_len: int, d_model: int) -> torch.Tensor:
    """(max_len, d_model): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same)."""
    if d_model % 2 != 0:
        raise ValueError(f"sinusoidal positions need an even d_model, got {d_model}.")
    position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)
    return pe.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed positions (no parameters): looks up rows of ``sinusoidal_positions``."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.register_buffer("pe", sinusoidal_positions(max_len, d_model), persistent=False)

    def forward(self, positions):  # (B, T) long -> (B, T, d_model)
        return self.pe[positions]


class LearnedPositionalEmbedding(nn.Embedding):
    """One learned vector per position (GPT-2, BERT): max_len * d_model parameters."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__(max_len, d_model)


def positional_encoding(kind: str, max_len: int, d_model: int) -> nn.Module:
    """'sinusoidal' or 'learned'."""
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(max_len, d_model)
    if kind == "learned":
        return LearnedPositionalEmbedding(max_len, d_model)
    raise ValueError(f"positional={kind!r}: expected 'sinusoidal' or 'learned'.")


# --- why attention replaced recurrence --------------------------------------------------


def context_cost(kind: str, seq_len: int, d_model: int) -> dict:
    """What one layer pays to read ``seq_len`` tokens: FLOPs, sequential steps, and values kept about the past.

    kind='rnn': h_t = tanh(W x_t + U h_{t-1}), two d x d products per token (4 d^2 FLOPs), one token after
    another; everything read is squeezed into one state of d values. kind='attention': Q, K, V and output
    projections (8 d^2 per token) plus scores and weighted sums (4 T d per token); every position at once;
    keys and values of every past token are kept (2 T d values, the KV cache).
    """
    if kind not in ("rnn", "attention"):
        raise ValueError(f"kind={kind!r}: expected 'rnn' or 'attention'.")
    for name, v in (("seq_len", seq_len), ("d_model", d_model)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r}: must be an integer >= 1.")
    T, d = seq_len, d_model
    if kind == "rnn":
        return {"flops": 4 * d * d * T, "sequential_steps": T, "values_kept": d, "values_per_past_token": d / T}
    return {"flops": 8 * d * d * T + 4 * T * T * d, "sequential_steps": 1, "values_kept": 2 * T * d, "values_per_past_token": 2 * d}

