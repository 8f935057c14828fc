"""Training-step throughput (tokens/s): course DecoderOnlyLM vs Hugging Face GPT2LMHeadModel, same shape, fp32.

    HF_HUB_OFFLINE=1 python bench/bench_transformer_throughput.py [--d-model 256 --n-layer 4 --batch 8 --seq 128 --steps 10]

One step = forward + backward + AdamW update on random tokens. Both models have the
same parameter count (asserted) and no dropout. Runs alternate between the two models
so that load from other processes hits both alike; the median step time is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def build(args):
    from transformers import GPT2Config, GPT2LMHeadModel

    from course_lib.gpt2_weights import decoder_from_gpt2

    torch.manual_seed(0)
    hf_config = GPT2Config(vocab_size=args.vocab, n_embd=args.d_model, n_head=args.n_head, n_layer=args.n_layer,
                           n_positions=args.seq, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = GPT2LMHeadModel(hf_config)
    ours = decoder_from_gpt2(hf)  # same shape, same starting weights
    assert ours.num_parameters() == hf.num_parameters(), (ours.num_parameters(), hf.num_parameters())
    return {"course DecoderOnlyLM": ours.train(), "HF GPT2LMHeadModel": hf.train()}


def step_times(model, ids, n_steps):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        loss = out[1] if isinstance(out, tuple) else out.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per model")
    args = p.parse_args()
    models = build(args)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq))
    for m in models.values():
        step_times(m, ids, 2)  # warm-up
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, m in models.items():
            times[name] += step_times(m, ids, args.steps)
    tokens = args.batch * args.seq
    result = {"shape": vars(args), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "parameters": next(iter(models.values())).num_parameters()}
    for name, ts in times.items():
        med = statistics.median(ts)
        result[name] = {"median_step_s": round(med, 4), "tokens_per_s": round(tokens / med, 1)}
        print(f"{name:22s} median step {med * 1e3:8.1f} ms   {tokens / med:9.0f} tokens/s")
    ratio = result["course DecoderOnlyLM"]["tokens_per_s"] / result["HF GPT2LMHeadModel"]["tokens_per_s"]
    result["ratio_course_over_hf"] = round(ratio, 3)
    print(f"ratio course / HF: {ratio:.2f} (target >= 1.0)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
