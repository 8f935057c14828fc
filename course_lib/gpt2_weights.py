"""Copy Hugging Face GPT-2 weights into the course's DecoderOnlyLM (and check the two agree).

GPT-2 is a pre-LN decoder with learned positions, biases, tanh-GELU and a tied output
head, so every one of its tensors has a place in ``DecoderOnlyLM``. Its ``Conv1D``
layers store weights as (in, out), the transpose of ``nn.Linear``, and its attention
keeps W_q, W_k, W_v side by side in one ``c_attn`` matrix.
"""

from __future__ import annotations

import torch

from .model import DecoderOnlyLM, TransformerConfig


def config_from_gpt2(hf_config) -> TransformerConfig:
    """The TransformerConfig with the same shape as a transformers ``GPT2Config``."""
    if hf_config.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(f"GPT-2 activation {hf_config.activation_function!r} has no course equivalent; expected 'gelu_new'.")
    eos = hf_config.eos_token_id if hf_config.eos_token_id is not None and hf_config.eos_token_id < hf_config.vocab_size else None
    return TransformerConfig(
        vocab_size=hf_config.vocab_size, d_model=hf_config.n_embd, n_head=hf_config.n_head, n_layer=hf_config.n_layer,
        d_ff=hf_config.n_inner or 4 * hf_config.n_embd, max_seq_len=hf_config.n_positions, dropout=0.0, bias=True,
        activation="gelu_tanh", norm_first=True, layer_norm_eps=hf_config.layer_norm_epsilon, positional="learned",
        tie_embeddings=hf_config.tie_word_embeddings, pad_token_id=0, eos_token_id=eos,
    )


@torch.no_grad()
def decoder_from_gpt2(hf_model) -> DecoderOnlyLM:
    """A DecoderOnlyLM holding a copy of ``hf_model``'s (a GPT2LMHeadModel) weights."""
    config = config_from_gpt2(hf_model.config)
    model = DecoderOnlyLM(config)
    sd = hf_model.state_dict()
    d = config.d_model
    model.tok_emb.weight.copy_(sd["transformer.wte.weight"])
    model.decoder.embed.pos.weight.copy_(sd["transformer.wpe.weight"])
    for i, layer in enumerate(model.decoder.layers):
        p = f"transformer.h.{i}."
        w_qkv, b_qkv = sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"]  # (d, 3d), (3d,)
        for j, proj in enumerate((layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj)):
            proj.weight.copy_(w_qkv[:, j * d:(j + 1) * d].T)
            proj.bias.copy_(b_qkv[j * d:(j + 1) * d])
        pairs = [
            (layer.self_attn.out_proj, "attn.c_proj"), (layer.ffn.fc_in, "mlp.c_fc"), (layer.ffn.fc_out, "mlp.c_proj"),
        ]
        for linear, name in pairs:
            linear.weight.copy_(sd[p + name + ".weight"].T)
            linear.bias.copy_(sd[p + name + ".bias"])
        for norm, name in ((layer.norm1, "ln_1"), (layer.norm2, "ln_2")):
            norm.weight.copy_(sd[p + name + ".weight"])
            norm.bias.copy_(sd[p + name + ".bias"])
    model.decoder.norm.weight.copy_(sd["transformer.ln_f.weight"])
    model.decoder.norm.bias.copy_(sd["transformer.ln_f.bias"])
    if not config.tie_embeddings:
        model.lm_head.weight.copy_(sd["lm_head.weight"])
    return model.eval()
