"""The offline stand-in for FLAN-T5: a small T5 that course_lib trains on DialogSum.

Without the hub, ``course_lib.hub`` serves ``google/flan-t5-*`` names with this
model. It is a real ``T5ForConditionalGeneration`` (gated-GELU feed-forward and
untied output layer, as in T5 v1.1 / FLAN-T5) with its own Unigram tokenizer,
trained from scratch as an instruction-following summarizer: each training
dialogue arrives in one of the prompt formats of ``course_lib.prompting`` (bare,
instruction, FLAN template, one-shot) and the target is its reference summary.
It is *not* FLAN-T5: it has seen only DialogSum, for a few minutes of CPU time.

The build is cached under ``hub.cache_dir()/standins/<key>``, where the key
encodes the config and the data that trained it, written atomically, and reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import prompting
from .device import set_seed, smoke_mode

FORMAT_VERSION = 2  # bump when the build recipe changes, so old caches are not reused
N_SENTINELS = 100  # T5's <extra_id_0> ... <extra_id_99> span-corruption sentinels
SPECIAL = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2 as in T5


@dataclass(frozen=True)
class StandinConfig:
    vocab_size: int = 8000  # Unigram pieces learned from DialogSum (the 100 sentinels come on top)
    d_model: int = 128  # width of every residual stream
    d_ff: int = 512  # hidden width of the gated-GELU feed-forward
    num_heads: int = 4  # attention heads (d_kv = d_model // num_heads)
    num_layers: int = 2  # encoder blocks
    num_decoder_layers: int = 2  # decoder blocks
    max_source_tokens: int = 512  # longest prompt trained on (FLAN-T5's window)
    max_target_tokens: int = 64  # longest summary trained on; longer ones are cut
    n_dialogues: int | None = None  # training dialogues used; None = the whole train split
    tokenizer_dialogues: int = 4000  # dialogues the tokenizer is learned from
    one_shot_fraction: float = 0.15  # share of inputs that carry one solved example first
    steps: int = 1500  # optimizer steps (about two passes over the train split at batch 16)
    batch_size: int = 16  # examples per step
    lr: float = 3e-3  # peak AdamW learning rate (short runs of small models like it high)
    warmup_steps: int = 60  # linear warmup before cosine decay
    eval_dialogues: int = 40  # validation dialogues scored for the model card
    seed: int = 0  # fixes data order, formats and initialization


SMOKE_CONFIG = StandinConfig(vocab_size=800, d_model=64, d_ff=128, num_heads=2, num_layers=1, num_decoder_layers=1,
                             max_source_tokens=192, max_target_tokens=24, n_dialogues=96, tokenizer_dialogues=96,
                             steps=10, batch_size=4, lr=3e-3, warmup_steps=2, eval_dialogues=2)
FULL_CONFIG = StandinConfig()


@dataclass
class StandinCard:
    """What the stand-in is, in words a lab can print."""

    name: str  # e.g. 'course-t5-dialogsum-standin (d_model=256, ...)'
    note: str  # one line: how it was trained, and that it is not FLAN-T5
    path: str  # the cached folder (model, tokenizer, README.md, card.json)
    readme: str  # the written model card (README.md)
    metrics: dict  # training and evaluation figures recorded at build time


# --- tokenizer ----------------------------------------------------------------


def train_tokenizer(texts: list[str], vocab_size: int):
    """A T5-style tokenizer learned from ``texts``: Unigram pieces, <pad>/</s>/<unk>, 100 sentinels, </s> appended."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    if vocab_size < 100:
        raise ValueError(f"vocab_size={vocab_size} is too small for a Unigram vocabulary; use at least 100.")
    raw = Tokenizer(models.Unigram())
    # Same pre-tokenization as transformers' T5Tokenizer, so the learned pieces mean the same thing there.
    raw.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, unk_token="<unk>", show_progress=False)
    raw.train_from_iterator(texts, trainer=trainer)
    vocab = [tuple(v) for v in json.loads(raw.to_str())["model"]["vocab"]]
    if [p for p, _ in vocab[:3]] != SPECIAL:
        raise RuntimeError(f"Unigram training put {vocab[:3]} first; expected {SPECIAL}.")
    # Sentinels last and numbered from the top down, as in T5's own vocabulary (<extra_id_0> = the last id);
    # left to T5Tokenizer(extra_ids=...), transformers 5 would append them bottom-up.
    vocab += [(f"<extra_id_{k}>", 0.0) for k in reversed(range(N_SENTINELS))]
    return T5Tokenizer(vocab=vocab, extra_ids=N_SENTINELS, model_max_length=prompting.DEFAULT_CONTEXT)


# --- training data ------------------------------------------------------------


def format_example(rng: random.Random, dialogue: str, shot: tuple[str, str] | None) -> str:
    """One training prompt for ``dialogue`` in a randomly chosen format (one-shot when ``shot`` is given)."""
    if shot is not None:
        return prompting.few_shot_prompt([shot], dialogue)
    builder = rng.choice([prompting.bare_prompt, prompting.instruction_prompt, prompting.flan_prompt])
    return builder(dialogue)


def training_pairs(rows: list[dict], config: StandinConfig, tokenizer) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, summary ids) for every row; one-shot prompts only where they fit the window."""
    rng = random.Random(config.seed)
    pairs = []
    for i, row in enumerate(rows):
        shot = None
        if rng.random() < config.one_shot_fraction:
            other = rows[rng.randrange(len(rows))]
            if other is not row:
                shot = (other["dialogue"], other["summary"])
        prompt = format_example(rng, row["dialogue"], shot)
        src = tokenizer(prompt)["input_ids"]
        if len(src) > config.max_source_tokens:
            src = tokenizer(format_example(rng, row["dialogue"], None))["input_ids"]
        tgt = tokenizer(row["summary"])["input_ids"]
        if i == 0 and (src[-1] != tokenizer.eos_token_id or tgt[-1] != tokenizer.eos_token_id):
            raise RuntimeError("the tokenizer does not append </s>; the model would never learn to stop.")
        pairs.append((src[: config.max_source_tokens - 1] + src[-1:], tgt[: config.max_target_tokens - 1] + tgt[-1:]))
    return pairs


def collate(pairs: list[tuple[list[int], list[int]]], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad a list of (source, target) id lists into T5 inputs; padded label positions are -100 (ignored)."""
    n_src = max(len(s) for s, _ in pairs)
    n_tgt = max(len(t) for _, t in pairs)
    input_ids = torch.full((len(pairs), n_src), pad_id, dtype=torch.long)  # (B, S)
    labels = torch.full((len(pairs), n_tgt), -100, dtype=torch.long)  # (B, T)
    for b, (s, t) in enumerate(pairs):
        input_ids[b, : len(s)] = torch.tensor(s)
        labels[b, : len(t)] = torch.tensor(t)
    return {"input_ids": input_ids, "attention_mask": (input_ids != pad_id).long(), "labels": labels}


def length_grouped_batches(pairs, batch_size: int, steps: int, seed: int):
    """``steps`` batches; examples of similar length share a batch so little compute goes to padding."""
    rng = random.Random(seed + 1)
    out = []
    while len(out) < steps:
        order = list(range(len(pairs)))
        rng.shuffle(order)
        window = batch_size * 32
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=lambda i: len(pairs[i][0]))
            batches = [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
            rng.shuffle(batches)
            out.extend(batches)
    return [collate([pairs[i] for i in b]) for b in out[:steps]]


# --- model ----------------------------------------------------------------------


def make_model(config: StandinConfig, tokenizer):
    """An untrained T5ForConditionalGeneration sized by ``config`` for ``tokenizer``'s vocabulary."""
    from transformers import T5Config, T5ForConditionalGeneration

    if config.d_model % config.num_heads:
        raise ValueError(f"d_model={config.d_model} is not divisible by num_heads={config.num_heads}.")
    t5 = T5Config(vocab_size=len(tokenizer), d_model=config.d_model, d_kv=config.d_model // config.num_heads,
                  d_ff=config.d_ff, num_layers=config.num_layers, num_decoder_layers=config.num_decoder_layers,
                  num_heads=config.num_heads, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                  dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                  decoder_start_token_id=tokenizer.pad_token_id)
    model = T5ForConditionalGeneration(t5)
    # HF draws the untied output layer with std 1, which makes the first logits ~sqrt(d_model) wide (a first
    # loss far above ln V); std d_model**-0.5 starts training near the uniform guess.
    torch.nn.init.normal_(model.lm_head.weight, std=config.d_model**-0.5)
    return model


def standin_name(config: StandinConfig) -> str:
    return (f"course-t5-dialogsum-standin (d_model={config.d_model}, layers={config.num_layers}+{config.num_decoder_layers}, "
            f"heads={config.num_heads}, vocab={config.vocab_size}+{N_SENTINELS})")


# --- cache ----------------------------------------------------------------------


def data_fingerprint(rows: list[dict]) -> str:
    """A short hash of the training rows, so a build from the embedded sample never serves for the real data."""
    h = hashlib.sha1()
    for row in rows:
        h.update(row["id"].encode())
        h.update(row["summary"].encode())
    return f"{len(rows)}-{h.hexdigest()[:10]}"


def cache_key(config: StandinConfig, fingerprint: str) -> str:
    blob = json.dumps({"config": asdict(config), "data": fingerprint, "v": FORMAT_VERSION}, sort_keys=True)
    return f"t5-dialogsum-d{config.d_model}-s{config.steps}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"


def _load_cached(path: Path, want_model: bool):
    from transformers import T5ForConditionalGeneration, T5Tokenizer

    meta = json.loads((path / "card.json").read_text(encoding="utf-8"))
    tokenizer = T5Tokenizer.from_pretrained(path)
    model = T5ForConditionalGeneration.from_pretrained(path).eval() if want_model else None
    card = StandinCard(meta["name"], meta["note"], str(path), (path / "README.md").read_text(encoding="utf-8"), meta["metrics"])
    return model, tokenizer, card


def load_or_build(want_model: bool = True, smoke: bool | None = None, config: StandinConfig | None = None,
                  rows: list[dict] | None = None, verbose: bool = True):
    """(model or None, tokenizer, card) of the stand-in: from the cache, or built now and cached.

    smoke: None follows COURSE_SMOKE; True builds a tiny model in seconds. ``config`` overrides both.
    rows: training rows (default: ``course_lib.data.load_dialogsum('train')``).
    """
    from . import hub

    if config is None:
        config = SMOKE_CONFIG if (smoke_mode() if smoke is None else smoke) else FULL_CONFIG
    if rows is None:
        from . import data

        rows = list(data.load_dialogsum("train"))
    if config.n_dialogues is not None:
        rows = rows[: config.n_dialogues]
    if len(rows) < 2:
        raise ValueError(f"The stand-in needs at least 2 training dialogues, got {len(rows)}.")
    path = hub.cache_dir() / "standins" / cache_key(config, data_fingerprint(rows))
    if not (path / "card.json").exists():
        if verbose:
            print(f"[course_lib.t5_standin] building {standin_name(config)} on {len(rows)} DialogSum dialogues "
                  f"({config.steps} steps); cached afterwards in {path}")
        _build(config, rows, path, verbose)
    return _load_cached(path, want_model)


def _build(config: StandinConfig, rows: list[dict], path: Path, verbose: bool) -> None:
    from . import standin_card
    from .training import TrainConfig, train

    start, cpu_start = time.perf_counter(), time.process_time()
    set_seed(config.seed)
    texts = [r["dialogue"] + "\n" + r["summary"] for r in rows[: config.tokenizer_dialogues]]
    texts += [prompting.instruction_prompt("x"), prompting.flan_prompt("x")]  # the prompts' own words get pieces
    tokenizer = train_tokenizer(texts, config.vocab_size)
    pairs = training_pairs(rows, config, tokenizer)
    batches = length_grouped_batches(pairs, config.batch_size, config.steps, config.seed)
    model = make_model(config, tokenizer)
    history = train(model, batches, TrainConfig(max_steps=config.steps, lr=config.lr, warmup_steps=config.warmup_steps,
                                                 weight_decay=0.01, clip_norm=1.0, eval_every=0, seed=config.seed,
                                                 progress=verbose))
    model = model.eval()
    train_seconds = time.perf_counter() - start
    metrics = {"train_dialogues": len(rows), "steps": config.steps, "train_seconds": round(train_seconds, 1),
               "train_cpu_seconds": round(time.process_time() - cpu_start, 1), "torch_threads": torch.get_num_threads(),
               "device": str(next(model.parameters()).device),
               "parameters": sum(p.numel() for p in model.parameters()),
               "first_loss": round(history.loss[0], 3), "final_loss": round(sum(history.loss[-10:]) / len(history.loss[-10:]), 3)}
    metrics.update(standin_card.evaluate_on_dev(model, tokenizer, config.eval_dialogues))
    name = standin_name(config)
    note = (f"trained by course_lib on {len(rows)} DialogSum dialogues for {config.steps} steps "
            f"({train_seconds / 60:.1f} min) - NOT FLAN-T5")
    readme = standin_card.write_card(name, config, metrics)
    _save_atomic(path, model, tokenizer, readme, {"name": name, "note": note, "config": asdict(config), "metrics": metrics})


def _save_atomic(path: Path, model, tokenizer, readme: str, meta: dict) -> None:
    """Write everything into a temporary sibling folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(readme, encoding="utf-8")
        (tmp / "card.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        try:
            os.replace(tmp, path)
        except OSError:
            if not (path / "card.json").exists():  # a concurrent build that won the race is fine
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["StandinConfig", "StandinCard", "SMOKE_CONFIG", "FULL_CONFIG", "load_or_build", "train_tokenizer",
           "training_pairs", "collate", "make_model", "cache_key"]
