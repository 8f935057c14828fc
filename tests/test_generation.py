"""Decoding: the logits processors against transformers' warpers, the loop against model.generate."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from course_lib import generation as gen

DUMMY_IDS = torch.zeros(1, 1, dtype=torch.long)


def hf(warper, logits):
    return warper(DUMMY_IDS, logits.clone())


def edge_cases():
    g = torch.Generator().manual_seed(0)
    cases = {
        "random": torch.randn(4, 50, generator=g) * 3,
        "ties": torch.tensor([[2.0, 2.0, 2.0, 1.0, 1.0, 0.0], [5.0, 1.0, 1.0, 1.0, 1.0, 1.0]]),
        "neg_inf": torch.tensor([[1.0, float("-inf"), 0.5, float("-inf"), -2.0, 0.0]]),
        "one_hot_ish": torch.tensor([[30.0, 0.0, 0.0, 0.0]]),
        "uniform": torch.zeros(2, 8),
        # probabilities 0.5, 0.3, 0.2 exactly: p=0.8 and p=0.5 sit on a cumulative boundary
        "boundary": torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3]])),
    }
    return cases


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0, 2.0, 7.3])
@pytest.mark.parametrize("case", list(edge_cases()))
def test_temperature_matches_hf(case, temperature):
    logits = edge_cases()[case]
    torch.testing.assert_close(gen.apply_temperature(logits, temperature), hf(TemperatureLogitsWarper(temperature), logits))


@pytest.mark.parametrize("k", [1, 2, 3, 5, 49, 50, 1000])
@pytest.mark.parametrize("case", list(edge_cases()))
def test_top_k_matches_hf(case, k):
    logits = edge_cases()[case]
    torch.testing.assert_close(gen.top_k_filter(logits, k), hf(TopKLogitsWarper(k), logits))


@pytest.mark.parametrize("p", [1e-6, 0.1, 0.3, 0.5, 0.8, 0.9, 0.95, 1.0])
@pytest.mark.parametrize("case", list(edge_cases()))
def test_top_p_matches_hf(case, p):
    logits = edge_cases()[case]
    torch.testing.assert_close(gen.top_p_filter(logits, p), hf(TopPLogitsWarper(p), logits))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.floats(0.01, 1.0), st.integers(1, 45))
def test_processors_match_hf_on_random_logits(seed, vocab, p, k):
    logits = torch.randn(3, vocab, generator=torch.Generator().manual_seed(seed)) * 4
    logits = torch.where(logits < -5, torch.full_like(logits, float("-inf")), logits)
    logits[:, 0] = logits[:, 0].clamp(min=0)  # at least one finite entry per row
    torch.testing.assert_close(gen.top_p_filter(logits, p), hf(TopPLogitsWarper(p), logits))
    torch.testing.assert_close(gen.top_k_filter(logits, k), hf(TopKLogitsWarper(k), logits))


def test_processors_accept_any_leading_shape():
    logits = torch.randn(2, 3, 17)
    flat = logits.reshape(6, 17)
    torch.testing.assert_close(gen.top_p_filter(logits, 0.7).reshape(6, 17), hf(TopPLogitsWarper(0.7), flat))
    torch.testing.assert_close(gen.top_k_filter(logits, 4).reshape(6, 17), hf(TopKLogitsWarper(4), flat))


def test_top_p_keeps_the_smallest_set_reaching_p():
    # the course's picture: cake 0.20, donut 0.10, banana 0.02, apple 0.01 (rest of the mass elsewhere)
    probs = torch.tensor([0.20, 0.10, 0.02, 0.01, 0.67])
    kept = torch.isfinite(gen.top_p_filter(probs.log()[None], 0.70))[0]
    assert kept.tolist() == [True, False, False, False, True]  # 0.67 + 0.20 reaches 0.70; 0.67 alone does not


@pytest.mark.parametrize("call, match", [
    (lambda x: gen.apply_temperature(x, 0.0), "temperature"),
    (lambda x: gen.apply_temperature(x, -1.0), "temperature"),
    (lambda x: gen.top_k_filter(x, 0), "k="),
    (lambda x: gen.top_k_filter(x, 2.5), "k="),
    (lambda x: gen.top_p_filter(x, 0.0), "p="),
    (lambda x: gen.top_p_filter(x, 1.5), "p="),
    (lambda x: gen.top_p_filter(x.long(), 0.5), "float tensor"),
])
def test_invalid_values_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(torch.randn(2, 5))


def test_weighted_sampling_follows_the_probabilities():
    probs = torch.tensor([0.20, 0.10, 0.02, 0.01, 0.67])
    draws = gen.sample(probs.log().expand(40_000, 5), torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=5).float() / draws.numel()
    # 4 standard errors of a binomial proportion
    assert torch.all((freq - probs).abs() < 4 * torch.sqrt(probs * (1 - probs) / draws.numel()) + 1e-4)
    assert gen.greedy(probs.log()).item() == 4


# --- the loop against model.generate -------------------------------------------------


@pytest.fixture(scope="module")
def tiny_t5():
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                   feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    model = T5ForConditionalGeneration(cfg).eval()
    input_ids = torch.tensor([[5, 9, 11, 3, 7, 1], [8, 4, 6, 1, 0, 0]])
    return model, input_ids, (input_ids != 0).long()


@pytest.mark.parametrize("settings_", [
    gen.GenerationSettings(max_new_tokens=12),
    gen.GenerationSettings(max_new_tokens=12, do_sample=True),
    gen.GenerationSettings(max_new_tokens=12, do_sample=True, temperature=0.7, top_k=20, top_p=0.9),
    gen.GenerationSettings(max_new_tokens=12, do_sample=True, temperature=2.0, top_p=0.5),
])
def test_decode_matches_generate_on_hf_t5(tiny_t5, settings_):
    model, input_ids, mask = tiny_t5
    for seed in range(2):
        torch.manual_seed(seed)
        ref = model.generate(input_ids=input_ids, attention_mask=mask, **settings_.hf_kwargs())[:, 1:]
        torch.manual_seed(seed)
        ours = gen.decode(model, input_ids, mask, settings_)
        assert torch.equal(ours, ref), f"seed {seed}: {ours.tolist()} vs {ref.tolist()}"


def test_decode_matches_generate_on_hf_causal_lm():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                       eos_token_id=1, pad_token_id=0, bos_token_id=1)).eval()
    prompt = torch.tensor([[4, 8, 15, 16, 23]])
    for s in [gen.GenerationSettings(max_new_tokens=10), gen.GenerationSettings(max_new_tokens=10, do_sample=True, top_k=5)]:
        torch.manual_seed(3)
        ref = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), **s.hf_kwargs())[:, prompt.size(1):]
        torch.manual_seed(3)
        assert torch.equal(gen.decode(model, prompt, None, s), ref)


def test_decode_respects_max_new_tokens_and_stop(tiny_t5):
    model, input_ids, mask = tiny_t5
    out = gen.decode(model, input_ids, mask, gen.GenerationSettings(max_new_tokens=5, stop_at_eos=False))
    assert out.shape == (2, 5)
    # A model whose only choice is </s> stops every row after one step.

    class AlwaysEnd(torch.nn.Module):
        def forward(self, h):  # (B, T, d) -> (B, T, V) with all the mass on token 1
            logits = torch.zeros(*h.shape[:-1], model.config.vocab_size)
            logits[..., 1] = 10.0
            return logits

    head = model.lm_head
    model.lm_head = AlwaysEnd()
    try:
        x = gen.decode(model, input_ids, mask, gen.GenerationSettings(max_new_tokens=8))
        assert x.shape == (2, 1) and x.eq(1).all()
    finally:
        model.lm_head = head


def test_settings_validate():
    with pytest.raises(ValueError, match="max_new_tokens"):
        gen.GenerationSettings(max_new_tokens=0).validate()
    with pytest.raises(ValueError, match="p="):
        gen.GenerationSettings(do_sample=True, top_p=2.0).validate()
    assert math.isclose(gen.GenerationSettings(do_sample=True, temperature=0.5).hf_kwargs()["temperature"], 0.5)


@pytest.mark.parametrize("family", ["decoder-only", "encoder-decoder"])
def test_decode_matches_course_lib_models_own_generate(family):
    from course_lib.model import DecoderOnlyLM, EncoderDecoder, TransformerConfig

    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=40, d_model=32, n_head=4, n_layer=2, max_seq_len=48)
    model = (DecoderOnlyLM if family == "decoder-only" else EncoderDecoder)(cfg).eval()
    prompt = torch.tensor([[5, 9, 11, 3, 7], [8, 4, 6, 12, 13]])
    ref = model.generate(prompt, max_new_tokens=10)
    ref = ref[:, prompt.size(1):] if family == "decoder-only" else ref[:, 1:]
    ours = gen.decode(model, prompt, None, gen.GenerationSettings(max_new_tokens=10))
    assert torch.equal(ours, ref)


def test_top_p_within_is_the_courses_rule_and_differs_from_reach_inside_a_share():
    # the course's example: cake 0.20, donut 0.10, banana 0.02, apple 0.01, the rest spread thin
    probs = torch.tensor([0.20, 0.10, 0.02, 0.01] + [0.67 / 100] * 100)
    logits = probs.log()[None]
    kept = lambda p, rule: torch.isfinite(gen.top_p_filter(logits, p, rule=rule))[0].nonzero().flatten().tolist()  # noqa: E731
    assert kept(0.30, "within") == [0, 1]  # cake + donut: 0.30, within p (up to float rounding)
    assert kept(0.25, "within") == [0] and kept(0.25, "reach") == [0, 1]  # inside donut's share they differ
    assert kept(0.05, "within") == [0] == kept(0.05, "reach")  # never fewer than one token
    # an independent reference for "within": a plain loop over the sorted probabilities
    for p in (0.1, 0.31, 0.33, 0.5, 0.9):
        total, expect = 0.0, []
        for i in sorted(range(len(probs)), key=lambda i: -probs[i]):
            if expect and total + float(probs[i]) > p + 1e-6:
                break
            total += float(probs[i])
            expect.append(i)
        got = sorted(round(float(probs[i]), 6) for i in kept(p, "within"))  # ties may pick any of equal tokens
        assert got == sorted(round(float(probs[i]), 6) for i in expect), p
    with pytest.raises(ValueError, match="rule"):
        gen.top_p_filter(logits, 0.5, rule="course")


def test_greedy_and_sampling_refuse_nan_logits():
    bad = torch.tensor([[0.1, float("nan"), 0.3]])
    with pytest.raises(ValueError, match="NaN"):
        gen.greedy(bad)
    with pytest.raises(ValueError, match="NaN"):
        gen.sample(bad)


# --- left-padded batches of causal models ---------------------------------------------


def _left_pad(prompts, pad=0):
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    return ids, (torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()


PROMPTS = [[4, 8, 15, 16, 23], [42, 7], [9, 9, 30]]


@pytest.fixture(scope="module")
def causal_models():
    from transformers import GPT2Config, GPT2LMHeadModel

    from course_lib.model import DecoderOnlyLM, TransformerConfig

    torch.manual_seed(1)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                    eos_token_id=1, pad_token_id=0, bos_token_id=1)).eval()
    course = DecoderOnlyLM(TransformerConfig(vocab_size=50, d_model=32, n_head=4, n_layer=2, max_seq_len=48, eos_token_id=None)).eval()
    return {"hf-gpt2": hf, "course": course}


@pytest.mark.parametrize("name", ["hf-gpt2", "course"])
def test_a_left_padded_row_decodes_as_the_prompt_alone(causal_models, name):
    model = causal_models[name]
    ids, mask = _left_pad(PROMPTS)
    s = gen.GenerationSettings(max_new_tokens=8, stop_at_eos=False)
    batch = gen.decode(model, ids, mask, s, pad_token_id=0)
    for row, prompt in enumerate(PROMPTS):
        alone = gen.decode(model, torch.tensor([prompt]), None, s, pad_token_id=0)
        assert torch.equal(batch[row], alone[0]), f"row {row}: {batch[row].tolist()} vs alone {alone[0].tolist()}"


@pytest.mark.parametrize("settings_", [gen.GenerationSettings(max_new_tokens=8),
                                       gen.GenerationSettings(max_new_tokens=8, do_sample=True, top_k=10)])
def test_padded_batches_equal_model_generate(causal_models, settings_):
    ids, mask = _left_pad(PROMPTS)
    hf = causal_models["hf-gpt2"]
    for seed in range(2):
        torch.manual_seed(seed)
        ref = hf.generate(input_ids=ids, attention_mask=mask, pad_token_id=0, **settings_.hf_kwargs())[:, ids.size(1):]
        torch.manual_seed(seed)
        assert torch.equal(gen.decode(hf, ids, mask, settings_, pad_token_id=0), ref), seed
    course = causal_models["course"]
    for seed in range(2):
        g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        ref = course.generate(ids, max_new_tokens=8, attention_mask=mask, do_sample=settings_.do_sample,
                              top_k=settings_.top_k, generator=g1)[:, ids.size(1):]
        assert torch.equal(gen.decode(course, ids, mask, settings_, generator=g2, pad_token_id=0), ref), seed
