"""The training loop every lab uses, for course_lib models and Hugging Face models alike.

    cfg = TrainConfig(max_steps=200, lr=3e-4)
    history = train(model, train_batches, cfg, eval_batches=None)

One optimizer step = ``grad_accum_steps`` micro-batches, each a dict of tensors
passed as ``model(**batch)``; the model returns an HF ``ModelOutput`` with
``.loss`` or a tuple ``(logits, loss)``. AdamW, linear warmup then cosine decay,
gradient clipping, mixed precision from ``course_lib.device``, periodic
evaluation, atomic checkpoints with exact resume, and several processes through
``torch.distributed`` (DDP, or FSDP on GPUs) when launched with ``torchrun``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from . import checkpoint as ckpt
from .checks import check_choice, check_int, check_number
from .device import autocast, best_precision, configure_threads, get_device, grad_scaler, set_seed


@dataclass
class TrainConfig:
    max_steps: int = 200  # optimizer steps (each one is grad_accum_steps micro-batches)
    lr: float = 3e-4  # peak learning rate, reached at the end of warmup
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio at max_steps
    warmup_steps: int = 20  # linear warmup from lr / warmup_steps to lr
    grad_accum_steps: int = 1  # micro-batches summed into one step (bigger batch, same memory)
    clip_norm: float | None = 1.0  # clip the global gradient norm to this; None = no clipping
    weight_decay: float = 0.1  # AdamW decay, applied only to >= 2-D weights (not biases, norms)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW moments, as in GPT-3 / nanoGPT
    eval_every: int = 50  # evaluate every this many steps (and at the end); 0 = never
    eval_steps: int = 10  # batches per evaluation (all ranks together)
    precision: str = "auto"  # 'auto' (bf16 / fp16+scaler on GPU, fp32 on CPU), 'fp32', 'bf16', 'fp16'
    device: str = "auto"  # 'auto', 'cpu', 'cuda', 'mps'; under torchrun each rank takes cuda:LOCAL_RANK
    seed: int = 0  # seeds dropout and any randomness in the batches (rank r uses seed + r)
    checkpoint_dir: str | None = None  # write checkpoint_dir/last.pt here; None = no checkpoints
    checkpoint_every: int = 0  # steps between checkpoints (0 = only at the end, if checkpoint_dir is set)
    resume: bool = True  # continue from checkpoint_dir/last.pt when it exists
    progress: bool = True  # show a tqdm bar (rank 0 only)
    log_every: int = 1  # record loss / lr / tokens per second every this many steps
    strategy: str = "auto"  # 'auto' (ddp when torch.distributed has > 1 process), 'none', 'ddp', 'fsdp'
    shard_data: bool = True  # under DDP rank r takes every world_size-th batch; False if the loader shards

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        for name in ("max_steps", "grad_accum_steps", "log_every", "eval_steps"):
            check_int("TrainConfig", name, getattr(self, name), 1)
        for name in ("warmup_steps", "eval_every", "checkpoint_every", "seed"):
            check_int("TrainConfig", name, getattr(self, name), 0)
        check_number("TrainConfig", "lr", self.lr, 0.0, low_open=True)
        check_number("TrainConfig", "min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_number("TrainConfig", "weight_decay", self.weight_decay, 0.0)
        if self.clip_norm is not None:
            check_number("TrainConfig", "clip_norm", self.clip_norm, 0.0, low_open=True)
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2):
            raise ValueError(f"TrainConfig.betas={self.betas!r}: must be two numbers in [0, 1), e.g. (0.9, 0.95).")
        for beta in self.betas:
            check_number("TrainConfig", "betas", beta, 0.0, 0.999999)
        check_choice("TrainConfig", "precision", self.precision, {"auto", "fp32", "bf16", "fp16"})
        check_choice("TrainConfig", "strategy", self.strategy, {"auto", "none", "ddp", "fsdp"})


@dataclass
class History:
    """What a run measured: one entry per logged step, one per evaluation."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)  # mean training loss over the step's micro-batches (all ranks)
    lr: list[float] = field(default_factory=list)  # learning rate used by that step
    tokens_per_s: list[float] = field(default_factory=list)  # input tokens per second, all ranks together
    grad_norm: list[float] = field(default_factory=list)  # global gradient norm before clipping
    eval_step: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)

    def to_frame(self):
        """A pandas DataFrame indexed by step, with eval_loss where an evaluation ran."""
        import pandas as pd

        frame = pd.DataFrame({"step": self.step, "loss": self.loss, "lr": self.lr,
                              "tokens_per_s": self.tokens_per_s, "grad_norm": self.grad_norm})
        evals = pd.DataFrame({"step": self.eval_step, "eval_loss": self.eval_loss})
        return frame.merge(evals, on="step", how="outer").set_index("step").sort_index()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(**{k: list(v) for k, v in data.items()})


@dataclass
class StepPlan:
    """How many steps a run makes on the text it has, and what that means."""

    steps: int  # optimizer steps the run will make
    requested: int  # steps asked for
    passes: float  # passes over the training tokens those steps make
    capped: bool  # True when the text was too small for the steps asked for
    note: str  # one line for the lab's output


def plan_steps(requested: int, n_tokens: int, tokens_per_step: int, max_passes: float) -> StepPlan:
    """``requested`` steps, or fewer when they would pass over ``n_tokens`` more than ``max_passes`` times.

    Repeating text is worth less each time (Muennighoff et al., 2023, "Scaling Data-Constrained Language
    Models", find about 4 passes nearly as good as fresh text and little gain past ~16), and a small model
    that sees the same few thousand tokens hundreds of times only memorises them.
    """
    if requested < 1 or n_tokens < 1 or tokens_per_step < 1 or not max_passes > 0:
        raise ValueError(f"plan_steps needs requested, n_tokens, tokens_per_step >= 1 and max_passes > 0; got "
                         f"{requested}, {n_tokens}, {tokens_per_step}, {max_passes}.")
    limit = max(1, int(max_passes * n_tokens / tokens_per_step))
    steps = min(requested, limit)
    passes = steps * tokens_per_step / n_tokens
    if steps < requested:
        note = (f"{n_tokens:,} training tokens allow {steps:,} of the {requested:,} steps asked for at "
                f"{tokens_per_step:,} tokens per step (at most {max_passes:g} passes over the text); "
                "results at this size show the mechanics, not what more text would teach.")
    else:
        note = f"{steps:,} steps of {tokens_per_step:,} tokens: {passes:.2f} passes over {n_tokens:,} training tokens."
    return StepPlan(steps, requested, passes, steps < requested, note)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr for optimizer step ``step`` (0-based): linear warmup, then cosine to min_lr_ratio."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    decay_steps = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings only (biases and norm gains are left alone)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("The model has no trainable parameters (all have requires_grad=False).")
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=device.type == "cuda")


def model_loss(output) -> torch.Tensor:
    """The loss from an HF ModelOutput (``.loss``), a dict with 'loss', or a tuple ``(logits, loss)``."""
    loss = None
    if isinstance(output, Mapping) or hasattr(output, "loss"):
        loss = output["loss"] if isinstance(output, Mapping) and "loss" in output else getattr(output, "loss", None)
    elif isinstance(output, (tuple, list)) and len(output) >= 2:
        loss = output[1]
    if not isinstance(loss, torch.Tensor):
        raise ValueError("The model returned no loss. Put the targets in the batch (e.g. a 'labels' key) so that "
                         "model(**batch) returns an output with .loss or a tuple (logits, loss).")
    return loss


class BatchStream:
    """Batches in a fixed order from a list, a function ``index -> batch``, or any re-iterable (a DataLoader).

    Micro-batch k of rank r has global index ``k * world + r`` (or ``k`` when not sharding). A list is
    indexed modulo its length and an iterable is re-iterated when it runs out (a DataLoader with
    shuffle=True draws a new order each pass), so a source shorter than the run is cycled. Resuming
    jumps straight to the right index for a list or a function; an iterable is replayed from its
    start, which lands on the same batches when iterating it is deterministic.
    """

    def __init__(self, source, rank: int = 0, world: int = 1, shard: bool = True, start: int = 0):
        if isinstance(source, (str, bytes, Mapping)) or source is None:
            raise TypeError(f"Expected batches as a list, a DataLoader/iterable or a function index -> batch; got {type(source).__name__}.")
        if isinstance(source, Sequence) and len(source) == 0:
            raise ValueError("The list of batches is empty.")
        if not (isinstance(source, Sequence) or callable(source) or hasattr(source, "__iter__")):
            raise TypeError(f"Expected batches as a list, a DataLoader/iterable or a function index -> batch; got {type(source).__name__}.")
        self.source, self.rank, self.world, self.shard = source, rank, world, shard
        self.consumed = start  # micro-batches this rank has taken so far
        self._it, self._pos = None, 0  # iterator and the global index of its next item

    def _global_index(self, k: int) -> int:
        return k * self.world + self.rank if self.shard else k

    def next(self) -> Mapping:
        g = self._global_index(self.consumed)
        self.consumed += 1
        src = self.source
        if isinstance(src, Sequence):
            batch = src[g % len(src)]
        elif callable(src) and not hasattr(src, "__iter__"):
            batch = src(g)
        else:
            batch = self._from_iterable(g)
        if not isinstance(batch, Mapping) or not any(isinstance(v, torch.Tensor) for v in batch.values()):
            raise TypeError(f"Each batch must be a dict of tensors such as {{'input_ids': ..., 'labels': ...}}; got {type(batch).__name__}.")
        return batch

    def _from_iterable(self, g: int):
        if self._it is None or self._pos > g:
            self._it, self._pos = iter(self.source), 0
        while True:
            try:
                item = next(self._it)
            except StopIteration:
                self._it = iter(self.source)
                try:
                    item = next(self._it)
                except StopIteration:
                    raise ValueError("train_batches ran out and cannot be iterated again (a one-shot generator?). "
                                     "Pass a list, a DataLoader, or a function index -> batch.") from None
            self._pos += 1
            if self._pos - 1 == g:
                return item


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _to(batch: Mapping, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _tokens(batch: Mapping) -> int:
    ids = batch.get("input_ids")
    return int(ids.numel()) if isinstance(ids, torch.Tensor) else int(next(v for v in batch.values() if isinstance(v, torch.Tensor)).numel())


def _wrap(model: nn.Module, strategy: str, device: torch.device) -> nn.Module:
    if strategy == "ddp":
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        # Shard each block of every ModuleList (the Transformer layers), then the rest at the root.
        for module in list(model.modules()):
            if isinstance(module, nn.ModuleList):
                for block in module:
                    fully_shard(block)
        fully_shard(model)
    return model


@torch.no_grad()
def evaluate(model: nn.Module, batches, steps: int = 10, precision=None, device=None) -> float:
    """Mean loss over ``steps`` batches (the same batches every call), averaged across ranks."""
    device = get_device(device) if device is not None else next(model.parameters()).device
    precision = precision or best_precision(device)
    rank, world = _dist()
    stream = BatchStream(batches, rank, world, shard=True)
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for k in range(math.ceil(steps / world)):
        if k * world + rank >= steps:
            stream.consumed += 1
            continue
        batch = _to(stream.next(), device)
        with autocast(precision):
            total[0] += model_loss(model(**batch)).double()
        total[1] += 1
    if world > 1:
        dist.all_reduce(total)
    model.train(was_training)
    return float(total[0] / total[1])


def _state(model, opt, strategy):
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return model.state_dict(), opt.state_dict()


def _load_state(model, opt, strategy, model_sd, opt_sd):
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(model, opt, model_state_dict=model_sd, optim_state_dict=opt_sd,
                       options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=False))
    else:
        model.load_state_dict(model_sd)
        opt.load_state_dict(opt_sd)


def _save(path, model, opt, sched, scaler, step, stream, history, cfg, strategy, rank, world):
    model_sd, opt_sd = _state(model, opt, strategy)
    rngs = [ckpt.rng_state()]
    if world > 1:
        rngs = [None] * world
        dist.all_gather_object(rngs, ckpt.rng_state())
    if rank == 0:
        ckpt.save_atomic({"model": model_sd, "optimizer": opt_sd, "scheduler": sched.state_dict(),
                          "scaler": scaler.state_dict(), "rng": rngs, "step": step, "consumed": stream.consumed,
                          "world": world, "history": history.to_dict(), "config": asdict(cfg)}, path)
    if world > 1:
        dist.barrier()


def train(model: nn.Module, train_batches, cfg: TrainConfig, eval_batches=None) -> History:
    """Train ``model`` in place for ``cfg.max_steps`` optimizer steps and return its History."""
    from tqdm.auto import tqdm

    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}.")
    cfg.validate()
    rank, world = _dist()
    strategy = cfg.strategy if cfg.strategy != "auto" else ("ddp" if world > 1 else "none")
    if strategy in {"ddp", "fsdp"} and world == 1 and not dist.is_initialized():
        raise RuntimeError(f"strategy={strategy!r} needs torch.distributed: launch with torchrun "
                           "(e.g. torchrun --nproc_per_node 2 -m course_lib.train_ddp ...).")
    configure_threads()
    device = get_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    precision = best_precision(device, prefer=cfg.precision)
    set_seed(cfg.seed + rank)

    raw = model.to(device)
    net = _wrap(raw, strategy, device)
    opt = make_optimizer(raw, cfg, device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    scaler = grad_scaler(precision)
    history, step, start = History(), 0, 0
    path = os.path.join(cfg.checkpoint_dir, ckpt.CHECKPOINT_NAME) if cfg.checkpoint_dir else None
    found = ckpt.latest(cfg.checkpoint_dir) if cfg.resume else None
    if found is not None:
        state = ckpt.load(found)
        if state["world"] != world:
            raise RuntimeError(f"{found} was written by {state['world']} process(es), this run has {world}; "
                               "resume with the same number of processes or use a new checkpoint_dir.")
        _load_state(raw, opt, strategy, state["model"], state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"][rank])
        step, start, history = state["step"], state["consumed"], History.from_dict(state["history"])
    stream = BatchStream(train_batches, rank, world, cfg.shard_data, start=start)
    params = [p for p in raw.parameters() if p.requires_grad]

    net.train()
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not cfg.progress or rank != 0)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    tokens, steps_since_log, t_log = 0, 0, time.perf_counter()
    while step < cfg.max_steps:
        for i in range(cfg.grad_accum_steps):
            batch = stream.next()
            tokens += _tokens(batch)
            last = i == cfg.grad_accum_steps - 1
            sync = net.no_sync() if strategy == "ddp" and not last else contextlib.nullcontext()
            if strategy == "fsdp":
                net.set_requires_gradient_sync(last)
            with sync:
                with autocast(precision):
                    loss = model_loss(net(**_to(batch, device)))
                scaler.scale(loss / cfg.grad_accum_steps).backward()
            loss_sum += loss.detach().double()
        scaler.unscale_(opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm or float("inf"))
        lr = sched.get_last_lr()[0]
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sched.step()
        step += 1
        steps_since_log += 1
        bar.update(1)

        if step % cfg.log_every == 0 or step == cfg.max_steps:
            stats = torch.stack([loss_sum, torch.tensor(float(tokens), dtype=torch.float64, device=device)])
            if world > 1:
                dist.all_reduce(stats)
            n_micro = cfg.grad_accum_steps * world * steps_since_log
            now = time.perf_counter()
            history.step.append(step)
            history.loss.append(float(stats[0]) / n_micro)
            history.lr.append(lr)
            history.tokens_per_s.append(float(stats[1]) / max(now - t_log, 1e-9))
            history.grad_norm.append(float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm))
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", lr=f"{lr:.2e}")
            loss_sum.zero_()
            tokens, steps_since_log, t_log = 0, 0, now
        if eval_batches is not None and cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.max_steps):
            history.eval_step.append(step)
            history.eval_loss.append(evaluate(raw, eval_batches, cfg.eval_steps, precision, device))
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}" if history.loss else "", eval=f"{history.eval_loss[-1]:.3f}")
            t_log = time.perf_counter()  # evaluation time is not training throughput
        if path and ((cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.max_steps):
            _save(path, raw, opt, sched, scaler, step, stream, history, cfg, strategy, rank, world)
            t_log = time.perf_counter()
    bar.close()
    return history
