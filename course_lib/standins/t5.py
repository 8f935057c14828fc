"""The offline stand-in for FLAN-T5: a small T5 trained by course_lib on DialogSum, shipped in the package.

Without the hub, ``course_lib.hub`` serves ``google/flan-t5-*`` names with this
model. It is a real ``T5ForConditionalGeneration`` (gated-GELU feed-forward, as in
T5 v1.1 / FLAN-T5; transformers 5 ties its output layer to the input embedding whatever
the config asks, and the card reports what was built) with its own Unigram tokenizer,
trained from scratch on the DialogSum training split with two objectives mixed:

* summarization: each dialogue in one of the prompt formats of
  ``course_lib.prompting`` (bare, instruction, FLAN template, one-shot) and its
  reference summary as the target;
* span corruption (T5's pretraining objective, ``course_lib.objectives``) on
  the dialogues themselves, which rewards looking at the encoder's input.

It is *not* FLAN-T5. The weights and tokenizer were built once
(``python -m course_lib.standins build``) and ship in ``SHIPPED_DIR``; loading
them takes seconds and never trains anything.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

from .. import objectives, prompting
from ..checks import check_choice, check_int, check_number
from ..device import set_seed
from ..training import TrainConfig, train
from . import card as standin_card

FORMAT_VERSION = 3  # bump when the recipe or the shipped layout changes
N_SENTINELS = 100  # T5's <extra_id_0> ... <extra_id_99> span-corruption sentinels
SPECIAL = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2 as in T5
SHIPPED_DIR = Path(__file__).resolve().parent / "t5_dialogsum"  # the build that ships with course_lib


@dataclass(frozen=True)
class StandinConfig:
    vocab_size: int = 8000  # Unigram pieces learned from DialogSum (the 100 sentinels come on top)
    d_model: int = 256  # width of every residual stream
    d_ff: int = 768  # hidden width of the gated-GELU feed-forward
    num_heads: int = 4  # attention heads (d_kv = d_model // num_heads)
    num_layers: int = 3  # encoder blocks
    num_decoder_layers: int = 3  # decoder blocks
    max_source_tokens: int = 384  # longest prompt trained on (longer ones are cut; 90% of DialogSum fits)
    max_target_tokens: int = 64  # longest summary trained on; longer ones are cut
    n_dialogues: int | None = None  # training dialogues used; None = the whole train split
    tokenizer_dialogues: int = 4000  # dialogues the tokenizer is learned from
    one_shot_fraction: float = 0.05  # share of summary inputs that carry one solved example first
    span_corruption_fraction: float = 0.1  # share of training examples that are T5 span corruption of a dialogue
    reconstruction_fraction: float = 0.3  # share that rebuild a corrupted dialogue window in full (BART-style)
    span_corruption_tokens: int = 128  # a span-corruption or reconstruction example uses a window of this many tokens
    steps: int = 2500  # optimizer steps
    batch_size: int = 16  # examples per step
    lr: float = 1e-3  # peak AdamW learning rate
    warmup_steps: int = 200  # linear warmup before cosine decay
    precision: str = "fp32"  # training precision ('bf16': CPU autocast; a bf16 build here never read its input, see bench/RESULTS.md)
    checkpoint_every: int = 250  # steps between resumable checkpoints
    eval_dialogues: int = 500  # test dialogues scored for the model card (0 = no evaluation)
    seed: int = 0  # fixes data order, formats and initialization

    def __post_init__(self):
        positive = ("d_model", "d_ff", "num_heads", "num_layers", "num_decoder_layers", "max_source_tokens",
                    "max_target_tokens", "tokenizer_dialogues", "span_corruption_tokens", "steps", "batch_size",
                    "checkpoint_every")
        for name in positive:
            check_int("StandinConfig", name, getattr(self, name), 1)
        check_int("StandinConfig", "vocab_size", self.vocab_size, 100)  # a Unigram vocabulary needs 100 pieces
        for name in ("warmup_steps", "eval_dialogues", "seed"):
            check_int("StandinConfig", name, getattr(self, name), 0)
        if self.n_dialogues is not None:
            check_int("StandinConfig", "n_dialogues", self.n_dialogues, 2)
        if self.d_model % self.num_heads:
            raise ValueError(f"StandinConfig.d_model={self.d_model} is not divisible by num_heads={self.num_heads}.")
        for name in ("one_shot_fraction", "span_corruption_fraction", "reconstruction_fraction"):
            check_number("StandinConfig", name, getattr(self, name), 0.0, 0.999)
        if self.span_corruption_fraction + self.reconstruction_fraction >= 1.0:
            raise ValueError("StandinConfig: span_corruption_fraction + reconstruction_fraction must leave room for summaries (< 1).")
        check_number("StandinConfig", "lr", self.lr, 0.0, low_open=True)
        check_choice("StandinConfig", "precision", self.precision, {"auto", "fp32", "bf16", "fp16"})


# The recipe in seconds (tests, `build --smoke`); FULL_CONFIG is what built the shipped model.
SMOKE_CONFIG = StandinConfig(vocab_size=400, d_model=32, d_ff=64, num_heads=2, num_layers=1, num_decoder_layers=1,
                             max_source_tokens=192, max_target_tokens=24, n_dialogues=48, tokenizer_dialogues=48,
                             span_corruption_tokens=64, steps=8, batch_size=4, warmup_steps=2, checkpoint_every=4,
                             eval_dialogues=4)
FULL_CONFIG = StandinConfig()


@dataclass
class StandinCard:
    """What the stand-in is, in words a lab can print."""

    name: str  # e.g. 'course-t5-dialogsum-standin (d_model=256, ...)'
    note: str  # one line: how it was trained, and that it is not FLAN-T5
    path: str  # the folder (model, tokenizer, README.md, card.json)
    readme: str  # the written model card (README.md)
    metrics: dict  # training and evaluation figures recorded at build time


# --- tokenizer ----------------------------------------------------------------


def train_tokenizer(texts: list[str], vocab_size: int) -> T5Tokenizer:
    """A T5-style tokenizer learned from ``texts``: Unigram pieces, <pad>/</s>/<unk>, 100 sentinels, </s> appended."""
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


def _cut(ids: list[int], limit: int) -> list[int]:
    """At most ``limit`` ids, keeping the final </s>."""
    return ids if len(ids) <= limit else ids[: limit - 1] + ids[-1:]


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
        pairs.append((_cut(src, config.max_source_tokens), _cut(tgt, config.max_target_tokens)))
    return pairs


def dialogue_windows(rows: list[dict], config: StandinConfig, tokenizer) -> list[list[int]]:
    """Each dialogue's first ``span_corruption_tokens`` token ids (no </s>), for span corruption."""
    return [tokenizer(r["dialogue"], add_special_tokens=False)["input_ids"][: config.span_corruption_tokens] for r in rows]


class MixedBatches:
    """index -> batch: summary pairs, span corruption and reconstruction, shuffled per pass, grouped by length.

    Deterministic in (seed, index), so a resumed build sees exactly the batches it would have seen.
    An item is ('sum', i) for summary pair i, ('span', j) for T5 span corruption of dialogue j's window
    (target: the dropped spans), or ('copy', j) for reconstruction (BART's denoising, Lewis et al. 2020:
    the same corrupted window in, the whole window out). Reconstruction is what makes the decoder read
    the encoder from the first steps: most of its target can only be copied from the input, while a
    summary or a dropped span can be guessed generically, and builds trained on those alone learned
    to ignore the dialogue (bench/RESULTS.md).
    """

    def __init__(self, pairs, windows, vocab: objectives.Vocab, config: StandinConfig):
        self.pairs, self.windows, self.vocab, self.config = pairs, windows, vocab, config
        share = 1 - config.span_corruption_fraction - config.reconstruction_fraction
        self.n_span = round(len(pairs) * config.span_corruption_fraction / share)
        self.n_copy = round(len(pairs) * config.reconstruction_fraction / share)
        self._plans: dict[int, list[list[tuple[str, int]]]] = {}

    def _length(self, item) -> int:
        kind, i = item
        return len(self.pairs[i][0]) if kind == "sum" else len(self.windows[i])

    def plan(self, epoch: int) -> list[list[tuple[str, int]]]:
        """The batches of one pass over the data (cached)."""
        if epoch not in self._plans:
            rng = random.Random(self.config.seed * 1000 + epoch)
            items = [("sum", i) for i in range(len(self.pairs))]
            n = len(self.windows)
            items += [("span", j) for j in rng.sample(range(n), min(self.n_span, n))]
            items += [("copy", j) for j in rng.sample(range(n), min(self.n_copy, n))]
            rng.shuffle(items)
            bs, batches = self.config.batch_size, []
            window = bs * 32
            for start in range(0, len(items), window):
                chunk = sorted(items[start : start + window], key=self._length)
                batches += [chunk[j : j + bs] for j in range(0, len(chunk), bs)]
            rng.shuffle(batches)
            self._plans = {epoch: batches}  # keep one pass in memory
        return self._plans[epoch]

    def __call__(self, index: int) -> dict:
        per_pass = len(self.plan(0))
        batch = self.plan(index // per_pass)[index % per_pass]
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + index)
        examples = []
        for kind, i in batch:
            if kind == "sum":
                examples.append(self.pairs[i])
            elif kind == "span":
                examples.append(objectives.span_corrupt(self.windows[i], self.vocab, generator=gen))
            else:
                corrupted, _ = objectives.span_corrupt(self.windows[i], self.vocab, generator=gen)
                examples.append((corrupted, list(self.windows[i]) + [self.vocab.eos_id]))
        return objectives.seq2seq_collate(examples, self.vocab.pad_id)


# --- model ----------------------------------------------------------------------


def make_model(config: StandinConfig, tokenizer) -> T5ForConditionalGeneration:
    """An untrained T5ForConditionalGeneration sized by ``config`` for ``tokenizer``'s vocabulary."""
    t5 = T5Config(vocab_size=len(tokenizer), d_model=config.d_model, d_kv=config.d_model // config.num_heads,
                  d_ff=config.d_ff, num_layers=config.num_layers, num_decoder_layers=config.num_decoder_layers,
                  num_heads=config.num_heads, feed_forward_proj="gated-gelu",
                  dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                  decoder_start_token_id=tokenizer.pad_token_id)
    # transformers 5 ties a T5's output layer to its input embedding; with the tie declared (the default) T5 also
    # scales the decoder output by d_model**-0.5, so HF's embedding init (std 1) gives first logits of std ~1 (a first
    # loss near ln V) and input embeddings large enough not to drown in the residual stream. (A build whose shared
    # embedding was drawn with std d_model**-0.5 learned to ignore its input: bench/RESULTS.md.)
    model = T5ForConditionalGeneration(t5)
    return model


def standin_name(config: StandinConfig) -> str:
    return (f"course-t5-dialogsum-standin (d_model={config.d_model}, layers={config.num_layers}+{config.num_decoder_layers}, "
            f"heads={config.num_heads}, vocab={config.vocab_size}+{N_SENTINELS})")


# --- build ----------------------------------------------------------------------


def build(rows: list[dict], out_dir: str | os.PathLike, config: StandinConfig = FULL_CONFIG,
          work_dir: str | os.PathLike | None = None, eval_rows: list[dict] | None = None,
          data_source: str = "", verbose: bool = True, note: str = "") -> StandinCard:
    """Train the stand-in on ``rows`` and write it, with its card, to ``out_dir`` (atomically).

    work_dir keeps resumable checkpoints (an interrupted build started again with the same
    work_dir continues where it stopped). eval_rows: test dialogues with ``references`` for the card.
    """
    if config.n_dialogues is not None:
        rows = rows[: config.n_dialogues]
    if len(rows) < 2:
        raise ValueError(f"The stand-in needs at least 2 training dialogues, got {len(rows)}.")
    start, cpu_start = time.perf_counter(), time.process_time()
    set_seed(config.seed)
    texts = [r["dialogue"] + "\n" + r["summary"] for r in rows[: config.tokenizer_dialogues]]
    texts += [prompting.instruction_prompt("x"), prompting.flan_prompt("x")]  # the prompts' own words get pieces
    tokenizer = train_tokenizer(texts, config.vocab_size)
    pairs = training_pairs(rows, config, tokenizer)
    batches = MixedBatches(pairs, dialogue_windows(rows, config, tokenizer), objectives.vocab_for(tokenizer), config)
    model = make_model(config, tokenizer)
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="standin-build-"))
    history = train(model, batches, TrainConfig(max_steps=config.steps, lr=config.lr, warmup_steps=config.warmup_steps,
                                                weight_decay=0.01, clip_norm=1.0, eval_every=0, seed=config.seed,
                                                precision=config.precision, checkpoint_dir=str(work / "checkpoints"),
                                                checkpoint_every=config.checkpoint_every,
                                                log_every=max(1, min(10, config.steps // 4)), progress=verbose))
    model = model.float().eval()
    train_seconds = time.perf_counter() - start
    per_pass = len(batches.plan(0))
    metrics = {"train_dialogues": len(rows), "data_source": data_source, "steps": config.steps,
               "summary_pairs": len(pairs), "span_corruption_per_pass": batches.n_span,
               "reconstruction_per_pass": batches.n_copy,
               "passes": round(config.steps / per_pass, 2), "train_seconds_this_session": round(train_seconds, 1),
               "train_cpu_seconds_this_session": round(time.process_time() - cpu_start, 1),
               "torch_threads": torch.get_num_threads(), "device": str(next(model.parameters()).device),
               "precision": config.precision, "parameters": sum(p.numel() for p in model.parameters()),
               "vocab_size": len(tokenizer), "tied_output_layer": bool(model.config.tie_word_embeddings) and
               model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr(),
               "first_loss": round(history.loss[0], 3), "final_loss": round(sum(history.loss[-10:]) / len(history.loss[-10:]), 3),
               "loss_curve": [(s, round(x, 4)) for s, x in zip(history.step, history.loss)]}
    metrics["train_seconds_all_sessions"] = round(sum(_session_seconds(work)) + train_seconds, 1)
    metrics["build_note"] = note
    if eval_rows and config.eval_dialogues:
        metrics["test"] = standin_card.summary_quality(model, tokenizer, eval_rows[: config.eval_dialogues])
    name = standin_name(config)
    note = (f"trained by course_lib on {len(rows)} DialogSum training dialogues, {config.steps} steps "
            f"(~{metrics['passes']} passes) - NOT FLAN-T5")
    readme = standin_card.write_card(name, config, metrics)
    save(out_dir, model, tokenizer, readme, {"name": name, "note": note, "format": FORMAT_VERSION,
                                             "config": asdict(config), "metrics": metrics})
    return StandinCard(name, note, str(out_dir), readme, metrics)


def _session_seconds(work: Path) -> list[float]:
    """Wall seconds of earlier, interrupted sessions of the same build (written by the CLI)."""
    path = work / "sessions.json"
    return json.loads(path.read_text())["seconds"] if path.exists() else []


def save(out_dir: str | os.PathLike, model, tokenizer, readme: str, meta: dict) -> None:
    """Weights in fp16 safetensors, tokenizer, card: into a temporary sibling folder, then renamed into place."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        model.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
        model.float()
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(readme, encoding="utf-8")
        (tmp / "card.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        (tmp / "LICENSE.md").write_text(standin_card.LICENSE_NOTE, encoding="utf-8")
        for f in tmp.iterdir():  # mkdtemp makes a private folder; a shipped model is for everyone to read
            f.chmod(0o644)
        tmp.chmod(0o755)
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --- load -----------------------------------------------------------------------


def load(path: str | os.PathLike = SHIPPED_DIR, want_model: bool = True):
    """(model or None, tokenizer, card) of a built stand-in; the shipped one by default. Never trains."""
    path = Path(path)
    if not (path / "card.json").exists():
        raise FileNotFoundError(
            f"No stand-in in {path} (card.json missing). The shipped one lives in course_lib/standins/t5_dialogsum; "
            "reinstall course_lib, or rebuild it with `python -m course_lib.standins build`.")
    meta = json.loads((path / "card.json").read_text(encoding="utf-8"))
    tokenizer = T5Tokenizer.from_pretrained(path)
    model = None
    if want_model:
        model = T5ForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    card = StandinCard(meta["name"], meta["note"], str(path), (path / "README.md").read_text(encoding="utf-8"), meta["metrics"])
    return model, tokenizer, card


def t5_fallback(name: str, task: str | None, want_model: bool = True):
    """(model or None, tokenizer, served name, kind, note) for a T5 / FLAN-T5 name, offline."""
    if task not in (None, "seq2seq"):
        raise RuntimeError(f"Offline, '{name}' is served by a T5 stand-in, which is a seq2seq model; use task='seq2seq'.")
    model, tokenizer, card = load(want_model=want_model)
    return model, tokenizer, card.name, "stand-in", card.note


__all__ = ["StandinConfig", "StandinCard", "SMOKE_CONFIG", "FULL_CONFIG", "SHIPPED_DIR", "build", "load", "save",
           "train_tokenizer", "training_pairs", "MixedBatches", "make_model", "t5_fallback"]
