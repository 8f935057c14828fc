"""ROUGE against rouge_score (and its published test cases), perplexity against HF losses."""

from __future__ import annotations

import math

import pytest
import torch
from rouge_score import rouge_scorer

from course_lib import evaluation as ev

KEYS = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


# Published cases from rouge_score's own test suite (rouge_scorer_test.py) and Lin (2004).
def test_published_rouge1_case():
    # testRouge1: target "testing one two", prediction "testing" -> P 1, R 1/3, F 1/2
    assert ev.rouge(["testing"], ["testing one two"])["rouge1"] == pytest.approx(0.5)


def test_published_multi_reference_case():
    # testRougeAllMulti: targets ["first text", "first something"], prediction "text first"
    s = ev.rouge(["text first"], [["first text", "first something"]])
    assert (s["rouge1"], s["rouge2"], s["rougeL"]) == pytest.approx((1.0, 0.0, 0.5))


def test_published_rouge_lsum_case():
    # testRougeLsum: target "w1 w2 w3 w4 w5", prediction two sentences -> F 0.5333
    s = ev.rouge(["w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5"], ["w1 w2 w3 w4 w5"])
    assert s["rougeLsum"] == pytest.approx(0.5333, abs=1e-3)


def test_lin_2004_rouge_l_example():
    # Lin (2004), section 3.1: reference "police killed the gunman"; S2 scores 3/4 and S3 2/4 without stemming.
    s = ev.rouge(["police kill the gunman", "the gunman kill police"], ["police killed the gunman"] * 2,
                 use_stemmer=False, per_example=True)
    assert s["rougeL"] == pytest.approx([0.75, 0.5])


@pytest.fixture(scope="module")
def dialogsum_test():
    from course_lib import data

    ds = data.load_dialogsum("test", test_view="dialogues")
    return [ds[i] for i in range(min(30, len(ds)))]


def test_rouge_equals_rouge_score_on_dialogsum(dialogsum_test):
    rows = dialogsum_test
    # Predictions: another dialogue's reference, so scores are neither 0 nor 1.
    predictions = [rows[(i + 1) % len(rows)]["summary"] for i in range(len(rows))]
    scorer = rouge_scorer.RougeScorer(KEYS, use_stemmer=True)
    single = ev.rouge(predictions, [r["references"][0] for r in rows])
    multi = ev.rouge(predictions, [r["references"] for r in rows])
    for k in KEYS:
        ref_single = sum(scorer.score(r["references"][0], p)[k].fmeasure for r, p in zip(rows, predictions)) / len(rows)
        ref_multi = sum(scorer.score_multi(r["references"], p)[k].fmeasure for r, p in zip(rows, predictions)) / len(rows)
        assert single[k] == pytest.approx(ref_single, abs=1e-12)
        assert multi[k] == pytest.approx(ref_multi, abs=1e-12)
        assert multi[k] >= single[k] - 1e-12


def test_rouge_rejects_bad_input():
    with pytest.raises(ValueError, match="one reference"):
        ev.rouge(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="not a single string"):
        ev.rouge("a b", ["a b"])
    with pytest.raises(ValueError, match="reference 0"):
        ev.rouge(["a"], [[]])


# --- perplexity ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = "the cat sat on mat a dog ran to park".split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


TEXTS = ["the cat sat on the mat", "a dog ran", "the dog ran to the park on a mat"]


def test_seq2seq_perplexity_equals_token_weighted_hf_loss(word_tokenizer):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=16, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4,
                                                decoder_start_token_id=0)).eval()
    sources = ["a cat", "the park", "a dog sat"]
    total, count = 0.0, 0
    with torch.no_grad():
        for src, tgt in zip(sources, TEXTS):
            labels = word_tokenizer(tgt, return_tensors="pt")["input_ids"]
            loss = model(**word_tokenizer(src, return_tensors="pt"), labels=labels).loss  # mean over the target
            total, count = total + float(loss) * labels.numel(), count + labels.numel()
    assert ev.perplexity(model, word_tokenizer, TEXTS, sources, batch_size=2) == pytest.approx(math.exp(total / count), rel=1e-5)


def test_causal_perplexity_equals_token_weighted_hf_loss(word_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=16, n_positions=32, n_embd=16, n_layer=1, n_head=2)).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for text in TEXTS:
            ids = word_tokenizer(text, return_tensors="pt")["input_ids"]
            loss = model(input_ids=ids, labels=ids).loss  # mean over the len - 1 predicted tokens
            total, count = total + float(loss) * (ids.numel() - 1), count + ids.numel() - 1
    assert ev.perplexity(model, word_tokenizer, TEXTS, batch_size=3) == pytest.approx(math.exp(total / count), rel=1e-5)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(word_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=16, n_positions=32, n_embd=16, n_layer=1, n_head=2)).eval()
    with torch.no_grad():
        model.lm_head.weight.zero_()  # every logit 0: a uniform guess over 16 tokens
    assert ev.perplexity(model, word_tokenizer, TEXTS) == pytest.approx(16.0, rel=1e-6)
    with pytest.raises(ValueError, match="sources"):
        ev.perplexity(_Seq2SeqStub(), word_tokenizer, TEXTS)


class _Seq2SeqStub(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"is_encoder_decoder": True})()


# --- the reading controls --------------------------------------------------------


def _rouge1_mean(preds, refs):
    """Independent reference: rouge_score directly, best of the references, mean F over examples."""
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    return sum(max(scorer.score(r, p)["rouge1"].fmeasure for r in rs) for p, rs in zip(preds, refs)) / len(preds)


def test_shuffled_references_never_keep_an_examples_own():
    refs = [[f"ref {i}"] for i in range(50)]
    for seed in range(5):
        shuffled = ev.shuffled_references(refs, seed)
        assert all(s != r for s, r in zip(shuffled, refs))
        assert sorted(map(tuple, shuffled)) == sorted(map(tuple, refs))  # a re-deal, nothing lost or repeated
    with pytest.raises(ValueError, match="at least 2"):
        ev.shuffled_references([["only one"]])


def test_summary_controls_separate_a_reader_from_a_generic_writer():
    dialogues = [f"#Person1#: I want to buy a {w}.\n#Person2#: Here is a {w}." for w in
                 ("bicycle", "piano", "ticket", "sandwich", "laptop", "umbrella")]
    refs = [[f"#Person1# buys a {w} from #Person2#."] for w in ("bicycle", "piano", "ticket", "sandwich", "laptop", "umbrella")]
    reader = [f"#Person1# buys a {w}." for w in ("bicycle", "piano", "ticket", "sandwich", "laptop", "umbrella")]
    generic = ["#Person1# buys a book from #Person2#."] * len(dialogues)
    wrong = [reader[(i + 1) % 6] for i in range(6)]  # different per dialogue, but another dialogue's summary
    r, g, w = (ev.summary_controls(p, dialogues, refs) for p in (reader, generic, wrong))
    assert math.isclose(r["matched"]["rouge1"], _rouge1_mean(reader, refs), abs_tol=1e-9)
    assert math.isclose(r["shuffled"]["rouge1"], _rouge1_mean(reader, ev.shuffled_references(refs)), abs_tol=1e-9)
    assert r["reading_gain"] > 0.1
    assert abs(g["reading_gain"]) < 1e-9 and g["distinct"] == 1 / 6
    assert w["distinct"] == 1.0 and w["reading_gain"] < 0.05  # distinct but wrong summaries do not pass as reading
    assert math.isclose(r["first_turn"]["rouge1"], _rouge1_mean([ev.first_turn(d) for d in dialogues], refs), abs_tol=1e-9)
    with pytest.raises(ValueError, match="one of each"):
        ev.summary_controls(reader[:3], dialogues, refs)


def test_repeated_ngrams_counts_loops():
    loop = "the cat sat on the mat and the cat sat on the mat and the cat sat"
    r = ev.repeated_ngrams(loop, 3)
    words = loop.split()
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    assert r["ngrams"] == len(grams) and r["repeats"] == len(grams) - len(set(grams))
    assert r["most_repeated"] == "the cat sat" and r["most_repeated_count"] == 3
    assert ev.repeated_ngrams("a b c d e", 2)["repeats"] == 0 and ev.repeated_ngrams("", 3)["share"] == 0.0
