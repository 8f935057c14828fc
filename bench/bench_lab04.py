"""Lab 04 benchmarks: the offline FLAN-T5 stand-in's ROUGE on DialogSum test, and decoding throughput.

    HF_HUB_OFFLINE=1 DIALOGSUM_DIR=../shared/data/dialogsum python bench/bench_lab04.py [--smoke] [--n 500]

1. Loads the shipped stand-in that serves google/flan-t5-base offline and reports its build from the model
   card. Scores greedy zero-shot summaries (FLAN template) of the test dialogues against all three references
   (best match) with the reading controls of ``evaluation.summary_controls`` (another dialogue's references,
   the first turn, a constant sentence, distinct outputs), and against each reference separately, averaged
   over the 1,500 (dialogue, reference) rows of the hub mirror, the way the course's figure (ROUGE-1 0.2334
   for FLAN-T5-base, zero-shot) was computed.
2. Times course_lib.generation.decode against model.generate on the same model, prompts and settings.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from course_lib import data, evaluation, generation, prompting
from course_lib.device import set_seed
from course_lib.standins import t5 as t5_standin


def rouge_on_test(model, tokenizer, n: int, batch_size: int) -> dict:
    rows = list(data.load_dialogsum("test", test_view="dialogues"))[:n]
    prompts = [prompting.flan_prompt(r["dialogue"]) for r in rows]
    start = time.perf_counter()
    outputs = generation.summarize(model, tokenizer, prompts, generation.GenerationSettings(max_new_tokens=64),
                                   batch_size=batch_size, progress=True)
    seconds = time.perf_counter() - start
    controls = evaluation.summary_controls(outputs, [r["dialogue"] for r in rows], [r["references"] for r in rows])
    mirror_preds = [o for o, r in zip(outputs, rows) for _ in r["references"]]
    mirror_refs = [ref for r in rows for ref in r["references"]]
    mirror = evaluation.rouge(mirror_preds, mirror_refs)
    rounded = {k: ({m: round(x, 4) for m, x in v.items()} if isinstance(v, dict) else round(v, 4)) for k, v in controls.items()}
    return {"dialogues": len(rows), "mirror_rows": len(mirror_refs), "generate_seconds": round(seconds, 1),
            "most_common_prediction": max(set(outputs), key=outputs.count), "multi_reference_controls": rounded,
            "mirror_rows_mean": {k: round(v, 4) for k, v in mirror.items()},
            "example": {"prediction": outputs[0], "references": rows[0]["references"]}}


def throughput(model, tokenizer, n_prompts: int, batch_size: int, max_new_tokens: int, repeats: int = 2) -> list[dict]:
    rows = list(data.load_dialogsum("test", test_view="dialogues"))[:n_prompts]
    prompts = [prompting.flan_prompt(r["dialogue"]) for r in rows]
    results = []
    for name, s in [("greedy", generation.GenerationSettings(max_new_tokens=max_new_tokens, stop_at_eos=True)),
                    ("sample top-k=25 T=0.8", generation.GenerationSettings(max_new_tokens=max_new_tokens, do_sample=True, top_k=25, temperature=0.8)),
                    ("sample top-p=0.9", generation.GenerationSettings(max_new_tokens=max_new_tokens, do_sample=True, top_p=0.9))]:
        row = {"settings": name}
        texts = {}
        for engine in ("course", "hf"):
            best, tokens = float("inf"), 0
            for _ in range(repeats):
                set_seed(0)
                start = time.perf_counter()
                out = generation.summarize(model, tokenizer, prompts, s, batch_size=batch_size, engine=engine)
                best = min(best, time.perf_counter() - start)
                tokens = sum(len(tokenizer(o, add_special_tokens=False)["input_ids"]) + 1 for o in out)
            texts[engine] = out
            row[f"{engine}_s"] = round(best, 2)
            row[f"{engine}_tok_per_s"] = round(tokens / best, 1)
        row["ratio_course_over_hf"] = round(row["hf_s"] / row["course_s"], 3)  # > 1: course loop faster
        row["same_text"] = sum(a == b for a, b in zip(texts["course"], texts["hf"])) / len(prompts)
        results.append(row)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="few dialogues and short throughput runs (seconds)")
    ap.add_argument("--n", type=int, default=500, help="test dialogues to score")
    ap.add_argument("--throughput-prompts", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    n = min(args.n, 8) if args.smoke else args.n

    start = time.perf_counter()
    model, tokenizer, card = t5_standin.load()
    load_seconds = time.perf_counter() - start
    torch.set_grad_enabled(False)
    report = {"standin": card.name, "note": card.note, "parameters": card.metrics["parameters"],
              "build_wall_seconds": card.metrics["train_seconds_all_sessions"], "build_threads": card.metrics["torch_threads"],
              "build_precision": card.metrics["precision"], "load_seconds": round(load_seconds, 1),
              "torch_threads_now": torch.get_num_threads()}
    report["rouge"] = rouge_on_test(model, tokenizer, n, args.batch_size)
    report["throughput"] = throughput(model, tokenizer, 4 if args.smoke else args.throughput_prompts, 8,
                                      16 if args.smoke else 64, repeats=1 if args.smoke else 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
