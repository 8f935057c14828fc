"""course_lib.model against torch's nn.Transformer and Hugging Face GPT-2 with the same weights."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib.model import (
    DecoderOnlyLM,
    EncoderDecoder,
    EncoderOnlyMLM,
    TransformerConfig,
    count_parameters,
)

MODELS = {"encoder-only": EncoderOnlyMLM, "decoder-only": DecoderOnlyLM, "encoder-decoder": EncoderDecoder}
VARIANTS = [
    {},
    {"bias": False, "tie_embeddings": False},
    {"positional": "sinusoidal", "norm_first": False, "activation": "relu", "embed_scale": True},
]


def tiny(**kw):
    base = dict(vocab_size=37, d_model=16, n_head=4, n_layer=2, n_decoder_layer=3, max_seq_len=32)
    return TransformerConfig(**{**base, **kw})


@pytest.mark.parametrize("family", list(MODELS))
@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_num_parameters_equals_formula(family, variant):
    config = tiny(**VARIANTS[variant])
    assert MODELS[family](config).num_parameters() == count_parameters(config, family)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_formula_matches_torch_nn_transformer():
    # nn.Transformer is a pre-LN-sized encoder-decoder (final norms included) without embeddings
    config = TransformerConfig(vocab_size=100, d_model=32, n_head=4, n_encoder_layer=2, n_decoder_layer=3, d_ff=48,
                               positional="sinusoidal", norm_first=True)
    ref = nn.Transformer(32, 4, 2, 3, 48)
    assert count_parameters(config, "encoder-decoder") == 100 * 32 + sum(p.numel() for p in ref.parameters())


def test_formula_matches_published_gpt2_sizes():
    from transformers import GPT2Config, GPT2LMHeadModel

    small = TransformerConfig(vocab_size=50257, d_model=768, n_head=12, n_layer=12, max_seq_len=1024)
    assert count_parameters(small, "decoder-only") == 124_439_808  # GPT-2 small as Hugging Face counts it
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=97, n_embd=24, n_head=3, n_layer=3, n_positions=40))
    cfg = TransformerConfig(vocab_size=97, d_model=24, n_head=3, n_layer=3, max_seq_len=40)
    assert count_parameters(cfg, "decoder-only") == hf.num_parameters()


def _copy_layer(ours, ref, cross):
    """Our layer's weights into an nn.TransformerEncoderLayer / DecoderLayer."""
    def mha(o, r):
        r.in_proj_weight.copy_(torch.cat([o.q_proj.weight, o.k_proj.weight, o.v_proj.weight]))
        r.in_proj_bias.copy_(torch.cat([o.q_proj.bias, o.k_proj.bias, o.v_proj.bias]))
        r.out_proj.load_state_dict(o.out_proj.state_dict())

    mha(ours.self_attn, ref.self_attn)
    ref.linear1.load_state_dict(ours.ffn.fc_in.state_dict())
    ref.linear2.load_state_dict(ours.ffn.fc_out.state_dict())
    ref.norm1.load_state_dict(ours.norm1.state_dict())
    if cross:
        mha(ours.cross_attn, ref.multihead_attn)
        ref.norm2.load_state_dict(ours.norm_cross.state_dict())
        ref.norm3.load_state_dict(ours.norm2.state_dict())
    else:
        ref.norm2.load_state_dict(ours.norm2.state_dict())


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("norm_first", [True, False])
@torch.no_grad()
def test_encoder_decoder_stack_matches_nn_transformer(norm_first):
    torch.manual_seed(0)
    config = tiny(activation="relu", norm_first=norm_first, positional="sinusoidal")
    model = EncoderDecoder(config).double().eval()
    ref = nn.Transformer(16, 4, 2, 3, 64, dropout=0.0, batch_first=True, norm_first=norm_first).double().eval()
    for ours, theirs in zip(model.encoder.layers, ref.encoder.layers):
        _copy_layer(ours, theirs, cross=False)
    for ours, theirs in zip(model.decoder.layers, ref.decoder.layers):
        _copy_layer(ours, theirs, cross=True)
    if norm_first:
        ref.encoder.norm.load_state_dict(model.encoder.norm.state_dict())
        ref.decoder.norm.load_state_dict(model.decoder.norm.state_dict())
    else:  # the 2017 post-LN layout has no final norms
        ref.encoder.norm, ref.decoder.norm = nn.Identity(), nn.Identity()
    src, tgt = torch.randint(3, 37, (2, 7)), torch.randint(3, 37, (2, 5))
    src_mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    expected = ref(model.encoder.embed(src), model.decoder.embed(tgt), tgt_mask=~torch.ones(5, 5, dtype=torch.bool).tril(),
                   src_key_padding_mask=~src_mask.bool(), memory_key_padding_mask=~src_mask.bool())
    logits, _ = model(src, src_mask, decoder_input_ids=tgt)
    torch.testing.assert_close(logits, expected @ model.tok_emb.weight.T)


@torch.no_grad()
def test_encoder_only_matches_nn_transformer_encoder():
    torch.manual_seed(1)
    model = EncoderOnlyMLM(tiny(norm_first=False)).double().eval()
    layer = nn.TransformerEncoderLayer(16, 4, 64, dropout=0.0, activation="gelu", batch_first=True)
    ref = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).double().eval()
    for ours, theirs in zip(model.encoder.layers, ref.layers):
        _copy_layer(ours, theirs, cross=False)
    ids = torch.randint(3, 37, (2, 6))
    am = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    hidden, _ = model.encoder(ids, am)
    expected = ref(model.encoder.embed(ids), src_key_padding_mask=~am.bool())
    torch.testing.assert_close(hidden[am.bool()], expected[am.bool()])


def _gpt2_pair(seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel

    from course_lib.gpt2_weights import decoder_from_gpt2

    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=61, n_embd=32, n_head=4, n_layer=2, n_positions=64,
                                    bos_token_id=1, eos_token_id=2, pad_token_id=0)).eval()
    return hf, decoder_from_gpt2(hf)


def test_decoder_matches_hf_gpt2_logits_and_loss():
    hf, ours = _gpt2_pair()
    ids = torch.randint(3, 61, (3, 9))
    am = torch.ones_like(ids)
    am[1, -3:] = 0  # right padding
    labels = ids.masked_fill(am == 0, -100)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=am, labels=labels)
        logits, loss = ours(input_ids=ids, attention_mask=am, labels=labels)
    torch.testing.assert_close(logits[am.bool()], ref.logits[am.bool()], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, ref.loss, atol=1e-5, rtol=1e-5)


def test_greedy_generate_matches_hf_generate_on_same_weights():
    hf, ours = _gpt2_pair(seed=1)
    ids = torch.randint(3, 61, (2, 4))
    ref = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert torch.equal(ours.generate(ids, 20, eos_token_id=None), ref)


def test_loss_ignores_minus_100_like_cross_entropy():
    torch.manual_seed(0)
    model = EncoderOnlyMLM(tiny())
    ids = torch.randint(3, 37, (2, 8))
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 5] = 7, 11
    logits, loss = model(input_ids=ids, labels=labels)
    expected = F.cross_entropy(torch.stack([logits[0, 2], logits[1, 5]]), torch.tensor([7, 11]))
    torch.testing.assert_close(loss, expected)


def test_encoder_decoder_shift_right_teacher_forcing():
    model = EncoderDecoder(tiny(bos_token_id=1, pad_token_id=0))
    labels = torch.tensor([[5, 6, 2, -100]])
    assert model.shift_right(labels).tolist() == [[1, 5, 6, 2]]
    with pytest.raises(ValueError, match="decoder_input_ids or labels"):
        model(torch.tensor([[3, 4]]))


@pytest.mark.parametrize("family", ["decoder-only", "encoder-decoder"])
def test_kv_cache_generate_equals_no_cache_generate(family):
    torch.manual_seed(0)
    model = MODELS[family](tiny(eos_token_id=None))
    src = torch.randint(3, 37, (3, 5))
    kw = dict(max_new_tokens=12)
    assert torch.equal(model.generate(src, use_cache=True, **kw), model.generate(src, use_cache=False, **kw))
    draws = [model.generate(src, use_cache=c, do_sample=True, generator=torch.Generator().manual_seed(7), **kw)
             for c in (True, False)]
    assert torch.equal(*draws)


def test_left_padded_batch_generates_like_each_prompt_alone():
    torch.manual_seed(0)
    model = DecoderOnlyLM(tiny(eos_token_id=None))
    a, b = torch.tensor([[5, 9, 11, 4]]), torch.tensor([[7, 8]])
    batch = torch.tensor([[5, 9, 11, 4], [0, 0, 7, 8]])
    am = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    out = model.generate(batch, 6, attention_mask=am)
    assert torch.equal(out[0], model.generate(a, 6)[0])
    assert torch.equal(out[1, 2:], model.generate(b, 6)[0])


def test_generation_stops_at_eos_and_pads_after_it():
    torch.manual_seed(0)
    model = DecoderOnlyLM(tiny())
    prompt = torch.randint(3, 37, (1, 3))
    first = model.generate(prompt, 1, eos_token_id=None)[0, -1].item()  # whatever comes next, call it eos
    out = model.generate(prompt, 10, eos_token_id=first)
    assert out.shape == (1, 4) and out[0, -1].item() == first


def test_tiny_decoder_learns_to_copy_a_sequence():
    torch.manual_seed(0)
    model = DecoderOnlyLM(tiny())
    ids = torch.randint(3, 37, (2, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        _, loss = model(input_ids=ids, labels=ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1, loss.item()  # from ln(37) = 3.6 at the start
    assert torch.equal(model.generate(ids[:, :1], 9, eos_token_id=None), ids)


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(d_model=10, n_head=3)
    with pytest.raises(ValueError, match="positional"):
        TransformerConfig(positional="rotary")
    with pytest.raises(ValueError, match="family"):
        count_parameters(tiny(), "gpt")
    model = DecoderOnlyLM(tiny())
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 40, dtype=torch.long))
    with pytest.raises(ValueError, match="max_seq_len"):
        model.generate(torch.zeros(1, 30, dtype=torch.long), 5)
    with pytest.raises(TypeError, match="unknown arguments"):
        model.generate(torch.zeros(1, 3, dtype=torch.long), 2, beams=4)


def test_sampling_with_top_k_one_is_greedy_and_settings_are_checked():
    torch.manual_seed(0)
    model = DecoderOnlyLM(tiny(eos_token_id=None))
    prompt = torch.randint(3, 37, (2, 3))
    greedy = model.generate(prompt, 8)
    sampled = model.generate(prompt, 8, do_sample=True, top_k=1, temperature=0.7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, greedy)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(prompt, 2, do_sample=True, temperature=0.0)


@torch.no_grad()
def test_encoder_attention_maps_match_nn_multiheadattention():
    torch.manual_seed(4)
    model = EncoderOnlyMLM(tiny(norm_first=False)).double().eval()
    attn = model.encoder.layers[0].self_attn
    ref = nn.MultiheadAttention(16, 4, batch_first=True).double().eval()
    ref.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
    ref.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
    ids = torch.randint(3, 37, (2, 6))
    am = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    maps = model.attention_maps(ids, am)
    x = model.encoder.embed(ids)  # post-LN: layer 0 attends over the embeddings directly
    _, expected = ref(x, x, x, key_padding_mask=~am.bool(), average_attn_weights=False)
    assert len(maps) == 2 and maps[0].shape == (2, 4, 6, 6)
    torch.testing.assert_close(maps[0], expected)


@torch.no_grad()
def test_cross_attention_maps_match_nn_multiheadattention():
    torch.manual_seed(5)
    model = EncoderDecoder(tiny(norm_first=False)).double().eval()
    layer = model.decoder.layers[0]

    def torch_mha(ours):
        ref = nn.MultiheadAttention(16, 4, batch_first=True).double().eval()
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.load_state_dict(ours.out_proj.state_dict())
        return ref

    src, tgt = torch.randint(3, 37, (2, 7)), torch.randint(3, 37, (2, 4))
    am = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    memory, _ = model.encoder(src, am)
    x = model.decoder.embed(tgt)
    # post-LN: the cross-attention of layer 0 reads LN(x + causal self-attention(x))
    sa, _ = torch_mha(layer.self_attn)(x, x, x, attn_mask=~torch.ones(4, 4, dtype=torch.bool).tril())
    h = F.layer_norm(x + sa, (16,), layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
    _, expected = torch_mha(layer.cross_attn)(h, memory, memory, key_padding_mask=~am.bool(), average_attn_weights=False)
    maps = model.cross_attention_maps(src, tgt, am)
    assert len(maps) == 3 and maps[0].shape == (2, 4, 4, 7)
    torch.testing.assert_close(maps[0], expected)
    assert maps[0][1, ..., 4:].abs().max() == 0  # no weight on the padded source positions


@pytest.mark.parametrize("field, value", [
    ("vocab_size", 0), ("vocab_size", -5), ("d_model", 0), ("n_head", 0), ("n_layer", -1), ("n_layer", 0),
    ("max_seq_len", 0), ("d_ff", -1), ("d_ff", 0), ("n_encoder_layer", 0), ("n_decoder_layer", -2),
    ("dropout", 1.0), ("dropout", -0.1), ("layer_norm_eps", 0.0), ("init_std", -1.0), ("pad_token_id", 1000),
    ("eos_token_id", -1), ("bos_token_id", 2.5), ("n_layer", 2.0), ("n_head", True),
    ("activation", "swish"), ("positional", "rotary"),
])
def test_transformer_config_refuses_nonsense_naming_the_field(field, value):
    from course_lib.model import TransformerConfig

    with pytest.raises(ValueError, match=field):
        TransformerConfig(**{field: value})


def test_transformer_config_still_accepts_its_defaults_and_derives_sizes():
    from course_lib.model import TransformerConfig

    cfg = TransformerConfig(d_model=64, n_head=4, n_layer=3)
    assert (cfg.d_ff, cfg.n_encoder_layer, cfg.n_decoder_layer) == (256, 3, 3)
    assert TransformerConfig(eos_token_id=None).eos_token_id is None
