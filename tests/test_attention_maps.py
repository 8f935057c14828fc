"""Attention-map reading tools, on synthetic maps with known answers and on the packaged MiniLM."""

import pytest
import torch

from course_lib.attention import MultiHeadAttention, padding_mask
from course_lib.attention_maps import head_patterns, hf_attentions, link_strength


def test_head_patterns_name_synthetic_heads():
    T = 6
    prev = torch.zeros(T, T)
    prev[0, 0] = 1.0
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1.0
    uniform = torch.full((T, T), 1 / T)
    first = torch.zeros(T, T)
    first[:, 0] = 1.0
    table = head_patterns(torch.stack([prev, uniform, first])[None])  # (1 layer, 3 heads, T, T)
    assert table.loc[0, "pattern"] == "previous token" and table.loc[0, "previous token"] == 1.0
    assert table.loc[1, "entropy"] == pytest.approx(torch.log(torch.tensor(6.0)).item())
    assert table.loc[2, "pattern"] == "first token" and table.loc[2, "entropy"] == pytest.approx(0.0, abs=1e-6)


def test_link_strength_ranks_heads():
    tokens = ["a", "b", "c"]
    att = torch.zeros(2, 2, 3, 3)
    att[1, 0, 2, 0], att[1, 0, 2, 1] = 0.5, 0.3  # layer 1, head 0: c -> a and b
    att[0, 1, 2, 0] = 0.6
    table = link_strength(att, tokens, "c", ["a", "b"])
    assert (table.loc[0, "layer"], table.loc[0, "head"]) == (1, 0)
    assert table.loc[0, "total"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="not one of the tokens"):
        link_strength(att, tokens, "z", ["a"])


@pytest.mark.filterwarnings("ignore")
def test_packaged_minilm_attention_is_reproduced_by_our_multi_head_attention(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from course_lib import hub

    model, tokenizer = hub.load_model_and_tokenizer("bert-base-uncased", task="encoder")
    tokens, att = hf_attentions(model, tokenizer, "The teacher taught the student with the book.")
    assert tokens[0] == "[CLS]" and "book" in tokens
    assert att.shape == (model.config.num_hidden_layers, model.config.num_attention_heads, len(tokens), len(tokens))
    torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:-1]))
    # layer 0 of the real model, recomputed with course_lib's MultiHeadAttention and the model's own weights
    enc = tokenizer("The teacher taught the student with the book.", return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states[0]  # embeddings output = layer 0 input
        bert_attn = model.encoder.layer[0].attention.self
        ours = MultiHeadAttention(model.config.hidden_size, model.config.num_attention_heads)
        for mine, theirs in ((ours.q_proj, bert_attn.query), (ours.k_proj, bert_attn.key), (ours.v_proj, bert_attn.value)):
            mine.load_state_dict(theirs.state_dict())
        _, weights = ours(hidden, mask=padding_mask(enc["attention_mask"]), need_weights=True)
    torch.testing.assert_close(weights[0], att[0], atol=1e-5, rtol=1e-4)
