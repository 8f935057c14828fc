"""The offline FLAN-T5 stand-in: the shipped build (loads in seconds, card read from what was built) and the
recipe that made it (a smoke build, resumable, deterministic batches)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time

import pytest
import torch

from course_lib import data, model_cards, objectives
from course_lib.standins import t5 as t5_standin


@pytest.fixture(scope="module")
def shipped():
    start = time.perf_counter()
    model, tokenizer, card = t5_standin.load()
    return model, tokenizer, card, time.perf_counter() - start


def test_shipped_standin_loads_in_seconds_from_an_empty_cache(tmp_path):
    # A fresh process with an empty course cache: the stand-in comes from the package, nothing is trained.
    code = ("import time; t=time.perf_counter(); from course_lib import hub; "
            "m, tok = hub.load_model_and_tokenizer('google/flan-t5-base'); "
            "s = hub.last_served(); print(round(time.perf_counter()-t, 2), s.kind, s.served)")
    env = {**os.environ, "COURSE_CACHE": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seconds, kind = out.stdout.strip().splitlines()[-1].split()[:2]
    assert kind == "stand-in"
    assert float(seconds) < 30, f"loading the shipped stand-in took {seconds} s"
    assert not any((tmp_path / "empty").rglob("*.safetensors")), "the load wrote a model into the cache"


def test_shipped_files_are_small_and_licensed():
    files = {p.name: p.stat().st_size for p in t5_standin.SHIPPED_DIR.iterdir()}
    assert {"model.safetensors", "tokenizer.json", "card.json", "README.md", "LICENSE.md"} <= set(files)
    assert sum(files.values()) < 30 * 2**20
    license_text = (t5_standin.SHIPPED_DIR / "LICENSE.md").read_text()
    assert "CC BY-NC-SA 4.0" in license_text and "DialogSum" in license_text


def test_shipped_standin_is_a_hf_t5_with_t5_special_tokens(shipped):
    from transformers import PreTrainedTokenizerBase, T5ForConditionalGeneration

    model, tokenizer, card, _ = shipped
    assert isinstance(model, T5ForConditionalGeneration) and isinstance(tokenizer, PreTrainedTokenizerBase)
    assert next(model.parameters()).dtype == torch.float32
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    sentinels = tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(t5_standin.N_SENTINELS)])
    assert len(set(sentinels)) == t5_standin.N_SENTINELS and tokenizer.unk_token_id not in sentinels
    # numbered from the top of the vocabulary down, as in T5's own files: <extra_id_0> is the last id
    assert sentinels == list(range(len(tokenizer) - 1, len(tokenizer) - 1 - t5_standin.N_SENTINELS, -1))
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.config.decoder_start_token_id == tokenizer.pad_token_id
    assert "NOT FLAN-T5" in card.note and card.name.startswith("course-t5-dialogsum-standin")


def test_card_figures_are_those_of_the_model_that_loaded(shipped):
    model, tokenizer, card, _ = shipped
    m = card.metrics
    assert m["parameters"] == sum(p.numel() for p in model.parameters())
    assert m["vocab_size"] == len(tokenizer)
    tied = model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert m["tied_output_layer"] == tied
    assert f"{m['parameters']:,}" in card.readme and f"{m['vocab_size']:,}" in card.readme
    sections = model_cards.card_sections(card.readme)
    assert all(sections.values()), f"missing sections: {[s for s, h in sections.items() if not h]}"
    assert m["final_loss"] < m["first_loss"]


def test_tokenizer_round_trips_text_like_t5(shipped):
    _, tokenizer, _, _ = shipped
    text = "#Person1#: Hello,  how are you?\n#Person2#: Fine, thanks."
    ids = tokenizer(text)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id  # T5 appends </s> to every input
    assert tokenizer.decode(ids, skip_special_tokens=True).split() == text.split()  # whitespace runs collapse, as in T5
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") in tokenizer("The <extra_id_0> sat.")["input_ids"]


def test_hub_serves_the_shipped_standin_for_flan_t5_offline():
    from course_lib import hub

    model, tokenizer = hub.load_model_and_tokenizer("google/flan-t5-base")
    record = hub.last_served("model")
    assert record.kind == "stand-in" and not record.is_real and "NOT FLAN-T5" in record.note
    assert model.config.vocab_size == len(tokenizer)


# --- the recipe -------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_build(tmp_path_factory):
    rows = list(data.load_dialogsum("train", source="sample"))
    test = list(data.load_dialogsum("test", source="sample", test_view="dialogues"))
    root = tmp_path_factory.mktemp("standin")
    card = t5_standin.build(rows, root / "out", t5_standin.SMOKE_CONFIG, work_dir=root / "work", eval_rows=test,
                            data_source="embedded sample", verbose=False)
    return root, rows, test, card


def test_smoke_recipe_builds_a_loadable_model_with_a_true_card(smoke_build):
    root, rows, _, card = smoke_build
    model, tokenizer, loaded = t5_standin.load(root / "out")
    assert loaded.metrics == json.loads(json.dumps(card.metrics))
    assert card.metrics["parameters"] == sum(p.numel() for p in model.parameters())
    assert card.metrics["train_dialogues"] == min(t5_standin.SMOKE_CONFIG.n_dialogues, len(rows))
    assert abs(card.metrics["first_loss"] - math.log(len(tokenizer))) < 1.0  # an untrained model guesses uniformly
    test = card.metrics["test"]
    assert test["examples"] == t5_standin.SMOKE_CONFIG.eval_dialogues
    assert math.isclose(test["reading_gain"], test["matched"]["rouge1"] - test["shuffled"]["rouge1"], abs_tol=2e-4)


def test_an_interrupted_build_resumes_from_its_checkpoint(smoke_build, tmp_path):
    root, rows, _, card = smoke_build
    # The finished run left a checkpoint at its last step: the same build again trains nothing new
    # and ends with the same weights.
    again = t5_standin.build(rows, tmp_path / "out", t5_standin.SMOKE_CONFIG, work_dir=root / "work", verbose=False)
    a, _, _ = t5_standin.load(root / "out")
    b, _, _ = t5_standin.load(tmp_path / "out")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    assert again.metrics["loss_curve"] == card.metrics["loss_curve"]


def test_mixed_batches_are_deterministic_and_mix_both_objectives(smoke_build):
    _, rows, _, _ = smoke_build
    cfg = dataclasses.replace(t5_standin.SMOKE_CONFIG, span_corruption_fraction=0.5)
    tok = t5_standin.train_tokenizer([r["dialogue"] for r in rows], cfg.vocab_size)
    pairs = t5_standin.training_pairs(rows[:20], cfg, tok)
    vocab = objectives.vocab_for(tok)
    make = lambda: t5_standin.MixedBatches(pairs, t5_standin.dialogue_windows(rows[:20], cfg, tok), vocab, cfg)  # noqa: E731
    first, second = make(), make()
    for i in (0, 3, 11):
        a, b = first(i), second(i)
        assert all(torch.equal(a[k], b[k]) for k in a)
    kinds = [kind for batch in first.plan(0) for kind, _ in batch]
    assert kinds.count("sum") == 20 and kinds.count("span") == 20 and kinds.count("copy") == 20
    labels = torch.cat([first(i)["labels"].flatten() for i in range(len(first.plan(0)))])
    assert set(vocab.sentinel_ids) & set(labels.tolist()), "no span-corruption target reached a batch"
    # a reconstruction target is the whole window, then </s>
    copy_batch = next(i for i, b in enumerate(first.plan(0)) if all(k == "copy" for k, _ in b[:1]))
    row = first(copy_batch)["labels"][0]
    window = t5_standin.dialogue_windows(rows[:20], cfg, tok)[first.plan(0)[copy_batch][0][1]]
    assert row[row != -100].tolist() == window + [tok.eos_token_id]


def test_build_cli_help_and_refusal_without_data():
    out = subprocess.run([sys.executable, "-m", "course_lib.standins", "build", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--dialogsum-dir" in out.stdout and "--smoke" in out.stdout
    env = {k: v for k, v in os.environ.items() if k != "DIALOGSUM_DIR"}
    out = subprocess.run([sys.executable, "-m", "course_lib.standins", "build", "--out", "/nonexistent/x"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "real DialogSum" in out.stderr


def test_bad_config_raises_clear_errors():
    with pytest.raises(ValueError, match="at least 2"):
        t5_standin.build([{"id": "a", "dialogue": "d", "summary": "s"}], "/nonexistent", t5_standin.SMOKE_CONFIG)
    with pytest.raises(ValueError, match="vocab_size"):
        t5_standin.train_tokenizer(["a b c"], 10)
    with pytest.raises(ValueError, match="num_heads"):
        t5_standin.StandinConfig(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="span_corruption_fraction"):
        t5_standin.StandinConfig(span_corruption_fraction=1.0)
    with pytest.raises(ValueError, match="room for summaries"):
        t5_standin.StandinConfig(span_corruption_fraction=0.5, reconstruction_fraction=0.5)
    with pytest.raises(FileNotFoundError, match="card.json"):
        t5_standin.load("/nonexistent")
