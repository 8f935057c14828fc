"""The course's fine-tuning experiment with course_lib: FLAN-T5-base on DialogSum summarization, full fine-tuning
vs LoRA (r=32, alpha=32, q and v), ROUGE on the test dialogues next to the figures the course reported.

    python bench/gpu_finetune.py                  # on a GPU with internet (the real FLAN-T5-base)
    python bench/gpu_finetune.py --dry-run        # 2 steps, 2 test dialogues, any device: checks the pipeline

Offline, `course_lib.hub` serves the DialogSum stand-in instead and the table says so. Prints a markdown table
(and writes it with --out) for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import torch

from course_lib import evaluation, finetuning, generation, hub, prompting
from course_lib.atomic import atomic_write_text
from course_lib.device import get_device, set_seed
from course_lib.training import TrainConfig, train

COURSE_ROUGE1 = {"zero-shot": 0.2334, "full": 0.4216, "lora": 0.4081}  # the course's reported test ROUGE-1


def rouge_on(model, tokenizer, rows, batch_size: int, max_new_tokens: int) -> dict:
    prompts = [prompting.flan_prompt(r["dialogue"]) for r in rows]
    outputs = generation.summarize(model, tokenizer, prompts, generation.GenerationSettings(max_new_tokens=max_new_tokens),
                                   batch_size=batch_size, engine="hf")
    return evaluation.rouge(outputs, [r.get("references") or r["summary"] for r in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="google/flan-t5-base")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps per method")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr-full", type=float, default=3e-4)
    parser.add_argument("--lr-lora", type=float, default=1e-3)
    parser.add_argument("--n-test", type=int, default=500, help="test dialogues scored (500 = all)")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="the course's playground setting")
    parser.add_argument("--out", default=None, help="write the table (markdown) and the rows (json) here")
    parser.add_argument("--dry-run", action="store_true", help="2 steps, 2 test dialogues: checks the pipeline")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.dry_run:
        args.steps, args.n_test, args.batch_size, args.max_new_tokens = 2, 2, 2, 8
    device = get_device("auto")
    base, tokenizer = hub.load_model_and_tokenizer(args.model, task="seq2seq")
    served = hub.last_served("model")
    train_rows = hub.load_dataset("knkarthick/dialogsum", "train")
    test_rows = list(hub.load_dataset("knkarthick/dialogsum", "test", test_view="dialogues"))[: args.n_test]
    base = base.to(device).eval()
    _, total = finetuning.count_trainable(base)
    batches = finetuning.instruction_batches(tokenizer, train_rows, ("summary",), args.batch_size, args.seed,
                                             max_target_tokens=128)
    rows = [{"method": "zero-shot", "trainable": 0, "seconds": 0.0,
             **rouge_on(base, tokenizer, test_rows, 4 * args.batch_size, args.max_new_tokens)}]
    for method, lr in (("full", args.lr_full), ("lora", args.lr_lora)):
        set_seed(args.seed)
        model = copy.deepcopy(base)
        if method == "lora":
            finetuning.add_lora(model, rank=32, alpha=32, target_modules=["q", "v"])
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        train(model, batches, TrainConfig(max_steps=args.steps, lr=lr, warmup_steps=min(100, args.steps // 10),
                                          eval_every=0, weight_decay=0.0, device=str(device), seed=args.seed))
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else float("nan")
        model.eval()
        rows.append({"method": method, "trainable": finetuning.count_trainable(model)[0], "seconds": seconds,
                     "peak GB": peak, **rouge_on(model, tokenizer, test_rows, 4 * args.batch_size, args.max_new_tokens)})
        del model
    lines = [f"model: {served.served} [{served.kind}]; device: {device}; {args.steps} steps x {args.batch_size}; "
             f"{len(test_rows)} test dialogues", "",
             "| method | trainable | share | train s | peak GB | ROUGE-1 | ROUGE-2 | ROUGE-L | course ROUGE-1 (published) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['trainable']:,} | {r['trainable'] / total:.2%} | {r['seconds']:.0f} | "
                     f"{r.get('peak GB', float('nan')):.1f} | {r['rouge1']:.4f} | {r['rouge2']:.4f} | {r['rougeL']:.4f} | "
                     f"{COURSE_ROUGE1[r['method']]} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        atomic_write_text(args.out + ".md", table + "\n")
        atomic_write_text(args.out + ".json", json.dumps(rows, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
