"""Benchmark: the course training loop against a bare PyTorch loop, DDP scaling on CPU, bf16 on a GPU.

    python bench/bench_training.py            # overhead + ddp (+ gpu when CUDA is available)
    python bench/bench_training.py overhead [--steps 40] [--rounds 5]
    python bench/bench_training.py ddp [--steps 40]
    python bench/bench_training.py gpu [--steps 50]          # needs CUDA; ~100M-parameter decoder

overhead: the same course_lib DecoderOnlyLM, the same fixed batches and the same optimizer, schedule and
clipping, timed as ``course_lib.training.train`` and as a hand-written loop; rounds alternate between the
two and the median per-step time of each is compared.
ddp: ``torchrun`` with 1 and then 2 gloo processes (1 thread each), the same per-process batch; scaling
efficiency = tokens/s with 2 processes / (2 x tokens/s with 1).
gpu: tokens/s and peak memory of bf16 autocast training steps of a GPT-2-small-shaped decoder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from training_bench_task import BATCH, SEQ, build, fixed_batches  # noqa: E402

from course_lib.device import autocast, best_precision, get_device  # noqa: E402
from course_lib.training import TrainConfig, lr_factor, make_optimizer, train  # noqa: E402


def bare_loop(model, batches, cfg: TrainConfig, device) -> float:
    """What a student would write by hand: forward, backward, clip, step, schedule. Seconds per step."""
    precision = best_precision(device, prefer=cfg.precision)
    opt = make_optimizer(model, cfg, device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    model.to(device).train()
    start = time.perf_counter()
    for step in range(cfg.max_steps):
        batch = {k: v.to(device) for k, v in batches[step % len(batches)].items()}
        with autocast(precision):
            _, loss = model(**batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / cfg.max_steps


def course_loop(model, batches, cfg: TrainConfig, device) -> float:
    start = time.perf_counter()
    train(model, batches, cfg)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / cfg.max_steps


def overhead(args) -> None:
    device = get_device("auto")
    batches = fixed_batches(8)
    cfg = TrainConfig(max_steps=args.steps, warmup_steps=5, progress=True, log_every=1, eval_every=0, device=str(device))
    warm = TrainConfig(**{**cfg.__dict__, "max_steps": 3, "progress": False})
    model, _, _ = build()
    bare_loop(model, batches, warm, device)  # first-touch allocations, thread pools
    course_loop(model, batches, warm, device)
    times = {"course_lib.training.train": [], "bare PyTorch loop": []}
    for r in range(args.rounds):
        for name, fn in (("course_lib.training.train", course_loop), ("bare PyTorch loop", bare_loop))[:: 1 if r % 2 == 0 else -1]:
            model, _, _ = build()
            times[name].append(fn(model, batches, cfg, device))
    tokens = BATCH * SEQ
    print(f"\nmodel: DecoderOnlyLM, {sum(p.numel() for p in model.parameters()):,} parameters; batch {BATCH} x {SEQ} tokens; "
          f"{args.steps} steps x {args.rounds} rounds; device {device}; torch threads {torch.get_num_threads()}")
    print("| loop | median s/step | tokens/s | all rounds (s/step) |\n|---|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.4f} | {tokens / statistics.median(ts):,.0f} | {', '.join(f'{t:.4f}' for t in ts)} |")
    ratio = statistics.median(times["course_lib.training.train"]) / statistics.median(times["bare PyTorch loop"])
    print(f"\noverhead of the course loop: {100 * (ratio - 1):+.1f}% (median vs median)")


def _torchrun(nproc: int, steps: int, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "course_lib.train_ddp", "training_bench_task:build", "--out", str(out), "--arg", f"steps={steps}"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return torch.load(out, weights_only=True)


def ddp(args) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in (1, 2):
            result = _torchrun(nproc, args.steps, Path(tmp) / f"ddp{nproc}.pt")
            tps = result["history"]["tokens_per_s"][args.steps // 4:]  # steady state: skip the first quarter
            rows.append((nproc, statistics.median(tps)))
    one = rows[0][1]
    print(f"\nDDP on CPU (gloo, 1 thread per process), per-process batch {BATCH} x {SEQ}, {args.steps} steps, "
          "median tokens/s over the last three quarters")
    print("| processes | global tokens/s | speed-up | scaling efficiency |\n|---|---|---|---|")
    for nproc, tps in rows:
        print(f"| {nproc} | {tps:,.0f} | {tps / one:.2f}x | {tps / (nproc * one):.0%} |")


def gpu(args) -> None:
    if not torch.cuda.is_available():
        sys.exit("No CUDA device: the gpu benchmark needs one.")
    from course_lib.model import DecoderOnlyLM, TransformerConfig

    config = TransformerConfig(vocab_size=32_000, d_model=768, n_head=12, n_layer=12, max_seq_len=1024)  # ~110M parameters
    model = DecoderOnlyLM(config)
    n_params = model.num_parameters()
    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": (ids := torch.randint(0, 32_000, (args.batch, 1024), generator=g)), "labels": ids} for _ in range(4)]
    torch.cuda.reset_peak_memory_stats()
    cfg = TrainConfig(max_steps=args.steps, warmup_steps=5, progress=False, eval_every=0, precision="bf16", device="cuda")
    history = train(model, batches, cfg)
    peak = torch.cuda.max_memory_allocated() / 2**30
    tps = statistics.median(history.tokens_per_s[args.steps // 4:])
    print(f"\n{torch.cuda.get_device_name()}: DecoderOnlyLM {n_params / 1e6:.0f}M parameters, batch {args.batch} x 1024, bf16 autocast")
    print(f"| tokens/s (median) | step time | peak memory |\n|---|---|---|\n| {tps:,.0f} | {args.batch * 1024 / tps * 1000:.0f} ms | {peak:.1f} GiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", default="all", choices=["all", "overhead", "ddp", "gpu"],
                        help="all (default): overhead and ddp, plus gpu when CUDA is available")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="gpu: rows of 1024 tokens per step")
    args = parser.parse_args()
    if args.which == "all":
        overhead(args)
        ddp(args)
        if torch.cuda.is_available():
            gpu(args)
        return
    {"overhead": overhead, "ddp": ddp, "gpu": gpu}[args.which](args)


if __name__ == "__main__":
    main()
