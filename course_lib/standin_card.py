"""The written model card of the FLAN-T5 stand-in, and the evaluation it reports.

Sections follow Mitchell et al. (2019), "Model Cards for Model Reporting", as hub
cards do: model details, uses, bias/risks/limitations, training details, evaluation.
Every figure in the card is measured at build time by ``t5_standin``.
"""

from __future__ import annotations

from dataclasses import asdict


def evaluate_on_dev(model, tokenizer, n_dialogues: int) -> dict:
    """Greedy zero-shot ROUGE on the first ``n_dialogues`` DialogSum validation dialogues (instruction prompt)."""
    from . import data, evaluation, generation, prompting

    if n_dialogues <= 0:
        return {}
    dev = data.load_dialogsum("validation")
    rows = [dev[i] for i in range(min(n_dialogues, len(dev)))]
    prompts = [prompting.instruction_prompt(r["dialogue"]) for r in rows]
    predictions = generation.summarize(model, tokenizer, prompts, generation.GenerationSettings(max_new_tokens=64))
    scores = evaluation.rouge(predictions, [r["summary"] for r in rows])
    return {"eval_dialogues": len(rows), **{f"dev_{k}": round(v, 4) for k, v in scores.items()},
            "dev_example_prediction": predictions[0], "dev_example_reference": rows[0]["summary"]}


def write_card(name: str, config, metrics: dict) -> str:
    """The README.md of the cached stand-in folder."""
    cfg = asdict(config)
    arch = ", ".join(f"{k}={cfg[k]}" for k in ("d_model", "d_ff", "num_heads", "num_layers", "num_decoder_layers", "vocab_size"))
    minutes = metrics["train_seconds"] / 60
    if "dev_rouge1" in metrics:
        evaluation = (
            f"Greedy decoding, zero-shot instruction prompt, {metrics['eval_dialogues']} DialogSum validation dialogues, "
            f"ROUGE F-measures with stemming (`course_lib.evaluation.rouge`):\n\n"
            f"| ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-Lsum |\n|---|---|---|---|\n"
            f"| {metrics['dev_rouge1']:.4f} | {metrics['dev_rouge2']:.4f} | {metrics['dev_rougeL']:.4f} | {metrics['dev_rougeLsum']:.4f} |\n\n"
            f"Example (first validation dialogue):\n\n- generated: {metrics['dev_example_prediction']!r}\n"
            f"- reference: {metrics['dev_example_reference']!r}\n\n"
            "For scale: the course reported ROUGE-1 0.2334 for the real FLAN-T5-base, zero-shot, on the 1,500-row "
            "test mirror. The numbers are not comparable one to one (different split and model); they only place "
            "this stand-in on the same axis."
        )
    else:
        evaluation = "No evaluation was run for this build (eval_dialogues=0)."
    return f"""# {name}

A small T5 that `course_lib` trains on this machine when the Hugging Face hub is unreachable, so that
the course labs that ask for `google/flan-t5-*` still run end to end. **It is not FLAN-T5** and its
outputs must never be presented as FLAN-T5's.

## Model details

- Architecture: `T5ForConditionalGeneration` (encoder-decoder Transformer, relative position buckets,
  gated-GELU feed-forward, untied output layer, as T5 v1.1 / FLAN-T5), {arch},
  {metrics['parameters']:,} parameters. FLAN-T5-base has about 248 million.
- Tokenizer: a Unigram tokenizer (T5-style: `<pad>`=0, `</s>`=1, `<unk>`=2, 100 `<extra_id_N>` sentinels,
  `</s>` appended to every input) learned by `course_lib` from {cfg['tokenizer_dialogues']} DialogSum training dialogues.
- Developed by: the course's own code (`course_lib.t5_standin`), trained from random initialization.
- License: code MIT; the training data is DialogSum (CC BY-NC-SA 4.0), so the weights inherit its
  non-commercial, share-alike terms.

## Uses

- Direct use: stand in for FLAN-T5 in the course labs when offline, to exercise prompting, decoding
  settings, evaluation and fine-tuning code on a real seq2seq model.
- Out of scope: anything outside two-person everyday dialogues in English; any real summarization
  task; any comparison presented as FLAN-T5's quality.

## Bias, risks and limitations

- It has seen only DialogSum, for minutes of CPU training: it copies DialogSum's summary style
  (`#Person1# tells #Person2# ...`), often gets facts, names and numbers wrong, and repeats itself.
- It understands prompts only in the formats it was trained on (bare dialogue, "Summarize the following
  conversation.", FLAN's "Dialogue: ... What was going on?", one solved example first). It has no
  general instruction following, no world knowledge and no other tasks.
- DialogSum's topics and speakers reflect its sources (English-learning dialogues, daily life); the model
  inherits whatever stereotypes they carry.

## Training details

- Data: {metrics['train_dialogues']} DialogSum training dialogues; each input is the dialogue in one randomly
  chosen prompt format ({cfg['one_shot_fraction']:.0%} preceded by one other solved example), the target is its
  reference summary (at most {cfg['max_target_tokens']} tokens; inputs at most {cfg['max_source_tokens']}).
- Procedure: `course_lib.training.train`, AdamW (peak lr {cfg['lr']}, {cfg['warmup_steps']} warmup steps, cosine decay),
  batch {cfg['batch_size']}, {cfg['steps']} steps, gradient clipping 1.0, seed {cfg['seed']}.
- Training loss: {metrics['first_loss']:.3f} at the first step, {metrics['final_loss']:.3f} over the last 10 steps.
- Build time: {minutes:.1f} min wall clock ({metrics['train_cpu_seconds'] / 60:.1f} min of CPU time, {metrics['torch_threads']} torch
  thread(s), on {metrics['device']}) for the tokenizer and the training.

## Evaluation

{evaluation}
"""
