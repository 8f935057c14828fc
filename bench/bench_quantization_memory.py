"""Lab 05 figures on this machine: predicted vs measured training memory, ZeRO in 2 processes, int8 quality.

    HF_HUB_OFFLINE=1 DIALOGSUM_DIR=../shared/data/dialogsum python bench/bench_quantization_memory.py \
        [--threads 1] [--sentences 256] [--lm-steps 300]

Prints markdown tables:
1. model states and activations of HF GPT-2 models after one AdamW step (exact storage sums, CPU fp32)
   vs course_lib.memory's predictions;
2. torch ZeroRedundancyOptimizer with 2 gloo processes: Adam state per rank, wall time;
3. int8 versions of the packaged MiniLM encoder on DialogSum validation dialogues;
4. perplexity of a byte-level GPT-NeoX trained here, before and after int8.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from course_lib import hub
from course_lib import memory as mem
from course_lib.data import load_dialogsum
from course_lib.device import set_seed
from course_lib.evaluation import stream_perplexity
from course_lib.memory import measure as mm
from course_lib.quantization import measure as qe


def dialogues(split: str, n: int) -> list[str]:
    rows = load_dialogsum(split)
    return [r["dialogue"] for r in rows.select(range(min(n, len(rows))))]


def table(rows: list[dict], floatfmt: str = ",.4g") -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(format(r[k], floatfmt) if isinstance(r[k], float) else str(r[k]) for k in keys) + " |")
    return "\n".join(lines)


def predicted_vs_measured() -> list[dict]:
    rows = []
    mask_bytes = mm.dropout_mask_bytes("cpu")
    for L, h, a, V, s, b in [(2, 128, 4, 2000, 128, 4), (4, 256, 4, 8000, 256, 4), (6, 384, 6, 8000, 256, 8)]:
        cfg = GPT2Config(n_layer=L, n_embd=h, n_head=a, vocab_size=V, n_positions=s, activation_function="gelu",
                         attn_implementation="eager", bos_token_id=0, eos_token_id=0)
        set_seed(0)
        model = GPT2LMHeadModel(cfg)
        ids = torch.randint(0, V, (b, s))
        batch = {"input_ids": ids, "labels": ids}
        states = mm.measure_training_state(model, batch)
        acts = mm.measure_activations(model, batch)["activation_bytes"]
        shape = mem.TransformerShape(L, h, a, V, s)
        predicted_states = mem.model_state_bytes(mem.param_count(shape), "fp32")["total"]
        predicted_acts = mem.activation_bytes(shape, b, s, 4, mask_bytes) + mem.logits_bytes(shape, b, s)
        measured_states = states["param_bytes"] + states["grad_bytes"] + states["optimizer_bytes"]
        rows.append({"model": f"GPT-2 L={L} h={h} a={a} V={V}", "batch x seq": f"{b} x {s}",
                     "params": states["n_params"], "states pred (MB)": predicted_states / 1e6,
                     "states meas (MB)": measured_states / 1e6, "acts pred (MB)": predicted_acts / 1e6,
                     "acts meas (MB)": acts / 1e6, "acts meas/pred": acts / predicted_acts})
    return rows


def zero_run() -> list[dict]:
    start = time.perf_counter()
    ranks = mm.zero_optimizer_shards(mm.ZeroDemoConfig())
    seconds = time.perf_counter() - start
    return [{**r, "share": r["optimizer_bytes"] / (8 * r["total_params"]), "wall_s (whole run)": seconds} for r in ranks]


def int8_encoder(n_sentences: int) -> list[dict]:
    encoder, tokenizer = hub.load_model_and_tokenizer("bert-base-uncased", task="encoder")
    texts = dialogues("validation", n_sentences)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")

    def embed(model):
        out = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return (out * mask).sum(1) / mask.sum(1)

    return qe.compare_outputs(qe.int8_variants(encoder), embed)


def int8_perplexity(steps: int) -> tuple[list[dict], dict]:
    train = qe.text_to_bytes(dialogues("train", 3000))
    val = qe.text_to_bytes(dialogues("validation", 300))
    cfg = qe.ByteLMConfig(steps=steps)
    start = time.perf_counter()
    model, history = qe.train_byte_decoder(cfg, train, progress=False)
    info = {"params": sum(p.numel() for p in model.parameters()), "steps": steps, "final_loss": history[-1]["loss"],
            "train_s": time.perf_counter() - start}
    rows = []
    for name, variant in qe.int8_variants(model).items():
        rows.append({"variant": name, "perplexity": stream_perplexity(variant, val, cfg.seq_len, max_windows=200)})
    for r in rows:
        r["change vs fp32"] = r["perplexity"] / rows[0]["perplexity"] - 1
    return rows, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--lm-steps", type=int, default=300)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("\n## Predicted vs measured (CPU, fp32, one AdamW step)\n")
    print(table(predicted_vs_measured()))
    print("\n## ZeroRedundancyOptimizer, 2 gloo processes\n")
    print(table(zero_run()))
    print(f"\n## int8 MiniLM encoder, {args.sentences} DialogSum validation dialogues\n")
    print(table(int8_encoder(args.sentences)))
    rows, info = int8_perplexity(args.lm_steps)
    print(f"\n## int8 byte-level GPT-NeoX ({info['params']:,} params, {info['steps']} steps, final loss "
          f"{info['final_loss']:.3f}, trained in {info['train_s']:.0f} s)\n")
    print(table(rows))


if __name__ == "__main__":
    main()
