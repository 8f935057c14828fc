"""The offline FLAN-T5 stand-in: a smoke build, its tokenizer, its cache and its model card."""

from __future__ import annotations

import math
import os
import time

import pytest
import torch

from course_lib import model_cards, t5_standin


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("course_cache")
    old = {k: os.environ.get(k) for k in ("COURSE_CACHE", "HF_HUB_OFFLINE", "COURSE_SMOKE")}
    os.environ.update(COURSE_CACHE=str(cache), HF_HUB_OFFLINE="1", COURSE_SMOKE="1")
    start = time.perf_counter()
    model, tokenizer, card = t5_standin.load_or_build(verbose=False)
    seconds = time.perf_counter() - start
    yield model, tokenizer, card, seconds
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_smoke_build_is_a_hf_t5_with_t5_special_tokens(built):
    from transformers import PreTrainedTokenizerBase, T5ForConditionalGeneration

    model, tokenizer, card, _ = built
    assert isinstance(model, T5ForConditionalGeneration)
    assert isinstance(tokenizer, PreTrainedTokenizerBase)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    sentinels = tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(t5_standin.N_SENTINELS)])
    assert len(set(sentinels)) == t5_standin.N_SENTINELS and tokenizer.unk_token_id not in sentinels
    # numbered from the top of the vocabulary down, as in T5's own files: <extra_id_0> is the last id
    assert sentinels == list(range(len(tokenizer) - 1, len(tokenizer) - 1 - t5_standin.N_SENTINELS, -1))
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.config.decoder_start_token_id == tokenizer.pad_token_id
    assert "NOT FLAN-T5" in card.note and card.name.startswith("course-t5-dialogsum-standin")


def test_tokenizer_round_trips_text_like_t5(built):
    _, tokenizer, _, _ = built
    text = "#Person1#: Hello,  how are you?\n#Person2#: Fine, thanks."
    ids = tokenizer(text)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id  # T5 appends </s> to every input
    assert tokenizer.decode(ids, skip_special_tokens=True).split() == text.split()  # whitespace runs collapse, as in T5
    sentinel = tokenizer.convert_tokens_to_ids("<extra_id_0>")
    assert sentinel in tokenizer("The <extra_id_0> sat.")["input_ids"]  # a sentinel is one token


def test_saved_folder_loads_with_auto_classes(built):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model, tokenizer, card, _ = built
    tok2 = AutoTokenizer.from_pretrained(card.path)
    text = "Summarize the following conversation.\n\n#Person1#: Hi!\n\nSummary:"
    assert tok2(text)["input_ids"] == tokenizer(text)["input_ids"]
    model2 = AutoModelForSeq2SeqLM.from_pretrained(card.path).eval()
    x = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        a = model(**x, decoder_input_ids=torch.zeros(1, 1, dtype=torch.long)).logits
        b = model2(**x, decoder_input_ids=torch.zeros(1, 1, dtype=torch.long)).logits
    torch.testing.assert_close(a, b)


def test_training_lowered_the_loss_below_the_uniform_guess(built):
    model, tokenizer, card, _ = built
    assert card.metrics["final_loss"] < card.metrics["first_loss"]
    # The untrained model starts near a uniform guess over the vocabulary, ln V.
    assert abs(card.metrics["first_loss"] - math.log(len(tokenizer))) < 1.0


def test_cache_is_reused_not_rebuilt(built):
    _, _, card, _ = built
    stamp = os.path.getmtime(os.path.join(card.path, "model.safetensors"))
    start = time.perf_counter()
    _, tok, card2 = t5_standin.load_or_build(want_model=False, verbose=False)
    assert card2.path == card.path and os.path.getmtime(os.path.join(card.path, "model.safetensors")) == stamp
    assert time.perf_counter() - start < 15


def test_cache_key_separates_configs_and_data():
    rows = [{"id": "a", "summary": "x"}, {"id": "b", "summary": "y"}]
    fp = t5_standin.data_fingerprint(rows)
    smoke = t5_standin.cache_key(t5_standin.SMOKE_CONFIG, fp)
    full = t5_standin.cache_key(t5_standin.FULL_CONFIG, fp)
    other_data = t5_standin.cache_key(t5_standin.SMOKE_CONFIG, t5_standin.data_fingerprint(rows[:1]))
    assert len({smoke, full, other_data}) == 3


def test_model_card_has_the_hub_card_sections(built):
    _, _, card, _ = built
    sections = model_cards.card_sections(card.readme)
    assert all(sections.values()), f"missing sections: {[s for s, h in sections.items() if not h]}"
    assert f"{card.metrics['parameters']:,}" in card.readme


def test_hub_serves_the_standin_for_flan_t5_offline(built):
    from course_lib import hub

    model, tokenizer = hub.load_model_and_tokenizer("google/flan-t5-base")
    record = [s for s in hub.served() if s.requested == "google/flan-t5-base"][-1]
    assert record.kind == "stand-in" and not record.is_real
    assert model.config.vocab_size == len(tokenizer)


def test_bad_config_raises_clear_errors():
    with pytest.raises(ValueError, match="at least 2"):
        t5_standin.load_or_build(config=t5_standin.SMOKE_CONFIG, rows=[{"id": "a", "dialogue": "d", "summary": "s"}])
    with pytest.raises(ValueError, match="vocab_size"):
        t5_standin.train_tokenizer(["a b c"], 10)
