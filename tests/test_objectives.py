"""course_lib.objectives: statistics, invariants and edge cases of MLM, causal LM and T5 span corruption."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from course_lib import objectives as obj
from course_lib.objectives import IGNORE, Vocab

SPECIAL = (0, 1, 2, 3)  # pad, mask, eos, cls in the synthetic vocabulary below
V = Vocab(size=1000, pad_id=0, mask_id=1, eos_id=2, special_ids=SPECIAL)


def _bert_tokenizer():
    from transformers import AutoTokenizer

    from course_lib.standins import packaged_minilm_dir

    return AutoTokenizer.from_pretrained(packaged_minilm_dir())


def _t5_tokenizer():
    """transformers' T5Tokenizer over a word-piece list, laid out like t5-small's: sentinels last, <extra_id_0> on top.

    (Given a vocab without them, transformers 5 appends <extra_id_0..99> bottom-up, unlike T5's own files.)
    """
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("\u2581" + w, -1.0) for w in "Thank you for inviting me to your party last week".split()] + [(".", -2.0)]
    pieces += [(f"<extra_id_{k}>", 0.0) for k in reversed(range(100))]
    return T5Tokenizer(vocab=pieces, extra_ids=100)


def _course_tokenizer():
    from course_lib.tokenization import train_bpe

    return train_bpe("the cat sat on the mat. the dog sat on the log. " * 30, 300, ["<pad>", "<mask>", "</s>"])


# ----------------------------------------------------------------------------- masked LM


def _sample_ids(rows=200, cols=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, V.size, (rows, cols), generator=g)
    ids[:, 0] = 3  # a [CLS]-like special token at the start of every row
    ids[:, -10:] = 0  # padding at the end
    attention = (ids != 0).long()
    return ids, attention


@pytest.mark.parametrize("p, mask_rate, random_rate", [(0.15, 0.8, 0.1), (0.3, 0.5, 0.25), (0.5, 0.0, 1.0)])
def test_mlm_rates_match_their_parameters(p, mask_rate, random_rate):
    ids, attention = _sample_ids()
    corrupted, labels = obj.mask_tokens(ids, V, p, mask_rate, random_rate, attention, torch.Generator().manual_seed(1))
    maskable = attention.bool() & ~torch.isin(ids, torch.tensor(SPECIAL))
    selected = labels != IGNORE
    n, k = int(maskable.sum()), int(selected.sum())
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(k / n - p) < 5 * sd, (k / n, p)
    as_mask = (corrupted[selected] == V.mask_id).float().mean().item()
    changed = ((corrupted[selected] != ids[selected]) & (corrupted[selected] != V.mask_id)).float().mean().item()
    pool = V.size - len(SPECIAL)
    sd = 5 * math.sqrt(0.25 / k)
    assert abs(as_mask - mask_rate) < sd
    assert abs(changed - random_rate * (1 - 1 / pool)) < sd  # a random pick can land on the original token
    # invariants: labels are the originals; everything not selected is untouched; specials and padding never selected
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(corrupted[~selected], ids[~selected])
    assert not (selected & ~maskable).any()
    assert not torch.isin(corrupted[selected & (corrupted != V.mask_id)], torch.tensor(SPECIAL)).any()


def test_mlm_agrees_with_hugging_face_collator_statistics():
    from transformers import DataCollatorForLanguageModeling

    tok = _bert_tokenizer()
    texts = ["#Person1#: Could you help me carry these boxes upstairs? #Person2#: Sure, give me a minute."] * 300
    enc = tok(texts, padding=True, return_tensors="pt")
    vocab = obj.vocab_for(tok)
    ours, labels = obj.mask_tokens(enc["input_ids"], vocab, attention_mask=enc["attention_mask"], generator=torch.Generator().manual_seed(0))
    hf = DataCollatorForLanguageModeling(tok, mlm_probability=0.15, seed=0, return_tensors="pt")(
        [{"input_ids": row} for row in enc["input_ids"].tolist()])

    def rates(corrupted, lab):
        sel = lab != IGNORE
        return sel.float().mean().item(), (corrupted[sel] == tok.mask_token_id).float().mean().item()

    (sel_ours, mask_ours), (sel_hf, mask_hf) = rates(ours, labels), rates(hf["input_ids"], hf["labels"])
    assert abs(sel_ours - sel_hf) < 0.01 and abs(mask_ours - mask_hf) < 0.03
    specials = torch.isin(enc["input_ids"], torch.tensor(tok.all_special_ids))
    assert (labels[specials] == IGNORE).all()  # [CLS], [SEP], [PAD] never selected, as in HF


def test_mlm_edge_cases_and_bad_rates():
    only_special = torch.tensor([[3, 0, 0], [3, 2, 0]])
    corrupted, labels = obj.mask_tokens(only_special, V, mlm_probability=1.0)
    assert torch.equal(corrupted, only_special) and (labels == IGNORE).all()
    one = torch.tensor([[7]])
    corrupted, labels = obj.mask_tokens(one, V, mlm_probability=1.0, mask_rate=1.0, random_rate=0.0)
    assert corrupted.tolist() == [[1]] and labels.tolist() == [[7]]
    for bad in (dict(mlm_probability=-0.1), dict(mask_rate=1.5), dict(mask_rate=0.8, random_rate=0.3)):
        with pytest.raises(ValueError, match="rate|probability|<= 1"):
            obj.mask_tokens(one, V, **bad)
    with pytest.raises(ValueError, match="no mask token"):
        obj.mask_tokens(one, Vocab(10, 0, None, 2, (0, 2)))


def test_mlm_with_the_course_tokenizer():
    tok = _course_tokenizer()
    vocab = obj.vocab_for(tok)
    assert vocab.mask_id == tok.special_ids["<mask>"] and vocab.pad_id == tok.special_ids["<pad>"]
    ids = torch.tensor([tok.encode("the cat sat on the mat. the dog sat on the log.") * 20])
    corrupted, labels = obj.mask_tokens(ids, vocab, generator=torch.Generator().manual_seed(0))
    sel = labels != IGNORE
    assert 0.05 < sel.float().mean() < 0.3 and (corrupted[sel] == vocab.mask_id).any()


# ----------------------------------------------------------------------------- causal LM


def test_next_token_targets_and_padding():
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    attention = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    inputs, targets = obj.next_token_targets(ids, attention)
    assert inputs.tolist() == [[5, 6, 7], [9, 10, 0]]
    assert targets.tolist() == [[6, 7, 8], [10, IGNORE, IGNORE]]
    # GPT-2 pads with its end-of-text token: attention_mask decides, not the id
    eos_pad = torch.tensor([[50256, 11, 50256, 50256]])
    labels = obj.causal_lm_labels(eos_pad, torch.tensor([[1, 1, 0, 0]]))
    assert labels.tolist() == [[50256, 11, IGNORE, IGNORE]]
    with pytest.raises(ValueError, match="seq_len >= 2"):
        obj.next_token_targets(torch.tensor([[4]]))


def test_clm_labels_give_the_hand_written_next_token_loss_in_course_and_hf_models():
    from transformers import GPT2Config, GPT2LMHeadModel

    from course_lib.model import DecoderOnlyLM, TransformerConfig

    torch.manual_seed(0)
    ids = torch.randint(3, 50, (3, 9))
    ids[1, 6:] = 0
    attention = (ids != 0).long()
    batch = obj.clm_batch(ids, attention)
    inputs, targets = obj.next_token_targets(ids, attention)
    models = [DecoderOnlyLM(TransformerConfig(vocab_size=50, d_model=16, n_head=2, n_layer=1, max_seq_len=16)),
              GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2))]
    for model in models:
        model.eval()
        out = model(**batch)
        logits, loss = (out[0], out[1]) if isinstance(out, tuple) else (out.logits, out.loss)
        manual = F.cross_entropy(logits[:, :-1].reshape(-1, 50), targets.reshape(-1), ignore_index=IGNORE)
        torch.testing.assert_close(loss, manual)
        assert inputs.shape == targets.shape == (3, 8)


# ----------------------------------------------------------------------------- span corruption


WORDS = "Thank you for inviting me to your party last week .".split()
WORD_VOCAB = Vocab(size=len(WORDS) + 5, pad_id=len(WORDS), mask_id=None, eos_id=len(WORDS) + 1,
                   special_ids=(len(WORDS), len(WORDS) + 1), sentinel_ids=(len(WORDS) + 4, len(WORDS) + 3, len(WORDS) + 2))


def _spell(ids):
    names = {WORD_VOCAB.eos_id: "</s>", **{s: f"<{'XYZ'[k]}>" for k, s in enumerate(WORD_VOCAB.sentinel_ids)}}
    return " ".join(names.get(i, WORDS[i] if i < len(WORDS) else "?") for i in ids)


def test_span_corruption_reproduces_the_t5_paper_figure():
    # Raffel et al. (2020), Figure 2: "for inviting" and "last" are dropped
    mask = torch.tensor([w in {"for", "inviting", "last"} for w in WORDS])
    inputs, targets = obj.corrupt_spans(range(len(WORDS)), mask, WORD_VOCAB)
    assert _spell(inputs) == "Thank you <X> me to your party <Y> week . </s>"
    assert _spell(targets) == "<X> for inviting <Y> last <Z> </s>"
    # T5's own masks end with a noise span: then no closing sentinel, and the lengths are random_spans_helper's
    mask = torch.tensor([w in {"for", "inviting", "week", "."} for w in WORDS])
    inputs, targets = obj.corrupt_spans(range(len(WORDS)), mask, WORD_VOCAB)
    assert _spell(targets) == "<X> for inviting <Y> week . </s>"
    assert obj.fill_sentinels(inputs, targets, WORD_VOCAB) == list(range(len(WORDS)))


def test_span_corruption_lengths_published_values_and_real_outputs():
    assert obj.span_corruption_lengths(512) == (568, 114)  # T5's pretraining setting (inputs 512, targets 114)
    vocab = Vocab(size=10_000, pad_id=0, mask_id=None, eos_id=1, special_ids=(0, 1), sentinel_ids=tuple(range(9999, 9899, -1)))
    g = torch.Generator().manual_seed(0)
    for inputs_length in [10, 11, 17, 32, 64, 100, 128, 200]:
        raw, targets_length = obj.span_corruption_lengths(inputs_length)
        inputs, targets = obj.span_corrupt(list(range(2, raw + 2)), vocab, generator=g)
        assert (len(inputs), len(targets)) == (inputs_length, targets_length), inputs_length
        longer, _ = obj.span_corrupt(list(range(2, raw + 3)), vocab, generator=g)
        assert len(longer) > inputs_length  # raw_length is the longest text that fits


def _segment_length_pmf(n: int, k: int, j: int) -> float:
    """P(one part = j) when n is split into k positive parts uniformly at random (stars and bars)."""
    return math.comb(n - j - 1, k - 2) / math.comb(n - 1, k - 1)


def test_span_statistics_and_invariants():
    vocab = Vocab(size=5000, pad_id=0, mask_id=None, eos_id=1, special_ids=(0, 1), sentinel_ids=tuple(range(4999, 4899, -1)))
    g = torch.Generator().manual_seed(0)
    length, runs = 100, 400
    num_noise, num_spans = round(length * 0.15), round(round(length * 0.15) / 3)
    span_lengths = Counter()
    for _ in range(runs):
        text = (torch.randperm(4000, generator=g)[:length] + 2).tolist()  # distinct ids: "exactly once" is checkable
        mask = obj.random_spans_noise_mask(length, generator=g)
        inputs, targets = obj.corrupt_spans(text, mask, vocab)
        assert int(mask.sum()) == num_noise and not mask[0] and mask[-1]
        marks = {*vocab.special_ids, *vocab.sentinel_ids}
        plain_in = [t for t in inputs if t not in marks]
        plain_tgt = [t for t in targets if t not in marks]
        assert sorted(plain_in + plain_tgt) == sorted(text)  # every token exactly once in input or target
        assert plain_tgt == [t for t, m in zip(text, mask.tolist()) if m]
        assert inputs[-1] == targets[-1] == vocab.eos_id
        assert [t for t in inputs if t in vocab.sentinel_ids] == list(vocab.sentinel_ids[:num_spans])
        # reassemble independently: replace each sentinel in the input by what follows it in the target
        spans, current = {}, None
        for t in targets[:-1]:
            if t in vocab.sentinel_ids:
                current = t
                spans[t] = []
            else:
                spans[current].append(t)
        rebuilt = [x for t in inputs[:-1] for x in (spans[t] if t in spans else [t])]
        assert rebuilt == text
        edges = torch.diff(torch.cat([torch.tensor([0]), mask.int(), torch.tensor([0])]))
        span_lengths.update((torch.nonzero(edges == -1) - torch.nonzero(edges == 1)).flatten().tolist())
    total = sum(span_lengths.values())
    assert total == runs * num_spans
    for j in range(1, 6):  # empirical span-length distribution vs the stars-and-bars law
        expected = _segment_length_pmf(num_noise, num_spans, j)
        assert abs(span_lengths[j] / total - expected) < 5 * math.sqrt(expected * (1 - expected) / total) + 1e-3, j


def test_span_corruption_with_hugging_face_t5_and_course_tokenizers():
    t5 = _t5_tokenizer()
    vocab = obj.vocab_for(t5)
    assert vocab.sentinel_ids[0] == t5.convert_tokens_to_ids("<extra_id_0>") == len(t5) - 1  # top of the vocabulary
    assert vocab.sentinel_ids[1] == len(t5) - 2 and vocab.eos_id == t5.eos_token_id
    ids = t5("Thank you for inviting me to your party last week.", add_special_tokens=False)["input_ids"]
    inputs, targets = obj.span_corrupt(ids, vocab, noise_density=0.3, mean_noise_span_length=2, generator=torch.Generator().manual_seed(0))
    assert "<extra_id_0>" in t5.decode(inputs) and t5.decode(targets).startswith("<extra_id_0>")
    assert obj.fill_sentinels(inputs, targets, vocab) == ids

    bpe = _course_tokenizer()
    vocab = obj.vocab_for(bpe, n_sentinels=8)
    assert vocab.size == len(bpe) + 8 and vocab.sentinel_ids[0] == vocab.size - 1 and vocab.sentinel_ids[7] == len(bpe)
    texts = [bpe.encode("the cat sat on the mat. the dog sat on the log.")] * 3
    batch = obj.span_corruption_batch(texts, vocab, generator=torch.Generator().manual_seed(0))
    assert batch["input_ids"].shape[0] == 3 and (batch["input_ids"] < vocab.size).all()
    for row_in, row_lab in zip(batch["input_ids"].tolist(), batch["labels"].tolist()):
        assert obj.fill_sentinels(row_in, [t for t in row_lab if t != IGNORE], vocab) == texts[0]


def test_span_corruption_bad_input():
    vocab = Vocab(size=100, pad_id=0, mask_id=None, eos_id=1, special_ids=(0, 1), sentinel_ids=(99, 98))
    with pytest.raises(ValueError, match="noise_density"):
        obj.span_corruption_lengths(512, noise_density=1.0)
    with pytest.raises(ValueError, match="noise_density"):
        obj.span_corrupt([5, 6, 7], vocab, noise_density=-0.1)
    with pytest.raises(ValueError, match="mean_noise_span_length"):
        obj.span_corruption_lengths(512, mean_noise_span_length=0.5)
    with pytest.raises(ValueError, match="too short.*>= 10"):
        obj.span_corruption_lengths(5)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        obj.span_corrupt([5], vocab)
    assert obj.span_corrupt([5, 6], vocab) == ([5, 99, 1], [99, 6, 1])  # the shortest text: keep one, drop one
    with pytest.raises(ValueError, match="n_sentinels"):
        obj.span_corrupt(list(range(2, 90)), vocab, noise_density=0.3, mean_noise_span_length=1.0)
    with pytest.raises(ValueError, match="contains sentinel"):
        obj.span_corrupt([5, 99, 7, 8], vocab)


def test_pack_and_pad():
    rows = obj.pack(list(range(10)), 4)
    assert rows.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    ids, attention = obj.pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and attention.tolist() == [[1, 1, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="fewer than one row"):
        obj.pack([1, 2], 4)


def test_token_strings_spells_sentinels_masks_and_ignored_labels():
    bpe = _course_tokenizer()
    vocab = obj.vocab_for(bpe, n_sentinels=2)
    ids = bpe.encode("the cat<mask>") + [vocab.sentinel_ids[0], vocab.sentinel_ids[1], IGNORE]
    assert obj.token_strings(ids, bpe, vocab)[-3:] == ["<extra_id_0>", "<extra_id_1>", "·"]
    assert "".join(obj.token_strings(ids[:-3], bpe, vocab)) == "the cat<mask>"
    t5 = _t5_tokenizer()
    assert obj.token_strings([len(t5) - 1, 1], t5, obj.vocab_for(t5)) == ["<extra_id_0>", "</s>"]
