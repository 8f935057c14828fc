"""Our own IsoFLOP experiment: Hoffmann et al.'s Approach 2 in miniature, on a CPU.

For each compute budget C we train several tiny decoders of different sizes N,
each on as many tokens D as the budget buys, with a cosine schedule that ends
exactly at D (Hoffmann et al. found a schedule longer than the run overstates the
loss). The size with the lowest held-out loss is that budget's compute-optimal N.

N counts non-embedding parameters, as Kaplan et al. 2020 do (token and position
tables excluded; the output head is tied to the token table). Compute is counted
in full by default: 3x the forward FLOPs of Kaplan et al.'s Table 1 including the
attention-over-context and output-layer terms. At scale those are small and
C ~ 6 N D; for models of a few thousand parameters they are most of the work. Text is DialogSum
(dialogue + summary) as raw UTF-8 bytes: a 256-symbol vocabulary needs no
tokenizer training, keeps embeddings a small share of each model, and makes the
loss directly comparable across runs (nats per byte).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..checks import check_int, check_number
from ..device import configure_threads, get_device, set_seed
from ..model import DecoderOnlyLM, TransformerConfig
from ..tokenization import utf8_stream
from ..training import TrainConfig, evaluate, train
from .laws import isoflop_minimum

BYTE_VOCAB = 256


@dataclass
class IsoFLOPConfig:
    budgets: tuple[float, ...] = (1e10, 3e10, 1e11)  # training FLOPs per run
    compute: str = "full"  # how a run's FLOPs are counted: "full" (attention and output layer too) or "6N"
    shapes: tuple[tuple[int, int], ...] = ((1, 8), (1, 16), (2, 16), (2, 24), (2, 32))  # (n_layer, d_model) sizes
    d_head: int = 8  # width of one attention head; n_head = d_model // d_head
    seq_len: int = 64  # tokens (bytes) per training row
    batch_size: int = 8  # rows per optimizer step
    lr: float = 1e-2  # peak learning rate (at d_model = lr_ref_width when that is set)
    lr_ref_width: int | None = 16  # if set, each size uses lr * lr_ref_width / d_model: wider models, smaller steps
    warmup_frac: float = 0.05  # share of each run's steps spent warming up
    min_steps: int = 10  # refuse runs shorter than this: too few steps to mean anything
    eval_batches: int = 64  # held-out batches behind every final loss (64 x 8 x 64 = 32,768 bytes)
    seed: int = 0  # the same initialisation seed and data order for every run
    device: str = "auto"  # where the runs train
    cpu_threads: int | None = 1  # torch threads on CPU: tiny matrices gain nothing from more, and lose a lot on a busy CPU
    progress: bool = False  # a tqdm bar per run (the experiment shows one bar over all runs)

    def __post_init__(self):
        for name in ("d_head", "seq_len", "batch_size", "min_steps", "eval_batches"):
            check_int("IsoFLOPConfig", name, getattr(self, name), 1)
        if not isinstance(self.budgets, (tuple, list)) or not self.budgets or any(
                isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0 for c in self.budgets):
            raise ValueError(f"IsoFLOPConfig.budgets={self.budgets!r}: give one or more positive FLOP budgets, e.g. (1e11, 3e11).")
        if self.compute not in ("full", "6N"):
            raise ValueError(f"compute={self.compute!r}: expected 'full' or '6N'.")
        if len(self.shapes) < 3:
            raise ValueError(f"shapes={self.shapes!r}: an IsoFLOP curve needs at least 3 model sizes.")
        for n_layer, d_model in self.shapes:
            if n_layer < 1 or d_model < self.d_head or d_model % self.d_head:
                raise ValueError(f"shape ({n_layer}, {d_model}): need n_layer >= 1 and d_model a multiple of "
                                 f"d_head={self.d_head}.")
        check_int("IsoFLOPConfig", "seed", self.seed, 0)
        for name in ("lr_ref_width", "cpu_threads"):
            if getattr(self, name) is not None:
                check_int("IsoFLOPConfig", name, getattr(self, name), 1)
        check_number("IsoFLOPConfig", "lr", self.lr, 0.0, low_open=True)
        check_number("IsoFLOPConfig", "warmup_frac", self.warmup_frac, 0.0, 1.0)


# Lab 06's experiment: the defaults (about 6 minutes on a busy 2-core CPU), and a version that runs in seconds.
LAB_CONFIG = IsoFLOPConfig()
SMOKE_CONFIG = IsoFLOPConfig(budgets=(2e8, 6e8), shapes=((1, 8), (1, 16), (2, 16)), batch_size=4, seq_len=32,
                             min_steps=5, eval_batches=2)


def dialogsum_bytes(rows, seed: int = 0) -> torch.Tensor:
    """One long stream of UTF-8 bytes from DialogSum rows (dialogue, then its summary), in a seeded order."""
    order = np.random.default_rng(seed).permutation(len(rows))
    return utf8_stream([f"{rows[int(i)]['dialogue']}\nSummary: {rows[int(i)]['summary']}\n\n" for i in order], "")


def build_decoder(n_layer: int, d_model: int, cfg: IsoFLOPConfig) -> DecoderOnlyLM:
    """A byte-level course decoder of the given shape."""
    return DecoderOnlyLM(TransformerConfig(vocab_size=BYTE_VOCAB, d_model=d_model, n_head=d_model // cfg.d_head,
                                           n_layer=n_layer, max_seq_len=cfg.seq_len, eos_token_id=None))


def non_embedding_params(model: DecoderOnlyLM) -> int:
    """Kaplan's N: every parameter except the token and position tables (the head is tied to the token table)."""
    table_ids = {id(model.tok_emb.weight)} | {id(p) for p in model.decoder.embed.pos.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in table_ids)


def full_forward_flops_per_token(n_params: int, n_layer: int, d_model: int, seq_len: int) -> float:
    """Kaplan et al. Table 1: 2N + 2 n_layer n_ctx d_attn, plus the de-embedding 2 d_model n_vocab
    that their non-embedding total leaves out."""
    return 2 * n_params + 2 * n_layer * seq_len * d_model + 2 * d_model * BYTE_VOCAB


def training_flops_per_token(n_layer: int, d_model: int, cfg: IsoFLOPConfig) -> tuple[int, float]:
    """(N, training FLOPs per token) of one shape, counted the way ``cfg.compute`` says."""
    n = non_embedding_params(build_decoder(n_layer, d_model, cfg))
    if cfg.compute == "6N":
        return n, 6.0 * n
    return n, 3.0 * full_forward_flops_per_token(n, n_layer, d_model, cfg.seq_len)


def _rows(stream: torch.Tensor, seq_len: int, what: str) -> torch.Tensor:
    n = len(stream) // seq_len
    if n < 1:
        raise ValueError(f"The {what} text has {len(stream)} bytes, fewer than one row of {seq_len}.")
    return stream[: n * seq_len].view(n, seq_len)


def _batches(rows: torch.Tensor, batch_size: int):
    """A function index -> batch that walks through the rows in order, wrapping around at the end."""
    n = len(rows)

    def batch(k: int) -> dict:
        idx = torch.arange(k * batch_size, (k + 1) * batch_size) % n
        ids = rows[idx]
        return {"input_ids": ids, "labels": ids}

    return batch


def run_isoflop(cfg: IsoFLOPConfig, train_stream: torch.Tensor, eval_stream: torch.Tensor):
    """Train every (budget, shape) pair; one row per run with N, D, FLOPs and the held-out loss."""
    import pandas as pd
    from tqdm.auto import tqdm

    train_rows, eval_rows = _rows(train_stream, cfg.seq_len, "training"), _rows(eval_stream, cfg.seq_len, "held-out")
    if len(eval_rows) < cfg.batch_size:
        raise ValueError(f"The held-out text has {len(eval_rows)} rows of {cfg.seq_len} bytes, fewer than one batch of "
                         f"{cfg.batch_size}; give more held-out text or a smaller batch_size.")
    if len(eval_rows) < cfg.eval_batches * cfg.batch_size:
        fits = len(eval_rows) // cfg.batch_size
        print(f"[IsoFLOP] the held-out text has {len(eval_rows)} rows: evaluating on {fits} batch(es) of "
              f"{cfg.batch_size} instead of eval_batches={cfg.eval_batches}.")
        cfg = replace(cfg, eval_batches=fits)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    runs = []
    for budget in cfg.budgets:
        for n_layer, d_model in cfg.shapes:
            n, per_token = training_flops_per_token(n_layer, d_model, cfg)
            steps = round(budget / per_token / tokens_per_step)
            if steps < cfg.min_steps:
                raise ValueError(f"Budget {budget:.3g} gives the ({n_layer}, {d_model}) model only {steps} steps "
                                 f"(< min_steps={cfg.min_steps}); raise the budget or drop that size.")
            runs.append((budget, n_layer, d_model, n, per_token, steps))
    results, threads = [], configure_threads()
    if cfg.cpu_threads and get_device(cfg.device).type == "cpu":
        torch.set_num_threads(cfg.cpu_threads)
    try:
        for run in tqdm(runs, desc="IsoFLOP runs"):
            results.append(_one_run(cfg, *run, train_rows, eval_rows))
    finally:
        torch.set_num_threads(threads)
    return pd.DataFrame(results)


def _one_run(cfg, budget, n_layer, d_model, n, per_token, steps, train_rows, eval_rows) -> dict:
    """Train one size for one budget and measure its held-out loss."""
    set_seed(cfg.seed)
    model = build_decoder(n_layer, d_model, cfg)
    lr = cfg.lr * (cfg.lr_ref_width / d_model if cfg.lr_ref_width else 1.0)
    tcfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=max(1, round(cfg.warmup_frac * steps)),
                       eval_every=0, log_every=max(1, steps // 20), device=cfg.device, seed=cfg.seed,
                       progress=cfg.progress)
    start = time.perf_counter()
    history = train(model, _batches(train_rows, cfg.batch_size), tcfg)
    seconds = time.perf_counter() - start
    loss = evaluate(model, _batches(eval_rows, cfg.batch_size), cfg.eval_batches)
    tokens = steps * cfg.batch_size * cfg.seq_len
    return {
        "budget": budget, "n_layer": n_layer, "d_model": d_model, "n_params": n, "lr": lr,
        "n_params_total": model.num_parameters(), "steps": steps, "n_tokens": tokens,
        "flops": per_token * tokens, "flops_6nd": 6 * n * tokens,
        "flops_full": 3 * full_forward_flops_per_token(n, n_layer, d_model, cfg.seq_len) * tokens,
        "epochs": tokens / train_rows.numel(), "train_loss": history.loss[-1], "loss": loss,
        "seconds": seconds, "tokens_per_s": tokens / seconds,
    }


def isoflop_optima(runs):
    """Per budget, the compute-optimal N from a parabola in log N through that budget's runs.

    Where a budget's losses are not U-shaped (the best run is at either end), the
    parabola would extrapolate; we report the best run instead and say so in ``method``.
    """
    import pandas as pd

    rows = []
    for budget, group in runs.groupby("budget"):
        group = group.sort_values("n_params")
        best = group.loc[group.loss.idxmin()]
        inside = group.n_params.iloc[0] < best.n_params < group.n_params.iloc[-1]
        n_opt, loss_opt, method = best.n_params, best.loss, "best run (not U-shaped)"
        if inside:
            try:
                n_opt, loss_opt = isoflop_minimum(group.n_params.to_numpy(), group.loss.to_numpy())
                method = "parabola"
            except ValueError:
                pass
        rows.append({"budget": budget, "n_opt": float(n_opt), "loss_opt": loss_opt, "best_run_n": int(best.n_params),
                     "best_run_tokens": int(best.n_tokens), "method": method})
    return pd.DataFrame(rows)


def _round_down(x: float, digits: int = 3) -> float:
    """``x`` cut (never rounded up) to ``digits`` significant digits."""
    unit = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return math.floor(x / unit) * unit


def plan_for_data(cfg: IsoFLOPConfig, train_bytes: int, eval_bytes: int, max_passes: float = 4.0,
                  small_batch: tuple[int, int] = (4, 32)) -> tuple[IsoFLOPConfig, list[str]]:
    """``cfg`` resized to the text that served, and one line per change it made.

    1. Budgets shrink (all by the same factor, so their ratios stay) until no run passes over the
       training text more than ``max_passes`` times (Muennighoff et al., 2023: beyond ~4 passes,
       repeated tokens are worth markedly less than new ones).
    2. If a run is then shorter than ``min_steps``, rows get smaller (``small_batch`` = (batch_size,
       seq_len)), and if that is not enough the largest sizes are dropped (at least 3 stay).
    3. The evaluation shrinks to the held-out rows there are.
    Raises ValueError when no experiment with at least 3 sizes fits.
    """
    notes = []

    def worst_passes(c):
        return max(budget / training_flops_per_token(*shape, c)[1] / train_bytes for budget in c.budgets for shape in c.shapes)

    def cap_passes(c):
        passes = worst_passes(c)
        if passes <= max_passes:
            return c
        scale = max_passes / passes
        c = replace(c, budgets=tuple(_round_down(b * scale) for b in c.budgets))
        notes.append(f"{train_bytes:,} training bytes: budgets scaled by {scale:.3g} to {[f'{b:.3g}' for b in c.budgets]} "
                     f"so that no run passes over the text more than {max_passes:g} times (it would have made {passes:.1f}).")
        return c

    cfg = cap_passes(cfg)

    def too_short(c):
        return [k for k, steps in steps_per_run(c).items() if steps < c.min_steps]

    if too_short(cfg) and (cfg.batch_size, cfg.seq_len) != small_batch:
        cfg = replace(cfg, batch_size=small_batch[0], seq_len=small_batch[1])
        notes.append(f"rows of {cfg.batch_size} x {cfg.seq_len} bytes per step, so that the largest models still make "
                     f"at least {cfg.min_steps} steps.")
        cfg = cap_passes(cfg)  # shorter rows make each token a little cheaper
    while too_short(cfg) and len(cfg.shapes) > 3:
        dropped = cfg.shapes[-1]
        cfg = replace(cfg, shapes=cfg.shapes[:-1])
        notes.append(f"size {dropped} dropped: at these budgets it would make fewer than {cfg.min_steps} steps.")
    if too_short(cfg):
        raise ValueError(f"{train_bytes:,} training bytes are too few for an IsoFLOP experiment with 3 sizes of at least "
                         f"{cfg.min_steps} steps each; give more text (e.g. DIALOGSUM_DIR) or smaller shapes.")
    eval_rows = eval_bytes // cfg.seq_len
    fits = eval_rows // cfg.batch_size
    if fits < 1:
        raise ValueError(f"{eval_bytes:,} held-out bytes make fewer than one evaluation batch of {cfg.batch_size} x {cfg.seq_len}.")
    if fits < cfg.eval_batches:
        cfg = replace(cfg, eval_batches=fits)
        notes.append(f"evaluation on {fits} held-out batch(es) ({fits * cfg.batch_size * cfg.seq_len:,} bytes), all there is.")
    return cfg, notes


def steps_per_run(cfg: IsoFLOPConfig) -> dict:
    """{(budget, (n_layer, d_model)): optimizer steps} without training anything, to plan a run."""
    out = {}
    for budget in cfg.budgets:
        for shape in cfg.shapes:
            _, per_token = training_flops_per_token(*shape, cfg)
            out[(budget, shape)] = round(budget / per_token / (cfg.batch_size * cfg.seq_len))
    return out
