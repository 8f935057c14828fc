"""course_lib.finetuning against peft (LoRA, prompt tuning), evaluation.bleu against sacrebleu, and the
instruction data built from DialogSum. CPU, seconds, no network."""

from __future__ import annotations

import copy
import math

import peft
import pytest
import sacrebleu
import torch
from transformers import T5Config, T5ForConditionalGeneration

from course_lib import data, evaluation, generation, prompting
from course_lib.finetuning import (
    TEMPLATES,
    LoRAConfig,
    LoRALinear,
    SoftPrompt,
    add_lora,
    collate,
    count_trainable,
    instruction_examples,
    load_lora,
    lora_parameter_count,
    lora_state_dict,
    merge_lora,
    read_lora,
    save_lora,
    set_lora_enabled,
    source_budget,
    tokenize_examples,
)
from course_lib.standins import load_t5_standin

RANK, ALPHA, TARGETS = 4, 8.0, ["q", "v"]


def tiny_t5(seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=2,
                      dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return T5ForConditionalGeneration(config).eval()


def batch(seed: int = 1) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(2, 64, (3, 7), generator=gen),
            "attention_mask": torch.ones(3, 7, dtype=torch.long),
            "labels": torch.randint(2, 64, (3, 5), generator=gen)}


def randomize_lora(model, seed: int = 0) -> None:
    """Nonzero B (and a fresh A) in every adapter, so that the adapters change the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_A.weight.copy_(torch.randn(m.lora_A.weight.shape, generator=gen) * 0.3)
                m.lora_B.weight.copy_(torch.randn(m.lora_B.weight.shape, generator=gen) * 0.3)


@pytest.fixture(scope="module")
def lora_pair():
    """(base, ours, peft's): the same base weights, the same A and B in both LoRA models."""
    base = tiny_t5()
    ours = add_lora(copy.deepcopy(base), RANK, ALPHA, TARGETS)
    randomize_lora(ours)
    theirs = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGETS,
                                                                       lora_dropout=0.0))
    with torch.no_grad():
        for name, m in ours.named_modules():
            if isinstance(m, LoRALinear):
                other = theirs.base_model.model.get_submodule(name)
                other.lora_A["default"].weight.copy_(m.lora_A.weight)
                other.lora_B["default"].weight.copy_(m.lora_B.weight)
    return base, ours, theirs.eval()


def logits(model, b=None):
    b = b or batch()
    with torch.no_grad():
        return model(**b).logits


# --- LoRA -------------------------------------------------------------------------


def test_lora_equals_peft(lora_pair):
    base, ours, theirs = lora_pair
    assert not torch.allclose(logits(ours), logits(base), atol=1e-3), "the adapters should change the output"
    torch.testing.assert_close(logits(ours), logits(theirs), atol=1e-6, rtol=0)
    assert count_trainable(ours) == tuple(theirs.get_nb_trainable_parameters())


def test_lora_parameter_count_formula(lora_pair):
    _, ours, _ = lora_pair
    shapes = [(m.base.in_features, m.base.out_features) for m in ours.modules() if isinstance(m, LoRALinear)]
    assert len(shapes) == 2 * 2 + 2 * 2 * 2  # q and v in every encoder self-attention, decoder self- and cross-attention
    assert lora_parameter_count(shapes, RANK) == count_trainable(ours)[0] == len(shapes) * RANK * (16 + 16)


def test_merge_and_disable(lora_pair):
    base, ours, _ = lora_pair
    merged = merge_lora(copy.deepcopy(ours))
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    torch.testing.assert_close(logits(merged), logits(ours), atol=1e-5, rtol=1e-5)
    off = copy.deepcopy(ours)
    set_lora_enabled(off, False)
    assert torch.equal(logits(off), logits(base))
    set_lora_enabled(off, True)
    assert torch.equal(logits(off), logits(ours))


def test_training_moves_only_the_adapters(lora_pair):
    _, ours, _ = lora_pair
    model = copy.deepcopy(ours).train()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if ".lora_" not in k}
    adapters = lora_state_dict(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        model(**batch()).loss.backward()
        optimizer.step()
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items()), "a frozen base weight changed"
    assert all(not torch.equal(after[k], v) for k, v in adapters.items()), "an adapter did not train"


def test_adapters_round_trip_through_a_file(lora_pair, tmp_path):
    base, ours, _ = lora_pair
    path = save_lora(ours, tmp_path / "adapters.pt")
    state = read_lora(path)
    assert set(state) == set(lora_state_dict(ours)) and all(".lora_A." in k or ".lora_B." in k for k in state)
    fresh = add_lora(copy.deepcopy(base), RANK, ALPHA, TARGETS)
    load_lora(fresh, state)
    assert torch.equal(logits(fresh), logits(ours))
    bad = dict(state, **{"encoder.block.0.layer.0.SelfAttention.nope.lora_A.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="nope"):
        load_lora(fresh, bad)
    missing = dict(state)
    key = sorted(missing)[0]
    del missing[key]
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_lora(fresh, missing)


def test_lora_refuses_bad_arguments():
    layer = torch.nn.Linear(4, 4)
    for kwargs, field in (({"rank": 0, "alpha": 1.0}, "rank"), ({"rank": 2, "alpha": 0.0}, "alpha"),
                          ({"rank": 2, "alpha": 1.0, "dropout": 1.0}, "dropout")):
        with pytest.raises(ValueError, match=field):
            LoRALinear(layer, **kwargs)
    with pytest.raises(ValueError, match="nothing_here"):
        add_lora(tiny_t5(), RANK, ALPHA, ["nothing_here"])
    config = LoRAConfig(rank=2, alpha=4.0, target_modules=["q"])
    model = add_lora(tiny_t5(), **vars(config))
    assert sum(isinstance(m, LoRALinear) for m in model.modules()) == 2 + 2 * 2
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(model, **vars(config))
    dropped = LoRALinear(torch.nn.Linear(4, 3), rank=2, alpha=2.0, dropout=0.5).train()
    assert dropped(torch.randn(5, 4)).shape == (5, 3)


# --- prompt tuning ------------------------------------------------------------------


def test_soft_prompt_matches_peft_prompt_tuning():
    k = 5
    ours = SoftPrompt(tiny_t5(), k)
    assert ours.trainable_parameters() == k * 16
    one = peft.get_peft_model(tiny_t5(), peft.PromptTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=k,
                                                                   num_transformer_submodules=1))
    assert one.get_nb_trainable_parameters()[0] == ours.trainable_parameters()
    # peft's default for seq2seq holds a second set of k vectors for the decoder, which its forward never reads
    two = peft.get_peft_model(tiny_t5(), peft.PromptTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=k))
    assert two.get_nb_trainable_parameters()[0] == 2 * ours.trainable_parameters()
    with torch.no_grad():
        one.prompt_encoder["default"].embedding.weight.copy_(ours.prompt)
        torch.testing.assert_close(ours(**batch()).loss, one(**batch()).loss, atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def standin():
    model, tokenizer, _ = load_t5_standin()
    return model, tokenizer


def test_soft_prompt_on_the_standin(standin):
    model, tokenizer = standin
    k = 8
    soft = SoftPrompt(copy.deepcopy(model), k, seed=0)
    assert soft.trainable_parameters() == k * model.config.d_model
    assert all(not p.requires_grad for p in soft.model.parameters())
    rows = list(data.load_dialogsum("train"))[:2]
    pairs = tokenize_examples(tokenizer, instruction_examples(rows), max_source_tokens=source_budget(k))
    b = collate(pairs, tokenizer.pad_token_id)
    embeds, mask = soft.embed(b["input_ids"], b["attention_mask"])
    assert embeds.shape == (2, k + b["input_ids"].shape[1], model.config.d_model) and mask.shape == embeds.shape[:2]
    assert torch.equal(embeds[0, :k], soft.prompt.detach()) and mask[:, :k].all()
    before = {n: p.clone() for n, p in soft.model.named_parameters()}
    optimizer = torch.optim.AdamW([soft.prompt], lr=0.1)
    loss = soft(**b).loss
    assert math.isfinite(loss.item())
    loss.backward()
    optimizer.step()
    assert all(torch.equal(p, before[n]) for n, p in soft.model.named_parameters())
    out = soft.generate(b["input_ids"], b["attention_mask"], max_new_tokens=5, do_sample=False)
    assert out.shape[0] == 2 and 1 < out.shape[1] <= 6
    texts = generation.summarize(soft, tokenizer, [r["dialogue"] for r in rows], generation.GenerationSettings(max_new_tokens=5),
                                 engine="hf", max_input_tokens=source_budget(k))
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_soft_prompt_budget_and_init(standin):
    model, _ = standin
    assert source_budget(20) == prompting.DEFAULT_CONTEXT - 20
    with pytest.raises(ValueError, match="n_virtual_tokens"):
        SoftPrompt(model, 0)
    with pytest.raises(ValueError, match="no room"):
        source_budget(512)
    soft = SoftPrompt(model, 4)
    table = model.get_input_embeddings().weight
    assert all((table == row).all(dim=1).any() for row in soft.prompt.detach()), "vocab init: rows of the embedding"
    assert torch.equal(soft.prompt, SoftPrompt(model, 4).prompt), "the seed fixes the initialization"
    rand = SoftPrompt(model, 4, init_from_vocab=False)
    assert rand.prompt.abs().max() <= 0.5
    with pytest.warns(prompting.ContextWindowWarning):
        soft.embed(torch.zeros(1, 510, dtype=torch.long))


# --- BLEU -------------------------------------------------------------------------

BLEU_CASES = {
    "partial": (["#Person1# and #Person2# talk about the new job at the bank.", "The cat sat on the mat, quietly."],
                ["#Person1# and #Person2# talk about the job at the bank.", "The cat sat on the red mat quietly."]),
    "brevity": (["the cat sat on the mat"], ["the cat sat on the mat today with a friend of hers"]),
    "longer": (["Tom tells Ann he will buy a new car and a house next year, he says."],
               ["Tom tells Ann he will buy a new car next year."]),
    "exact": (["Hello, world! It's 5 o'clock.", "A second sentence."], ["Hello, world! It's 5 o'clock.", "A second sentence."]),
}


@pytest.mark.parametrize("case", BLEU_CASES)
def test_bleu_equals_sacrebleu(case):
    preds, refs = BLEU_CASES[case]
    expected = sacrebleu.corpus_bleu(preds, [refs]).score
    assert abs(evaluation.bleu(preds, refs) - expected) < 1e-9
    assert abs(evaluation.bleu(preds, refs, smooth="exp") - expected) < 1e-9  # smoothing only acts on a zero match
    if case == "exact":
        assert abs(evaluation.bleu(preds, refs) - 100.0) < 1e-9
    if case == "brevity":
        assert sacrebleu.corpus_bleu(preds, [refs]).bp < 1


@pytest.mark.parametrize("preds,refs", [
    (["the big dog ran"], ["the big cat ran"]),
    (["A kitty rested on the rug, gazing through the glass."], ["The cat sat on the mat and looked out of the window."]),
    (["the window sat on the cat and the mat looked out of."], ["The cat sat on the mat and looked out of the window."]),
    (["no overlap here"], ["something else entirely"]),
    (["too short"], ["too short by far"]),
])
def test_bleu_when_an_order_has_no_match(preds, refs):
    assert evaluation.bleu(preds, refs) == 0.0 == sacrebleu.corpus_bleu(preds, [refs], smooth_method="none").score
    smoothed = evaluation.bleu(preds, refs, smooth="exp")
    assert abs(smoothed - sacrebleu.corpus_bleu(preds, [refs]).score) < 1e-9  # sacrebleu's default is 'exp'


def test_bleu_errors():
    with pytest.raises(ValueError, match="at least one"):
        evaluation.bleu([], [])
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        evaluation.bleu(["a b", "c d"], ["a b"])
    with pytest.raises(ValueError, match="not a single string"):
        evaluation.bleu("a b", "a b")
    with pytest.raises(ValueError, match="smooth"):
        evaluation.bleu(["a"], ["a"], smooth="add-k")


# --- instruction data ---------------------------------------------------------------


@pytest.fixture(scope="module")
def rows():
    return list(data.load_dialogsum("train"))[:12]


def test_instruction_examples(rows):
    tasks = ("summary", "topic")
    examples = instruction_examples(rows, tasks=tasks, seed=3)
    assert examples == instruction_examples(rows, tasks=tasks, seed=3)
    assert examples != instruction_examples(rows, tasks=tasks, seed=4)
    assert len(examples) == len(rows) * len(tasks) and {e["task"] for e in examples} == set(tasks)
    for i, row in enumerate(rows):
        for j, task in enumerate(tasks):
            ex = examples[i * len(tasks) + j]
            assert ex["task"] == task and ex["target"] == row[task].strip()
            assert row["dialogue"].strip() in ex["source"]
            assert any(ex["source"] == t.format(dialogue=row["dialogue"].strip()) for t in TEMPLATES[task])
    with pytest.raises(ValueError, match="emotion"):
        instruction_examples(rows, tasks=("emotion",))


def test_tokenize_examples_respects_the_budget(rows, standin):
    _, tokenizer = standin
    examples = instruction_examples(rows, tasks=("summary", "topic"))
    pairs = tokenize_examples(tokenizer, examples, max_source_tokens=40, max_target_tokens=8)
    assert all(len(p["input_ids"]) <= 40 and len(p["labels"]) <= 8 for p in pairs)
    assert any(len(p["input_ids"]) == 40 for p in pairs), "some dialogue should have been cut"
    assert all(p["input_ids"][-1] == tokenizer.eos_token_id for p in pairs), "a cut source keeps its </s>"
    full = tokenize_examples(tokenizer, examples)
    assert all(len(p["input_ids"]) <= prompting.DEFAULT_CONTEXT for p in full)
    b = collate(pairs[:3], tokenizer.pad_token_id)
    lengths = [len(p["input_ids"]) for p in pairs[:3]]
    assert b["input_ids"].shape == (3, max(lengths)) and b["attention_mask"].sum(1).tolist() == lengths
    assert (b["labels"] == -100).sum() == sum(b["labels"].shape[1] - len(p["labels"]) for p in pairs[:3])
