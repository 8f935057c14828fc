"""Greedy generation of 256 new tokens: course decoder with vs without KV cache, and HF generate on the same weights.

    HF_HUB_OFFLINE=1 python bench/bench_kv_cache.py [--new 256 --prompt 16 --d-model 256 --n-layer 4 --repeats 3]

All three produce the same tokens (asserted), so the times compare the same work.
Batch 1, fp32, CPU threads as torch sets them; the median of ``--repeats`` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--new", type=int, default=256)
    p.add_argument("--prompt", type=int, default=16)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    from transformers import GPT2Config, GPT2LMHeadModel

    from course_lib.gpt2_weights import decoder_from_gpt2

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=args.vocab, n_embd=args.d_model, n_head=args.n_head, n_layer=args.n_layer,
                                    n_positions=args.prompt + args.new)).eval()
    ours = decoder_from_gpt2(hf)
    prompt = torch.randint(0, args.vocab, (1, args.prompt))
    runs = {
        "course, KV cache": lambda: ours.generate(prompt, args.new, eos_token_id=None, use_cache=True),
        "course, no cache": lambda: ours.generate(prompt, args.new, eos_token_id=None, use_cache=False),
        "HF generate (cache)": lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=args.new,
                                                   min_new_tokens=args.new, do_sample=False, pad_token_id=0),
    }
    with torch.no_grad():
        runs["course, KV cache"]()  # warm-up
        results = {name: timed(fn, args.repeats) for name, fn in runs.items()}
    outputs = [out for _, out in results.values()]
    assert all(torch.equal(outputs[0], o) for o in outputs[1:]), "the three decoders disagree"
    report = {"shape": vars(args), "threads": torch.get_num_threads()}
    for name, (sec, _) in results.items():
        report[name] = {"seconds": round(sec, 3), "new_tokens_per_s": round(args.new / sec, 1)}
        print(f"{name:20s} {sec:7.2f} s   {args.new / sec:7.1f} new tokens/s")
    speedup = results["course, no cache"][0] / results["course, KV cache"][0]
    vs_hf = results["HF generate (cache)"][0] / results["course, KV cache"][0]
    report.update(cache_speedup=round(speedup, 2), course_cache_vs_hf=round(vs_hf, 2))
    print(f"KV cache speedup: {speedup:.1f}x (target >= 3x); course (cache) is {vs_hf:.2f}x the speed of HF generate")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
