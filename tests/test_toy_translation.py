"""The number-words -> digits toy task."""

import pytest

from course_lib.toy_translation import NumberTaskConfig, WordVocab, batches, collate, number_pairs, number_to_words


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (42, "forty two"), (100, "one hundred"),
    (305, "three hundred five"), (1000, "one thousand"), (1042, "one thousand forty two"),
    (90019, "ninety thousand nineteen"), (999999, "nine hundred ninety nine thousand nine hundred ninety nine"),
])
def test_number_to_words_known_spellings(n, words):
    assert number_to_words(n) == words


def test_pairs_are_disjoint_and_round_trip_through_the_vocab():
    cfg = NumberTaskConfig(max_number=999, n_train=300, n_test=50)
    data = number_pairs(cfg)
    assert not {t for _, t in data["train"]} & {t for _, t in data["test"]}
    vocab = WordVocab()
    words, digits = data["test"][0]
    assert vocab.decode(vocab.encode(words)) == words
    assert digits.replace(" ", "") == str(int(digits.replace(" ", "")))
    with pytest.raises(ValueError, match="do not fit"):
        number_pairs(NumberTaskConfig(max_number=10, n_train=10, n_test=5))
    with pytest.raises(ValueError, match="not in the number vocabulary"):
        vocab.encode("one zillion")


def test_collate_pads_inputs_and_masks_labels():
    vocab = WordVocab()
    batch = collate([("one", "1"), ("one thousand two", "1 0 0 2")], vocab)
    assert batch["input_ids"].shape == (2, 4) and batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch["labels"][0].tolist() == [vocab.stoi["1"], vocab.eos_id, -100, -100, -100]
    assert sum(len(b["input_ids"]) for b in batches([("one", "1")] * 10, vocab, batch_size=4)) == 10
