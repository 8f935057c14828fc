"""One training step of a GPT-2-small-shaped course decoder (~124M parameters) in bf16 autocast on a GPU:
tokens/s and model-FLOPs utilisation (MFU).

    python bench/gpu_transformer_step.py [--batch 16 --seq 1024 --steps 20 --compile] [--peak-tflops 989]

FLOPs per token follow PaLM (Chowdhery et al., 2022, App. B), as nanoGPT does: 6N + 12 * n_layer * d_model * T,
where N counts every weight used in a matmul (the tied embedding serves as the output head) and leaves out the
position table (a lookup, no FLOPs). MFU = achieved FLOP/s / the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from course_lib.device import autocast, best_precision, get_device, set_seed
from course_lib.model import DecoderOnlyLM, TransformerConfig

# dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, FLOP/s
PEAK_BF16 = {"H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100": 989e12,
             "A100": 312e12, "L4": 121e12, "A10G": 70e12}


def peak_flops(name: str, override_tflops: float | None) -> float:
    if override_tflops:
        return override_tflops * 1e12
    for key, value in PEAK_BF16.items():  # most specific names first
        if key in name:
            return value
    raise SystemExit(f"No bf16 peak known for {name!r}; pass --peak-tflops.")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20, help="timed steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--peak-tflops", type=float, default=None)
    args = p.parse_args()

    device = get_device("auto")
    if device.type != "cuda":
        raise SystemExit("This benchmark needs a CUDA GPU; on CPU use bench/bench_transformer_throughput.py.")
    precision = best_precision(device)
    set_seed(0)
    config = TransformerConfig(vocab_size=50304, d_model=768, n_head=12, n_layer=12, max_seq_len=args.seq,
                               activation="gelu_tanh", dropout=0.0)  # GPT-2 small; vocab padded to a multiple of 64
    model = DecoderOnlyLM(config).to(device).train()
    n_params = model.num_parameters()
    n_matmul = n_params - config.max_seq_len * config.d_model
    flops_per_token = 6 * n_matmul + 12 * config.n_layer * config.d_model * args.seq
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=True)
    step_model = torch.compile(model) if args.compile else model
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), device=device)

    def step():
        with autocast(precision):
            _, loss = step_model(input_ids=ids, labels=ids)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    tokens_per_s = args.batch * args.seq / seconds
    name = torch.cuda.get_device_name(device)
    peak = peak_flops(name, args.peak_tflops)
    result = {
        "gpu": name, "precision": precision.name, "compile": args.compile, "parameters": n_params,
        "batch": args.batch, "seq": args.seq, "step_ms": round(seconds * 1e3, 2), "tokens_per_s": round(tokens_per_s),
        "flops_per_token": flops_per_token, "achieved_tflops": round(tokens_per_s * flops_per_token / 1e12, 1),
        "peak_tflops": peak / 1e12, "mfu": round(tokens_per_s * flops_per_token / peak, 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2), "final_loss": round(loss.item(), 3),
        "torch": torch.__version__,
    }
    print(f"{name}: {n_params / 1e6:.1f}M params, {precision.name}, batch {args.batch} x {args.seq}: "
          f"{seconds * 1e3:.1f} ms/step, {tokens_per_s:,.0f} tokens/s, MFU {result['mfu']:.1%}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
