"""course_lib.scaling.isoflop: parameter and FLOP counts against torch, and a tiny real IsoFLOP run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from course_lib.model import TransformerConfig, count_parameters
from course_lib.scaling import isoflop as sx

CFG = sx.IsoFLOPConfig(budgets=(1e7,), shapes=((1, 8), (1, 16), (2, 16)), seq_len=16)


@pytest.mark.parametrize("shape", [(1, 8), (2, 16), (3, 32)])
def test_non_embedding_params_follow_kaplans_count(shape):
    n_layer, d = shape
    model = sx.build_decoder(n_layer, d, CFG)
    n = sx.non_embedding_params(model)
    # Kaplan's 12 n_layer d^2 weight matrices + biases and LayerNorms (13 d per layer, 2 d final norm).
    assert n == 12 * n_layer * d * d + 13 * n_layer * d + 2 * d
    # The model's own formula minus the token and position tables gives the same count.
    config = TransformerConfig(vocab_size=256, d_model=d, n_head=d // 8, n_layer=n_layer, max_seq_len=CFG.seq_len)
    assert n == count_parameters(config, "decoder-only") - 256 * d - CFG.seq_len * d


@pytest.mark.parametrize("shape", [(1, 8), (2, 32)])
def test_forward_flops_match_torch_flop_counter(shape):
    n_layer, d = shape
    model = sx.build_decoder(n_layer, d, CFG)
    n = sx.non_embedding_params(model)
    x = torch.randint(0, 256, (2, CFG.seq_len))
    with FlopCounterMode(display=False) as counter:
        model(x)
    per_token = counter.get_total_flops() / x.numel()
    # torch counts the matrix products: 2 x (12 n_layer d^2) for the layers, 2 d V for the output head.
    # Our formula adds the attention-over-context term and the small bias/norm terms, which torch leaves out.
    ours = sx.full_forward_flops_per_token(n, n_layer, d, CFG.seq_len)
    assert per_token == 2 * 12 * n_layer * d * d + 2 * d * 256
    assert ours - per_token == 2 * (n - 12 * n_layer * d * d) + 2 * n_layer * CFG.seq_len * d


def _text(n_bytes: int, seed: int) -> torch.Tensor:
    """A learnable byte stream: repeated words, shuffled."""
    rng = np.random.default_rng(seed)
    words = ["hello ", "how are you ", "fine thanks ", "see you ", "#Person1#: ", "#Person2#: ", "\n"]
    text = "".join(rng.choice(words, size=n_bytes // 4))
    return torch.tensor(list(text.encode()[:n_bytes]), dtype=torch.long)


def test_tiny_isoflop_run_spends_each_budget_and_learns():
    cfg = sx.IsoFLOPConfig(budgets=(4e7, 8e7), shapes=((1, 8), (1, 16), (2, 16)), seq_len=16, batch_size=4,
                           min_steps=3, eval_batches=2, lr=1e-2)
    runs = sx.run_isoflop(cfg, _text(20000, 0), _text(2000, 1))
    assert len(runs) == 6
    for _, r in runs.iterrows():
        assert abs(r.flops / r.budget - 1) <= 0.5 / (r.steps - 0.5)  # spent to within one step
        assert r.n_tokens == r.steps * cfg.batch_size * cfg.seq_len
    assert (runs.loss < math.log(256)).all()  # better than a uniform guess over bytes
    # The same config and seed give the same numbers (the course's determinism on CPU).
    again = sx.run_isoflop(cfg, _text(20000, 0), _text(2000, 1))
    np.testing.assert_allclose(again.loss, runs.loss, rtol=1e-6)
    assert set(sx.steps_per_run(cfg).values()) == set(runs.steps)


def test_isoflop_optima_use_the_parabola_only_for_a_real_minimum():
    n = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    u_shaped = 2.0 + 0.1 * (np.log(n) - np.log(8e3)) ** 2
    runs = pd.DataFrame({"budget": [1e9] * 5 + [1e10] * 5, "n_params": np.r_[n, n],
                         "n_tokens": np.r_[1e9 / (6 * n), 1e10 / (6 * n)], "loss": np.r_[u_shaped, 3.0 - np.log(n) / 10]})
    opt = sx.isoflop_optima(runs).set_index("budget")
    assert opt.loc[1e9, "method"] == "parabola" and opt.loc[1e9, "n_opt"] == pytest.approx(8e3)
    assert opt.loc[1e10, "method"].startswith("best run") and opt.loc[1e10, "n_opt"] == 1e5


@pytest.mark.parametrize("kwargs, match", [
    (dict(budgets=(0,)), "budgets"),
    (dict(budgets=()), "budgets"),
    (dict(shapes=((1, 8), (1, 16))), "at least 3"),
    (dict(shapes=((1, 8), (1, 12), (1, 16))), "multiple of"),
    (dict(compute="4N"), "compute"),
])
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sx.IsoFLOPConfig(**kwargs)


def test_budget_too_small_for_a_size_raises():
    cfg = sx.IsoFLOPConfig(budgets=(1e5,), shapes=((1, 8), (1, 16), (2, 16)), seq_len=16, eval_batches=2)
    with pytest.raises(ValueError, match="min_steps"):
        sx.run_isoflop(cfg, _text(5000, 0), _text(5000, 1))


def test_plan_for_data_caps_passes_and_keeps_three_sizes_on_a_small_text():
    cfg, notes = sx.plan_for_data(sx.LAB_CONFIG, train_bytes=25_437, eval_bytes=5_981, max_passes=4)
    worst = max(b / sx.training_flops_per_token(*s, cfg)[1] / 25_437 for b in cfg.budgets for s in cfg.shapes)
    assert worst <= 4.0
    ratios = [b / cfg.budgets[0] for b in cfg.budgets]
    assert ratios == pytest.approx([1, 3, 10], rel=0.02)  # the budgets keep their spacing
    assert len(cfg.shapes) >= 3 and min(sx.steps_per_run(cfg).values()) >= cfg.min_steps
    assert cfg.eval_batches * cfg.batch_size * cfg.seq_len <= 5_981
    assert any("passes" in n for n in notes) and any("dropped" in n for n in notes)


def test_plan_for_data_leaves_a_big_enough_text_alone():
    cfg, notes = sx.plan_for_data(sx.LAB_CONFIG, train_bytes=9_000_000, eval_bytes=700_000)
    assert cfg == sx.LAB_CONFIG and notes == []


def test_plan_for_data_refuses_a_text_too_small_for_any_experiment():
    with pytest.raises(ValueError, match="too few"):
        sx.plan_for_data(sx.LAB_CONFIG, train_bytes=200, eval_bytes=5_000)


def test_a_small_held_out_text_shrinks_the_evaluation_instead_of_crashing(capsys):
    cfg = sx.SMOKE_CONFIG
    train = torch.randint(0, 256, (20_000,))
    held_out = torch.randint(0, 256, (cfg.seq_len * cfg.batch_size + 5,))  # one batch and a bit
    runs = sx.run_isoflop(cfg, train, held_out)
    assert len(runs) == len(cfg.budgets) * len(cfg.shapes)
    assert "evaluating on 1 batch" in capsys.readouterr().out
