"""Prompt builders (exact strings) and context-window budgeting."""

from __future__ import annotations

import re
import warnings

import pytest

from course_lib import prompting as pr

D1 = "#Person1#: Hi, Tom.\n#Person2#: Hello!"
S1 = "#Person1# greets Tom."
D2 = "#Person1#: Lunch?\n#Person2#: Sure."
S2 = "They agree to have lunch."
D3 = "#Person1#: Where is the bank?\n#Person2#: By the river."


def test_zero_shot_builders_exact_strings():
    assert pr.bare_prompt(D3) == D3
    assert pr.instruction_prompt(D3) == (
        "Summarize the following conversation.\n\n"
        "#Person1#: Where is the bank?\n#Person2#: By the river.\n\n"
        "Summary:"
    )
    assert pr.flan_prompt(D3) == (
        "Dialogue:\n\n"
        "#Person1#: Where is the bank?\n#Person2#: By the river.\n\n"
        "What was going on?"
    )


def test_one_and_few_shot_exact_strings():
    one = (
        "Dialogue:\n\n#Person1#: Hi, Tom.\n#Person2#: Hello!\n\nWhat was going on?\n#Person1# greets Tom.\n\n\n"
        "Dialogue:\n\n#Person1#: Where is the bank?\n#Person2#: By the river.\n\nWhat was going on?"
    )
    assert pr.few_shot_prompt([(D1, S1)], D3) == one
    assert pr.build_prompt("one_shot", D3, [(D1, S1), (D2, S2)]) == one
    two = pr.few_shot_prompt([(D1, S1), (D2, S2)], D3)
    assert two == (
        "Dialogue:\n\n#Person1#: Hi, Tom.\n#Person2#: Hello!\n\nWhat was going on?\n#Person1# greets Tom.\n\n\n"
        "Dialogue:\n\n#Person1#: Lunch?\n#Person2#: Sure.\n\nWhat was going on?\nThey agree to have lunch.\n\n\n"
        "Dialogue:\n\n#Person1#: Where is the bank?\n#Person2#: By the river.\n\nWhat was going on?"
    )
    assert pr.build_prompt("few_shot", D3, [(D1, S1), (D2, S2)]) == two
    assert pr.few_shot_prompt([], D3) == pr.flan_prompt(D3)


def test_builders_reject_bad_input():
    with pytest.raises(ValueError, match="dialogue"):
        pr.instruction_prompt("  ")
    with pytest.raises(ValueError, match="strategy"):
        pr.build_prompt("two_shot", D3)
    with pytest.raises(ValueError, match="at least one"):
        pr.build_prompt("few_shot", D3, [])
    with pytest.raises(ValueError, match="pair"):
        pr.few_shot_prompt([D1], D3)


def test_shots_from_uses_the_given_rows():
    rows = [{"dialogue": f"d{i}", "summary": f"s{i}"} for i in range(5)]
    assert pr.shots_from(rows, [4, 1]) == [("d4", "s4"), ("d1", "s1")]
    with pytest.raises(IndexError, match="outside"):
        pr.shots_from(rows, [5])


# --- budgeting, with a tokenizer whose counts we can predict by hand -----------------


def word_regex_count(text: str) -> int:
    """What the test tokenizer produces: words and runs of punctuation (HF Whitespace pre-tokenizer), plus </s>."""
    return len(re.findall(r"\w+|[^\w\s]+", text)) + 1


@pytest.fixture(scope="module")
def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = set(re.findall(r"\w+|[^\w\s]+", " ".join([D1, S1, D2, S2, D3, pr.INSTRUCTION, pr.FLAN_QUESTION, "Dialogue: Summary:"])))
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(sorted(words))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=512)


def test_count_tokens_matches_hand_count(word_tokenizer):
    for prompt in [pr.instruction_prompt(D3), pr.few_shot_prompt([(D1, S1), (D2, S2)], D3)]:
        assert pr.count_tokens(prompt, word_tokenizer) == word_regex_count(prompt)


def test_check_budget_warns_only_on_overflow(word_tokenizer):
    prompt = pr.few_shot_prompt([(D1, S1), (D2, S2)], D3)
    n = word_regex_count(prompt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = pr.check_budget(prompt, word_tokenizer)  # limit from model_max_length = 512
    assert (b.n_tokens, b.limit, b.fits, b.overflow) == (n, 512, True, 0)
    with pytest.warns(pr.ContextWindowWarning, match=f"{n} tokens"):
        b = pr.check_budget(prompt, word_tokenizer, limit=n - 7)
    assert not b.fits and b.overflow == 7


def test_max_shots_is_the_largest_that_fits(word_tokenizer):
    shots = [(D1, S1), (D2, S2), (D1, S2), (D2, S1)]
    sizes = [word_regex_count(pr.few_shot_prompt(shots[:n], D3)) for n in range(len(shots) + 1)]
    for limit in [sizes[0] - 1, sizes[0], sizes[1] - 1, sizes[2], sizes[3] + 1, sizes[4], 10_000]:
        expected = max([n for n in range(len(shots) + 1) if sizes[n] <= limit], default=0)
        assert pr.max_shots(shots, D3, word_tokenizer, limit) == expected, limit


def test_fit_shots_drops_shots_with_a_warning(word_tokenizer):
    shots = [(D1, S1), (D2, S2), (D1, S2)]
    limit = word_regex_count(pr.few_shot_prompt(shots[:2], D3))
    with pytest.warns(pr.ContextWindowWarning, match="Only 2 of 3"):
        prompt, n = pr.fit_shots(shots, D3, word_tokenizer, limit)
    assert n == 2 and prompt == pr.few_shot_prompt(shots[:2], D3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pr.fit_shots(shots, D3, word_tokenizer, 10_000)[1] == 3


def test_context_limit_ignores_unset_sentinel():
    class Tok:
        model_max_length = int(1e30)

    assert pr.context_limit(Tok()) == 512
