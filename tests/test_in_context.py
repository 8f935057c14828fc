"""The toy in-context experiment: prompts built as described, and an oracle that copies from the prompt."""

import pytest
import torch

from course_lib import in_context


@pytest.fixture
def task():
    return in_context.FactTask(in_context.InContextConfig(n_keys=8, n_values=4, max_shots=3))


def _examples(ids, task):
    """(a, b, v) triples of one prompt, PAD slots dropped."""
    body = ids[:-3].view(-1, 3)
    return [tuple(t) for t in body.tolist() if t[0] != task.pad]


def test_prompts_hold_the_facts_and_the_answer_where_asked(task):
    gen = torch.Generator().manual_seed(0)
    n = task.cfg.n_keys
    for shots in range(task.cfg.max_shots + 1):
        for inside in (True, False):
            ids, labels = task.prompts(50, shots, inside, gen)
            assert ids.shape == (50, task.seq_len)
            for row, lab in zip(ids, labels):
                a, b, v = row[-3:].tolist()
                assert v == task.facts[a, b - n].item(), "the answer is the table's value for the query"
                examples = _examples(row, task)
                assert len(examples) == shots
                assert all(ev == task.facts[ea, eb - n].item() for ea, eb, ev in examples), "examples are true facts"
                assert ((a, b, v) in examples) == (inside and shots > 0)
                assert lab[2::3][row[2::3] != task.pad].tolist() == row[2::3][row[2::3] != task.pad].tolist()
                assert (lab[0::3] == -100).all() and (lab[1::3] == -100).all(), "only value tokens carry a loss"


def test_a_copying_oracle_is_perfect_with_the_answer_and_at_chance_without(task):
    """What the prompts make possible, checked without any model: copy the value of a matching example."""
    gen = torch.Generator().manual_seed(1)
    for inside, expected in ((True, 1.0), (False, 0.0)):
        ids, _ = task.prompts(200, task.cfg.max_shots, inside, gen)
        hits = [next((ev for ea, eb, ev in _examples(r, task) if (ea, eb) == tuple(r[-3:-1].tolist())), None)
                == r[-1].item() for r in ids]
        assert sum(hits) / len(hits) == expected


def test_the_experiment_returns_one_row_per_width_and_setting():
    cfg = in_context.InContextConfig(n_keys=4, n_values=4, max_shots=2, widths=(4, 8), steps=3, eval_prompts=16)
    table = in_context.run_in_context_experiment(cfg, progress=False)
    assert len(table) == 2 * len(in_context.SETTINGS)
    assert set(table["setting"]) == set(in_context.SETTINGS)
    assert table["accuracy"].between(0, 1).all() and table.groupby("d_model")["parameters"].nunique().eq(1).all()
    assert list(in_context.in_context_help(table).index) == [4, 8]


def test_config_refuses_odd_widths():
    with pytest.raises(ValueError, match="widths"):
        in_context.InContextConfig(widths=(7,))
