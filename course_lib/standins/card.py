"""The written model card of the FLAN-T5 stand-in, and the evaluation it reports.

Sections follow Mitchell et al. (2019), "Model Cards for Model Reporting", as hub
cards do: model details, uses, bias/risks/limitations, training details, evaluation.
Every figure in the card is read from what the build measured, never from intent.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from .. import evaluation, generation, prompting

LICENSE_NOTE = """# License of these weights

The weights in this folder were trained by `course_lib` (MIT-licensed code) on the training split of
DialogSum (Chen et al., 2021, "DialogSum: A Real-Life Scenario Dialogue Summarization Dataset",
https://github.com/cylnlp/dialogsum), which is licensed CC BY-NC-SA 4.0. As a work derived from
DialogSum, the weights and the tokenizer are distributed under the same terms: attribution to
DialogSum and its authors, non-commercial use only, and share-alike.
https://creativecommons.org/licenses/by-nc-sa/4.0/

No DialogSum text is stored here; the tokenizer's vocabulary holds word pieces learned from it.
"""


def summary_quality(model, tokenizer, rows: list[dict], batch_size: int = 32) -> dict:
    """Greedy FLAN-template summaries of ``rows`` (with ``references``), scored with the reading controls."""
    prompts = [prompting.flan_prompt(r["dialogue"]) for r in rows]
    start = time.perf_counter()
    outputs = generation.summarize(model, tokenizer, prompts, generation.GenerationSettings(max_new_tokens=64),
                                   batch_size=batch_size)
    seconds = time.perf_counter() - start
    refs = [r.get("references") or [r["summary"]] for r in rows]
    controls = evaluation.summary_controls(outputs, [r["dialogue"] for r in rows], refs)
    rounded = {k: ({m: round(x, 4) for m, x in v.items()} if isinstance(v, dict) else round(v, 4) if isinstance(v, float) else v)
               for k, v in controls.items()}
    return {**rounded, "prompt": "flan", "decoding": "greedy, max_new_tokens=64", "generate_seconds": round(seconds, 1),
            "examples_shown": [{"prediction": outputs[i], "reference": refs[i][0]} for i in range(min(3, len(rows)))]}


def _evaluation_section(metrics: dict) -> str:
    test = metrics.get("test")
    if not test:
        return "No evaluation was run for this build."
    rows = [("model, own references (matched)", test["matched"]), ("model, another dialogue's references (shuffled)", test["shuffled"]),
            ("first turn of the dialogue (no model)", test["first_turn"]), ("one constant sentence (no model)", test["constant"])]
    table = "| output scored | ROUGE-1 | ROUGE-2 | ROUGE-L |\n|---|---|---|---|\n"
    table += "".join(f"| {name} | {r['rouge1']:.4f} | {r['rouge2']:.4f} | {r['rougeL']:.4f} |\n" for name, r in rows)
    examples = "".join(f"- generated: {e['prediction']!r}\n  reference: {e['reference']!r}\n" for e in test["examples_shown"])
    return (f"Greedy decoding, FLAN template (\"Dialogue: ... What was going on?\"), the first {test['examples']} "
            f"dialogues of the split the build was given ({metrics.get('eval_source', 'DialogSum test')}), each scored "
            f"against its references (best of them), ROUGE F-measures with stemming:\n\n{table}\n"
            f"Reading the dialogue is worth {test['reading_gain']:+.4f} ROUGE-1 (matched minus shuffled); "
            f"{test['distinct']:.0%} of the outputs are distinct. Generation took {test['generate_seconds']} s.\n\n"
            f"{examples}\nFor scale only: the course reported ROUGE-1 0.2334 for the real FLAN-T5-base, zero-shot, on the "
            "1,500-row test mirror (one reference per row); the numbers are not comparable one to one.")


def write_card(name: str, config, metrics: dict) -> str:
    """The README.md of a built stand-in: every figure read from ``metrics``."""
    cfg = asdict(config)
    arch = ", ".join(f"{k}={cfg[k]}" for k in ("d_model", "d_ff", "num_heads", "num_layers", "num_decoder_layers"))
    minutes = metrics["train_seconds_all_sessions"] / 60
    tied = ("tied to the input embedding (FLAN-T5's is untied; transformers 5 ties a T5's output layer whatever its config says)"
            if metrics["tied_output_layer"] else "untied (its own weights), as in FLAN-T5")
    return f"""# {name}

A small T5 that `course_lib` trained once and ships inside the package, so that the labs that ask for
`google/flan-t5-*` still run end to end without the Hugging Face hub. **It is not FLAN-T5** and its
outputs must never be presented as FLAN-T5's.

## Model details

- Architecture: `T5ForConditionalGeneration` (encoder-decoder Transformer, relative position buckets,
  gated-GELU feed-forward), {arch}, output layer {tied}; {metrics['parameters']:,} parameters
  (FLAN-T5-base has about 248 million). Stored in float16, loaded in float32.
- Tokenizer: Unigram, {metrics['vocab_size']:,} ids (T5-style: `<pad>`=0, `</s>`=1, `<unk>`=2, 100 `<extra_id_N>`
  sentinels at the top, `</s>` appended to every input), learned from {min(cfg['tokenizer_dialogues'], metrics['train_dialogues']):,}
  DialogSum training dialogues.
- Developed by: the course's own code (`course_lib.standins.t5`), trained from random initialization.
- License: code MIT; the weights derive from DialogSum (CC BY-NC-SA 4.0), see LICENSE.md.

## Uses

- Direct use: stand in for FLAN-T5 in the course labs when offline, to exercise prompting, decoding
  settings, evaluation and fine-tuning code on a real seq2seq model.
- Out of scope: anything outside two-person everyday dialogues in English; any real summarization
  task; any comparison presented as FLAN-T5's quality.

## Bias, risks and limitations

- It has seen only DialogSum: it copies DialogSum's summary style (`#Person1# tells #Person2# ...`),
  often gets facts, names and numbers wrong, and repeats itself.
- It follows only the prompt formats it was trained on (bare dialogue, "Summarize the following
  conversation.", FLAN's "Dialogue: ... What was going on?", one solved example first). It has no
  general instruction following, no world knowledge, and was never trained to name a dialogue's topic.
- DialogSum's topics and speakers reflect its sources (English-learning dialogues, daily life); the model
  inherits whatever stereotypes they carry.

## Training details

- Data: {metrics['train_dialogues']:,} DialogSum training dialogues ({metrics['data_source'] or 'source not recorded'}).
  Summarization: each dialogue in one randomly chosen prompt format ({cfg['one_shot_fraction']:.0%} preceded by one other
  solved example) with its reference summary as the target (targets at most {cfg['max_target_tokens']} tokens, inputs at most
  {cfg['max_source_tokens']}). On each dialogue's first {cfg['span_corruption_tokens']} tokens, two denoising objectives:
  T5's span corruption (15% noise, mean span 3; the target is the dropped spans), {metrics['span_corruption_per_pass']:,}
  examples per pass ({cfg['span_corruption_fraction']:.0%} of the mix), and reconstruction (BART-style: the same corrupted
  window in, the whole window out), {metrics.get('reconstruction_per_pass', 0):,} per pass ({cfg.get('reconstruction_fraction', 0):.0%}),
  which is what taught the decoder to read its input (builds without it learned to ignore the dialogue).
- Procedure: `course_lib.training.train`, AdamW (peak lr {cfg['lr']}, {cfg['warmup_steps']} warmup steps, cosine decay),
  batch {cfg['batch_size']}, {metrics['steps']:,} steps (~{metrics['passes']} passes over the mix), gradient clipping 1.0,
  precision {metrics['precision']}, seed {cfg['seed']}.
- Training loss: {metrics['first_loss']:.3f} at the first step, {metrics['final_loss']:.3f} over the last logged steps.
- Build time: {minutes:.1f} min wall clock in all ({metrics['torch_threads']} torch thread(s), on {metrics['device']}).{(chr(10) + '- Note: ' + metrics['build_note']) if metrics.get('build_note') else ''}

## Evaluation

{_evaluation_section(metrics)}
"""
