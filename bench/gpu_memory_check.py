"""GPU check for lab 05: predicted vs measured training memory of a ~100M-parameter GPT-2.

    python bench/gpu_memory_check.py [--batch 8] [--seq 1024] [--steps 3] [--out gpu_memory.json]
    python bench/gpu_memory_check.py --dry-run     # tiny sizes on CPU: checks the script, measures nothing on a GPU

For fp32 and bf16 autocast, with eager attention (stores the s^2 scores, as Korthikanti et al.
assume) and with SDPA (fused attention, no s^2 scores kept), it trains a few AdamW steps and reads
``torch.cuda.memory_allocated`` / ``max_memory_allocated``:
- weights: allocated after ``model.to(cuda)``;
- activations: allocated after the forward pass minus before it (what is kept for backward, logits included);
- model states: allocated after the step with gradients kept (weights + grads + Adam m, v);
- peak: ``max_memory_allocated`` over the steps;
and prints them next to course_lib.memory's predictions.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from course_lib import memory as mem
from course_lib.device import autocast, best_precision, set_seed

MB = 1e6


def gpt2_config(args, attn: str) -> GPT2Config:
    return GPT2Config(n_layer=args.layers, n_embd=args.d_model, n_head=args.heads, vocab_size=args.vocab,
                      n_positions=args.seq, activation_function="gelu", attn_implementation=attn,
                      bos_token_id=0, eos_token_id=0)


def predict(args, precision_name: str, attn: str) -> dict:
    shape = mem.TransformerShape(args.layers, args.d_model, args.heads, args.vocab, args.seq)
    n = mem.param_count(shape)
    bytes_per_value = 2 if precision_name == "bf16" else 4
    recompute = "none" if attn == "eager" else "selective"  # fused attention keeps no s^2 scores
    acts = mem.activation_bytes(shape, args.batch, args.seq, bytes_per_value, mask_bytes=1, recompute=recompute)
    logits = mem.logits_bytes(shape, args.batch, args.seq, bytes_per_value)
    if precision_name == "bf16":
        logits += mem.logits_bytes(shape, args.batch, args.seq, 4)  # HF upcasts logits to fp32 for the loss
        acts += 2 * (n - args.vocab * args.d_model - args.seq * args.d_model)  # bf16 weight copies saved for backward
    return {"n_params": n, "weights": 4 * n, "states": 16 * n, "activations": acts + logits,
            "peak": 16 * n + acts + logits}


def measure(args, precision_name: str, attn: str, device: torch.device) -> dict:
    set_seed(0)
    precision = best_precision(device, prefer=precision_name)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    model = GPT2LMHeadModel(gpt2_config(args, attn)).to(device).train()
    weights = torch.cuda.memory_allocated(device) - base
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)  # foreach would add temporaries
    ids = torch.randint(0, args.vocab, (args.batch, args.seq), device=device)
    for _ in range(args.steps):
        before = torch.cuda.memory_allocated(device)
        with autocast(precision):
            loss = model(input_ids=ids, labels=ids).loss
        activations = torch.cuda.memory_allocated(device) - before
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)  # keep gradients allocated so that the states can be read
        del loss
    torch.cuda.synchronize(device)
    states = torch.cuda.memory_allocated(device) - base
    peak = torch.cuda.max_memory_allocated(device) - base
    del model, opt
    return {"weights": weights, "states": states, "activations": activations, "peak": peak}


def dry_run(args) -> None:
    """Tiny sizes on CPU: run one step of each variant and print the predictions."""
    for attn in ("eager", "sdpa"):
        model = GPT2LMHeadModel(gpt2_config(args, attn))
        ids = torch.randint(0, args.vocab, (args.batch, args.seq))
        model(input_ids=ids, labels=ids).loss.backward()
        for precision_name in ("fp32", "bf16"):
            p = predict(args, precision_name, attn)
            print(f"dry run {precision_name}/{attn}: predicted " + ", ".join(f"{k} {v / MB:.2f} MB" for k, v in p.items() if k != "n_params"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default="", help="write the rows as JSON here")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU")
    args = parser.parse_args()
    if args.dry_run:
        args.layers, args.d_model, args.heads, args.vocab, args.batch, args.seq = 2, 64, 4, 500, 2, 32
        dry_run(args)
        return
    if not torch.cuda.is_available():
        raise SystemExit("No CUDA device: this check needs a GPU (use --dry-run to test the script on CPU).")
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    rows = []
    for precision_name in ("fp32", "bf16"):
        for attn in ("eager", "sdpa"):
            p, m = predict(args, precision_name, attn), measure(args, precision_name, attn, device)
            for part in ("weights", "states", "activations", "peak"):
                rows.append({"precision": precision_name, "attention": attn, "part": part, "predicted_MB": p[part] / MB,
                             "measured_MB": m[part] / MB, "ratio": m[part] / p[part]})
    print(f"GPT-2, {predict(args, 'fp32', 'eager')['n_params'] / 1e6:.1f}M parameters, batch {args.batch}, seq {args.seq}")
    print("| precision | attention | part | predicted MB | measured MB | measured / predicted |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['precision']} | {r['attention']} | {r['part']} | {r['predicted_MB']:,.0f} | {r['measured_MB']:,.0f} | {r['ratio']:.3f} |")
    if args.out:
        folder = os.path.dirname(os.path.abspath(args.out))
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as fh:
            json.dump({"args": vars(args), "device": torch.cuda.get_device_name(device), "rows": rows}, fh, indent=1)
        os.replace(fh.name, args.out)


if __name__ == "__main__":
    main()
