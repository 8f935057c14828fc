"""course_lib.attention against torch's own attention (F.scaled_dot_product_attention, nn.MultiheadAttention)."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import attention as A
from course_lib.attention import (
    AttentionCache,
    MultiHeadAttention,
    causal_mask,
    combine_masks,
    padding_mask,
    scaled_dot_product_attention,
    sinusoidal_positions,
)


def _qkv(B=2, H=3, Tq=5, Tk=5, d=8, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, H, t, d, generator=g, dtype=dtype) for t in (Tq, Tk, Tk))


def _masks(B=2, H=3, Tq=5, Tk=5):
    g = torch.Generator().manual_seed(1)
    am = torch.ones(B, Tk, dtype=torch.long)
    am[0, -2:] = 0  # two padding tokens in the first sequence
    random = torch.rand(B, H, Tq, Tk, generator=g) > 0.4
    random[0, 0, 1] = False  # one query that may attend to nothing
    return {
        "none": None,
        "causal": causal_mask(Tq, Tk),
        "padding": padding_mask(am),
        "causal+padding": combine_masks(causal_mask(Tq, Tk), padding_mask(am)),
        "random": random,
    }


@pytest.mark.parametrize("name", ["none", "causal", "padding", "causal+padding", "random"])
def test_sdpa_matches_torch_float64(name):
    q, k, v = _qkv()
    mask = _masks()[name]
    ours, _ = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0), (ours - ref).abs().max()


def test_sdpa_matches_torch_float32_and_cross_lengths():
    q, k, v = _qkv(Tq=3, Tk=7, dtype=torch.float32)
    mask = _masks(Tq=3, Tk=7)["random"]
    ours, _ = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_weights_equal_torch_attention_applied_to_identity_values():
    # attention of the identity matrix returns the weights themselves: an independent route to them
    q, k, _ = _qkv(Tq=4, Tk=6)
    mask = _masks(Tq=4, Tk=6)["causal+padding"]
    _, w = scaled_dot_product_attention(q, k, k, mask, need_weights=True)
    eye = torch.eye(6, dtype=torch.float64).expand(2, 3, 6, 6)
    torch.testing.assert_close(w, F.scaled_dot_product_attention(q, k, eye, attn_mask=mask))
    live = mask.expand_as(w).any(-1)
    torch.testing.assert_close(w.sum(-1)[live], torch.ones_like(w.sum(-1)[live]))


def test_scaling_by_sqrt_dk():
    q, k, v = _qkv(d=16)
    _, w = scaled_dot_product_attention(q, k, v, need_weights=True)
    manual = torch.softmax(torch.einsum("bhqd,bhkd->bhqk", q, k) / 4.0, dim=-1)
    torch.testing.assert_close(w, manual)


def test_causal_mask_matches_torch_and_offsets_for_cache():
    ref = nn.Transformer.generate_square_subsequent_mask(6) == 0  # torch: 0 = allowed, -inf = blocked
    assert torch.equal(causal_mask(6), ref)
    assert torch.equal(causal_mask(2, 6), ref[4:])  # the last 2 queries of a 6-token sequence
    with pytest.raises(ValueError, match="at least as many keys"):
        causal_mask(5, 3)


def test_bad_inputs_raise_clear_errors():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="bool"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 5))
    with pytest.raises(ValueError, match="shapes"):
        scaled_dot_product_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="batch, seq_len"):
        padding_mask(torch.ones(5))


def test_gradcheck_sdpa_and_mha():
    q, k, v = (t.requires_grad_() for t in _qkv(B=1, H=2, Tq=3, Tk=4, d=3))
    mask = _masks(B=1, H=2, Tq=3, Tk=4)["random"]
    assert torch.autograd.gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c, mask)[0], (q, k, v))
    torch.manual_seed(0)
    mha = MultiHeadAttention(4, 2).double()
    x = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: mha(t, is_causal=True)[0], (x,))
    assert torch.autograd.gradcheck(lambda t: mha(t, is_causal=True, need_weights=True)[0], (x,))


def _torch_mha_with_our_weights(ours: MultiHeadAttention, bias: bool):
    ref = nn.MultiheadAttention(ours.d_model, ours.n_head, bias=bias, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        if bias:
            ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
            ref.out_proj.bias.copy_(ours.out_proj.bias)
    return ref.eval()


@pytest.mark.parametrize("bias", [True, False])
def test_mha_self_attention_matches_nn_multiheadattention(bias):
    torch.manual_seed(0)
    ours = MultiHeadAttention(16, 4, bias=bias).double().eval()
    ref = _torch_mha_with_our_weights(ours, bias)
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    am = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    # torch's masks say where NOT to attend: invert ours
    ref_out, ref_w = ref(x, x, x, key_padding_mask=~am.bool(), attn_mask=~causal_mask(6), average_attn_weights=False)
    for need_weights in (True, False):  # explicit path and fused-kernel path
        out, w = ours(x, mask=padding_mask(am), is_causal=True, need_weights=need_weights)
        torch.testing.assert_close(out, ref_out)
        if need_weights:
            torch.testing.assert_close(w, ref_w)


def test_mha_cross_attention_matches_nn_multiheadattention():
    torch.manual_seed(1)
    ours = MultiHeadAttention(12, 3).double().eval()
    ref = _torch_mha_with_our_weights(ours, True)
    x, memory = torch.randn(2, 4, 12, dtype=torch.float64), torch.randn(2, 7, 12, dtype=torch.float64)
    am = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    ref_out, ref_w = ref(x, memory, memory, key_padding_mask=~am.bool(), average_attn_weights=False)
    out, w = ours(x, context=memory, mask=padding_mask(am), need_weights=True)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(w, ref_w)
    torch.testing.assert_close(ours(x, context=memory, mask=padding_mask(am))[0], ref_out)


def test_mha_kv_cache_one_token_at_a_time_equals_full_causal_pass():
    torch.manual_seed(2)
    mha = MultiHeadAttention(8, 2).double().eval()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    full, _ = mha(x, is_causal=True)
    cache = AttentionCache()
    prefix, _ = mha(x[:, :2], is_causal=True, cache=cache)  # prompt of 2 tokens, then one at a time
    steps = [prefix] + [mha(x[:, t:t + 1], is_causal=True, cache=cache)[0] for t in range(2, 6)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full)
    assert len(cache) == 6


def test_without_positions_attention_is_permutation_equivariant():
    torch.manual_seed(3)
    mha = MultiHeadAttention(8, 2).double().eval()
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(mha(x[:, perm])[0], mha(x)[0][:, perm])


def test_sinusoidal_positions_follow_the_paper_formula():
    pe = sinusoidal_positions(20, 6)
    for pos in (0, 1, 7, 19):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert math.isclose(pe[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
            assert math.isclose(pe[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 5)


def test_context_cost_counts_match_the_layers_they_describe():
    from torch.utils.flop_counter import FlopCounterMode

    T, d = 32, 16
    rnn = A.context_cost("rnn", T, d)
    # an RNN cell: two (1, d) x (d, d) products per token, counted by torch
    W, U, x, h = (torch.randn(d, d), torch.randn(d, d), torch.randn(T, d), torch.zeros(d))
    with FlopCounterMode(display=False) as counter:
        for t in range(T):
            h = torch.tanh(x[t : t + 1] @ W + h @ U)
    assert counter.get_total_flops() == rnn["flops"] and rnn["sequential_steps"] == T and rnn["values_kept"] == d
    att = A.context_cost("attention", T, d)
    Wq, Wk, Wv, Wo = (torch.randn(d, d) for _ in range(4))
    with FlopCounterMode(display=False) as counter:
        q, k, v = x @ Wq, x @ Wk, x @ Wv
        _ = ((q @ k.T) / d**0.5).softmax(-1) @ v @ Wo
    assert counter.get_total_flops() == att["flops"] and att["values_kept"] == 2 * T * d
    with pytest.raises(ValueError, match="kind"):
        A.context_cost("lstm", T, d)
